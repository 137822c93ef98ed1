"""Model versions: a local registry of finished runs under names, ``NAME/1``, ``NAME/2``, ...

A registry is one folder (``$RNNKIT_MODELS``, else ``$XDG_DATA_HOME/rnnkit/models``, else
``~/.local/share/rnnkit/models``)::

    models/
      shakespeare/
        model.json          {"name": ..., "promoted": 2, "last_version": 3, "versions": {"1": {...}, ...}}
        1/                  a copy of the run directory (or, registered with link=True, a symlink to it)
        3/
      imdb/ ...

* ``register`` copies the run into a temporary folder beside the versions and renames it to its number
  when the copy is complete: a kill leaves the finished versions and a temporary folder (removed by the
  next register), never half a version. Version numbers are never reused (``last_version``), so
  ``NAME@3`` always means the same model.
* ``model.json`` says which version is promoted (what ``NAME`` alone means) and when each version was
  registered and from where. It is written atomically, under a lock, so two commands at once do not lose
  each other's changes. The first version registered is promoted; removing the promoted version passes
  the mark to the newest version left.
* Everything else a listing shows (task, metrics, data digest) is read from the version's own run
  directory, so a version says what its files say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

from rnnkit.runs.checkpoint import METRICS_FILE, RECORD_KEYS, RunDir
from rnnkit.runs.io import atomic_write_json, fsync_dir, read_json
from rnnkit.runs.schema import is_finished, load, read_run_config

MODELS_VARIABLE = "RNNKIT_MODELS"
MODEL_FILE = "model.json"            # per name: the promoted version and each version's record
MODEL_FORMAT = "rnnkit.models"
LOCK_FILE = ".lock"
INCOMING = ".incoming-"              # a version being copied (renamed to its number when complete)
REMOVING = ".removing-"              # a version being deleted (renamed away first, so it vanishes at once)

# Letters, digits, '-', '_' and '.', starting with a letter or digit (so never '.', '..' or a hidden name).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# The figure a listing shows for each task: the first of these a version has (test figures before
# validation ones; lower is better for losses and errors, higher for the rest).
MAIN_METRICS = ("test_accuracy", "test_mae", "test_bleu", "test_exact_match", "val_accuracy", "val_mae",
                "val_bits_per_char", "val_perplexity", "val_exact_match", "val_loss")

# Files a run directory may hold with held-out figures: {"accuracy": ...} -> metrics "test_accuracy", ...
REPORT_FILES = {"test": "test_metrics.json", "val": "val_metrics.json"}


@dataclasses.dataclass
class ModelVersion:
    """One registered version (or, from ``resolve``, a plain run directory: ``version`` None)."""
    name: str
    version: int | None
    path: Path
    task: str
    promoted: bool
    metrics: dict[str, float]
    data_digest: str | None
    created: str                      # ISO 8601, UTC: when it was registered (a run directory: its config.json)

    @property
    def spec(self) -> str:
        """``NAME@VERSION`` (or the path of a plain run directory): what ``resolve`` takes back."""
        return str(self.path) if self.version is None else f"{self.name}@{self.version}"

    def main_metric(self) -> tuple[str, float] | None:
        """(name, value) of the figure a listing shows, or None when the run recorded none."""
        for key in MAIN_METRICS:
            if key in self.metrics:
                return key, self.metrics[key]
        return None


def default_root() -> Path:
    """``$RNNKIT_MODELS``, else ``$XDG_DATA_HOME/rnnkit/models``, else ``~/.local/share/rnnkit/models``."""
    if os.environ.get(MODELS_VARIABLE):
        return Path(os.environ[MODELS_VARIABLE]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "rnnkit" / "models"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"model name {name!r}: expected letters, digits, '-', '_' and '.', starting with a "
                         f"letter or digit, at most 100 characters")
    return name


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``"NAME"`` -> (NAME, None); ``"NAME@3"`` -> (NAME, 3). The name and the number are checked."""
    name, at, version = spec.partition("@")
    check_name(name)
    if not at:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"{spec!r}: version {version!r}: expected a whole number >= 1, as in {name}@1")
    return name, int(version)


