"""How many CPU threads torch should use: the CPUs this process may use, minus those other processes keep busy.

Why this matters: torch's CPU kernels (its own, MKL's and oneDNN's) run on one OpenMP thread team, and the
threads of a team wait for each other at the end of every parallel region, several hundred times per
training step of a recurrent model. When another process holds one of the cores, the thread that shares
that core runs only part of the time and the whole team waits for it; the waiting threads spin and take CPU
from that thread too. Measured on 2-core machines beside one busy-loop process: 2 threads trained at 0.02-0.3x
their quiet speed, 1 thread at 0.55-0.7x (what one core does of two; ``bench/busy_cpu.py`` measures it).
One thread per free core is the safe choice, and it is what :func:`choose` picks:

* the CPUs this process may use: its affinity mask (``taskset``, ``docker --cpuset-cpus``), capped by a
  cgroup CPU quota (``docker --cpus``, Kubernetes limits), whole CPUs rounded down, as Go's automaxprocs does;
* minus the CPUs other processes keep busy: from ``/proc/stat`` (the machine's busy time on those CPUs) less
  this process's own CPU time, over a short window. A CPU counts as taken when others kept it at least
  ``TAKEN_PERCENT`` (40%) busy;
* at least 1, and at most torch's own default (its physical cores).

An explicit choice always wins: ``--threads N`` / ``TrainConfig.threads``, or ``OMP_NUM_THREADS`` in the
environment, or ``torch.set_num_threads`` called by the program itself (rnnkit then leaves the count alone).
While training, :class:`ThreadWatch` looks again every ``CHECK_SECONDS`` and follows the load both ways.
Where ``/proc/stat`` is missing (macOS, Windows) the count is the usable CPUs.

OpenMP's wait policy (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) is left as it is: waiting passively kept two
threads from collapsing beside a busy process but never beat one thread there, and spinning is what makes
two threads fast on a quiet machine. torch is imported only where the count is set.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# A CPU counts as taken by other processes when they kept it at least this busy (percent).
TAKEN_PERCENT = 40
# While training, the load is looked at again after this many seconds.
CHECK_SECONDS = 10.0
# A load window shorter than this is too coarse (/proc/stat counts in 1/100 s); a longer one than
# WINDOW_MAX describes the past rather than now.
WINDOW_MIN, WINDOW_MAX = 0.1, 10.0


# ---------------------------------------------------------------------------------------------------------
# The CPUs this process may use
# ---------------------------------------------------------------------------------------------------------

def allowed_cpus() -> list[int]:
    """The CPU numbers this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:                     # macOS, Windows: no affinity call
        return list(range(os.cpu_count() or 1))


def cgroup_cpu_limit(root: str | Path = "/") -> Optional[float]:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none.

    cgroup v2: ``cpu.max`` holds ``"QUOTA PERIOD"`` or ``"max PERIOD"``. cgroup v1: ``cpu.cfs_quota_us``
    (-1: none) and ``cpu.cfs_period_us``. The group comes from ``/proc/self/cgroup``; inside a container
    that path is often not mounted as such, so the mount's top folder is tried too. ``root`` lets tests
    hand in a fake file tree.
    """
    root = Path(root)
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        path = path.strip().lstrip("/")
        if number == "0" and controllers == "":                            # cgroup v2
            for folder in (root / "sys/fs/cgroup" / path, root / "sys/fs/cgroup"):
                limit = _read_v2(folder / "cpu.max")
                if limit is not False:
                    return limit
        elif "cpu" in controllers.split(","):                              # cgroup v1
            for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
                for folder in (root / "sys/fs/cgroup" / mount / path, root / "sys/fs/cgroup" / mount):
                    limit = _read_v1(folder)
                    if limit is not False:
                        return limit
    return None


def _read_v2(path: Path):
    """cpu.max -> CPUs, None for no quota, False when the file is not there or unreadable."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return False


def _read_v1(folder: Path):
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return False
    return None if quota <= 0 or period <= 0 else quota / period


def usable_cpus(root: str | Path = "/") -> tuple[int, str]:
    """How many CPUs this process may keep busy, and what limits it (for messages)."""
    cpus = len(allowed_cpus())
    limit = cgroup_cpu_limit(root)
    if limit is not None and math.floor(limit) < cpus:
        # Rounded down: a thread over the quota only gets the process throttled, all its threads at once.
        return max(1, math.floor(limit)), f"cgroup CPU quota {limit:g}"
    return cpus, "affinity" if cpus < (os.cpu_count() or cpus) else "all CPUs"


