"""Forecasting with the defaults: no flags beyond the data, on the registered sets and on a set the defaults
were never tuned on (nyc-weather resampled to daily means).

Two modes:

``defaults`` (the bar): for each set, ``rnnkit forecast train`` and ``rnnkit forecast compare`` with nothing but
the data flags and ``--max-minutes`` (and ``--threads``), as a user would type them, each timed as a whole
command. Checked: the test MAE of the default model (train) and of compare's pick (lowest mean validation MAE)
within 5% of the best tuned test MAE (``TUNED`` below, from docs/benchmarks.md), never worse than seasonal
naive on test, and the wall time within 5% of ``--max-minutes``. Compare's pick is what its summary line
recommends: the best by mean validation MAE, or the simplest of the models tied with it.

``grid`` (the evidence the defaults were chosen on): every model x variant x seed fitted in this process, one
line each, appended to a CSV.

    python bench/defaults_forecast.py defaults --max-minutes 3 --threads 1
    python bench/defaults_forecast.py grid --sets airline nyc-daily --models gru gru_dropout \\
        --variants default residual --seeds 0 1 2 --threads 1 --csv bench-out/grid.csv

The daily set is written by this script: JFK, LGA and EWR hourly 2013 weather averaged per UTC day (temp,
dewp, humid, wind_speed, precip, pressure, visib; wind_dir and wind_gust left out), 365 days per station; the
data flags are ``--csv nyc-daily.csv --time-col date --target temp --filter origin=JFK``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import add_threads_argument, progress, start  # noqa: E402

from rnnkit.tasks.forecast.config import MODELS  # noqa: E402

DAILY_COLUMNS = ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")

# The best tuned test MAE of each set in docs/benchmarks.md (the bar is 5% above it), and where it comes from.
# nyc-daily had no tuned figure there: ``grid`` measured one (the test MAE of the tuned run that validation
# picks, not the lowest test MAE, which would be chosen on the test set).
TUNED = {
    "airline": (20.82, "mlp + residual, bench/forecast.py airline (lookback 12, batch 16, lr 3e-3)"),
    "nyc-weather": (4.750, "gru + residual + calendar + other stations, bench/forecast.py nyc"),
    "nyc-daily": (4.992, "conv1d_gru + residual, lr 3e-3, seed 0: the lowest validation MAE (2.789 °F) of the "
                         "grid of 60 tuned runs in this script's report (grid mode)"),
}


def write_daily_csv(path: Path) -> Path:
    """nyc-weather averaged per station and UTC day: ``date,origin,temp,...`` (one row per station-day)."""
    from rnnkit import datasets

    table = datasets.load("nyc-weather")
    days = np.array([t[:10] for t in table["time_hour"]])
    keys = sorted(set(zip(table["origin"].tolist(), days.tolist())), key=lambda k: (k[0], k[1]))
    index = {k: i for i, k in enumerate(keys)}
    row_of = np.array([index[k] for k in zip(table["origin"].tolist(), days.tolist())])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["date", "origin", *DAILY_COLUMNS])
        means = {}
        for c in DAILY_COLUMNS:
            v = table[c].astype(float)
            ok = ~np.isnan(v)
            sums = np.bincount(row_of[ok], v[ok], minlength=len(keys))
            counts = np.bincount(row_of[ok], minlength=len(keys))
            with np.errstate(invalid="ignore", divide="ignore"):
                means[c] = sums / counts
        for i, (origin, day) in enumerate(keys):
            w.writerow([day, origin, *("" if np.isnan(means[c][i]) else f"{means[c][i]:.3f}" for c in DAILY_COLUMNS)])
    return path


def set_flags(name: str, folder: Path) -> dict:
    """The data of a set as Forecaster keyword arguments."""
    if name == "nyc-daily":
        path = folder / "nyc-daily.csv"
        if not path.exists():
            write_daily_csv(path)
        return dict(csv=str(path), time_col="date", target=["temp"], filter=["origin=JFK"])
    return dict(dataset=name)


def cli_flags(data: dict) -> list[str]:
    out = []
    for key, value in data.items():
        out += [f"--{key.replace('_', '-')}", *(value if isinstance(value, list) else [str(value)])]
    return out


# ------------------------------------------------------------------------------------------------ grid

VARIANTS = {
    "default": {},
    "residual": dict(residual=True),
    "no_residual": dict(residual=False),
    "lr3e-3": dict(lr=3e-3),
    "rd0.25": dict(recurrent_dropout=0.25),
    "rd0.1": dict(recurrent_dropout=0.1, dropout=0.0),
    "features_all": dict(features=["all"]),
    "features_auto": dict(features=["auto"]),
    "calendar": dict(calendar=True),
}


def parse_variant(text: str) -> dict:
    """A name of VARIANTS, or ``key=value,key=value`` (values read as JSON where they parse)."""
    if text in VARIANTS:
        return VARIANTS[text]
    out = {}
    for part in text.split(","):
        key, value = part.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def grid(args) -> int:
    from rnnkit.tasks.forecast.task import Forecaster

    folder = Path(args.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(s, m, v, seed) for s in args.sets for m in args.models for v in args.variants for seed in args.seeds]
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["set", "model", "variant", "seed", "val_mae", "test_mae", "naive_val", "naive_test",
                        "seasonal_val", "seasonal_test", "best_epoch", "steps", "seconds"])
        for s, m, v, seed in progress(jobs, "fits"):
            t0 = time.monotonic()
            fc = Forecaster(**set_flags(s, folder), model=m, seed=seed, threads=args.threads,
                            **parse_variant(v)).fit(progress=False, verbose=False)
            mm = fc.metrics_
            steps = fc.trainer_.step if fc.trainer_ is not None else 0
            row = [s, m, v, seed, mm["val_mae"], mm["test_mae"], mm["naive_val_mae"], mm["naive_test_mae"],
                   mm.get("seasonal_naive_val_mae"), mm.get("seasonal_naive_test_mae"),
                   None if fc.best_epoch_ is None else fc.best_epoch_ + 1, steps, round(time.monotonic() - t0, 1)]
            w.writerow(row)
            f.flush()
            print(" ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in row), flush=True)
    return 0


# -------------------------------------------------------------------------------------------- defaults

def timed_command(argv: list[str]) -> tuple[float, int, str]:
    """Run ``rnnkit ARGS`` as a user would; (wall seconds, exit status, stderr tail)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    return time.monotonic() - t0, proc.returncode, (proc.stdout + proc.stderr)[-3000:]


