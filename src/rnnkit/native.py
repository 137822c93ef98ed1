"""C libraries that rnnkit compiles on first use: built once per source, compiler and CPU, cached, and
loaded only when it can be trusted. Two use it: the batch-1 LSTM sampler
(:mod:`rnnkit.generation.native`) and the LSTM kernel's element-wise steps (:mod:`rnnkit.nn.lstm_kernel`).

A library is built with the system C compiler (``$CC``, else ``cc``) into
``$XDG_CACHE_HOME/rnnkit/kernels`` (``~/.cache/rnnkit/kernels``), once per source, compiler and
CPU, written atomically. With no compiler, or when the build fails, :func:`load` says why and the
caller takes its torch path. ``RNNKIT_NATIVE=0`` turns every C library off.

Loading a library runs its code, and the cache's file names are predictable, so rnnkit loads only
what it built itself: the sha256 of each library is recorded beside it at build time
(``NAME-KEY.so.sha256``), and a cached library is loaded only when it and the folder belong
to the current user, no other user may write to them, and its sha256 is the recorded one. Otherwise
the library is built again (into a private temporary folder when the cache folder itself is not
safe), and :func:`note` says why.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

from rnnkit.runs.io import atomic_write_text

# -march=native: this CPU's vector instructions (the library is cached per CPU). The second set is
# tried when the compiler does not know -march=native.
FLAG_SETS = (["-O3", "-march=native"], ["-O3"])
DIGEST_SUFFIX = ".sha256"                # the library's sha256, recorded beside it at build time
_loaded: dict[tuple[str, str], object] = {}   # (cache directory, source) -> the library, or why there is none
_notes: dict[tuple[str, str], str] = {}       # the same key -> why the cached library was not used, if it was not


def kernel_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit" / "kernels"


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unsafe_folder(directory: Path) -> Optional[str]:
    """None when libraries may be loaded from ``directory`` (it belongs to this user and no other user
    may write to it), else why not."""
    st = directory.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{directory} belongs to user id {st.st_uid}, not to you (user id {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"other users may write to {directory} (mode {stat.S_IMODE(st.st_mode):o}; "
                f"'chmod go-w {directory}' makes it private)")
    return None


def _untrusted_library(target: Path) -> Optional[str]:
    """None when ``target`` is the library rnnkit built (a plain file of this user's that no other user may
    write, with the sha256 recorded at build time), else why it is not."""
    st = target.lstat()
    if not stat.S_ISREG(st.st_mode):
        return f"{target.name} is not a plain file"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{target.name} belongs to user id {st.st_uid}, not to you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users may write to {target.name}"
    record = target.with_name(target.name + DIGEST_SUFFIX)
    try:
        recorded = record.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return f"{target.name} has no sha256 recorded beside it ({record.name}): rnnkit did not build it"
    if _sha256(target) != recorded:
        return f"{target.name} is not the library rnnkit built (its sha256 differs from the one recorded)"
    return None


def _build(compiler: str, source: Path, target: Path, extra_flags: tuple[str, ...] = ()) -> Optional[str]:
    """Compile source into target (atomically) and record its sha256 beside it; returns None, or what
    went wrong."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [compiler, *flags, *extra_flags, "-shared", "-fPIC", "-pthread", "-o", tmp, str(source), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            done = None
            errors.append(f"{' '.join(cmd)}: {e}")
        if done is not None and done.returncode == 0:
            digest = _sha256(Path(tmp))
            os.replace(tmp, target)
            # Written last: a library without its record (a build cut short) is built again.
            atomic_write_text(target.with_name(target.name + DIGEST_SUFFIX), digest + "\n")
            return None
        if done is not None:
            errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-500:]}")
        os.unlink(tmp)
    return "; ".join(errors)


_warned = False


def _warn_once(text: str) -> None:
    """One warning line per process (the CLI prints each warning as one line)."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def load(source: Path, symbols: tuple[str, ...], what: str, fallback: str,
         extra_flags: tuple[str, ...] = ()) -> Union[ctypes.CDLL, str]:
    """The library built from ``source`` (C), or a string saying why there is none (built once, then cached).

    symbols: the functions it must have; what: its name in warnings ("native sampler"); fallback: what
    runs instead, for the warning ("the TorchScript loop samples"); extra_flags: compiler flags of
    this library (part of the cache key)."""
    if os.environ.get("RNNKIT_NATIVE", "1") == "0":
        return "turned off by RNNKIT_NATIVE=0"
    directory = kernel_dir()
    key = (str(directory), source.name)
    if key in _loaded:
        return _loaded[key]
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        _loaded[key] = f"no C compiler: {compiler!r} is not on PATH (set CC to use another)"
        return _loaded[key]
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        _loaded[key] = f"the C compiler {compiler!r} does not run: {e}"
        return _loaded[key]
    digest = hashlib.sha256("\0".join([source.read_text(), compiler, version, repr(FLAG_SETS), repr(extra_flags),
                                       _cpu_id()]).encode()).hexdigest()[:16]
    target = directory / f"{source.stem}-{digest}.so"
    try:
        # A new folder is private (0700) whatever the umask: a group-writable one would not be trusted.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        unsafe = _unsafe_folder(directory)
        if unsafe is not None:
            # Nothing in it can be trusted, nor anything built into it: build into a private folder,
            # for this process only.
            private = Path(tempfile.mkdtemp(prefix="rnnkit-kernels-"))
            atexit.register(shutil.rmtree, private, True)
            target = private / target.name
            _notes[key] = f"{unsafe}: built in a private temporary folder instead"
            _warn_once(f"the {what}'s cache is not trusted: {_notes[key]}")
        elif target.exists() or target.is_symlink():
            untrusted = _untrusted_library(target)
            if untrusted is not None:
                _notes[key] = f"rebuilt the cached library: {untrusted}"
                # Said once: a foreign library in the cache is worth knowing about (who put it there?).
                _warn_once(f"refused the cached {what} {target}: {untrusted}; it is removed and built "
                           f"again ({fallback} if that fails)")
                target.unlink()          # a planted file is never loaded, and the build replaces it
        problem = None if target.exists() else _build(compiler, source, target, extra_flags)
        if problem is None:
            lib = ctypes.CDLL(str(target))
            missing = [s for s in symbols if not hasattr(lib, s)]
            if missing:
                raise AttributeError(missing[0])
    except OSError as e:                 # the cache directory cannot be written, or the library not loaded
        problem = f"{target}: {e}"
    except AttributeError as e:          # a library rnnkit built, from a C file without the function
        for stale in (target, target.with_name(target.name + DIGEST_SUFFIX)):
            with contextlib.suppress(OSError):
                stale.unlink()           # the next process builds it again
        # This process cannot load a new build under the same name (the loader would hand back the
        # library already loaded), so the caller takes its torch path.
        _loaded[key] = (f"the cached library {target} has no function {e.args[0]}: removed it (the next run "
                        f"builds it again)")
        return _loaded[key]
    if problem is not None:
        _loaded[key] = f"building {source.name} failed: {problem}"
        return _loaded[key]
    _loaded[key] = lib
    return lib


def note(source: Path) -> Optional[str]:
    """Why the cached library of ``source`` was not used as it was (built again, or elsewhere), if so."""
    return _notes.get((str(kernel_dir()), source.name))
