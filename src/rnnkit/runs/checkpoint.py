"""Run directories: weights, configs, training state and metrics on disk, written atomically.

A run directory holds everything needed to load a model or to continue training it::

    runs/shakespeare/
      config.json                  {"task": ..., "rnnkit_version": ..., "model": {...}, "train": {...}, ...}
      vocab.json                   the tokenizer, written by the task through ``write_json``
      model.safetensors            the last weights            (written every epoch)
      best.safetensors             the best weights so far     (written when the monitored metric improves)
      trainer_state.safetensors    optimizer tensors, torch RNG state, carried recurrent state
      trainer_state.json           the rest of the training state: param groups, step, epoch, best metric,
                                   python/numpy RNG states, and the skeleton that puts the tensors back in place
      metrics.jsonl                one JSON record per log event, appended
      loss.png                     the loss curve

Three rules hold for every file here:

* Writes are atomic: the bytes go to a temporary file in the same directory, are flushed and fsynced, and
  the temporary file is renamed over the target (``os.replace``). A kill at any moment leaves either the old
  file or the new one, never half of one. (``metrics.jsonl`` is append-only instead; a torn last line from a
  kill is skipped when reading and cut off before the next append.)
* Nothing is unpickled. Tensors live in safetensors files; everything else is JSON. The optimizer's
  ``state_dict()`` is split by ``pack_tree`` into tensors and a JSON skeleton and put back together by
  ``unpack_tree`` exactly (same keys and key types, tuples stay tuples, same dtypes).
* A file that is missing, truncated, corrupted or does not fit the model fails with an error naming the
  file and the problem.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import uuid
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

# Keys a config.json must have for a run directory to load.
REQUIRED_CONFIG_KEYS = ("task",)


# ---------------------------------------------------------------------------------------------------------
# Atomic writes and careful reads
# ---------------------------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a stray temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


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
    return _safetensors_header(path, _read_bytes(path))[1]


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
    meta = None
    if metadata:
        meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return safetensors.torch.save(out, metadata=meta)


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
    """Inverse of ``pack_tree``."""
    def walk(obj: Any) -> Any:
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise ValueError(f"{source}: tensor {key!r} named in the skeleton is missing")
            return tensors[key]
        if "__scalar__" in obj:
            return torch.tensor(obj["__scalar__"], dtype=getattr(torch, obj["dtype"]))
        if "__tuple__" in obj:
            return tuple(walk(v) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_hashable(walk(k)): walk(v) for k, v in obj["__items__"]}
        return {k: walk(v) for k, v in obj.items()}

    return walk(skeleton)


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
    return unpack_tree(doc["tree"], tensors, source=str(tensors_path)), checkpoint_id


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
        with open(path, "ab") as f:
            if f.tell() and _last_byte(path) != b"\n":
                _cut_torn_line(path)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records; a torn last line (a kill during an append) is skipped, a bad line elsewhere is an error."""
        if not self.metrics_path.is_file():
            return []
        data = self.metrics_path.read_bytes()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline
        records = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.metrics_path}: line {i}: not valid JSON: {err.msg} "
                                 f"at column {err.colno}") from None
        if torn.strip():
            try:
                records.append(json.loads(torn))
            except json.JSONDecodeError:
                pass
        return records

    def rewrite_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    # -- checkpoints -----------------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        return all((self.path / n).is_file() for n in (LAST_WEIGHTS, STATE_JSON, STATE_TENSORS))

    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                        trainer_state: dict[str, Any] | None = None, best: bool = False) -> None:
        """Write the last weights and the training state (and the best weights when ``best``).

        All three files of a checkpoint carry one id; ``load_checkpoint`` refuses a mixed set, which is
        what a kill between two of the writes would leave.
        """
        checkpoint_id = uuid.uuid4().hex
        weights = _safetensors_bytes(model.state_dict(), {"checkpoint_id": checkpoint_id})
        tree = {"optimizer": optimizer.state_dict() if optimizer is not None else None,
                "trainer": trainer_state or {}}
        # The JSON skeleton is written last: it is the commit point of a checkpoint.
        atomic_write_bytes(self.weights_path, weights)
        if best:
            atomic_write_bytes(self.best_path, weights)
        save_tree(self.path / STATE_JSON, self.path / STATE_TENSORS, tree, checkpoint_id=checkpoint_id)

    def load_checkpoint(self, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
        """Load the last weights into ``model`` (and the optimizer state); returns the trainer state."""
        self.require(LAST_WEIGHTS, STATE_JSON, STATE_TENSORS)
        tree, checkpoint_id = load_tree(self.path / STATE_JSON, self.path / STATE_TENSORS)
        weights_id = load_metadata(self.weights_path).get("checkpoint_id")
        if weights_id != checkpoint_id:
            raise ValueError(_mismatch_text(self.path, LAST_WEIGHTS, weights_id, STATE_JSON, checkpoint_id))
        load_weights(self.weights_path, model)
        if optimizer is not None:
            if tree["optimizer"] is None:
                raise ValueError(f"{self.path / STATE_JSON}: holds no optimizer state")
            try:
                optimizer.load_state_dict(tree["optimizer"])
            except (ValueError, KeyError) as err:
                raise ValueError(f"{self.path / STATE_JSON}: optimizer state does not fit the optimizer: "
                                 f"{err}") from None
        return tree["trainer"]

    def load_weights(self, model: torch.nn.Module | None = None, *, best: bool = False) -> dict[str, torch.Tensor]:
        """Load ``model.safetensors`` (or ``best.safetensors``) into ``model``; returns the tensors."""
        name = BEST_WEIGHTS if best else LAST_WEIGHTS
        self.require(name)
        return load_weights(self.path / name, model)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, io.SEEK_END)
        return f.read(1)


def _cut_torn_line(path: Path) -> None:
    """Drop a partial last line (left by a kill during an append) so the next record starts clean."""
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
