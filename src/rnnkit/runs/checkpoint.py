"""Run directories: weights, configs, training state and metrics on disk, written atomically.

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

Rules that hold for every file here:

* Writes are atomic: the bytes go to a temporary file in the same directory, are flushed and fsynced, and
  the temporary file is renamed over the target (``os.replace``). A kill at any moment leaves either the old
  file or the new one, never half of one. (``metrics.jsonl`` is append-only instead; a torn or damaged line
  is skipped with a warning when reading, and a torn last line is cut off before the next append.)
* A checkpoint is one unit: its files go into a new folder, and only when all of them are on disk does
  ``checkpoint.json`` switch to it (one atomic rename, the commit point). The previous checkpoint is removed
  after that, so a kill at any instant leaves the last complete checkpoint loadable and resumable;
  leftovers of an unfinished save (a folder no pointer names, ``.tmp`` files) are removed by ``clean()``
  and by the next save. Run directories of the earlier layout (the four files at the top level, no
  pointer) still load and resume.
* Damage is detected: every safetensors file rnnkit writes carries the sha256 of its tensor data in its
  metadata, checked on every load, and ``checkpoint.json`` records the sha256 of each checkpoint file,
  checked when a checkpoint is loaded. A mismatch names the file.
* Nothing is unpickled. Tensors live in safetensors files; everything else is JSON. The optimizer's
  ``state_dict()`` is split by ``pack_tree`` into tensors and a JSON skeleton and put back together by
  ``unpack_tree`` exactly (same keys and key types, tuples stay tuples, same dtypes).
* A file that is missing, truncated, corrupted or does not fit the model fails with an error naming the
  file and the problem; a failed save (a full disk) names the run directory and leaves the previous
  checkpoint as it was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import safetensors.torch

from rnnkit import __version__

# The permission bits a plain ``open(path, "w")`` would give; ``mkstemp`` creates files as 0600.
_UMASK = os.umask(0)
os.umask(_UMASK)

CONFIG_FILE = "config.json"
LAST_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
POINTER_FILE = "checkpoint.json"      # names the current checkpoint's folder: the commit point of a save
CHECKPOINTS_DIR = "checkpoints"       # one folder per checkpoint (normally just the current one)
POINTER_FORMAT = "rnnkit.checkpoint"

# The safetensors metadata key holding the sha256 of the file's tensor data (the bytes after the header).
DATA_DIGEST_KEY = "data_sha256"

# Keys a config.json must have for a run directory to load.
REQUIRED_CONFIG_KEYS = ("task",)


# ---------------------------------------------------------------------------------------------------------
# Atomic writes and careful reads
# ---------------------------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a torn one."""
    return _atomic_write(Path(path), data)


def _atomic_write(path: Path, data: bytes, *, faults: bool = False) -> Path:
    # ``faults``: this write is part of a checkpoint save, where the kill test may stop the process.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f.fileno(), data, faults=faults)
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        if faults:
            _fault_point()
        os.replace(tmp, path)
    except BaseException as err:
        # Also on KeyboardInterrupt: never leave a stray temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.filename is None:   # os.write names no file: say which
            raise _named(err, path) from err
        raise
    if faults:
        _fault_point()
    _fsync_dir(path.parent)
    return path


def _write_all(fd: int, data: bytes, *, faults: bool = False) -> None:
    """Write every byte of ``data`` to ``fd`` (one ``os.write`` may write fewer)."""
    view = memoryview(data)
    if faults and len(view) > 1:
        half = len(view) // 2
        _write_all(fd, view[:half])
        _fault_point()                 # the kill test stops the process with the file half written
        view = view[half:]
    while len(view):
        view = view[os.write(fd, view):]


def _named(err: OSError, path: Path) -> OSError:
    """The same error (same class and errno) with the file it concerns."""
    return err if err.filename is not None else type(err)(err.errno, err.strerror or str(err), str(path))