# ---------------------------------------------------------------------------------------------------------
# How busy other processes keep those CPUs
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """One look at the clocks: the machine's busy and total CPU time on our CPUs (seconds), this
    process's own CPU time (all its threads) and the wall clock."""
    busy: float
    total: float
    own: float
    wall: float


def read_cpu_times(cpus: list[int], root: str | Path = "/") -> Optional[Reading]:
    """Busy and total time of ``cpus`` from ``/proc/stat`` (None where there is no such file).

    A ``cpuN`` line counts user nice system idle iowait irq softirq steal guest guest_nice, in clock
    ticks; idle and iowait are free, steal (taken by the hypervisor) is busy, guest is already in user.
    """
    try:
        text = (Path(root) / "proc/stat").read_text()
    except OSError:
        return None
    wanted = {f"cpu{n}" for n in cpus}
    busy = total = 0
    for line in text.splitlines():
        name, *fields = line.split()
        if name in wanted:
            ticks = [int(x) for x in fields[:8]]
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    if total == 0:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return Reading(busy / hz, total / hz, time.process_time(), time.monotonic())


def others_busy(start: Reading, end: Reading, ncpus: int) -> float:
    """CPUs (e.g. 0.9) that other processes kept busy between two readings: the machine's busy time
    less this process's own, per second. Clamped to [0, ncpus]."""
    seconds = (end.total - start.total) / max(ncpus, 1)   # the wall time /proc/stat saw pass
    if seconds <= 0:
        return 0.0
    others = (end.busy - start.busy) - (end.own - start.own)
    return min(max(others / seconds, 0.0), float(ncpus))


# Per set of CPUs: the latest reading (the start of the next window) and what that window measured.
_last: dict[str, tuple[Reading, float]] = {}


def measure_others(cpus: list[int], root: str | Path = "/") -> Optional[float]:
    """CPUs kept busy by other processes over the time since the last call (a window of WINDOW_MIN to
    WINDOW_MAX seconds; a fresh one of WINDOW_MIN when the last look is older). A look younger than
    WINDOW_MIN is reused (the CLI and then the Trainer both ask). None without ``/proc/stat``."""
    key = f"{root}:{cpus}"
    start, value = _last.get(key, (None, None))
    if start is not None and time.monotonic() - start.wall < WINDOW_MIN:
        return value
    if start is None or time.monotonic() - start.wall > WINDOW_MAX:
        start = read_cpu_times(cpus, root)
        if start is None:
            return None
        time.sleep(WINDOW_MIN)
    end = read_cpu_times(cpus, root)
    if end is None:
        return None
    _last[key] = (end, others_busy(start, end, len(cpus)))
    return _last[key][1]


# ---------------------------------------------------------------------------------------------------------
# The choice
# ---------------------------------------------------------------------------------------------------------

def pick_threads(usable: int, busy: Optional[float], cap: Optional[int] = None) -> int:
    """One thread per usable CPU that other processes leave free (``busy`` CPUs; a CPU counts as taken
    at TAKEN_PERCENT of it: 0.4 -> 1, 1.39 -> 1, 1.4 -> 2), at least 1, at most ``cap`` (torch's default)."""
    # In whole percent, so that 1.4 CPUs is not 1.3999... and rounded the wrong way.
    taken = 0 if busy is None else (round(100 * busy) + 100 - TAKEN_PERCENT) // 100
    threads = max(1, usable - taken)
    return min(threads, cap) if cap else threads


@dataclass(frozen=True)
class Choice:
    threads: int
    source: str                  # "--threads", "OMP_NUM_THREADS", "program" (torch.set_num_threads) or "auto"
    usable: int                  # CPUs this process may use
    busy: Optional[float] = None  # CPUs other processes kept busy (None: not measured)
    limit: str = ""              # what limits the usable CPUs

    def message(self) -> str:
        """One line for the user, or "" when there is nothing to say (an explicit choice, or all CPUs)."""
        if self.source != "auto" or self.threads >= self.usable:
            return ""
        return (f"rnnkit: using {self.counted()}: other processes keep {self.busy_text()} CPUs busy (threads "
                f"that share a busy CPU wait for each other); --threads N or OMP_NUM_THREADS=N sets the number")

    def counted(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} of {self.usable}"

    def busy_text(self) -> str:
        return f"{self.busy:.1f}" if self.busy is not None else "?"


