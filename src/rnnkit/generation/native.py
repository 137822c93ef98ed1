"""Batch-1 LSTM sampling in C (``lstm_sampler.c``), compiled on first use; the TorchScript loop otherwise.

At batch 1 the TorchScript loop (:mod:`rnnkit.generation.fast`) spends a third of its time in its
interpreter, between ~45 small operations per character. The C loop runs 2,048 tokens per call
with no Python between steps, with a fixed share of the hidden units per thread (see the C file):
about 1.7x the TorchScript loop's characters/s for a 2-layer LSTM-256 on 2 cores.

It covers the common case only: an LSTM stack, one sample, temperature or greedy choice, with or
without an end token. Top-k, top-p, beam search, GRU and simple RNN cells, and batches of samples
use the TorchScript loop. The tests check that the two loops give the same tokens.

The library is built with the system C compiler (``$CC``, else ``cc``) into
``$XDG_CACHE_HOME/rnnkit/kernels`` (``~/.cache/rnnkit/kernels``), once per source, compiler and
CPU, written atomically. With no compiler, or when the build fails, rnnkit uses the TorchScript
loop and :func:`kernel_status` says why. ``RNNKIT_NATIVE=0`` turns the C loop off.

Loading a library runs its code, and the cache's file names are predictable, so rnnkit loads only
what it built itself: the sha256 of each library is recorded beside it at build time
(``lstm_sampler-KEY.so.sha256``), and a cached library is loaded only when it and the folder belong
to the current user, no other user may write to them, and its sha256 is the recorded one. Otherwise
the library is built again (into a private temporary folder when the cache folder itself is not
safe), and :func:`kernel_status` says why.
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
from typing import Optional

import torch
from torch import Tensor

from rnnkit.runs.io import atomic_write_text

SOURCE = Path(__file__).with_name("lstm_sampler.c")
# -march=native: this CPU's vector instructions (the library is cached per CPU). The second set is
# tried when the compiler does not know -march=native.
FLAG_SETS = (["-O3", "-march=native"], ["-O3"])
CHUNK = 2048                             # tokens per call of the C loop (Ctrl-C is seen between calls)
SYMBOL = "rnnkit_lstm_sample"            # the C function
DIGEST_SUFFIX = ".sha256"                # the library's sha256, recorded beside it at build time
_loaded: dict[str, object] = {}          # cache directory -> the C function, or the reason there is none
_notes: dict[str, str] = {}              # cache directory -> why the cached library was not used, if it was not


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


def _build(compiler: str, target: Path) -> Optional[str]:
    """Compile SOURCE into target (atomically) and record its sha256 beside it; returns None, or what
    went wrong."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [compiler, *flags, "-shared", "-fPIC", "-pthread", "-o", tmp, str(SOURCE), "-lm"]
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


def load_kernel():
    """The C sampling function, or a string saying why there is none (built once, then cached)."""
    if os.environ.get("RNNKIT_NATIVE", "1") == "0":
        return "turned off by RNNKIT_NATIVE=0"
    directory = kernel_dir()
    key = str(directory)
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
    digest = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, version, repr(FLAG_SETS),
                                       _cpu_id()]).encode()).hexdigest()[:16]
    target = directory / f"lstm_sampler-{digest}.so"
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
            _warn_once(f"the native sampler's cache is not trusted: {_notes[key]}")
        elif target.exists() or target.is_symlink():
            untrusted = _untrusted_library(target)
            if untrusted is not None:
                _notes[key] = f"rebuilt the cached library: {untrusted}"
                # Said once: a foreign library in the cache is worth knowing about (who put it there?).
                _warn_once(f"refused the cached native sampler {target}: {untrusted}; it is removed and built "
                           f"again (the TorchScript loop samples if that fails)")
                target.unlink()          # a planted file is never loaded, and the build replaces it
        problem = None if target.exists() else _build(compiler, target)
        if problem is None:
            fn = getattr(ctypes.CDLL(str(target)), SYMBOL)
    except OSError as e:                 # the cache directory cannot be written, or the library not loaded
        problem = f"{target}: {e}"
    except AttributeError:               # a library rnnkit built, from a C file without the function
        for stale in (target, target.with_name(target.name + DIGEST_SUFFIX)):
            with contextlib.suppress(OSError):
                stale.unlink()           # the next process builds it again
        # This process cannot load a new build under the same name (the loader would hand back the
        # library already loaded), so it uses the TorchScript loop.
        _loaded[key] = (f"the cached library {target} has no function {SYMBOL}: removed it (the next run "
                        f"builds it again)")
        return _loaded[key]
    if problem is not None:
        _loaded[key] = f"building {SOURCE.name} failed: {problem}"
        return _loaded[key]
    fn.restype = ctypes.c_int
    p, i = ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [i, i, i, p, p, p, p, p, p, p, p, p, p, i, i, i, i, p]
    _loaded[key] = fn
    return fn


