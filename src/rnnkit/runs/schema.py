"""One ``config.json`` schema for every run directory, and ``rnnkit.load(path)``.

Every task writes the same top level::

    {
      "task": "textgen",                 # which task object reads this directory (the tasks' registry)
      "format_version": 2,               # this schema; older run directories are upgraded when read
      "rnnkit_version": "0.1.0",         # the version that wrote it
      "config": {..., "train": {...}},   # the task's config dataclass, its TrainConfig nested
      "data": {...},                     # what it was trained on: source, sizes, columns, classes
      "fitted": {...},                   # small learned values that are not tensors (end token, scales)
      "finished": true                   # written by a completed fit (or save): the run is a model
    }

The finished model's weights (``final.safetensors``), the Trainer's checkpoint and side files (``tokenizer.json``)
lie beside it. Which task object reads a run is looked up in the registry of tasks (``rnnkit.tasks.base``):
this module names none of them.
"""

from __future__ import annotations

import json
from typing import Any

from rnnkit.runs.checkpoint import RunDir

FORMAT_VERSION = 2

def task_class(name: str):
    """The task object class registered as ``name`` (the registry lives with the Task base)."""
    from rnnkit.tasks.base import task_class as registered
    return registered(name)


def known_tasks() -> list[str]:
    from rnnkit.tasks.base import discover_tasks
    return sorted(discover_tasks())


def write_run_config(run: RunDir, task: str, config: dict, data: dict | None = None,
                     fitted: dict | None = None, *, finished: bool = False) -> None:
    """Write ``config.json`` in the one schema (atomically)."""
    run.write_config({"task": task, "format_version": FORMAT_VERSION, "config": config,
                      "data": data or {}, "fitted": fitted or {}, "finished": bool(finished)})


def is_finished(doc: dict[str, Any], run: RunDir | None = None) -> bool:
    """Whether a run's fit completed: config.json's ``finished`` mark. Runs written before the mark existed
    count as finished when their ``fitted`` part was written, the rule of those versions."""
    if "finished" in doc:
        return doc["finished"] is True
    return bool(doc.get("fitted"))


def read_run_config(path: str | RunDir, task: str | None = None) -> dict[str, Any]:
    """Read ``config.json`` (upgrading an older format) and check that it is ``task``'s, when given."""
    run = RunDir(path)
    raw = run.read_config()
    name = raw.get("task")
    if not isinstance(name, str) or name not in known_tasks():
        raise ValueError(f"{run.config_path}: task {name!r} is not an rnnkit task; expected one of "
                         f"{', '.join(map(repr, known_tasks()))}")
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
    if not isinstance(doc.get("finished", False), bool):
        raise ValueError(f"{run.config_path}: 'finished' is {json.dumps(doc['finished'])[:40]}; expected true or "
                         f"false")
    return doc


def load(path: str, **options: Any):
    """The task object of any run directory: ``rnnkit.load("runs/x")`` -> a fitted TextGenerator,
    SequenceClassifier, Forecaster, ... (``options`` go to that class's ``load``, e.g. ``checkpoint="last"``)."""
    doc = read_run_config(path)
    return task_class(doc["task"]).load(path, **options)
