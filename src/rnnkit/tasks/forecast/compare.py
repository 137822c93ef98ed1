"""``compare``: every forecasting model trained on the same windows, and its results as tables and figures.

    rows = compare(ForecastConfig(dataset="nyc-weather"), ["naive", "seasonal_naive", "ridge", "gru"],
                   run_dir="runs/compare")

One row per model: validation and test MAE, and the gain over the two baselines, naive (the last value) and
seasonal naive (the value one season before). With a run directory it also writes ``compare.csv``,
``compare.md``, ``predictions.png`` and ``losses.png``; ``rnnkit forecast compare`` prints the Markdown table.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from rnnkit import _checks
from rnnkit.config import config_to_dict
from rnnkit.datasets.series import describe_steps
from rnnkit.report.plots import new_figure, save_png
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.io import atomic_write_text
from rnnkit.runs.schema import read_run_config
from rnnkit.tasks.base import RESUME_FIELDS, replace_config, stop_if_interrupted
from rnnkit.tasks.forecast.data import load_source
from rnnkit.tasks.forecast.model import BASELINES, MODELS, RECURRENT, build_model
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster, SeasonError


def compare(cfg: ForecastConfig, models: list[str] | None = None, run_dir: str | None = None, *,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None) -> list[dict[str, Any]]:
    """Train every model in ``models`` (default: all) on the same windows; one row of results per model.

    Each row holds the validation and test MAE and the gain over both baselines, naive (the last value) and
    seasonal naive (the value one season before: on a series with a season, the bar to beat), in percent
    (None without a validation part or without a season). With ``run_dir``: each model's run directory
    (``run_dir/<model>``), ``compare.csv``, ``compare.md``, ``predictions.png`` (the test series against each
    model's forecast and the two baselines') and ``losses.png`` (validation MAE per epoch, the baselines as
    flat lines). ``resume=True`` goes on with each model whose run directory holds a checkpoint (its config
    must be ``cfg`` apart from the budgets) and trains the others. ``seasonal_naive`` is skipped, with a
    message, when the series has no season to guess (integer steps) and none is given. Ctrl-C stops the
    comparison after the interrupted model's checkpoint is saved (``KeyboardInterrupt``).
    """
    models = list(models or MODELS)
    for m in models:
        _checks.check_choice("models", m, MODELS)
    if resume and run_dir is None:
        _checks.fail("run_dir", None, "the run directory of the comparison to resume")
    table, source = load_source(cfg)
    # The command that goes on with this comparison after Ctrl-C (its own models, when not all of them).
    command = "rnnkit forecast compare" + ("" if models == list(MODELS) else " --models " + " ".join(models))
    results, fitted = [], {}
    for i, name in enumerate(models):
        config = replace_config(cfg, model=name)
        run = RunDir(Path(run_dir) / name) if run_dir else None
        go_on = resume and run.has_checkpoint()
        if go_on:
            _check_same_config(run, config)
        try:
            fc = Forecaster(config).fit(table, run_dir=run and str(run.path), resume=go_on, dry_run=dry_run,
                                        progress=progress, verbose=(i == 0))
        except SeasonError as err:
            # One model that cannot run here (integer steps have no natural season) does not stop the others.
            if len(models) == 1:
                raise
            print(f"{name:15s} skipped: {err}", file=sys.stderr)
            continue
        stop_if_interrupted(fc.trainer_, run_dir, command)
        m = fc.metrics_
        results.append({"model": name, "val_mae": m["val_mae"], "test_mae": m["test_mae"],
                        "val_mae_norm": m["val_mae_norm"], "test_mae_norm": m["test_mae_norm"],
                        "val_vs_naive_pct": gain(m["val_mae"], m["naive_val_mae"]),
                        "test_vs_naive_pct": gain(m["test_mae"], m["naive_test_mae"]),
                        "val_vs_seasonal_naive_pct": gain(m["val_mae"], m.get("seasonal_naive_val_mae")),
                        "test_vs_seasonal_naive_pct": gain(m["test_mae"], m.get("seasonal_naive_test_mae")),
                        "season": m.get("season"),
                        "best_epoch": None if fc.best_epoch_ is None else fc.best_epoch_ + 1,
                        "train_s": fc.train_seconds_})
        if not fitted:
            print(f"baselines: {baselines_summary(fc)}", file=sys.stderr)
        fitted[name] = fc
        print(f"{name:15s} val {number(m['val_mae'], '.3f')}  test {m['test_mae']:.3f}  "
              f"({fc.train_seconds_:.1f} s)", file=sys.stderr)
    if run_dir:
        out = Path(run_dir)
        atomic_write_text(out / "compare.csv", results_csv(results))
        atomic_write_text(out / "compare.md", results_markdown(results))
        plot_predictions(fitted, out / "predictions.png")
        plot_losses(fitted, out / "losses.png")
    return results


def _check_same_config(run: RunDir, config: ForecastConfig) -> None:
    """A resumed model of a comparison keeps its config; only the budgets may differ."""
    saved, now = read_run_config(run, "forecast")["config"], config_to_dict(config)
    pairs = [(k, saved.get(k), v) for k, v in now.items() if k != "train"]
    pairs += [(k, saved.get("train", {}).get(k), v) for k, v in now["train"].items() if k not in RESUME_FIELDS]
    for name, old, new in pairs:
        if old != new:
            _checks.fail(name, new, f"{old!r} as in {run.config_path}: a resumed comparison may change only "
                                    f"the budgets")


def gain(mae: float | None, baseline: float | None) -> float | None:
    """How much lower ``mae`` is than a baseline's, in percent (None when either is missing)."""
    if mae is None or baseline is None or baseline <= 0:
        return None
    return 100 * (1 - mae / baseline)


