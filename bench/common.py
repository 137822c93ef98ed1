"""What every benchmark script shares: the same thread choice as the CLI, and visible progress.

    from common import add_threads_argument, start, progress

    ap = argparse.ArgumentParser(...)
    add_threads_argument(ap)            # --threads N (default: the CLI's choice, one per free CPU)
    args = ap.parse_args()
    start(args.threads)                 # sets torch's threads and prints what was chosen and why
    for item in progress(work, "variants"):
        ...

Why: torch's default is one thread per physical core, which on a machine where another process holds a
core runs at a fraction of its quiet speed (see rnnkit/training/threads.py); the CLI picks one thread per
free CPU, and a benchmark should measure what the CLI does. A benchmark that trains for minutes also says
what it is doing (a bar on a terminal, a line per item in a log), so a busy machine is not mistaken for a
hung script.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

from rnnkit.training import threads as rnnkit_threads

T = TypeVar("T")


def add_threads_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: what the rnnkit CLI picks, one per CPU other processes leave free)")


def cpu_name() -> str:
    """This machine's CPU in words, for the machine line of a result: "2-core AMD EPYC (AVX-512 BF16, no
    AMX)". Read from /proc/cpuinfo (Linux); elsewhere the platform's processor name."""
    try:
        info = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return f"{os.cpu_count()}-core {platform.processor() or platform.machine()}"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    bf16 = ("AMX" if "amx_bf16" in flags else "no AMX") + (", AVX-512 BF16" if "avx512_bf16" in flags else "")
    return f"{os.cpu_count()}-core {model} ({bf16})"


def start(threads: int | None = None) -> int:
    """Set torch's thread count as the CLI does (``threads`` wins when given); print the machine line; return
    the count."""
    if threads is not None:
        # An explicit count holds for everything this process trains later too: a Trainer built without
        # threads= reads OMP_NUM_THREADS rather than choosing again.
        os.environ["OMP_NUM_THREADS"] = str(threads)
    choice = rnnkit_threads.use_threads(threads)
    import torch
    n = torch.get_num_threads()
    print(f"# {cpu_name()}, torch {torch.__version__}, "
          f"{n} thread{'s' if n != 1 else ''} ({choice.source})", file=sys.stderr, flush=True)
    return n


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``items`` with a progress bar on a terminal; in a log, one line as each item starts, with the time."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    total = total if total is not None else len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        yield from tqdm(items, desc=desc, total=total, file=sys.stderr)
        return
    t0 = time.monotonic()
    for i, item in enumerate(items):
        print(f"# {desc}: {i + 1}/{total} ({time.monotonic() - t0:.0f} s so far)", file=sys.stderr, flush=True)
        yield item