class Registry:
    """The model versions under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- adding a version ------------------------------------------------------------------------------------

    def register(self, run_dir: str | os.PathLike, name: str, *, link: bool = False) -> ModelVersion:
        """Copy (``link``: symlink) a finished run directory to ``ROOT/NAME/<next version>``."""
        check_name(name)
        source = Path(run_dir).expanduser().absolute()
        check_finished(source)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with self._locked(name):
            self._remove_leftovers(folder)
            doc = self._read_model(name)
            version = max([doc["last_version"], *self._version_numbers(name)]) + 1
            incoming = folder / f"{INCOMING}{uuid.uuid4().hex[:12]}"
            try:
                if link:
                    incoming.symlink_to(source, target_is_directory=True)
                else:
                    # The run's leftovers of unfinished saves (".*.tmp") are not part of it.
                    shutil.copytree(source, incoming, symlinks=True, ignore=shutil.ignore_patterns(".*.tmp"))
                    _fsync_tree(incoming)
                os.rename(incoming, folder / str(version))    # the commit point: the version appears whole
            except BaseException:
                _delete(incoming)
                raise
            fsync_dir(folder)
            doc["versions"][str(version)] = {"created": _now(), "source": str(source), "link": link}
            doc["last_version"] = version
            if doc["promoted"] is None:
                doc["promoted"] = version
            self._write_model(name, doc)
        return self._version(name, version)

    # -- reading ---------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The registered names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_PATTERN.fullmatch(p.name)
                      and (self._version_numbers(p.name) or (p / MODEL_FILE).is_file()))

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all names), by name then version."""
        names = [self._known_name(name)] if name is not None else self.names()
        return [self._version(n, v) for n in names for v in self._version_numbers(n)]

    def resolve(self, spec: str | os.PathLike) -> ModelVersion:
        """``NAME`` (its promoted version), ``NAME@3``, or the path of a run directory."""
        text = os.fspath(spec)
        if Path(text).expanduser().is_dir() or os.sep in text or text.startswith((".", "~")):
            return self._plain_run(Path(text).expanduser())
        name, version = parse_spec(text)
        self._known_name(name)
        if version is None:
            version = self._read_model(name)["promoted"]
            if version is None or version not in self._version_numbers(name):
                raise ValueError(f"model {name!r} has no promoted version; expected one of "
                                 f"{self._known_versions(name)}: promote one with 'rnnkit models promote "
                                 f"{name}@VERSION'")
        self._check_version(name, version)
        return self._version(name, version)

    # -- changing ----------------------------------------------------------------------------------------

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the one ``NAME`` means."""
        self._known_name(name)
        with self._locked(name):
            self._check_version(name, version)
            doc = self._read_model(name)
            doc["promoted"] = version
            self._write_model(name, doc)
        return self._version(name, version)

    def remove(self, name: str, version: int | None = None) -> int | None:
        """Remove one version, or (``version`` None) the name and all its versions. A linked version loses
        only its link, never the run it points to. Returns the version promoted afterwards (None when the
        name is gone or has no version left)."""
        self._known_name(name)
        folder = self.root / name
        with self._locked(name):
            doc = self._read_model(name)
            versions = self._version_numbers(name)
            if version is not None:
                self._check_version(name, version)
            doomed = versions if version is None else [version]
            for v in doomed:
                # Renamed away first: the version disappears in one step, then its files are deleted.
                away = folder / f"{REMOVING}{v}-{uuid.uuid4().hex[:8]}"
                os.rename(folder / str(v), away)
                _delete(away)
                doc["versions"].pop(str(v), None)
            left = [v for v in versions if v not in doomed]
            if doc["promoted"] not in left:
                doc["promoted"] = max(left) if left else None   # the newest version left takes the mark
            if version is not None:
                self._write_model(name, doc)
        if version is None:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return doc["promoted"]

    # -- inside --------------------------------------------------------------------------------------------

    def _version_numbers(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and not p.name.startswith("0"))

    def _known_name(self, name: str) -> str:
        check_name(name)
        if not (self.root / name).is_dir():
            raise ValueError(f"model {name!r}: not registered in {self.root}; expected one of "
                             f"{', '.join(self.names()) or '(none yet: rnnkit models register RUN NAME)'}")
        return name

    def _known_versions(self, name: str) -> str:
        return ", ".join(f"{name}@{v}" for v in self._version_numbers(name)) or "(no versions)"

    def _check_version(self, name: str, version: Any) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or version not in self._version_numbers(name):
            raise ValueError(f"{name}@{version}: no such version; expected one of {self._known_versions(name)}")

    def _version(self, name: str, version: int) -> ModelVersion:
        path = self.root / name / str(version)
        if not path.exists():      # a linked version whose run was moved or deleted
            raise FileNotFoundError(f"{name}@{version}: it links to {os.readlink(path)}, which no longer exists; "
                                    f"put the run back, or remove the version with 'rnnkit models rm "
                                    f"{name}@{version}'")
        doc = self._read_model(name)
        record = doc["versions"].get(str(version), {})
        # A version whose record was lost (a kill between the rename and model.json): its folder's time.
        created = record.get("created") or _iso(path.lstat().st_mtime)
        return _describe(path, name=name, version=version, promoted=doc["promoted"] == version, created=created)

    def _plain_run(self, path: Path) -> ModelVersion:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such run directory; expected a run directory written by a train "
                                    f"command (--run-dir), or a registered NAME or NAME@VERSION")
        run = RunDir(path)
        read_run_config(run)   # the errors name the file
        return _describe(path.absolute(), name=path.absolute().name, version=None, promoted=False,
                         created=_iso(run.config_path.stat().st_mtime))

    def _read_model(self, name: str) -> dict[str, Any]:
        path = self.root / name / MODEL_FILE
        if not path.is_file():
            return {"format": MODEL_FORMAT, "name": name, "promoted": None, "last_version": 0, "versions": {}}
        doc = read_json(path)
        if (not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT or not isinstance(doc.get("versions"), dict)
                or not isinstance(doc.get("last_version"), int)
                or not (doc.get("promoted") is None or isinstance(doc["promoted"], int))):
            raise ValueError(f"{path}: not a model file rnnkit wrote (expected format {MODEL_FORMAT!r} with "
                             f"'promoted', 'last_version' and 'versions')")
        return doc

    def _write_model(self, name: str, doc: dict[str, Any]) -> None:
        atomic_write_json(self.root / name / MODEL_FILE, doc)

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """One command at a time changes ``name`` (an advisory lock; a no-op where there is no fcntl)."""
        try:
            import fcntl
        except ImportError:      # not POSIX
            yield
            return
        (self.root / name).mkdir(parents=True, exist_ok=True)
        with open(self.root / name / LOCK_FILE, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _remove_leftovers(folder: Path) -> None:
        # What a killed register or remove left; safe under the lock (no other command is writing here).
        for p in folder.iterdir():
            if p.name.startswith((INCOMING, REMOVING)):
                _delete(p)


# ---------------------------------------------------------------------------------------------------------
# What a run directory says about itself
# ---------------------------------------------------------------------------------------------------------

def check_finished(path: Path) -> None:
    """Refuse a folder that is not a finished run: one whose fit completed (config.json marked finished)
    and that ``rnnkit.load`` reads. A version is a model, so a checkpoint is never registered."""
    from rnnkit.tasks.base import task_class, unfinished_text

    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run directory")
    try:
        doc = read_run_config(path)
        if not is_finished(doc):
            raise ValueError(unfinished_text(path, task_class(doc["task"]).command(), checkpoint_hint=False))
        load(str(path))
    except (ValueError, OSError, KeyError, RuntimeError) as err:     # what loading a damaged run raises
        reason = str(err).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: not a finished run that rnnkit.load reads ({reason})") from None


def _describe(path: Path, *, name: str, version: int | None, promoted: bool, created: str) -> ModelVersion:
    doc = read_run_config(path)
    return ModelVersion(name=name, version=version, path=path, task=doc["task"], promoted=promoted,
                        metrics=run_metrics(path, doc), data_digest=doc.get("data", {}).get("digest"),
                        created=created)


def run_metrics(path: Path, doc: dict[str, Any]) -> dict[str, float]:
    """The figures a run recorded, as one flat dict of numbers: the best epoch's record in metrics.jsonl
    (``val_loss``, ...), the task's own ``fitted.metrics`` (forecast), and the held-out reports
    (``test_metrics.json`` -> ``test_accuracy``, ...), later sources winning."""
    run = RunDir(path)
    metrics: dict[str, float] = {}
    epochs = [r for r in run.read_metrics() if r.get("event") == "epoch"] if (path / METRICS_FILE).is_file() else []
    best = [r for r in epochs if r.get("best")]
    if best or epochs:
        metrics.update({k: v for k, v in (best or epochs)[-1].items() if k not in RECORD_KEYS})
    metrics.update(doc.get("fitted", {}).get("metrics") or {})
    for part, file in REPORT_FILES.items():
        if (path / file).is_file():
            report = read_json(path / file)
            if isinstance(report, dict):
                metrics.update({k if k.startswith(f"{part}_") else f"{part}_{k}": v for k, v in report.items()})
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


# ---------------------------------------------------------------------------------------------------------
# Small file helpers
# ---------------------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def _delete(path: Path) -> None:
    """Remove a file, a folder, or a symlink (only the link: never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush every copied file (and folder entry) to the disk before the rename makes the version visible."""
    for directory, _, files in os.walk(folder):
        for f in files:
            p = Path(directory) / f
            if p.is_file() and not p.is_symlink():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(directory))
