"""One ``config.json`` schema for every run directory, and ``rnnkit.load(path)``.

Every task writes the same top level::

    {
      "task": "textgen",                 # which task object reads this directory (see TASKS)
      "format_version": 2,               # this schema; older run directories are upgraded when read
      "rnnkit_version": "0.1.0",         # the version that wrote it
      "config": {..., "train": {...}},   # the task's config dataclass, its TrainConfig nested
      "data": {...},                     # what it was trained on: source, sizes, columns, classes
      "fitted": {...}                    # small learned values that are not tensors (end token, scales)
    }

Weights (``model.safetensors``, ``best.safetensors``) and side files (``tokenizer.json``) lie beside it.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from rnnkit.runs.checkpoint import RunDir

FORMAT_VERSION = 2

# task name in config.json -> "module:Class" of the task object that loads it
TASKS = {
    "textgen": "rnnkit.tasks.textgen.task:TextGenerator",
    "classify": "rnnkit.tasks.classify.task:SequenceClassifier",
    "classify-multilabel": "rnnkit.tasks.classify.multilabel:MultilabelClassifier",
    "forecast": "rnnkit.tasks.forecast.task:Forecaster",
    "seq2seq": "rnnkit.tasks.seq2seq.task:Seq2Seq",
}


def task_class(name: str):
    """The task object class registered for ``name`` in :data:`TASKS`."""
    if name not in TASKS:
        raise ValueError(f"task {name!r}: expected one of {', '.join(map(repr, sorted(TASKS)))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def write_run_config(run: RunDir, task: str, config: dict, data: dict | None = None,
                     fitted: dict | None = None) -> None:
    """Write ``config.json`` in the one schema (atomically)."""
    run.write_config({"task": task, "format_version": FORMAT_VERSION, "config": config,
                      "data": data or {}, "fitted": fitted or {}})


def read_run_config(path: str | RunDir, task: str | None = None) -> dict[str, Any]:
    """Read ``config.json`` (upgrading an older format) and check that it is ``task``'s, when given."""
    run = RunDir(path)
    raw = run.read_config()
    name = raw.get("task")
    if name not in TASKS:
        raise ValueError(f"{run.config_path}: task {name!r} is not an rnnkit task; expected one of "
                         f"{', '.join(map(repr, sorted(TASKS)))}")
    if raw.get("format_version", 1) > FORMAT_VERSION:
        raise ValueError(f"{run.config_path}: format_version {raw['format_version']} is newer than this rnnkit "
                         f"reads ({FORMAT_VERSION}); upgrade rnnkit")
    if raw.get("format_version") == FORMAT_VERSION:
        doc = raw
    else:
        try:
            doc = task_class(name).upgrade_config(raw)
        except (KeyError, TypeError, AttributeError) as err:
            # A format-1 file without a part it must have (or with the wrong kind of value there).
            what = f"no {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"{run.config_path}: a config.json of format_version 1 that cannot be read ({what}); "
                             f"expected one as rnnkit wrote it, or train the run again") from None
        except ValueError as err:
            raise ValueError(f"{run.config_path}: {err}") from None
    if task is not None and doc["task"] != task:
        raise ValueError(f"{run.config_path}: this run directory holds a {doc['task']!r} run, expected {task!r}")
    # "config" is required (the task's settings); "data" and "fitted" may be absent (a run in training).
    if not isinstance(doc.get("config"), dict):
        found = "no 'config'" if "config" not in doc else f"'config' is {json.dumps(doc['config'])[:40]}"
        raise ValueError(f"{run.config_path}: {found}; expected \"config\": {{...}}, the {doc['task']} run's "
                         f"settings as a JSON object")
    for key in ("data", "fitted"):
        if not isinstance(doc.get(key, {}), dict):
            raise ValueError(f"{run.config_path}: {key!r} is {json.dumps(doc[key])[:40]}; expected a JSON object")
    return doc


def load(path: str, **options: Any):
    """The task object of any run directory: ``rnnkit.load("runs/x")`` -> a fitted TextGenerator,
    SequenceClassifier, Forecaster, ... (``options`` go to that class's ``load``, e.g. ``weights="last"``)."""
    doc = read_run_config(path)
    return task_class(doc["task"]).load(path, **options)