def number(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, or a dash for a figure there is none of (no validation, no season)."""
    return "-" if value is None else format(value, spec)


def best_recurrent(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recurrent model with the lowest validation MAE (the test MAE plays no part in the choice; None
    without a validation part)."""
    rec = [r for r in results if r["model"] in RECURRENT and r["val_mae"] is not None]
    return min(rec, key=lambda r: r["val_mae"]) if rec else None


def baselines_summary(fc: Forecaster) -> str:
    """What the two baselines are, for the printed summary: ``naive = the last value; seasonal naive = the
    value 24 steps (24 hours) before``."""
    season = fc.metrics_.get("season")
    text = "naive = the last value"
    if season:
        text += f"; seasonal naive = the value {season} steps ({describe_steps(season, fc.freq_)}) before"
    return text


def results_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(results[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(results)
    return buf.getvalue()


def results_markdown(results: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table: MAE, and the gain over naive and over seasonal naive (a dash where
    there is no validation part or no season)."""
    lines = ["| model | val MAE | test MAE | val MAE (norm.) | test MAE (norm.) | val vs naive | test vs naive "
             "| val vs seasonal naive | test vs seasonal naive | best epoch | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        pct = [number(r[k], "+.1f") + ("%" if r[k] is not None else "")
               for k in ("val_vs_naive_pct", "test_vs_naive_pct", "val_vs_seasonal_naive_pct",
                         "test_vs_seasonal_naive_pct")]
        lines.append(f"| {r['model']} | {number(r['val_mae'], '.3f')} | {r['test_mae']:.3f} | "
                     f"{number(r['val_mae_norm'], '.4f')} | {r['test_mae_norm']:.4f} | {' | '.join(pct)} | "
                     f"{'' if r['best_epoch'] is None else r['best_epoch']} | {r['train_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot_predictions(fitted: dict[str, Forecaster], path: Path, points: int = 336) -> None:
    """The first ``points`` test windows: truth and each model's forecast of the first target, in its units;
    the naive and seasonal naive forecasts in grey when they are not among the models."""
    fig = new_figure(10, 4)
    ax = fig.add_subplot()
    fc = next(iter(fitted.values()))
    rows = fc.rows_["test"][:points]
    mean, std = fc.normalizer_.mean[0], fc.normalizer_.std[0]
    times = fc.series_.times[rows + fc.window_config_.delay - fc.window_config_.step]
    y = fc.predict_rows(rows)[1]
    ax.plot(times, y[:, 0, 0] * std + mean, color="black", lw=2, label="truth")
    baselines = {"naive": build_model("naive", n_features=0, steps=0, n_targets=fc.n_targets_,
                                      horizon=fc.window_config_.horizon),
                 "seasonal_naive": fc._seasonal_naive()}
    for name, model in baselines.items():
        if name not in fitted and model is not None:
            p = fc.predict_rows(rows, model)[0]
            ax.plot(times, p[:, 0, 0] * std + mean, color="grey", lw=1, ls="--" if name == "naive" else ":",
                    label=name.replace("_", " "))
    for name, fc in fitted.items():
        p = fc.predict_rows(rows)[0]
        ax.plot(times, p[:, 0, 0] * std + mean, lw=1, label=name)
    ax.set_ylabel(fc.series_.targets[0])
    ax.set_title("test set: forecasts against the truth")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(True, alpha=0.3)
    save_png(fig, path)


def plot_losses(fitted: dict[str, Forecaster], path: Path) -> None:
    """Validation MAE (normalised) per epoch of every trained model; the models without epochs as flat
    lines, and the two bars to beat, naive (dashed) and seasonal naive (dotted), in black. Without a
    validation part (val_frac=0): the training MAE per epoch."""
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    first = next(iter(fitted.values())).metrics_
    key = "val_loss" if first["val_mae_norm"] is not None else "train_loss"
    for name, fc in fitted.items():
        if fc.history_:
            ax.plot([r["epoch"] + 1 for r in fc.history_], [r[key] for r in fc.history_], marker=".", label=name)
        elif key == "val_loss" and name not in BASELINES:
            ax.axhline(fc.metrics_["val_mae_norm"], ls="--", lw=1, label=name)
    if key == "val_loss":
        for name, style in (("naive", "--"), ("seasonal_naive", ":")):
            if first.get(f"{name}_val_mae_norm") is not None:
                ax.axhline(first[f"{name}_val_mae_norm"], color="black", ls=style, lw=1.2,
                           label=name.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAE (normalised)" if key == "val_loss" else "training MAE (normalised, no validation)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    save_png(fig, path)
