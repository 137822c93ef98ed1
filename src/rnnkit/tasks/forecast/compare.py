"""``compare``: every forecasting model trained on the same windows, with several seeds, ranked by validation.

    rows = compare(ForecastConfig(dataset="nyc-weather", seeds=3), ["naive", "seasonal_naive", "ridge", "gru"],
                   run_dir="runs/compare")

One row per model: the validation and test MAE as the mean ± sd over ``cfg.seeds`` seeds (the baselines and
ridge are deterministic: one fit, sd 0), the gain over the two baselines, naive (the last value) and seasonal
naive (the value one season before), and the model's place: ranked by the mean validation MAE, a model whose
mean lies within the noise of the best one is ``tied`` with it (the rule: :func:`rnnkit.tasks.forecast.seeds.tied`,
a difference of means smaller than twice its standard error). With a run directory it writes each model's
runs (``RUN/<model>``, its other seeds in ``RUN/<model>/seed-<s>``), ``compare.json`` (what is compared, for
``--resume``), and ``compare.csv`` and ``compare.md`` after every model (atomically: a stopped comparison keeps
the rows it has), then ``predictions.png`` and ``losses.png``; ``rnnkit forecast compare`` prints the table.
``--max-minutes`` is the whole comparison's budget, shared among its trained fits (seeds.Budget).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

from rnnkit import _checks
from rnnkit.config import config_to_dict
from rnnkit.datasets.series import describe_steps
from rnnkit.report.plots import new_figure, save_png
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.io import atomic_write_json, atomic_write_text
from rnnkit.runs.schema import read_run_config
from rnnkit.tasks.base import RESUME_FIELDS, replace_config, resume_command
from rnnkit.tasks.forecast.config import DEFAULT_MODELS, DETERMINISTIC
from rnnkit.tasks.forecast.data import load_source
from rnnkit.tasks.forecast.model import BASELINES, MODELS, RECURRENT, build_model
from rnnkit.tasks.forecast.seeds import Budget, Seeded, fit_seeds, tied
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster, SeasonError

COMPARE_FILE = "compare.json"      # the models and seeds of a comparison, for --resume


def compare_command(models: list[str]) -> str:
    """The command line of a comparison of ``models`` (without --run-dir): --models only when not the default."""
    return "rnnkit forecast compare" + ("" if models == list(DEFAULT_MODELS) else " --models " + " ".join(models))


def compare(cfg: ForecastConfig, models: list[str] | None = None, run_dir: str | None = None, *,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            started: float | None = None) -> list[dict[str, Any]]:
    """Train every model in ``models`` (default: DEFAULT_MODELS) on the same windows, ``cfg.seeds`` seeds each
    (one for the deterministic ones); one row of results per model (see the module docstring).

    ``resume=True`` keeps each model and seed whose run finished (a changed budget trains it on), goes on with
    each one that holds a checkpoint (its config must be ``cfg`` apart from the budgets) and trains the others.
    ``seasonal_naive`` is skipped, with a message, when the series has no season to guess (integer steps) and
    none is given. Ctrl-C (or SIGTERM) stops the comparison after the interrupted run's checkpoint is saved
    (``KeyboardInterrupt``), with the command that resumes it. ``started``: when the command began
    (time.monotonic(); its ``max_minutes`` counts from then; default: now).
    """
    models = list(models or DEFAULT_MODELS)
    line = (None if run_dir is None else
            f"resume the comparison with: {resume_command(compare_command(models), run_dir)}")
    return run_comparison(cfg, models, run_dir, resume=resume, dry_run=dry_run, progress=progress,
                          resume_line=line, started=started)[0]


def run_comparison(cfg: ForecastConfig, models: list[str], run_dir: str | None = None, *, resume: bool = False,
                   dry_run: bool = False, progress: bool | None = None, resume_line: str | None = None,
                   plots: bool = True, table: Any = None, started: float | None = None
                   ) -> tuple[list[dict[str, Any]], dict[str, Seeded]]:
    """``compare``'s work: the rows, and each model's seeds (fitted or read back). ``resume_line`` is printed
    when Ctrl-C or SIGTERM stops it (the command that goes on: the comparison's, or ``train --model auto``'s);
    ``started`` is when the command began (its --max-minutes counts from then; default: now)."""
    for m in models:
        _checks.check_choice("models", m, MODELS)
    if resume and run_dir is None:
        _checks.fail("run_dir", None, "the run directory of the comparison to resume")
    if table is None:
        table = load_source(cfg)[0]                  # read once for every model
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(run_dir) / COMPARE_FILE, {"models": models, "seeds": cfg.seeds})
    trained = [m for m in models if m not in DETERMINISTIC]
    # The plots and the table after the last fit take seconds: kept back from the fits' shares.
    budget = Budget(cfg.train.max_minutes, len(trained) * cfg.seeds, started=started, reserve=10.0 if plots else 0.0)
    if cfg.train.max_minutes and trained:
        print(f"budget: {cfg.train.max_minutes:g} minutes for {len(trained)} trained model"
              f"{'s' if len(trained) != 1 else ''} x {cfg.seeds} seed{'s' if cfg.seeds != 1 else ''}, shared "
              f"as they go (what an early stop leaves goes to the next)", file=sys.stderr)
    results, fitted = [], {}
    for i, name in enumerate(models):
        config = replace_config(cfg, model=name, seeds=1 if name in DETERMINISTIC else cfg.seeds)
        run = str(Path(run_dir) / name) if run_dir else None
        if resume and RunDir(run).config_path.is_file():
            _check_same_config(RunDir(run), config)
        try:
            seeded = fit_seeds(config, table, run, resume=resume, dry_run=dry_run, progress=progress,
                               verbose=(i == 0), budget=None if name in DETERMINISTIC else budget, label=name)
        except SeasonError as err:
            # One model that cannot run here (integer steps have no natural season) does not stop the others.
            if len(models) == 1:
                raise
            print(f"{name:15s} skipped: {err}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            # SIGTERM: the interrupted run saved its checkpoint; what goes on is the comparison, not that run.
            if resume_line:
                print(resume_line, file=sys.stderr)
            raise
        if seeded.interrupted is not None:
            # Ctrl-C: the same, after the Trainer returned (the CLI exits 130).
            if resume_line:
                print(resume_line, file=sys.stderr)
            raise KeyboardInterrupt
        fc = seeded.runs[0]
        if not fitted:
            print(f"baselines: {baselines_summary(fc)}", file=sys.stderr)
        fitted[name] = seeded
        results.append(result_row(name, seeded, deterministic=name in DETERMINISTIC))
        rank(results)
        r = results[-1]
        print(f"{name:15s} val {mae_text(r, 'val')}  test {mae_text(r, 'test')}  ({r['train_s']:.1f} s)",
              file=sys.stderr)
        if run_dir:
            # After every model, so that a stopped comparison keeps the rows it has.
            atomic_write_text(Path(run_dir) / "compare.csv", results_csv(results))
            atomic_write_text(Path(run_dir) / "compare.md", results_markdown(results))
    if run_dir and fitted and plots:
        out = Path(run_dir)
        firsts = {name: seeded.runs[0] for name, seeded in fitted.items()}     # each model's first seed
        plot_predictions(firsts, out / "predictions.png", reference(cfg, table, fitted))
        plot_losses(firsts, out / "losses.png")
    return results, fitted


def reference(cfg: ForecastConfig, table: Any, fitted: dict[str, Seeded]) -> Forecaster:
    """A Forecaster of this comparison that holds the windows (one fitted in this call, or the naive forecast
    prepared now when every run was read back from an earlier call)."""
    for seeded in fitted.values():
        if "windows_" in vars(seeded.runs[0]):
            return seeded.runs[0]
    return Forecaster(replace_config(cfg, model="naive", seeds=1)).fit_one(table, progress=False, verbose=False)


def result_row(name: str, seeded: Seeded, *, deterministic: bool) -> dict[str, Any]:
    """One model's row: mean and sd of its MAEs over the seeds, and the gains of the mean over the baselines."""
    m = seeded.runs[0].metrics_                  # the baselines' figures are the same for every seed
    stats = {key: seeded.mean_sd(key) for key in ("val_mae", "test_mae")}
    row: dict[str, Any] = {"model": name, "val_mae": stats["val_mae"][0], "test_mae": stats["test_mae"][0]}
    for key, (mean, sd) in stats.items():
        row[f"{key}_sd"] = 0.0 if deterministic and mean is not None else sd
    row["seeds"] = len(seeded.seeds)
    row["deterministic"] = deterministic
    for key in ("val_mae_norm", "test_mae_norm"):
        row[key] = seeded.mean_sd(key)[0]
    row.update({"val_vs_naive_pct": gain(row["val_mae"], m["naive_val_mae"]),
                "test_vs_naive_pct": gain(row["test_mae"], m["naive_test_mae"]),
                "val_vs_seasonal_naive_pct": gain(row["val_mae"], m.get("seasonal_naive_val_mae")),
                "test_vs_seasonal_naive_pct": gain(row["test_mae"], m.get("seasonal_naive_test_mae")),
                "season": m.get("season"),
                "best_epoch": seeded.figures[0]["best_epoch"],
                "train_s": sum(f["train_s"] for f in seeded.figures),
                "rank": None, "vs_best": None})
    return row


