"""Forecast quality: every model on the same windows, and what helps beyond the lecture's set-up.

nyc-weather: JFK, hourly, temperature 24 h after the last input hour, lookback 5 days (120 h), split in time:
2013-01-01..06-30 train, Q3 validation, Q4 test. Three tables:

1. every model on the lecture's inputs (the station's own weather columns);
2. what helps, for ridge and GRU: residual target (learn the change from the last value), time-of-day and
   time-of-year features (sin/cos), the other two stations as extra series, and all three together;
3. other recurrent models (``--also``) with all three, and an ensemble (mean of the forecasts) of 3 GRUs
   (seeds 0, 1, 2) with all three.

The bar: the recurrent model with the lowest VALIDATION MAE among all the recurrent runs above must be >= 5%
better than naive on validation and >= 18% better on test.

airline: monthly passengers, lookback 12 months, 1 month ahead, split 50/25/25: every model against seasonal
naive (the same month a year before).

    python bench/forecast.py nyc --out bench-out/nyc
    python bench/forecast.py airline
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

from rnnkit import datasets  # noqa: E402
from rnnkit.tasks.forecast.compare import plot_losses, plot_predictions  # noqa: E402
from rnnkit.tasks.forecast.model import MODELS, RECURRENT  # noqa: E402
from rnnkit.tasks.forecast.task import Forecaster  # noqa: E402

# The set-up the recorded figures were measured with: the value itself (not the change, today's default), no
# minimum of updates, --batch-size as given (today's defaults: --residual --min-steps 200 --auto-batch; see
# bench/defaults_forecast.py for what the defaults do).
LECTURE = dict(residual=False, min_steps=0, auto_batch=False)
NYC = dict(dataset="nyc-weather", train_end="2013-07-01", val_end="2013-10-01", lookback=120, step=1, delay=24,
           **LECTURE)
AIRLINE = dict(dataset="airline", lookback=12, step=1, delay=1, **LECTURE)
HELPS = {"residual": dict(residual=True), "time features": dict(time_features=True),
         "other stations": dict(wide_by="origin"),
         "all three": dict(residual=True, time_features=True, wide_by="origin")}


def run(table, label: str, base: dict, extra: dict, rows: list, fitted: dict | None = None) -> Forecaster:
    began = time.monotonic()
    fc = Forecaster(**{**base, **extra}).fit(table, progress=False, verbose=False)
    m = fc.metrics_
    row = {"run": label, "model": fc.config.model, "val": m["val_mae"], "test": m["test_mae"],
           "val_norm": m["val_mae_norm"], "test_norm": m["test_mae_norm"],
           "val_gain": 100 * (1 - m["val_mae"] / m["naive_val_mae"]),
           "test_gain": 100 * (1 - m["test_mae"] / m["naive_test_mae"]),
           "epoch": None if fc.best_epoch_ is None else fc.best_epoch_ + 1, "seconds": time.monotonic() - began}
    rows.append(row)
    if fitted is not None:
        fitted[label] = fc
    print(f"  {label:34s} val {row['val']:.3f} ({row['val_gain']:+.1f}%)  test {row['test']:.3f} "
          f"({row['test_gain']:+.1f}%)  {row['seconds']:.0f} s", flush=True)
    return fc


def ensemble(members: list[Forecaster], label: str, rows: list) -> None:
    """Mean of the members' forecasts (they share windows and normalisation: same data, same config)."""
    ref = members[0]
    row = {"run": label, "model": ref.config.model, "epoch": None,
           "seconds": sum(fc.train_seconds_ for fc in members)}
    for split in ("val", "test"):
        preds = [fc.predict_rows(fc.rows_[split]) for fc in members]
        p = np.mean([p for p, _ in preds], axis=0)
        y = preds[0][1]
        err = float(np.abs(p - y).mean())
        row[f"{split}_norm"], row[split] = err, err * float(ref.normalizer_.std[0])
        row[f"{split}_gain"] = 100 * (1 - row[split] / ref.metrics_[f"naive_{split}_mae"])
    rows.append(row)
    print(f"  {label:34s} val {row['val']:.3f} ({row['val_gain']:+.1f}%)  test {row['test']:.3f} "
          f"({row['test_gain']:+.1f}%)", flush=True)


