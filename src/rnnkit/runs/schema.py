"""One ``config.json`` schema for every run directory, and ``rnnkit.load(path)``.

Every task writes the same top level::

    {
      "task": "textgen",                 # which task object reads this directory (the tasks' registry)
      "format_version": 2,               # this schema; older run directories are upgraded when read
      "rnnkit_version": "0.1.0",         # the version that wrote it
      "config": {..., "train": {...}},   # the task's config dataclass, its TrainConfig nested
      "data": {...},                     # what it was trained on: source, sizes, columns, classes
      "fitted": {...},                   # small learned values that are not tensors (end token, scales)
      "finished": true,                  # written by a completed fit (or save): the run is a model
      "files": {"final.safetensors": "sha256:...", "tokenizer.json": "sha256:..."},   # by save (see below)
      "digest": "sha256:..."             # of this file's own content, everything but "digest" itself
    }

The finished model's weights (``final.safetensors``), the Trainer's checkpoint and side files (``tokenizer.json``)
lie beside it. Which task object reads a run is looked up in the registry of tasks (``rnnkit.tasks.base``):
this module names none of them.

Every file a run is loaded from has a digest recorded when it was written. Damage that stays valid JSON (a
flipped digit in a normaliser's ``std``, two swapped ids in ``tokenizer.json``, a reversed class list) reads
as well as the real thing, so: ``digest`` covers config.json itself and is checked whenever it is read
(``read_run_config``); ``files`` (written by ``save``) holds the sha256 of the finished weights and of each
side file, checked by ``Task.load`` (``check_run_files``). A mismatch is one line naming the file. Users who
edit a run on purpose re-record them with ``rnnkit runs rehash RUN`` (or load with ``trust_edits=True``).
Runs written before the digests existed have neither key and load as before.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

from rnnkit import __version__
from rnnkit.runs.checkpoint import RunDir

FORMAT_VERSION = 2

# config.json's own digest, and the digests of the files a finished run is loaded from (see the docstring).
DIGEST_KEY = "digest"
FILES_KEY = "files"
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def task_class(name: str):
    """The task object class registered as ``name`` (the registry lives with the Task base)."""
    from rnnkit.tasks.base import task_class as registered
    return registered(name)


def known_tasks() -> list[str]:
    from rnnkit.tasks.base import discover_tasks
    return sorted(discover_tasks())


def write_run_config(run: RunDir, task: str, config: dict, data: dict | None = None,
                     fitted: dict | None = None, *, finished: bool = False,
                     files: dict[str, str] | None = None) -> None:
    """Write ``config.json`` in the one schema (atomically), with ``files`` (name -> sha256 of each file the
    finished run is loaded from) and its own digest."""
    doc = {"task": task, "format_version": FORMAT_VERSION, "config": config, "data": data or {},
           "fitted": fitted or {}, "finished": bool(finished)}
    if files:
        doc[FILES_KEY] = dict(files)
    rewrite_run_config(run, doc)


def rewrite_run_config(run: RunDir, doc: dict[str, Any]) -> None:
    """Write ``doc`` as config.json with its own digest (re)computed: for ``write_run_config``, and for a
    config.json read back and changed on purpose (``rnnkit runs rehash``, tests)."""
    # (rnnkit_version as RunDir.write_config fills it in: the digest covers the file exactly as written)
    doc = {"rnnkit_version": __version__, **{k: v for k, v in doc.items() if k != DIGEST_KEY}}
    run.write_config({**doc, DIGEST_KEY: config_digest(doc)})


# ---------------------------------------------------------------------------------------------------------
# Digests: config.json's own, and those of the files a run is loaded from
# ---------------------------------------------------------------------------------------------------------

def config_digest(doc: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of config.json's content, everything but its ``digest``: over canonical JSON (keys
    sorted, no spaces), so that a file re-indented by hand still matches while any changed value does not.
    The document goes through JSON once first, so tuples and numpy floats hash as the values read back."""
    content = json.loads(json.dumps({k: v for k, v in doc.items() if k != DIGEST_KEY}))
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_digest(path: Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes (read in blocks: weights files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def file_digests(run: RunDir, names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """name -> sha256 of each of ``names`` present in ``run`` (what ``save`` records in ``files``)."""
    return {name: file_digest(run.file(name)) for name in names if run.file(name).is_file()}


def rehash_hint(run: RunDir) -> str:
    return (f"expected the file as rnnkit wrote it: put it back, or if you edited it on purpose, run "
            f"`rnnkit runs rehash {shlex.quote(str(run.path))}`")


def changed_text(path: Path, run: RunDir, recorded: str, now: str) -> str:
    """The one line of a file whose content no longer has the digest recorded for it."""
    return (f"{path}: its content changed since the run was saved (sha256 {recorded[7:19]}... recorded, "
            f"{now[7:19]}... now); {rehash_hint(run)}")


def check_config_digest(run: RunDir, raw: dict[str, Any]) -> None:
    """Refuse a config.json whose content is not the one its ``digest`` was computed over (a run written
    before digests existed has none: nothing to check)."""
    if DIGEST_KEY not in raw:
        return
    recorded = raw[DIGEST_KEY]
    if not isinstance(recorded, str) or not SHA256.fullmatch(recorded):
        raise ValueError(f"{run.config_path}: damaged: its recorded digest ('{DIGEST_KEY}') is "
                         f"{json.dumps(recorded)[:40]}, not a sha256 digest (\"sha256:\" and 64 hex digits); "
                         f"{rehash_hint(run)}")
    now = config_digest(raw)
    if now != recorded:
        raise ValueError(changed_text(run.config_path, run, recorded, now))


def recorded_files(run: RunDir, doc: dict[str, Any]) -> dict[str, str]:
    """config.json's ``files`` (empty for runs written before it), checked to be name -> sha256 digest."""
    files = doc.get(FILES_KEY, {})
    bad = None
    if not isinstance(files, dict):
        bad = f"is {json.dumps(files)[:40]}"
    else:
        for name, digest in files.items():
            # Plain names only: a recorded path never makes rnnkit read a file outside the run directory.
            if Path(name).name != name or name in (".", "..") or not isinstance(digest, str) \
                    or not SHA256.fullmatch(digest):
                bad = f"has {json.dumps(name)}: {json.dumps(digest)[:40]}"
                break
    if bad is not None:
        raise ValueError(f"{run.config_path}: damaged: its recorded file digests ('{FILES_KEY}') {bad}; expected "
                         f"{{\"FILE\": \"sha256:<64 hex digits>\", ...}}; {rehash_hint(run)}")
    return files


def check_run_files(run: RunDir, doc: dict[str, Any], *, skip: tuple[str, ...] = ()) -> None:
    """Refuse a run whose recorded files (``files``, but those in ``skip``) changed since it was saved. A
    file that is missing is left to the task's own check, which says what the directory holds."""
    for name, recorded in recorded_files(run, doc).items():
        path = run.file(name)
        if name in skip or not path.is_file():
            continue
        now = file_digest(path)
        if now != recorded:
            raise ValueError(changed_text(path, run, recorded, now))


def is_finished(doc: dict[str, Any], run: RunDir | None = None) -> bool:
    """Whether a run's fit completed: config.json's ``finished`` mark. Runs written before the mark existed
    count as finished when their ``fitted`` part was written, the rule of those versions."""
    if "finished" in doc:
        return doc["finished"] is True
    return bool(doc.get("fitted"))


def read_run_config(path: str | RunDir, task: str | None = None, *, trust_edits: bool = False) -> dict[str, Any]:
    """Read ``config.json`` (upgrading an older format) and check that it is ``task``'s, when given, and that
    its content is the one recorded in its digest (unless ``trust_edits``: the user edited it on purpose)."""
    run = RunDir(path)
    raw = run.read_config()
    if not trust_edits:
        check_config_digest(run, raw)    # first: nothing below reads a value that changed since it was written
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
    doc = read_run_config(path, trust_edits=bool(options.get("trust_edits")))
    return task_class(doc["task"]).load(path, **options)
