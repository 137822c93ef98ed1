"""Training state on disk: nested trees (optimizer state dicts, trainer counters) and RNG states.

A tree is split by ``pack_tree`` into a flat dict of tensors (one safetensors file) and a JSON skeleton (one
JSON file), and put back together by ``unpack_tree`` exactly: same keys and key types, tuples stay tuples,
same dtypes. Nothing is unpickled. The two files of one save carry the same ``checkpoint_id``, so a pair
from different saves (a run stopped mid-save) is refused instead of mixed.

The skeleton is plain JSON except for four marker objects, so that the tree comes back exactly::

    {"__tensor__": "optimizer/state/0/exp_avg"}      a tensor stored in the safetensors file under that key
    {"__scalar__": 3.0, "dtype": "float32"}          a 0-dim tensor (Adam's step counter), kept readable
    {"__tuple__": [...]}                             a tuple (Adam's betas), so it does not come back a list
    {"__items__": [[key, value], ...]}               a dict whose keys are not all plain strings
                                                     (optimizer state is keyed by parameter index: ints)
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit import __version__
from rnnkit.runs.io import atomic_write_bytes, json_bytes, read_json
from rnnkit.runs.weights import load_safetensors, safetensors_bytes

STATE_FORMAT = "rnnkit.state"


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


# ---------------------------------------------------------------------------------------------------------
# A tree as a pair of files
# ---------------------------------------------------------------------------------------------------------

def tree_bytes(tree: Any, checkpoint_id: str | None = None) -> tuple[bytes, bytes]:
    """The two files of ``tree``, serialised: ``(safetensors bytes, JSON bytes)``, both naming ``checkpoint_id``."""
    skeleton, tensors = pack_tree(tree)
    meta = {"checkpoint_id": checkpoint_id} if checkpoint_id else None
    doc = {"format": STATE_FORMAT, "version": 1, "rnnkit_version": __version__,
           "checkpoint_id": checkpoint_id, "tree": skeleton}
    return safetensors_bytes(tensors, meta), json_bytes(doc)


def save_tree(json_path: str | os.PathLike, tensors_path: str | os.PathLike, tree: Any, *,
              checkpoint_id: str | None = None) -> None:
    """Write ``tree`` as a safetensors file plus a JSON skeleton (tensors first, the JSON last)."""
    tensors, doc = tree_bytes(tree, checkpoint_id)
    atomic_write_bytes(tensors_path, tensors)
    atomic_write_bytes(json_path, doc)


def load_tree(json_path: str | os.PathLike, tensors_path: str | os.PathLike) -> tuple[Any, str | None]:
    """Read what ``save_tree`` wrote; returns ``(tree, checkpoint_id)``."""
    json_path, tensors_path = Path(json_path), Path(tensors_path)
    doc = read_json(json_path)
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or "tree" not in doc:
        raise ValueError(f"{json_path}: not an rnnkit training state (expected format '{STATE_FORMAT}' "
                         f"with a 'tree')")
    tensors, meta = load_safetensors(tensors_path)
    checkpoint_id = doc.get("checkpoint_id")
    if meta.get("checkpoint_id") != checkpoint_id:
        raise ValueError(mismatch_text(json_path.parent, tensors_path.name, meta.get("checkpoint_id"),
                                       json_path.name, checkpoint_id))
    return unpack_tree(doc["tree"], tensors, source=str(json_path)), checkpoint_id


def mismatch_text(directory: Path, a: str, a_id: Any, b: str, b_id: Any) -> str:
    """The refusal for two files of one checkpoint that name different saves."""
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