_default: Optional[int] = None     # torch's thread count before rnnkit changed anything
_ours: Optional[int] = None        # the count rnnkit set last
_said: Optional[int] = None        # the count the last message announced (the CLI and the Trainer both apply)


def choose(explicit: Optional[int] = None, *, root: str | Path = "/") -> Choice:
    """The thread count to use now: ``explicit`` (``--threads``), else ``OMP_NUM_THREADS``, else a count the
    program set with ``torch.set_num_threads``, else one thread per free usable CPU."""
    if explicit is not None:
        # Bounded here too: the CLI sets the threads before any config is built (libgomp crashed at 100,000).
        from rnnkit._checks import MAX_THREADS, check_int

        check_int("threads", explicit, min=1, cap=MAX_THREADS)
    usable, limit = usable_cpus(root)
    if explicit is not None:
        return Choice(int(explicit), "--threads", usable, limit=limit)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        return Choice(_env_threads(env, usable), "OMP_NUM_THREADS", usable, limit=limit)
    current = _torch_threads()
    if current is not None and current not in (_default, _ours):
        return Choice(current, "program", usable, limit=limit)
    busy = measure_others(allowed_cpus(), root)
    return Choice(pick_threads(usable, busy, cap=_default), "auto", usable, busy, limit)


def _env_threads(text: str, usable: int) -> int:
    # OMP_NUM_THREADS may be a list ("4,2": nested levels): the first number is the team size.
    try:
        return max(1, int(text.split(",")[0]))
    except ValueError:
        return usable


def _torch_threads() -> Optional[int]:
    """torch's thread count now, noting the first one seen as its default; None before torch is loaded."""
    global _default
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    current = torch.get_num_threads()
    if _default is None:
        _default = current
    return current


def apply(choice: Choice, *, say: bool = True) -> Choice:
    """Set torch's thread count to ``choice.threads`` (loading torch) and print ``choice.message()``."""
    global _ours, _said
    import torch
    _torch_threads()                           # note torch's default before changing it
    if choice.source in ("--threads", "auto") and torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    _ours = torch.get_num_threads()
    if say and choice.message() and choice.threads != _said:
        print(choice.message(), file=sys.stderr)
        _said = choice.threads
    return choice


def use_threads(explicit: Optional[int] = None) -> Choice:
    """Choose and apply in one call (what the CLI and the Trainer do)."""
    return apply(choose(explicit))


# ---------------------------------------------------------------------------------------------------------
# While training: look again now and then
# ---------------------------------------------------------------------------------------------------------

class ThreadWatch:
    """A Trainer callback (``on_step_end``): every CHECK_SECONDS it measures the load again and, when the
    automatic choice changes (another process started or ended), sets the new count and says so.

    Does nothing when the count was chosen explicitly. The check itself reads one small file.
    """

    def __init__(self, choice: Choice, write=None):
        self.choice = choice
        self.write = write or (lambda text: print(text, file=sys.stderr))
        self.next_check = time.monotonic() + CHECK_SECONDS

    def __call__(self, trainer=None) -> None:
        global _said
        if self.choice.source != "auto" or time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + CHECK_SECONDS
        new = choose()
        if new.source == "auto" and new.threads != self.choice.threads:
            apply(new, say=False)
            _said = new.threads
            self.write(f"rnnkit: now {new.counted()}: other processes keep {new.busy_text()} CPUs busy")
        self.choice = new


def watch_threads(trainer) -> Optional[ThreadWatch]:
    """Apply the thread choice for ``trainer`` (its ``config.threads`` or automatic) and, when automatic and
    on the CPU, follow the load while it trains. Returns the watch (None on a GPU: the CPU threads only
    feed it)."""
    explicit = getattr(trainer.config, "threads", None)
    if trainer.device.type != "cpu":
        if explicit is not None:
            apply(choose(explicit))
        return None
    choice = use_threads(explicit)
    from tqdm.auto import tqdm                 # keeps the line clear of the progress bar
    watch = ThreadWatch(choice, write=lambda text: tqdm.write(text, file=sys.stderr))
    trainer.add_callback("on_step_end", watch)
    return watch
