"""Training and sampling beside a busy CPU: rnnkit's own thread choice against the old fixed count.

One run measures, each in a fresh process:

* quiet: nothing else running (rnnkit chooses by itself: all CPUs);
* busy, auto: beside one CPU-bound competitor (a Python busy loop), rnnkit choosing by itself;
* busy, old: beside the same competitor with the old behaviour, ``--threads <all CPUs>`` (torch's default).

Training: ``rnnkit textgen train`` (a 2-layer LSTM-256 char model on a generated corpus, batch 64 x 100)
for ``--seconds``; its chars/s is the median ``items_per_s`` of metrics.jsonl (logged every 5 steps; the
first record, with the warm-up, is left out). Sampling: batch-1 ``TextGenerator.generate`` from the
trained run (the C loop where a compiler exists) for ``--seconds``, after the same thread choice as
``rnnkit.cli.main``. Ratios are to quiet; the bar is >= 0.6x quiet beside the competitor, without the
user setting anything.

    python bench/busy_cpu.py --seconds 40
    python bench/busy_cpu.py --seconds 10 --rounds 1      # a quick check that it works

Numbers are only meaningful on an otherwise quiet machine: the script measures how busy other processes
kept the CPUs before it starts and warns when they were. The threads are set per scenario on purpose (that
is what it measures); each scenario is shown as it starts (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import progress

from rnnkit.training import threads as rnnkit_threads

WORDS = ("the king queen lord of and to my thee thou love death night day sword crown blood heart "  # noqa: SIM905
         "fair sweet gentle noble speak hear come go now never ever what where why").split()
BUSY_LOOP = "while True: pass"


def make_corpus(path: Path, chars: int = 1_000_000, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n")


def train_rate(corpus: Path, run: Path, seconds: float, threads: int | None) -> tuple[float, str]:
    """Median chars/s of ``rnnkit textgen train`` for ``seconds``, and what rnnkit said about threads."""
    cmd = [sys.executable, "-m", "rnnkit", "textgen", "train", "--corpus", str(corpus), "--hidden-size", "256",
           "--max-minutes", f"{seconds / 60:.4f}", "--log-every", "5", "--sample-max-tokens", "0",
           "--precision", "fp32", "--run-dir", str(run), "--overwrite"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=clean_env())
    if out.returncode != 0:
        raise SystemExit(f"training failed ({out.returncode}):\n{out.stderr[-2000:]}")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("event") == "train"]
    if len(train) >= 3:
        rate = statistics.median(r["items_per_s"] for r in train[1:])
    else:   # a collapsed run logs too rarely for a median: the whole run's average
        last = records[-1]
        rate = last["step"] * 64 * 100 / last["elapsed_s"]
    said = [line for line in out.stderr.splitlines() if "CPU thread" in line]
    return rate, said[0] if said else ""


def sample_rate(run: Path, seconds: float, threads: int | None) -> float:
    cmd = [sys.executable, __file__, "--sample-worker", str(run), "--seconds", str(seconds)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=clean_env())
    if out.returncode != 0:
        raise SystemExit(f"sampling failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def sample_worker(run: str, seconds: float, threads: int | None) -> None:
    """In its own process: the CLI's thread choice, then batch-1 samples for ``seconds``; prints chars/s."""
    from rnnkit.tasks.textgen.task import TextGenerator
    rnnkit_threads.use_threads(threads)
    gen = TextGenerator.load(run)
    gen.generate("the ", max_tokens=200, temperature=0.8, seed=0)        # warm-up (compiles the C loop once)
    chars, start, seed = 0, time.perf_counter(), 1
    while time.perf_counter() - start < seconds:
        chars += len(gen.generate("the ", max_tokens=2000, temperature=0.8, seed=seed))
        seed += 1
    print(f"{chars / (time.perf_counter() - start):.1f}")


def clean_env() -> dict:
    """The environment without the settings a user would have to know about: rnnkit must choose itself."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                              "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


class Competitor:
    """``with Competitor():`` one CPU-bound process runs beside the measurement."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def others_busy_now(seconds: float = 1.0) -> float | None:
    """CPUs that other processes kept busy over ``seconds`` (None where /proc/stat is missing)."""
    cpus = rnnkit_threads.allowed_cpus()
    start = rnnkit_threads.read_cpu_times(cpus)
    time.sleep(seconds)
    end = rnnkit_threads.read_cpu_times(cpus)
    return None if start is None or end is None else rnnkit_threads.others_busy(start, end, len(cpus))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="each training and each sampling measurement")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the three scenarios (medians reported)")
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sample-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sample_worker:
        return sample_worker(args.sample_worker, args.seconds, args.threads)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = others_busy_now()
    print(f"{cpus} CPUs; other processes kept {busy if busy is None else round(busy, 2)} CPUs busy before the run"
          + ("  (WARNING: not a quiet machine, the ratios are noisy)" if busy and busy > 0.3 else ""))
    scenarios = [("quiet", False, None), ("busy, auto", True, None), (f"busy, old ({cpus} threads)", True, cpus)]
    results = {name: {"train": [], "sample": []} for name, _, _ in scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        corpus, quiet_run = Path(tmp) / "corpus.txt", Path(tmp) / "quiet"
        make_corpus(corpus)
        turns = [(r, scenario) for r in range(args.rounds) for scenario in scenarios]
        for r, (name, with_competitor, threads) in progress(turns, "scenarios (training, then sampling)"):
            run = quiet_run if name == "quiet" else Path(tmp) / "run"
            with Competitor() if with_competitor else contextlib.nullcontext():
                rate, said = train_rate(corpus, run, args.seconds, threads)
                srate = sample_rate(quiet_run, args.seconds, threads)   # the quiet run's model, every time
            results[name]["train"].append(rate)
            results[name]["sample"].append(srate)
            print(f"round {r + 1} {name:22} train {rate:8.0f} chars/s   sample {srate:8.0f} chars/s   {said}",
                  flush=True)

    quiet = {kind: statistics.median(results["quiet"][kind]) for kind in ("train", "sample")}
    print("\n| scenario | training chars/s | vs quiet | sampling chars/s (batch 1) | vs quiet |")
    print("|---|---:|---:|---:|---:|")
    for name, _, _ in scenarios:
        t, s = (statistics.median(results[name][kind]) for kind in ("train", "sample"))
        print(f"| {name} | {t:,.0f} | {t / quiet['train']:.2f} | {s:,.0f} | {s / quiet['sample']:.2f} |")
    auto = results["busy, auto"]
    ok = all(statistics.median(auto[kind]) >= 0.6 * quiet[kind] for kind in ("train", "sample"))
    print(f"\nbar (busy, auto >= 0.6x quiet, training and sampling): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