def defaults(args) -> int:
    folder = Path(args.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="defaults-forecast-"))
    budget = ["--max-minutes", f"{args.max_minutes:g}"] + (["--threads", str(args.threads)] if args.threads else [])
    lines, ok_all = [], True
    for name in progress(args.sets, "sets"):
        data = cli_flags(set_flags(name, folder))
        tuned = TUNED[name][0]
        for verb in args.verbs:
            run = work / f"{name}-{verb}"
            argv = ["forecast", verb, *data, *budget, "--run-dir", str(run)]
            seconds, status, tail = timed_command(argv)
            if status != 0:
                print(f"rnnkit {' '.join(argv)}: exit {status}\n{tail}", file=sys.stderr)
                ok_all = False
                continue
            if verb == "train":
                doc = json.loads((run / "config.json").read_text())
                m = doc["fitted"]["metrics"]
                what, test, val = f"{doc['config']['model']} (train's pick)", m["test_mae"], m["val_mae"]
                seasonal = m.get("seasonal_naive_test_mae")
            else:
                with open(run / "compare.csv", newline="") as f:
                    rows = list(csv.DictReader(f))
                # what the table recommends: the best by mean validation MAE, or the simplest tied with it
                close = [r for r in rows if r["vs_best"] in ("best", "tied")]
                pick = min(close, key=lambda r: MODELS.index(r["model"]))
                what, test, val = f"{pick['model']} (compare's pick)", float(pick["test_mae"]), float(pick["val_mae"])
                base = next((r for r in rows if r["model"] == "seasonal_naive"), None)
                seasonal = float(base["test_mae"]) if base else None
            checks = []
            if tuned is not None:
                checks.append(("≤ 1.05 × tuned", test <= 1.05 * tuned, f"{test / tuned:.3f} × {tuned:g}"))
            if seasonal is not None:
                checks.append(("≤ seasonal naive", test <= seasonal, f"{test:.3f} vs {seasonal:.3f}"))
            checks.append(("wall ≤ 1.05 × budget", seconds <= 1.05 * 60 * args.max_minutes,
                           f"{seconds:.0f} s of {60 * args.max_minutes:.0f} s"))
            ok_all &= all(c[1] for c in checks)
            text = "; ".join(f"{label}: {detail} {'✔' if ok else '✘'}" for label, ok, detail in checks)
            line = f"| {name} | `forecast {verb}` | {what} | {val:.3f} | {test:.3f} | {text} |"
            lines.append(line)
            print(line, flush=True)
    print("\n| set | command | model | val MAE | test MAE | bars |\n|---|---|---|---:|---:|---|")
    print("\n".join(lines))
    print(f"\ncommands: rnnkit forecast train|compare <data flags> {' '.join(budget)}; machine shared "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    return 0 if ok_all else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("defaults", help="the bar: the CLI with the data flags only")
    d.add_argument("--sets", nargs="*", default=list(TUNED), choices=list(TUNED))
    d.add_argument("--verbs", nargs="*", default=["train", "compare"], choices=["train", "compare"])
    d.add_argument("--max-minutes", type=float, default=3.0, help="the budget given to each command")
    g = sub.add_parser("grid", help="models x variants x seeds, fitted in this process")
    g.add_argument("--sets", nargs="*", default=list(TUNED), choices=list(TUNED))
    g.add_argument("--models", nargs="*", default=["gru"])
    g.add_argument("--variants", nargs="*", default=["default"], help=f"names ({', '.join(VARIANTS)}) or k=v,k=v")
    g.add_argument("--seeds", nargs="*", type=int, default=[0])
    g.add_argument("--csv", default="bench-out/forecast-grid.csv", help="append one row per fit here")
    for p in (d, g):
        add_threads_argument(p)
        p.add_argument("--data-dir", default="bench-out", help="where the daily CSV is written")
    args = ap.parse_args(argv)
    start(args.threads)
    return defaults(args) if args.mode == "defaults" else grid(args)


if __name__ == "__main__":
    sys.exit(main())