def standard_error(row: dict[str, Any]) -> float | None:
    """The standard error of a row's mean validation MAE: 0 for a deterministic model, None for one seed of a
    model that varies with the seed (no spread measured)."""
    if row["val_mae_sd"] is None:
        return None
    return 0.0 if row["deterministic"] else row["val_mae_sd"] / math.sqrt(row["seeds"])


def rank(results: list[dict[str, Any]]) -> None:
    """Set each row's ``rank`` (1 = the lowest mean validation MAE) and ``vs_best``: "best", "tied" (the
    difference from the best is inside the noise, see seeds.tied) or "worse". No validation part: None."""
    scored = sorted((r for r in results if r["val_mae"] is not None), key=lambda r: r["val_mae"])
    for i, r in enumerate(scored):
        r["rank"] = i + 1
        if i == 0:
            r["vs_best"] = "best"
            continue
        best = scored[0]
        r["vs_best"] = "tied" if tied((best["val_mae"], standard_error(best)),
                                      (r["val_mae"], standard_error(r))) else "worse"


def mae_text(row: dict[str, Any], split: str, spec: str = ".3f") -> str:
    """``3.125 ± 0.080`` (several seeds), ``3.125`` (one seed, or a deterministic model), ``-`` (none)."""
    mean, sd = row[f"{split}_mae"], row[f"{split}_mae_sd"]
    if mean is None:
        return "-"
    return format(mean, spec) + ("" if row["deterministic"] or sd is None else f" ± {format(sd, spec)}")


