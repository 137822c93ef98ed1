"""Weights as safetensors files, each carrying the sha256 of its tensor data.

* ``save_weights`` writes tensors atomically (``rnnkit.runs.io``); the file's metadata records
  ``data_sha256``, the digest of the bytes after the header, checked on every load.
* The framing of a file (the 8-byte header length, the JSON header, the data the header promises) is checked
  by hand before safetensors parses it, so a truncated or corrupted file fails with a message in plain
  words that names the file.
* ``check_weights_match`` lists every missing key, unexpected key and shape mismatch in one error.

Nothing is unpickled: safetensors holds only tensors and string metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from rnnkit.runs.io import atomic_write_bytes, read_bytes

# The safetensors metadata key holding the sha256 of the file's tensor data (the bytes after the header).
DATA_DIGEST_KEY = "data_sha256"


def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None) -> Path:
    """Save tensors (e.g. ``model.state_dict()``) to a safetensors file, atomically.

    ``metadata`` values that are not strings are stored as JSON text (safetensors metadata is str -> str).
    """
    return atomic_write_bytes(path, safetensors_bytes(state_dict, metadata))


def load_weights(path: str | os.PathLike, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU; with ``model``, check keys and shapes and load them into it.

    Returns the tensors. A missing, truncated or corrupted file, or weights that do not fit ``model``,
    raise an error naming the file and what is wrong.
    """
    path = Path(path)
    tensors, _ = load_safetensors(path)
    if model is not None:
        expected = model.state_dict()
        check_weights_match(tensors, expected, source=str(path))
        model.load_state_dict(tensors)
    return tensors


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (an empty dict when it has none)."""
    path = Path(path)
    metadata = _safetensors_header(path, read_bytes(path))[1]
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
        problems.append("missing keys " + short_list(missing))
    if unexpected:
        problems.append("unexpected keys " + short_list(unexpected))
    if shapes:
        problems.append("shape mismatches " + short_list(shapes))
    if problems:
        raise ValueError(f"{source}: weights do not match the model: " + "; ".join(problems))


def short_list(items: list[str], limit: int = 10) -> str:
    """``[a, b, ... and N more]``: at most ``limit`` names of a long list, for error messages."""
    shown = ", ".join(items[:limit])
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"[{shown}{more}]"


# ---------------------------------------------------------------------------------------------------------
# The file format: bytes with a digest, and a checked header
# ---------------------------------------------------------------------------------------------------------

def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (on the CPU) and ``metadata`` plus the data digest."""
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


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file, its framing and data digest checked."""
    data = read_bytes(path)
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
