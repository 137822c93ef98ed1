"""How long ``rnnkit --help`` takes: the median wall time of N fresh processes.

``--help`` must never import torch (importing it alone takes seconds on a busy machine), so this figure is
Python's start-up plus argparse plus rnnkit's torch-free modules. Each run is a new ``python -m rnnkit``
process, as a user's shell starts it; the first run (cold file cache) is left out of the median.

    python bench/cli_help.py                  # rnnkit --help, 11 runs
    python bench/cli_help.py --runs 21 -- textgen sample --help    # (after --: rnnkit's own arguments)

Each run is shown as it starts (a bar on a terminal, a line in a log). There is no ``--threads``: the timed
processes never load torch, so no thread count applies to them (this script does not load it either).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import progress


def time_once(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rnnkit", *args], check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rnnkit {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="timed processes (default: %(default)s)")
    parser.add_argument("command", nargs="*", help="rnnkit arguments to time (default: --help)")
    opts = parser.parse_args()
    if opts.runs < 1:
        parser.error(f"--runs={opts.runs}: expected at least 1")
    args = opts.command or ["--help"]
    time_once(args)                       # warm the file cache; not counted
    times = [time_once(args) for _ in progress(range(opts.runs), f"rnnkit {' '.join(args)}")]
    print(f"rnnkit {' '.join(args)}: median {statistics.median(times):.3f} s over {opts.runs} runs "
          f"(min {min(times):.3f} s, max {max(times):.3f} s)")


if __name__ == "__main__":
    main()