def native_kernel():
    """The C sampling function, or None when there is none (kernel_status says why)."""
    found = load_kernel()
    return None if isinstance(found, str) else found


def kernel_status() -> str:
    """'ready', 'ready (why the cached library was built again)', or why generation at batch 1 uses the
    TorchScript loop."""
    found = load_kernel()
    if isinstance(found, str):
        return found
    note = _notes.get(str(kernel_dir()))
    return f"ready ({note})" if note else "ready"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))          # Linux: the CPUs this process may run on
    except AttributeError:
        return os.cpu_count() or 1


class NativeLSTMSampler:
    """The weights of a FastSampler (LSTM) laid out for the C loop: gate rows unit-major."""

    def __init__(self, fast) -> None:
        H = fast.hidden_size
        # FastSampler's rows are gate-major (i, f, o, g blocks of H); the C loop wants the four rows
        # of each unit together, so that a thread's units are one contiguous block of rows.
        unit = torch.tensor([q * H + u for u in range(H) for q in range(4)])
        self.layers, self.hidden = fast.num_layers, H
        self.vocab = fast.table.shape[0]
        self.table = fast.table[:, unit].contiguous()                                     # (V, 4H)
        self.w_hh = torch.stack([w[unit] for w in fast.w_hh]).contiguous()                # (L, 4H, H)
        above = range(1, self.layers)
        self.w_ih = (torch.stack([fast.w_ih[k][unit] for k in above]).contiguous() if self.layers > 1
                     else torch.zeros(1))                                                   # (L-1, 4H, H)
        self.b_in = (torch.stack([fast.b_in[k][unit] for k in above]).contiguous() if self.layers > 1
                     else torch.zeros(1))                                                   # (L-1, 4H)
        self.head_w, self.head_b = fast.head_w, fast.head_b                                 # (V, H), (V,)

    def run(self, fn, logits: Tensor, h: Tensor, c: Tensor, uniforms: Tensor, temperature: float,
            greedy: bool, end: int, threads: Optional[int] = None) -> Tensor:
        """Tokens (1, L) as FastSampler.run gives them for one row: logits (1, V), h and c (L, 1, H),
        uniforms (L, 1). threads: torch's thread count by default, at most one per CPU this process
        may use (the threads wait for each other at every layer: more threads than CPUs only waits
        longer) and one per 16 hidden units."""
        scale = 1.0 if greedy else 1.0 / temperature
        head_w = (self.head_w * scale).contiguous()
        head_b = (self.head_b * scale).contiguous()
        scores = (logits.reshape(-1) * scale).contiguous()     # (V,): in, the first token's; out, the next's
        scores[0] = -float("inf")                              # index 0 is padding: never chosen
        hs = torch.cat([h.reshape(-1), torch.zeros(self.layers * self.hidden)])     # (2, L, H): two turns
        cs = c.reshape(-1).clone()
        u = uniforms.reshape(-1).contiguous()
        tokens = torch.zeros(u.numel(), dtype=torch.long)     # after an end token: zeros (padding)
        if threads is None:
            threads = max(1, min(torch.get_num_threads(), _usable_cpus(), self.hidden // 16))
        # Calls of CHUNK tokens, carrying scores and state: Python sees Ctrl-C between them.
        for start in range(0, u.numel(), CHUNK):
            length = min(CHUNK, u.numel() - start)
            produced = fn(self.layers, self.hidden, self.vocab, self.table.data_ptr(), self.w_hh.data_ptr(),
                          self.w_ih.data_ptr(), self.b_in.data_ptr(), head_w.data_ptr(), head_b.data_ptr(),
                          scores.data_ptr(), hs.data_ptr(), cs.data_ptr(), u[start:].data_ptr(), length,
                          int(greedy), int(end), threads, tokens[start:].data_ptr())
            if produced < 0:
                raise MemoryError("the C sampling loop could not allocate its buffers")
            if produced < length:                              # the end token came
                break
        return tokens.unsqueeze(0)