def _check_same_config(run: RunDir, config: ForecastConfig) -> None:
    """A resumed model of a comparison keeps its config; only the budgets (and the number of seeds) may differ."""
    saved, now = read_run_config(run, "forecast")["config"], config_to_dict(config)
    pairs = [(k, saved.get(k), v) for k, v in now.items() if k not in ("train", "seeds")]
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
    """The recurrent model with the lowest mean validation MAE (the test MAE plays no part in the choice; None
    without a validation part)."""
    rec = [r for r in results if r["model"] in RECURRENT and r["val_mae"] is not None]
    return min(rec, key=lambda r: r["val_mae"]) if rec else None


def simplest_of_the_best(results: list[dict[str, Any]], order: tuple[str, ...] = MODELS) -> dict[str, Any] | None:
    """The best row, or, when others are tied with it, the first of them in ``order`` (simplest first: the
    baselines, ridge, then the learned models): between results the seeds cannot tell apart, the simpler model
    (None without a validation part)."""
    close = [r for r in results if r["vs_best"] in ("best", "tied")]
    return min(close, key=lambda r: order.index(r["model"])) if close else None


def ranking_summary(results: list[dict[str, Any]]) -> str | None:
    """``best by mean validation MAE: gru (3.125 ± 0.080, 3 seeds); tied with it: lstm, bigru`` (None without a
    validation part)."""
    best = next((r for r in results if r["vs_best"] == "best"), None)
    if best is None:
        return None
    seeds = "deterministic" if best["deterministic"] else f"{best['seeds']} seed{'s' if best['seeds'] > 1 else ''}"
    text = f"best by mean validation MAE: {best['model']} ({mae_text(best, 'val')}, {seeds})"
    ties = [r["model"] for r in results if r["vs_best"] == "tied"]
    if ties:
        text += (f"; tied with it (within twice the standard error of the difference): {', '.join(ties)}; the "
                 f"simplest of these: {simplest_of_the_best(results)['model']}")
    elif any(standard_error(r) is None for r in results if r["val_mae"] is not None):
        text += "; with one seed the spread is not measured, so no tie is called (--seeds 3 measures it)"
    else:
        text += "; no other model within the noise"
    return text


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
    """The comparison as a Markdown table: MAE (mean ± sd over the seeds), and the gain over naive and over
    seasonal naive (a dash where there is no validation part or no season), and the place by validation."""
    lines = ["| model | val MAE | test MAE | val MAE (norm.) | test MAE (norm.) | val vs naive | test vs naive "
             "| val vs seasonal naive | test vs seasonal naive | seeds | rank (val) | best epoch | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        pct = [number(r[k], "+.1f") + ("%" if r[k] is not None else "")
               for k in ("val_vs_naive_pct", "test_vs_naive_pct", "val_vs_seasonal_naive_pct",
                         "test_vs_seasonal_naive_pct")]
        place = "" if r["rank"] is None else f"{r['rank']}" + {"best": " (best)", "tied": " (tied)"}.get(
            r["vs_best"], "")
        lines.append(f"| {r['model']} | {mae_text(r, 'val')} | {mae_text(r, 'test')} | "
                     f"{number(r['val_mae_norm'], '.4f')} | {r['test_mae_norm']:.4f} | {' | '.join(pct)} | "
                     f"{'-' if r['deterministic'] else r['seeds']} | {place} | "
                     f"{'' if r['best_epoch'] is None else r['best_epoch']} | {r['train_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot_predictions(fitted: dict[str, Forecaster], path: Path, fc: Forecaster | None = None,
                     points: int = 336) -> None:
    """The first ``points`` test windows: truth and each model's forecast of the first target, in its units;
    the naive and seasonal naive forecasts in grey when they are not among the models. ``fc``: a Forecaster
    of the same data that holds the windows (default: the first of ``fitted`` that does); a model read back
    from its run is applied to those windows."""
    fig = new_figure(10, 4)
    ax = fig.add_subplot()
    if fc is None:
        fc = next(f for f in fitted.values() if "windows_" in vars(f))
    ref = fc
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
        if "windows_" in vars(fc):
            p = fc.predict_rows(rows)[0]
        elif fc.columns_ == ref.columns_:
            p = ref.predict_rows(rows, fc.model_)[0]       # the same data and inputs: the same windows
        else:
            continue
        ax.plot(times, p[:, 0, 0] * std + mean, lw=1, label=name)
    ax.set_ylabel(ref.series_.targets[0])
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
