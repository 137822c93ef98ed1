"""Run directories: the config, the weights, one checkpoint as a unit, and the metrics of a training run.

A run directory holds everything needed to load a model or to continue training it::

    runs/shakespeare/
      config.json                  {"task": ..., "rnnkit_version": ..., "config": {...}, ...}
      tokenizer.json               side files, written by the task through ``write_json``
      model.safetensors            the last weights            (a copy of the current checkpoint's)
      best.safetensors             the best weights so far     (a copy, when the checkpoint has best weights)
      checkpoint.json              the pointer: which folder holds the current checkpoint, and the sha256 of
                                   each of its files
      checkpoints/<step>-<id>/     one checkpoint, written as a unit:
        model.safetensors            the last weights
        best.safetensors             the best weights (a hard link to an earlier checkpoint's when unchanged)
        trainer_state.safetensors    optimizer tensors, torch RNG state, carried recurrent state
        trainer_state.json           the rest of the training state: param groups, step, epoch, best metric,
                                     python/numpy RNG states, and the skeleton that puts the tensors back
      metrics.jsonl                one JSON record per log event, appended
      loss.png                     the loss curve

The pieces below this module: ``rnnkit.runs.io`` (atomic writes, careful reads; no torch),
``rnnkit.runs.weights`` (safetensors files with the sha256 of their data) and ``rnnkit.runs.state``
(optimizer and RNG state as tensors plus a JSON skeleton). Rules that hold for every file here:

* Writes are atomic (``rnnkit.runs.io``). ``metrics.jsonl`` is append-only instead; a torn or damaged line
  is skipped with a warning when reading, and a torn last line is cut off before the next append.
* A checkpoint is one unit: its files go into a new folder, and only when all of them are on disk does
  ``checkpoint.json`` switch to it (one atomic rename, the commit point). The previous checkpoint is removed
  after that, so a kill at any instant leaves the last complete checkpoint loadable and resumable;
  leftovers of an unfinished save (a folder no pointer names, ``.tmp`` files) are removed by ``clean()``
  and by the next save. Run directories of the earlier layout (the four files at the top level, no
  pointer) still load and resume.
* Damage is detected: every safetensors file rnnkit writes carries the sha256 of its tensor data in its
  metadata, checked on every load, and ``checkpoint.json`` records the sha256 of each checkpoint file,
  checked when a checkpoint is loaded. A mismatch names the file.
* A file that is missing, truncated, corrupted or does not fit the model fails with an error naming the
  file and the problem; a failed save (a full disk) names the run directory and leaves the previous
  checkpoint as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch

from rnnkit import __version__
from rnnkit.runs import io as runio      # its fault_point is looked up at each call: the kill tests replace it
from rnnkit.runs.io import (atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir, json_bytes,
                            named, read_bytes, read_json, write_all)
from rnnkit.runs.state import load_tree, mismatch_text, tree_bytes
from rnnkit.runs.weights import load_metadata, load_weights, safetensors_bytes

CONFIG_FILE = "config.json"
LAST_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
METRICS_FILE = "metrics.jsonl"
# The keys of a metrics.jsonl epoch record that are not metrics (the rest are the task's figures: val_loss, ...).
# What an epoch record holds beside the metrics (the share of steps whose gradient norm was clipped too).
RECORD_KEYS = ("event", "epoch", "step", "lr", "best", "partial", "elapsed_s", "precision", "clipped_share")
PLOT_FILE = "loss.png"
POINTER_FILE = "checkpoint.json"      # names the current checkpoint's folder: the commit point of a save
CHECKPOINTS_DIR = "checkpoints"       # one folder per checkpoint (normally just the current one)
POINTER_FORMAT = "rnnkit.checkpoint"

# Keys a config.json must have for a run directory to load.
REQUIRED_CONFIG_KEYS = ("task",)


# ---------------------------------------------------------------------------------------------------------
# The run directory
# ---------------------------------------------------------------------------------------------------------

class RunDir:
    """One training run on disk: config, weights, training state and metrics (see the module docstring)."""

    def __init__(self, path: str | os.PathLike | "RunDir"):
        self.path = Path(path.path if isinstance(path, RunDir) else path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def weights_path(self) -> Path:
        return self.path / LAST_WEIGHTS

    @property
    def best_path(self) -> Path:
        return self.path / BEST_WEIGHTS

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def plot_path(self) -> Path:
        return self.path / PLOT_FILE

    def require(self, *names: str) -> None:
        """Raise ``FileNotFoundError`` listing which of ``names`` the directory lacks (and what it holds)."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such run directory")
        missing = [n for n in names if not (self.path / n).is_file()]
        if missing:
            held = sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))
            raise FileNotFoundError(f"{self.path}: not a complete rnnkit run directory: missing "
                                    f"{', '.join(missing)} (it holds: {', '.join(held) or 'nothing'})")

    # -- config and side files ------------------------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> Path:
        """Write ``config.json``; ``rnnkit_version`` is filled in when absent."""
        config = {"rnnkit_version": __version__, **config}
        return atomic_write_json(self.config_path, config)

    def read_config(self) -> dict[str, Any]:
        self.require(CONFIG_FILE)
        config = read_json(self.config_path)
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path}: expected a JSON object, got {type(config).__name__}")
        missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"{self.config_path}: incomplete config: missing {', '.join(missing)} "
                             f"(it has: {', '.join(config) or 'nothing'})")
        return config

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    # -- metrics ---------------------------------------------------------------------------------------

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` (flushed and fsynced)."""
        line = (json.dumps(record) + "\n").encode("utf-8")
        path = self.metrics_path
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "ab") as f:
                if f.tell() and _last_byte(path) != b"\n":
                    _cut_torn_line(path)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise CheckpointError(_write_failure(self.path, path, err, self._last_step())) from err

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records. A line that is not a JSON object (a torn last line from a kill, or damage) is
        skipped with a warning: metrics are a report and must never keep a model from loading."""
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_bytes().split(b"\n")
        records = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except (ValueError, RecursionError) as err:   # JSONDecodeError, UnicodeDecodeError too
                if i < len(lines):      # the last line without its newline is a torn append: expected
                    warnings.warn(f"{self.metrics_path}: line {i} skipped: not a JSON record "
                                  f"({getattr(err, 'msg', err)})", stacklevel=2)
                continue
            records.append(record)
        return records

    def rewrite_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    # -- checkpoints -----------------------------------------------------------------------------------

    @property
    def pointer_path(self) -> Path:
        return self.path / POINTER_FILE

    def has_checkpoint(self) -> bool:
        """Whether the directory holds a checkpoint to resume from (this layout's or the earlier one's)."""
        return self.pointer_path.is_file() or all(
            (self.path / n).is_file() for n in (LAST_WEIGHTS, STATE_JSON, STATE_TENSORS))

    def checkpoint_path(self, name: str) -> Path:
        """Where the current checkpoint keeps the file ``name`` (e.g. ``BEST_WEIGHTS``, ``STATE_JSON``):
        in the folder ``checkpoint.json`` names, or at the top level in a run directory of the earlier layout."""
        pointer = self._read_pointer()
        return self.path / pointer["folder"] / name if pointer else self.path / name

    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                        trainer_state: dict[str, Any] | None = None, best: bool = False) -> None:
        """Write a checkpoint: the last weights, the training state, and the best weights (these weights
        when ``best``, else the previous checkpoint's best, if any) -- as one unit.

        The files go into a new folder under ``checkpoints/``; then ``checkpoint.json`` is replaced to name
        it (the commit point); then the previous checkpoint is removed and ``model.safetensors`` (and
        ``best.safetensors``) are copied to the top level for loading. A kill at any instant leaves the
        last complete checkpoint; an ``OSError`` (a full disk) raises ``CheckpointError`` naming the run
        directory, with the previous checkpoint intact.
        """
        checkpoint_id = uuid.uuid4().hex
        # Everything is serialised before the first byte reaches the disk.
        weights = safetensors_bytes(model.state_dict(), {"checkpoint_id": checkpoint_id})
        tree = {"optimizer": optimizer.state_dict() if optimizer is not None else None,
                "trainer": trainer_state or {}}
        state_tensors, state_json = tree_bytes(tree, checkpoint_id)
        step = tree["trainer"].get("step")
        name = f"step-{step:09d}-{checkpoint_id[:8]}" if _is_count(step) else f"ckpt-{checkpoint_id[:16]}"
        previous = self._read_pointer(strict=False)
        folder = self.path / CHECKPOINTS_DIR / name
        committed = False
        try:
            folder.mkdir(parents=True)
            runio.fault_point()
            files = {LAST_WEIGHTS: _write_new(folder / LAST_WEIGHTS, weights)}
            if best:
                files[BEST_WEIGHTS] = _link_or_write(folder / LAST_WEIGHTS, folder / BEST_WEIGHTS, weights,
                                                     files[LAST_WEIGHTS])
            else:
                files.update(self._carry_best(previous, folder))
            files[STATE_TENSORS] = _write_new(folder / STATE_TENSORS, state_tensors)
            files[STATE_JSON] = _write_new(folder / STATE_JSON, state_json)
            fsync_dir(folder)
            fsync_dir(folder.parent)
            pointer = {"format": POINTER_FORMAT, "version": 1, "rnnkit_version": __version__,
                       "checkpoint_id": checkpoint_id, "folder": f"{CHECKPOINTS_DIR}/{name}",
                       "step": step, "files": files}
            atomic_write_bytes(self.pointer_path, json_bytes(pointer), faults=True)   # the commit point
            committed = True
            # The new checkpoint is complete: free the space of the old one before writing the copies.
            self.clean(_in_save=True)
            atomic_write_bytes(self.weights_path, weights, faults=True)
            if best:
                atomic_write_bytes(self.best_path, weights, faults=True)
            elif BEST_WEIGHTS in files and not self.best_path.is_file():
                atomic_write_bytes(self.best_path, read_bytes(folder / BEST_WEIGHTS), faults=True)
        except BaseException as err:
            # Stopped just after the rename of the pointer (a second Ctrl-C), the folder is the checkpoint.
            current = self._read_pointer(strict=False)
            committed = committed or (current is not None and current["checkpoint_id"] == checkpoint_id)
            if not committed:
                shutil.rmtree(folder, ignore_errors=True)   # a partial folder; clean() would remove it too
            if isinstance(err, OSError):
                last = step if committed else (previous or {}).get("step")
                raise CheckpointError(_write_failure(self.path, getattr(err, "filename", None) or folder, err,
                                                     last, saved=committed)) from err
            raise

    def _carry_best(self, previous: dict | None, folder: Path) -> dict[str, dict]:
        """Put the previous checkpoint's best weights into ``folder`` (a hard link: no bytes copied)."""
        if previous is not None:
            entry = previous["files"].get(BEST_WEIGHTS)
            source = self.path / previous["folder"] / BEST_WEIGHTS
        else:   # a run directory of the earlier layout, or a first checkpoint
            entry, source = None, self.best_path if self.has_checkpoint() else None
        if source is None or not source.is_file():
            return {}
        data = None if entry is not None else read_bytes(source)
        return {BEST_WEIGHTS: _link_or_write(source, folder / BEST_WEIGHTS, data, entry)}

    def load_checkpoint(self, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
        """Load the last weights into ``model`` (and the optimizer state); returns the trainer state.

        Every file of the checkpoint is checked against the sha256 that ``checkpoint.json`` recorded.
        """
        pointer = self._read_pointer()
        if pointer is None:
            return self._load_checkpoint_of_earlier_layout(model, optimizer)
        folder = self.path / pointer["folder"]
        for name, entry in pointer["files"].items():
            _check_digest(folder / name, entry, self.pointer_path)
        for name in (LAST_WEIGHTS, STATE_JSON, STATE_TENSORS):
            if name not in pointer["files"]:
                raise ValueError(f"{self.pointer_path}: files: {name} is missing from the checkpoint's list")
        tree, checkpoint_id = load_tree(folder / STATE_JSON, folder / STATE_TENSORS)
        weights_id = load_metadata(folder / LAST_WEIGHTS).get("checkpoint_id")
        if not checkpoint_id == weights_id == pointer["checkpoint_id"]:
            raise ValueError(mismatch_text(folder, LAST_WEIGHTS, weights_id, STATE_JSON, checkpoint_id))
        load_weights(folder / LAST_WEIGHTS, model)
        return self._trainer_state(tree, folder / STATE_JSON, optimizer)

    def _load_checkpoint_of_earlier_layout(self, model, optimizer) -> dict[str, Any]:
        # Before checkpoint.json: the four files at the top level, tied together by a checkpoint id.
        legacy = (LAST_WEIGHTS, STATE_JSON, STATE_TENSORS)
        if self.path.is_dir() and not any((self.path / n).is_file() for n in (STATE_JSON, STATE_TENSORS)):
            held = sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))
            raise FileNotFoundError(f"{self.path}: no checkpoint to resume from: {POINTER_FILE} is missing "
                                    f"(it holds: {', '.join(held) or 'nothing'})")
        self.require(*legacy)
        tree, checkpoint_id = load_tree(self.path / STATE_JSON, self.path / STATE_TENSORS)
        weights_id = load_metadata(self.weights_path).get("checkpoint_id")
        if weights_id != checkpoint_id:
            raise ValueError(mismatch_text(self.path, LAST_WEIGHTS, weights_id, STATE_JSON, checkpoint_id))
        load_weights(self.weights_path, model)
        return self._trainer_state(tree, self.path / STATE_JSON, optimizer)

    @staticmethod
    def _trainer_state(tree: Any, source: Path, optimizer) -> dict[str, Any]:
        if not isinstance(tree, dict) or not isinstance(tree.get("trainer"), dict) or "optimizer" not in tree:
            raise ValueError(f"{source}: tree: expected an object with 'optimizer' and 'trainer'")
        if optimizer is not None:
            if tree["optimizer"] is None:
                raise ValueError(f"{source}: holds no optimizer state")
            try:
                optimizer.load_state_dict(tree["optimizer"])
            except (ValueError, KeyError, TypeError, IndexError) as err:
                raise ValueError(f"{source}: optimizer state does not fit the optimizer: {err}") from None
        return tree["trainer"]

    def load_weights(self, model: torch.nn.Module | None = None, *, best: bool = False) -> dict[str, torch.Tensor]:
        """Load ``model.safetensors`` (or ``best.safetensors``) into ``model``; returns the tensors."""
        name = BEST_WEIGHTS if best else LAST_WEIGHTS
        self.require(name)
        return load_weights(self.path / name, model)

    def _read_pointer(self, strict: bool = True) -> dict[str, Any] | None:
        """``checkpoint.json``, checked; None when there is none (or, not ``strict``, when it is unreadable)."""
        path = self.pointer_path
        if not path.is_file():
            return None
        try:
            doc = read_json(path)
            if not isinstance(doc, dict) or doc.get("format") != POINTER_FORMAT:
                raise ValueError(f"{path}: not an rnnkit checkpoint pointer (expected format {POINTER_FORMAT!r})")
            folder, files = doc.get("folder"), doc.get("files")
            # The folder must be one of ours: a hand-edited pointer must not send reads (or removals) elsewhere.
            if (not isinstance(folder, str) or Path(folder).parent != Path(CHECKPOINTS_DIR)
                    or Path(folder).name in ("", ".", "..")):
                raise ValueError(f"{path}: folder={folder!r}: expected '{CHECKPOINTS_DIR}/<name>'")
            if not isinstance(files, dict) or not all(
                    n in CHECKPOINT_FILES and isinstance(e, dict) and isinstance(e.get("sha256"), str)
                    for n, e in files.items()):
                raise ValueError(f"{path}: files: expected {{file name: {{\"sha256\": ...}}}} for the files "
                                 f"{', '.join(CHECKPOINT_FILES)}")
            if not isinstance(doc.get("checkpoint_id"), str):
                raise ValueError(f"{path}: checkpoint_id={doc.get('checkpoint_id')!r}: expected a string")
        except ValueError:
            if strict:
                raise
            return None
        return doc

    def clean(self, *, _in_save: bool = False) -> list[Path]:
        """Remove what unfinished saves left: checkpoint folders that ``checkpoint.json`` does not name,
        ``.tmp`` files, and the earlier layout's training-state files once a pointer exists. Returns what
        was removed. (Not for a directory that another process is training in.)"""
        pointer = self._read_pointer(strict=False)
        if pointer is None and self.pointer_path.is_file():
            return []   # a damaged pointer: keep everything, so nothing of the run is lost
        keep = (self.path / pointer["folder"]) if pointer else None
        removed = []
        folders = self.path / CHECKPOINTS_DIR
        for entry in sorted(folders.iterdir()) if folders.is_dir() else []:
            # Only names save_checkpoint gives: anything else in the folder is not ours to remove.
            if entry != keep and _CHECKPOINT_NAME.fullmatch(entry.name):
                if _in_save:
                    runio.fault_point()
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
        leftovers = [p for p in self.path.glob(".*.tmp") if p.is_file() and _TEMP_NAME.fullmatch(p.name)]
        if pointer:
            leftovers += [self.path / n for n in (STATE_JSON, STATE_TENSORS) if (self.path / n).is_file()]
        for path in leftovers:
            if _in_save:
                runio.fault_point()
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def _last_step(self) -> Any:
        pointer = self._read_pointer(strict=False)
        return pointer.get("step") if pointer else None


CHECKPOINT_FILES = (LAST_WEIGHTS, BEST_WEIGHTS, STATE_TENSORS, STATE_JSON)
_CHECKPOINT_NAME = re.compile(r"step-\d{9,}-[0-9a-f]{8}|ckpt-[0-9a-f]{16}")    # save_checkpoint's folder names
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")                         # atomic_write_bytes's temporary files


class CheckpointError(RuntimeError):
    """A checkpoint (or a metrics record) could not be written: a full disk, no permission, a read-only
    file system. The message names the run directory and says what of the run is intact."""


def _write_failure(run: Path, target: Any, err: OSError, step: Any, *, saved: bool = False) -> str:
    reason = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    if saved:
        kept = f"the checkpoint of step {step} was saved before that and is complete"
    elif step is not None:
        kept = f"the previous checkpoint (step {step}) is intact"
    else:
        kept = "no earlier checkpoint exists"
    return (f"{run}: could not write {target}: {reason}; {kept}. Free some space (or move the run directory) "
            f"and continue the run with --resume (Python: resume=True)")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_entry(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _write_new(path: Path, data: bytes) -> dict[str, Any]:
    """Write a file that did not exist (inside a checkpoint folder no pointer names yet: no temporary
    file needed) and fsync it; returns its entry for ``checkpoint.json``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data, faults=True)
        os.fsync(fd)
    except OSError as err:
        raise named(err, path) from err
    finally:
        os.close(fd)
    runio.fault_point()
    return _file_entry(data)


def _link_or_write(source: Path, target: Path, data: bytes | None, entry: dict | None) -> dict[str, Any]:
    """``target`` as a hard link to ``source`` (files in checkpoint folders are never changed in place),
    or, where the file system has no hard links, a copy. Returns the entry for ``checkpoint.json``."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise
        return _write_new(target, data if data is not None else read_bytes(source))
    runio.fault_point()
    return entry if entry is not None else _file_entry(data if data is not None else read_bytes(target))


def _check_digest(path: Path, entry: dict[str, Any], pointer: Path) -> None:
    data = read_bytes(path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry["sha256"]:
        raise ValueError(f"{path}: damaged: its sha256 ({actual[:12]}...) is not the one {pointer.name} recorded "
                         f"when the checkpoint was written ({entry['sha256'][:12]}...); the file was changed or "
                         f"corrupted on disk")


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _cut_torn_line(path: Path) -> None:
    """Drop a partial last line (left by a kill during an append) so the next record starts clean."""
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
