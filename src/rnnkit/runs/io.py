"""Atomic file writes and careful reads: the file primitives under every run directory and cache entry.

* A write is atomic: the bytes go to a temporary file in the same directory, are flushed and fsynced, and
  the temporary file is renamed over the target (``os.replace``); then the directory is fsynced so the
  rename itself is durable. A kill at any moment leaves either the old file or the new one, never half of one.
* A read names the file on every error (missing, not JSON: with the line and column).
* The fault points: where a checkpoint save may be stopped on purpose by the kill tests (``fault_point``).

This module imports no torch (nor numpy): ``rnnkit data`` and the text pipeline write files through it
without paying for the engine.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

# The permission bits a plain ``open(path, "w")`` would give; ``mkstemp`` creates files as 0600.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, faults: bool = False) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a torn one.

    ``faults``: this write is part of a checkpoint save, where the kill test may stop the process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_all(f.fileno(), data, faults=faults)
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        if faults:
            fault_point()
        os.replace(tmp, path)
    except BaseException as err:
        # Also on KeyboardInterrupt: never leave a stray temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.filename is None:   # os.write names no file: say which
            raise named(err, path) from err
        raise
    if faults:
        fault_point()
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any, *, indent: int | None = 2) -> bytes:
    """``obj`` as the UTF-8 JSON text rnnkit writes (non-ASCII kept as is, a final newline)."""
    return (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON; serialisation happens before the file is touched."""
    return atomic_write_bytes(path, json_bytes(obj, indent=indent))


# The name task code uses for tokenizers, vocabularies and other JSON side files.
write_json = atomic_write_json


def read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return path.read_bytes()


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; errors name the file and, for bad JSON, the line and column."""
    path = Path(path)
    text = read_bytes(path).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None


def write_all(fd: int, data: bytes, *, faults: bool = False) -> None:
    """Write every byte of ``data`` to ``fd`` (one ``os.write`` may write fewer)."""
    view = memoryview(data)
    if faults and len(view) > 1:
        half = len(view) // 2
        write_all(fd, view[:half])
        fault_point()                  # the kill test stops the process with the file half written
        view = view[half:]
    while len(view):
        view = view[os.write(fd, view):]


def fsync_dir(directory: Path) -> None:
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


def named(err: OSError, path: Path) -> OSError:
    """The same error (same class and errno) with the file it concerns."""
    return err if err.filename is not None else type(err)(err.errno, err.strerror or str(err), str(path))


# ---------------------------------------------------------------------------------------------------------
# Fault points (for the kill tests)
# ---------------------------------------------------------------------------------------------------------

def fault_point() -> None:
    """A point inside a checkpoint save where the kill test stops the process.

    ``RNNKIT_FAULT_AT=N`` (a test-only environment variable) makes the N-th such point of this process
    SIGKILL it, as ``kill -9`` or a power cut would: tests/test_kills.py resumes the run it leaves. Tests
    in the same process replace this function (``rnnkit.runs.io.fault_point``) to raise KeyboardInterrupt
    or a full-disk error instead; every caller looks it up through this module so that the replacement holds.
    """
    at = os.environ.get("RNNKIT_FAULT_AT")
    if not at:
        return
    global _faults_passed
    _faults_passed += 1
    if _faults_passed == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


_faults_passed = 0   # fault points this process has passed (for RNNKIT_FAULT_AT)