def markdown(rows: list, unit: str) -> str:
    out = [f"| run | val MAE ({unit}) | test MAE ({unit}) | val (norm.) | test (norm.) | val vs naive | test vs naive "
           f"| best epoch | train s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['run']} | {r['val']:.3f} | {r['test']:.3f} | {r['val_norm']:.4f} | {r['test_norm']:.4f} | "
                   f"{r['val_gain']:+.1f}% | {r['test_gain']:+.1f}% | {r['epoch'] or ''} | {r['seconds']:.1f} |")
    return "\n".join(out)


def nyc(args) -> int:
    table = datasets.load("nyc-weather")
    base = {**NYC, "epochs": args.epochs, "early_stop_patience": args.patience, "seed": args.seed}
    rows, fitted = [], {}
    print("1. every model, the lecture's inputs")
    for model in progress(args.models, "table 1"):
        run(table, model, base, {"model": model}, rows, fitted)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        plot_predictions(fitted, Path(args.out) / "predictions.png")
        plot_losses(fitted, Path(args.out) / "losses.png")
    print("2. what helps")
    for model in progress(("ridge", "gru"), "table 2"):
        for name, extra in HELPS.items():
            run(table, f"{model} + {name}", base, {"model": model, **extra}, rows, fitted)
    print("3. recurrent models with all three, and an ensemble")
    best_extra = HELPS["all three"]
    for model in args.also:
        run(table, f"{model} + all three", base, {"model": model, **best_extra}, rows)
    members = [fitted["gru + all three"]]                             # seed args.seed, from table 2
    for seed in range(args.seed + 1, args.seed + args.ensemble):
        members.append(run(table, f"gru + all three, seed {seed}", {**base, "seed": seed},
                           {"model": "gru", **best_extra}, rows))
    if len(members) > 1:
        ensemble(members, f"ensemble of {len(members)} GRUs + all three", rows)
    print()
    print(markdown(rows, "°F"))
    recurrent = [r for r in rows if r["model"] in RECURRENT]
    best = min(recurrent, key=lambda r: r["val"])
    ok = best["val_gain"] >= 5 and best["test_gain"] >= 18
    print(f"\nbest recurrent run by validation: {best['run']}: {best['val_gain']:+.1f}% val, "
          f"{best['test_gain']:+.1f}% test against naive -> bar (>= 5% and >= 18%) {'MET' if ok else 'NOT met'}")
    return 0


def airline(args) -> int:
    table = datasets.load("airline")
    base = {**AIRLINE, "epochs": max(args.epochs, 100), "early_stop_patience": args.patience * 3,
            "seed": args.seed,
            "batch_size": 16, "lr": 3e-3}
    rows = []
    for model in progress(args.models, "models"):
        run(table, model, base, {"model": model}, rows)
        if model not in ("naive", "seasonal_naive"):
            run(table, f"{model} + residual", base, {"model": model, "residual": True}, rows)
    seasonal = next(r for r in rows if r["run"] == "seasonal_naive")
    print()
    print(markdown(rows, "passengers"))
    print("\nagainst seasonal naive (val / test MAE ratio, lower is better):")
    for r in rows:
        print(f"  {r['run']:28s} {r['val'] / seasonal['val']:.2f} / {r['test'] / seasonal['test']:.2f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=("nyc", "airline"), help="which benchmark")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS, help="models for table 1")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per trained model")
    ap.add_argument("--patience", type=int, default=6, help="early stopping patience in epochs")
    ap.add_argument("--also", nargs="*", default=["lstm"], choices=RECURRENT,
                    help="other recurrent models to train with all three helps in table 3")
    ap.add_argument("--ensemble", type=int, default=3, help="GRUs (seeds) in the ensemble")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first run")
    add_threads_argument(ap)
    ap.add_argument("--out", default=None, help="write predictions.png and losses.png of table 1 here")
    args = ap.parse_args(argv)
    start(args.threads)
    return nyc(args) if args.dataset == "nyc" else airline(args)


if __name__ == "__main__":
    sys.exit(main())
