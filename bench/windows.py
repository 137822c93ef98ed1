"""Window batches: the lecture's per-row Python generator against rnnkit's vectorised one.

Both are run with the same parameters and the same random seed; every batch is checked to be identical
(inputs and targets) before the timings are trusted. Three variants of the vectorised generator:
ordered batches as strided views (the default: no copy), ordered batches copied into arrays of their own
(``copy=True``), and shuffled batches (one gather per batch).

    python bench/windows.py                         # the lecture's Jena set-up: 420,551 x 14, lookback 1440, step 6
    python bench/windows.py --rows 8730 --features 7 --lookback 120 --step 1 --delay 23   # nyc-weather sized
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import add_threads_argument, progress, start  # noqa: E402

from rnnkit.datasets.windows import generator, lecture_generator  # noqa: E402


def timed(make, batches: int) -> float:
    """Seconds per batch to draw ``batches`` batches after the first (numpy's global seed reset first)."""
    np.random.seed(0)
    gen = make()
    next(gen)   # steady state: one-off set-up (the vectorised one copies the target column once) not timed
    start = time.perf_counter()
    for _ in range(batches):
        x, y = next(gen)
        # touch the batch so a lazy view is not cheaper than it should be
        float(x[0, 0, 0]) + float(y[-1])
    return (time.perf_counter() - start) / batches


def identical(make_a, make_b, batches: int) -> bool:
    np.random.seed(0)
    a = [tuple(np.array(t) for t in next(g)) for g in [make_a()] for _ in range(batches)]
    np.random.seed(0)
    gb = make_b()
    for xa, ya in a:
        xb, yb = next(gb)
        if xa.shape != xb.shape or not (np.array_equal(xa, xb) and np.array_equal(ya, yb)):
            return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=420_551, help="rows of the synthetic series (Jena: 420,551)")
    ap.add_argument("--features", type=int, default=14, help="columns of the series (Jena: 14)")
    ap.add_argument("--lookback", type=int, default=1440, help="lookback in rows")
    ap.add_argument("--step", type=int, default=6, help="keep every step-th row of a window")
    ap.add_argument("--delay", type=int, default=144, help="the lecture's delay")
    ap.add_argument("--batch-size", type=int, default=128, help="windows per batch")
    ap.add_argument("--batches", type=int, default=200, help="batches timed per generator")
    ap.add_argument("--check", type=int, default=50, help="batches compared for equality per mode")
    add_threads_argument(ap)          # (numpy only; the line says what the machine is)
    args = ap.parse_args(argv)
    start(args.threads)

    data = np.random.default_rng(0).normal(size=(args.rows, args.features))
    max_index = int(args.rows * 0.5)
    common = dict(lookback=args.lookback, delay=args.delay, min_index=0, max_index=max_index,
                  step=args.step, batch_size=args.batch_size)
    print(f"series {args.rows} x {args.features}, lookback {args.lookback}, step {args.step}, delay "
          f"{args.delay}, batch {args.batch_size}: batches of {args.batch_size} x {args.lookback // args.step} x "
          f"{args.features}")
    rows = []
    for shuffle in progress((True, False), "batch modes (shuffled, ordered)"):
        ref = lambda: lecture_generator(data, shuffle=shuffle, **common)      # noqa: E731
        variants = [("vectorised", lambda: generator(data, shuffle=shuffle, **common))]
        if not shuffle:
            variants.append(("vectorised, copied", lambda: generator(data, shuffle=False, copy=True, **common)))
        t_ref = timed(ref, max(10, args.batches // 10))
        for name, make in variants:
            same = identical(ref, make, args.check)
            t = timed(make, args.batches)
            rows.append((("shuffled" if shuffle else "ordered"), name, t_ref, t, same))
    print("\n| batches | generator | lecture loop ms/batch | vectorised ms/batch | speed-up | identical |")
    print("|---|---|---:|---:|---:|---|")
    for mode, name, t_ref, t, same in rows:
        print(f"| {mode} | {name} | {1e3 * t_ref:.3f} | {1e3 * t:.4f} | {t_ref / t:,.0f}x | "
              f"{'yes' if same else 'NO'} ({args.check} batches) |")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