def _fault_point() -> None:
    """A point inside a checkpoint save where the kill test stops the process.

    ``RNNKIT_FAULT_AT=N`` (a test-only environment variable) makes the N-th such point of this process
    SIGKILL it, as ``kill -9`` or a power cut would: tests/test_kills.py resumes the run it leaves. Tests
    in the same process replace this function (to raise KeyboardInterrupt or a full-disk error instead).
    """
    at = os.environ.get("RNNKIT_FAULT_AT")
    if not at:
        return
    global _faults_passed
    _faults_passed += 1
    if _faults_passed == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


_faults_passed = 0   # fault points this process has passed (for RNNKIT_FAULT_AT)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON; serialisation happens before the file is touched."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


# The name task code uses for tokenizers, vocabularies and other JSON side files.
write_json = atomic_write_json


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; errors name the file and, for bad JSON, the line and column."""
    path = Path(path)
    text = _read_bytes(path).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: on POSIX the directory entry itself must reach the disk."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support fsync on directories
        pass
    finally:
        os.close(fd)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------------------
# Weights as safetensors
# ---------------------------------------------------------------------------------------------------------

def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None) -> Path:
    """Save tensors (e.g. ``model.state_dict()``) to a safetensors file, atomically.

    ``metadata`` values that are not strings are stored as JSON text (safetensors metadata is str -> str).
    """
    return atomic_write_bytes(path, _safetensors_bytes(state_dict, metadata))


def load_weights(path: str | os.PathLike, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU; with ``model``, check keys and shapes and load them into it.

    Returns the tensors. A missing, truncated or corrupted file, or weights that do not fit ``model``,
    raise an error naming the file and what is wrong.
    """
    path = Path(path)
    tensors, _ = _load_safetensors(path)
    if model is not None:
        expected = model.state_dict()
        check_weights_match(tensors, expected, source=str(path))
        model.load_state_dict(tensors)
    return tensors


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (an empty dict when it has none)."""
    path = Path(path)
    metadata = _safetensors_header(path, _read_bytes(path))[1]
    return {k: v for k, v in metadata.items() if k != DATA_DIGEST_KEY}   # the digest is rnnkit's check value


def check_weights_match(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *,
                        source: str = "weights") -> None:
    """Raise one ``ValueError`` listing missing keys, unexpected keys and shape mismatches."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(tensors) & set(expected)) if tensors[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append("missing keys " + _short_list(missing))
    if unexpected:
        problems.append("unexpected keys " + _short_list(unexpected))
    if shapes:
        problems.append("shape mismatches " + _short_list(shapes))
    if problems:
        raise ValueError(f"{source}: weights do not match the model: " + "; ".join(problems))


def _short_list(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"[{shown}{more}]"


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None) -> bytes:
    # safetensors refuses tensors that share memory (tied embeddings, views of one buffer): copy the
    # second and later users of a storage. Zero-sized tensors have no storage to share.
    seen: set[int] = set()
    out = {}
    for key, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    # The data part does not depend on the metadata: serialise once to hash it, once more to record it.
    data = safetensors.torch.save(out, metadata=meta or None)
    meta[DATA_DIGEST_KEY] = hashlib.sha256(memoryview(data)[_data_start(data):]).hexdigest()
    return safetensors.torch.save(out, metadata=meta)


def _data_start(data: bytes) -> int:
    """Where the tensor data of a safetensors file begins (after the 8-byte length and the header)."""
    return 8 + int.from_bytes(data[:8], "little")


def _safetensors_header(path: Path, data: bytes) -> tuple[dict, dict[str, str]]:
    """Check the framing of a safetensors file by hand, so truncation gets a plain-words message.

    Layout: 8 bytes little-endian header length N, N bytes of JSON header, then the tensor data.
    """
    if len(data) < 8:
        raise ValueError(f"{path}: truncated safetensors file: {len(data)} bytes, "
                         f"shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > 100_000_000:
        raise ValueError(f"{path}: corrupted safetensors file: header length {n} is implausible")
    if 8 + n > len(data):
        raise ValueError(f"{path}: truncated safetensors file: the header needs {n} bytes "
                         f"but only {len(data) - 8} follow")
    try:
        header = json.loads(data[8:8 + n])
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except ValueError as err:
        raise ValueError(f"{path}: corrupted safetensors file: bad header ({err})") from None
    metadata = header.pop("__metadata__", None) or {}
    try:
        needed = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise ValueError(f"{path}: corrupted safetensors file: header entries lack data_offsets") from None
    held = len(data) - 8 - n
    if held < needed:
        raise ValueError(f"{path}: truncated safetensors file: the tensors need {needed} bytes of data "
                         f"but the file holds {held}")
    return header, metadata


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    data = _read_bytes(path)
    _, metadata = _safetensors_header(path, data)
    recorded = metadata.get(DATA_DIGEST_KEY)
    if recorded is not None:   # files of older rnnkit versions (and of other tools) carry none
        actual = hashlib.sha256(memoryview(data)[_data_start(data):]).hexdigest()
        if actual != recorded:
            raise ValueError(f"{path}: damaged: the sha256 of its tensor data ({actual[:12]}...) is not the one "
                             f"recorded when it was written ({recorded[:12]}...); the file was changed or "
                             f"corrupted on disk")
    try:
        tensors = safetensors.torch.load(data)
    except Exception as err:  # the Rust parser's errors are not a public Python type
        raise ValueError(f"{path}: corrupted safetensors file: {err}") from None
    return tensors, metadata


# ---------------------------------------------------------------------------------------------------------
# Nested state (optimizer state_dicts, RNG states) as tensors + a JSON skeleton
# ---------------------------------------------------------------------------------------------------------
#
# The skeleton is plain JSON except for four marker objects, so that the tree comes back exactly:
#   {"__tensor__": "optimizer/state/0/exp_avg"}      a tensor stored in the safetensors file under that key
#   {"__scalar__": 3.0, "dtype": "float32"}          a 0-dim tensor (Adam's step counter), kept readable
#   {"__tuple__": [...]}                             a tuple (Adam's betas), so it does not come back a list
#   {"__items__": [[key, value], ...]}               a dict whose keys are not all plain strings
#                                                    (optimizer state is keyed by parameter index: ints)

def pack_tree(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure into a JSON-able skeleton and a flat dict of (CPU) tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            if t.dim() == 0:
                return {"__scalar__": t.item(), "dtype": str(t.dtype).removeprefix("torch.")}
            key, n = path.lstrip("/") or "tensor", 1
            while key in tensors:
                key, n = f"{path.lstrip('/')}#{n}", n + 1
            tensors[key] = t
            return {"__tensor__": key}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: walk(v, f"{path}/{k}") for k, v in obj.items()}
            return {"__items__": [[walk(k, f"{path}/key"), walk(v, f"{path}/{k}")] for k, v in obj.items()]}
        raise TypeError(f"cannot store a {type(obj).__name__} at {path or '/'} in a training state; "
                        f"expected tensors, numbers, strings, None, lists, tuples or dicts")

    return walk(tree, ""), tensors


def unpack_tree(skeleton: Any, tensors: dict[str, torch.Tensor], *, source: str = "state") -> Any:
    """Inverse of ``pack_tree``. A skeleton that is not one ``pack_tree`` could have written (a damaged
    or hand-edited file) raises a ``ValueError`` naming ``source`` and the place in the tree."""
    def walk(obj: Any, where: str) -> Any:
        if isinstance(obj, list):
            return [walk(v, f"{where}/{i}") for i, v in enumerate(obj)]
        if not isinstance(obj, dict):
            return obj
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if not isinstance(key, str) or key not in tensors:
                raise ValueError(f"{source}: {where or '/'}: tensor {key!r} named in the skeleton is missing")
            return tensors[key]
        if "__scalar__" in obj:
            return _scalar(obj, where)
        if "__tuple__" in obj:
            return tuple(walk(v, f"{where}/{i}") for i, v in enumerate(_as_list(obj["__tuple__"], where)))
        if "__items__" in obj:
            items = _as_list(obj["__items__"], where)
            if not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
                _bad(where, obj["__items__"], "a list of [key, value] pairs")
            return {_hashable(walk(k, f"{where}/key")): walk(v, f"{where}/{k}") for k, v in items}
        return {k: walk(v, f"{where}/{k}") for k, v in obj.items()}

    def _bad(where: str, value: Any, expected: str):
        raise ValueError(f"{source}: {where or '/'}={_short_repr(value)}: expected {expected}")

    def _as_list(value: Any, where: str) -> list:
        if not isinstance(value, list):
            _bad(where, value, "a JSON list")
        return value

    def _scalar(obj: dict, where: str) -> torch.Tensor:
        # Only names of real torch dtypes: "dtype" must never reach an arbitrary attribute of torch.
        name = obj.get("dtype")
        if not isinstance(name, str) or not isinstance(getattr(torch, name, None), torch.dtype):
            _bad(f"{where}/dtype", name, "a torch dtype name such as 'float32' or 'int64'")
        value = obj["__scalar__"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if not (isinstance(value, bool) and name == "bool"):
                _bad(f"{where}/__scalar__", value, "a number")
        return torch.tensor(value, dtype=getattr(torch, name))

    return walk(skeleton, "")


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def save_tree(json_path: str | os.PathLike, tensors_path: str | os.PathLike, tree: Any, *,
              checkpoint_id: str | None = None) -> None:
    """Write ``tree`` as a safetensors file plus a JSON skeleton (tensors first, the JSON last)."""
    skeleton, tensors = pack_tree(tree)
    meta = {"checkpoint_id": checkpoint_id} if checkpoint_id else None
    atomic_write_bytes(tensors_path, _safetensors_bytes(tensors, meta))
    atomic_write_json(json_path, {"format": "rnnkit.state", "version": 1, "rnnkit_version": __version__,
                                  "checkpoint_id": checkpoint_id, "tree": skeleton})


def load_tree(json_path: str | os.PathLike, tensors_path: str | os.PathLike) -> tuple[Any, str | None]:
    """Read what ``save_tree`` wrote; returns ``(tree, checkpoint_id)``."""
    json_path, tensors_path = Path(json_path), Path(tensors_path)
    doc = read_json(json_path)
    if not isinstance(doc, dict) or doc.get("format") != "rnnkit.state" or "tree" not in doc:
        raise ValueError(f"{json_path}: not an rnnkit training state (expected format 'rnnkit.state' "
                         f"with a 'tree')")
    tensors, meta = _load_safetensors(tensors_path)
    checkpoint_id = doc.get("checkpoint_id")
    if meta.get("checkpoint_id") != checkpoint_id:
        raise ValueError(_mismatch_text(json_path.parent, tensors_path.name, meta.get("checkpoint_id"),
                                        json_path.name, checkpoint_id))
    return unpack_tree(doc["tree"], tensors, source=str(json_path)), checkpoint_id


def _mismatch_text(directory: Path, a: str, a_id: Any, b: str, b_id: Any) -> str:
    return (f"{directory}: {a} (checkpoint {a_id}) and {b} (checkpoint {b_id}) come from different saves; "
            f"the run was probably stopped while a checkpoint was being written. The weights alone still "
            f"load with load_weights(); training cannot resume from this pair of files")


# ---------------------------------------------------------------------------------------------------------
# Random number generator states
# ---------------------------------------------------------------------------------------------------------

def rng_states() -> dict[str, Any]:
    """The python, numpy and torch (and CUDA, once initialised) generator states, ready for ``pack_tree``."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),  # uint8 tensor
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` captured."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


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
        weights = _safetensors_bytes(model.state_dict(), {"checkpoint_id": checkpoint_id})
        tree = {"optimizer": optimizer.state_dict() if optimizer is not None else None,
                "trainer": trainer_state or {}}
        skeleton, tensors = pack_tree(tree)
        state_tensors = _safetensors_bytes(tensors, {"checkpoint_id": checkpoint_id})
        state_json = _json_bytes({"format": "rnnkit.state", "version": 1, "rnnkit_version": __version__,
                                  "checkpoint_id": checkpoint_id, "tree": skeleton})
        step = tree["trainer"].get("step")
        name = f"step-{step:09d}-{checkpoint_id[:8]}" if _is_count(step) else f"ckpt-{checkpoint_id[:16]}"
        previous = self._read_pointer(strict=False)
        folder = self.path / CHECKPOINTS_DIR / name
        committed = False
        try:
            folder.mkdir(parents=True)
            _fault_point()
            files = {LAST_WEIGHTS: _write_new(folder / LAST_WEIGHTS, weights)}
            if best:
                files[BEST_WEIGHTS] = _link_or_write(folder / LAST_WEIGHTS, folder / BEST_WEIGHTS, weights,
                                                     files[LAST_WEIGHTS])
            else:
                files.update(self._carry_best(previous, folder))
            files[STATE_TENSORS] = _write_new(folder / STATE_TENSORS, state_tensors)
            files[STATE_JSON] = _write_new(folder / STATE_JSON, state_json)
            _fsync_dir(folder)
            _fsync_dir(folder.parent)
            pointer = {"format": POINTER_FORMAT, "version": 1, "rnnkit_version": __version__,
                       "checkpoint_id": checkpoint_id, "folder": f"{CHECKPOINTS_DIR}/{name}",
                       "step": step, "files": files}
            _atomic_write(self.pointer_path, _json_bytes(pointer), faults=True)   # the commit point
            committed = True
            # The new checkpoint is complete: free the space of the old one before writing the copies.
            self.clean(_in_save=True)
            _atomic_write(self.weights_path, weights, faults=True)
            if best:
                _atomic_write(self.best_path, weights, faults=True)
            elif BEST_WEIGHTS in files and not self.best_path.is_file():
                _atomic_write(self.best_path, _read_bytes(folder / BEST_WEIGHTS), faults=True)
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
        data = None if entry is not None else _read_bytes(source)
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
            raise ValueError(_mismatch_text(folder, LAST_WEIGHTS, weights_id, STATE_JSON, checkpoint_id))
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
            raise ValueError(_mismatch_text(self.path, LAST_WEIGHTS, weights_id, STATE_JSON, checkpoint_id))
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
                    _fault_point()
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
        leftovers = [p for p in self.path.glob(".*.tmp") if p.is_file() and _TEMP_NAME.fullmatch(p.name)]
        if pointer:
            leftovers += [self.path / n for n in (STATE_JSON, STATE_TENSORS) if (self.path / n).is_file()]
        for path in leftovers:
            if _in_save:
                _fault_point()
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def _last_step(self) -> Any:
        pointer = self._read_pointer(strict=False)
        return pointer.get("step") if pointer else None


CHECKPOINT_FILES = (LAST_WEIGHTS, BEST_WEIGHTS, STATE_TENSORS, STATE_JSON)
_CHECKPOINT_NAME = re.compile(r"step-\d{9,}-[0-9a-f]{8}|ckpt-[0-9a-f]{16}")    # save_checkpoint's folder names
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")                         # _atomic_write's temporary files


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


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_entry(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _write_new(path: Path, data: bytes) -> dict[str, Any]:
    """Write a file that did not exist (inside a checkpoint folder no pointer names yet: no temporary
    file needed) and fsync it; returns its entry for ``checkpoint.json``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, data, faults=True)
        os.fsync(fd)
    except OSError as err:
        raise _named(err, path) from err
    finally:
        os.close(fd)
    _fault_point()
    return _file_entry(data)


def _link_or_write(source: Path, target: Path, data: bytes | None, entry: dict | None) -> dict[str, Any]:
    """``target`` as a hard link to ``source`` (files in checkpoint folders are never changed in place),
    or, where the file system has no hard links, a copy. Returns the entry for ``checkpoint.json``."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise
        return _write_new(target, data if data is not None else _read_bytes(source))
    _fault_point()
    return entry if entry is not None else _file_entry(data if data is not None else _read_bytes(target))


def _check_digest(path: Path, entry: dict[str, Any], pointer: Path) -> None:
    data = _read_bytes(path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry["sha256"]:
        raise ValueError(f"{path}: damaged: its sha256 ({actual[:12]}...) is not the one {pointer.name} recorded "
                         f"when the checkpoint was written ({entry['sha256'][:12]}...); the file was changed or "
                         f"corrupted on disk")


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, io.SEEK_END)
        return f.read(1)


def _cut_torn_line(path: Path) -> None:
    """Drop a partial last line (left by a kill during an append) so the next record starts clean."""
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
