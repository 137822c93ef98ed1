"""Time-series forecasting: ``ForecastConfig`` and the ``Forecaster`` task object (``compare`` is in compare.py).

The lecture's Jena walk-through, on data rnnkit can fetch (hourly 2013 weather at three New York airports;
monthly airline passengers) or on the user's CSV file::

    fc = Forecaster(dataset="nyc-weather", model="gru").fit(run_dir="runs/jfk")   # 5 days back, 24 h ahead
    fc.metrics_["test_mae"]                  # MAE in the target's own units (°F here)
    fc.evaluate(table)                       # MAE on every window of another table (None: the test part)
    Forecaster.load("runs/jfk").predict()    # the next value(s) with their timestamps

The path: :mod:`rnnkit.tasks.forecast.data` prepares one regular series, splits its rows in time order
(train, validation, test) and cuts the windows; a :class:`~rnnkit.datasets.series.Normalizer` is fitted on
the training rows; the model (see :mod:`rnnkit.tasks.forecast.model`) is trained by the one Trainer on the
mean absolute error, which stops after ``early_stop_patience`` epochs without a better validation MAE and puts
the epoch with the best one back in the model at the end. Every figure is measured against two baselines:
the last value (naive) and, where the series has a season, the value one season before (seasonal naive).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import _checks
from rnnkit.datasets import series as S
from rnnkit.datasets import windows as W
from rnnkit.datasets.files import typed_column
from rnnkit.report.metrics import forecast_metrics, mae_per_target
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import FORMAT_VERSION
from rnnkit.tasks.base import Prepared, Task, refuse_export, replace_config, resume_command
# The config lives in config.py (no torch: --help reads it); imported here too for the name it had.
from rnnkit.tasks.forecast.config import AUTO_MODELS, ForecastConfig, ForecastRequest  # noqa: F401
from rnnkit.tasks.forecast.data import (CALENDAR_COLUMNS, default_season, freq_from_json, freq_to_json,
                                        load_source, load_test_source, make_windows, no_validation, prepare,
                                        split_points, valid_windows, window_rows, with_window_defaults)
from rnnkit.tasks.forecast.model import BASELINES, build_model, seasonal_positions
from rnnkit.training.progress import track

# The penalties ridge chooses from on the validation windows (and the feature check's ridge).
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
# Where `--model auto` trains its candidates, inside the run directory.
CANDIDATES = "candidates"


class SeasonError(ValueError):
    """seasonal_naive cannot run with this season (none given and none to guess, or one the window lacks)."""


def model_device(model: nn.Module) -> torch.device:
    """Where a model's weights live (the baselines have none: the CPU)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


# The input sets feature_check compares, simplest first: (label, other columns?, calendar?).
INPUT_SETS = (("targets", False, False), ("all", True, False), ("targets+calendar", False, True),
              ("all+calendar", True, True))
# Checks already made in this process (a comparison fits every model and seed on the same series): few, small.
_CHECKS: dict[tuple, dict[str, Any]] = {}


def feature_check(cfg: ForecastConfig, values: np.ndarray, columns: list[str], n_targets: int, val_start: int,
                  test_start: int) -> dict[str, Any]:
    """Which inputs to keep, measured on validation: a ridge model (closed form, seconds; the penalty picked
    from a grid on the validation windows) fitted on the same training windows with each input set of
    ``INPUT_SETS`` the columns allow: the targets alone, with the other columns, with the calendar cycles,
    with both. ``--features auto`` chooses whether the other columns are kept, ``--calendar auto`` whether the
    calendar is; what is not auto stays as given.

    Returns each set's validation MAE (``maes``, in the targets' units), ``kept`` (the label of the lowest
    among the sets the config lets it choose; on a tie the simpler), ``columns`` (its columns, in ``columns``'
    order) and a line that says it (``text``). A linear model stands in for the model being trained so the
    check costs seconds, not a second training; the line says so.
    """
    calendar = [c for c in columns[n_targets:] if c in CALENDAR_COLUMNS] if cfg.calendar else []
    others = [c for c in columns[n_targets:] if c not in calendar]
    key = (hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest(), tuple(columns), n_targets,
           val_start, test_start, cfg.lookback, cfg.step, cfg.delay, cfg.horizon, cfg.residual,
           tuple(cfg.features), cfg.calendar)
    if key in _CHECKS:
        return _CHECKS[key]
    sets = {label: [*columns[:n_targets], *(others if o else []), *(calendar if c else [])]
            for label, o, c in INPUT_SETS if (others or not o) and (calendar or not c)}
    choose_others = [True, False] if cfg.features == ["auto"] else [bool(others)]
    choose_calendar = [True, False] if cfg.calendar == "auto" else [bool(calendar)]
    choices = [label for label, o, c in INPUT_SETS if label in sets
               and o in choose_others and c in choose_calendar]
    measured = _ridge_maes(cfg, values, columns, n_targets, val_start, test_start, sets)
    if measured is None:
        # nothing to measure on: what the flags give, the calendar left out where it was auto
        kept = next(label for label, o, c in reversed(INPUT_SETS) if label in choices
                    and not (c and cfg.calendar == "auto"))
        out = {"maes": None, "kept": kept, "columns": sets[kept], "text": "no windows to compare the inputs on"}
    else:
        maes = {label: mae for label, (mae, _) in measured.items()}
        kept = min(choices, key=lambda label: maes[label])        # min keeps the first (simplest) of ties
        margin = None
        if cfg.calendar == "auto" and kept.endswith("+calendar"):
            # Added unasked, the calendar must clearly help: lower by more than the windows' noise. (A merely
            # lower validation MAE came with a higher test MAE on airline, nyc-weather and its daily means.)
            without = kept.replace("+calendar", "")
            clear, gain, two_se = clearly_lower(measured[kept][1], measured[without][1])
            margin = {"gain": gain, "two_se": two_se}
            if not clear:
                kept = min((c for c in choices if not c.endswith("+calendar")), key=lambda label: maes[label])
        out = {"maes": maes, "kept": kept, "columns": sets[kept], "calendar_margin": margin,
               "text": _check_text(cfg, maes, kept, others, calendar, n_targets, margin)}
    if len(_CHECKS) >= 8:
        _CHECKS.clear()
    _CHECKS[key] = out
    return out


def _ridge_maes(cfg: ForecastConfig, values: np.ndarray, columns: list[str], n_targets: int, val_start: int,
                test_start: int, sets: dict[str, list[str]]) -> dict[str, tuple[float, np.ndarray]] | None:
    """The validation MAE (targets' units) of ridge on each input set (label -> columns) and its error on each
    validation window: one Gram matrix of the widest windows, each set's penalties solved on its rows and
    columns of it (sklearn's Ridge, intercept included, in closed form). None without training or validation
    windows."""
    norm = S.Normalizer.fit(values[:val_start])
    normed = norm.transform(values).astype(np.float32)                          # (N, F)
    windows = make_windows(cfg, normed, n_targets)
    valid = valid_windows(cfg, normed)
    train, val = window_rows(cfg, valid, 0, val_start), window_rows(cfg, valid, val_start, test_start)
    if len(train) == 0 or len(val) == 0:
        return None
    if len(train) > 20_000:        # the closed form holds (windows x L*F) in memory: a sample suffices
        train = np.random.default_rng(0).choice(train, 20_000, replace=False)
    scale, H, K, F = norm.std[:n_targets], cfg.horizon, n_targets, len(columns)

    def flat(rows):
        x, y = windows.batch(rows)                                              # (n, L, F), (n, H, K)
        last = np.tile(x[:, -1, :K], H).astype(np.float64) if cfg.residual else 0.0
        return x.reshape(len(rows), -1).astype(np.float64), y.reshape(len(rows), -1) - last, last

    X, Y, _ = flat(train)
    Xv, Yv, _ = flat(val)                       # Yv: the change from the last value (residual), as Y
    mean_x, mean_y = X.mean(axis=0), Y.mean(axis=0)
    X -= mean_x
    gram, xty = X.T @ X, X.T @ (Y - mean_y)
    steps = X.shape[1] // F
    out = {}
    for label, names in sets.items():
        idx = np.array([t * F + columns.index(c) for t in range(steps) for c in names])
        g, b = gram[np.ix_(idx, idx)], xty[idx]
        best, errors = np.inf, None
        for alpha in RIDGE_ALPHAS:
            w = np.linalg.solve(g + alpha * np.eye(len(idx)), b)
            per_window = (np.abs((Xv[:, idx] - mean_x[idx]) @ w + mean_y - Yv).reshape(len(val), H, K).mean(axis=1)
                          * scale).mean(axis=1)                                # (n,) in the targets' units
            if per_window.mean() < best:
                best, errors = float(per_window.mean()), per_window
        out[label] = (best, errors)
    return out


def clearly_lower(errors: np.ndarray, simpler: np.ndarray) -> tuple[bool, float, float]:
    """Whether ``errors`` (per validation window) are lower than ``simpler``'s on the same windows by more than
    two standard errors of the mean difference; the standard error allows for neighbouring windows' errors
    being alike (an AR(1) correction by the lag-1 correlation of the differences). Also returns the mean
    difference and the two standard errors."""
    diff = simpler - errors
    n = len(diff)
    if n < 3 or not np.std(diff) > 0:
        return bool(diff.mean() > 0 and n >= 3), float(diff.mean()), 0.0
    r = float(np.clip(np.corrcoef(diff[:-1], diff[1:])[0, 1], 0.0, 0.99)) if np.std(diff[:-1]) > 0 else 0.0
    two_se = 2 * float(np.std(diff, ddof=1) / np.sqrt(n) * np.sqrt((1 + r) / (1 - r)))
    return bool(diff.mean() > two_se), float(diff.mean()), two_se


def _check_text(cfg: ForecastConfig, maes: dict[str, float], kept: str, others: list[str], calendar: list[str],
                n_targets: int, margin: dict[str, float] | None) -> str:
    """The check's line: each input set's validation MAE, then what auto kept or what made it worse."""
    s = "s" if n_targets > 1 else ""
    shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
    cycles = sorted({c.rsplit("_", 1)[0] for c in calendar}, key=["day", "week", "year"].index)
    words = {"targets": f"with the target{s} alone",
             "all": f"with the {len(others)} other input column{'s' if len(others) != 1 else ''} too ({shown})",
             "targets+calendar": f"with the target{s} and the calendar cycles ({', '.join(cycles)})",
             "all+calendar": "with the other columns and the calendar cycles"}
    text = ("validation MAE of a ridge model on these windows: "
            + ", ".join(f"{maes[label]:.4g} {words[label]}" for label in maes))
    verdicts, worse = [], []
    if cfg.features == ["auto"] and others:
        verdicts.append("--features auto keeps " + ("every column" if kept.startswith("all") else
                                                    "the targets alone"))
    elif others and maes[kept.replace("all", "targets")] < maes[kept]:
        worse.append("the other columns made it worse here; --features auto keeps the better of the two, "
                     "--features none the targets alone")
    if cfg.calendar == "auto" and calendar:
        verdicts.append("--calendar auto " + ("adds the calendar cycles" if kept.endswith("calendar") else
                                              "leaves the calendar cycles out"))
    elif calendar and maes[kept.replace("+calendar", "")] < maes[kept]:
        worse.append("the calendar cycles made it worse here; --calendar auto adds them only where they help")
    if verdicts:
        noise = "" if margin is None else (
            f"; the calendar lowers it by {margin['gain']:.3g}, " + ("more than" if kept.endswith("calendar")
                                                                    else "within") +
            f" the noise of the windows, ±{margin['two_se']:.3g}")
        text += (": " + " and ".join(verdicts) + f" (a linear model's verdict, standing in for the model's own"
                 f"{noise})")
    if worse:
        text += ("; " if verdicts else ": ") + "; ".join(worse)
    return text


class Forecaster(Task, name="forecast"):
    """Forecast one or several columns of a series ``delay`` steps after a window of ``lookback`` steps.

    Learned attributes after ``fit``: ``series_`` (the prepared series), ``columns_`` (input columns),
    ``window_config_`` (the config with ``lookback`` and ``delay`` settled: the defaults for the series' step
    where they were None), ``normalizer_``, ``model_``, ``splits_`` (rows where validation and test begin),
    ``windows_`` and ``rows_`` (the windows of the normalised series and their rows per split), ``history_``
    (epoch records), ``best_epoch_``, ``metrics_`` (val/test MAE, normalised and in original units, and the
    naive and seasonal naive baselines'; the val figures are None without a validation part; only the
    Trainer's last figures when Ctrl-C stopped training, see ``trainer_.interrupted``), ``train_seconds_``,
    ``trainer_`` (None for the baselines and ridge); ``alpha_`` for ridge; with ``seeds`` > 1 ``seed_figures_``
    (each seed's MAEs) and the mean and sd in ``metrics_``; after ``model="auto"`` ``candidates_`` (its table).
    """

    config_class = ForecastConfig
    train_command = "rnnkit forecast train"
    # The comparison's reports, and the runs of the seeds after the first (--seeds N: RUN/seed-<s>/).
    run_files = ("compare.csv", "compare.md", "compare.json", "predictions.png", "losses.png", "seed-*",
                 CANDIDATES)
    legacy_weights = ("best.safetensors",)     # the finished model's file before FINAL_WEIGHTS
    endpoint = "forecast"                 # the Task protocol's uniform apply: see the end of the class
    request_class = ForecastRequest

    # -- fit (the sequence is Task.fit's; these are its steps) --------------------------------------------

    def fit(self, data: dict[str, np.ndarray] | None = None, *, run_dir: str | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            verbose: bool = True) -> Forecaster:
        """Prepare the series (from ``data``, a table ``{column: array}``, or the config's dataset/csv),
        train, and measure validation and test MAE (``metrics_``); saved in ``run_dir`` when given.

        ``resume=True`` continues the training saved in ``run_dir`` (the same config and data prepare the
        same windows; weights, optimizer and position come from the checkpoint). ``dry_run`` trains on one
        tiny batch: seconds, for smoke tests. ``verbose`` prints what the data is."""
        if self.config.model == "auto":
            return self._fit_auto(data, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                                  verbose=verbose)
        if self.config.seeds == 1:
            return self.fit_one(data, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                                verbose=verbose)
        from rnnkit.tasks.forecast.seeds import Budget, fit_seeds, mean_sd

        cfg = self.config
        if data is None:
            data = load_source(cfg)[0]               # read once for every seed
        seeded = fit_seeds(cfg, data, run_dir, resume=resume, dry_run=dry_run, progress=progress, verbose=verbose,
                           budget=Budget(cfg.train.max_minutes, cfg.seeds))
        if seeded.runs:
            # This object becomes the first seed's run (the run directory's model), with this config.
            self.__dict__.update({k: v for k, v in vars(seeded.runs[0]).items() if k != "config"})
        if seeded.interrupted is not None:
            self.trainer_ = seeded.interrupted       # Ctrl-C: the caller stops with the command that resumes
            return self
        self.seed_figures_ = [{"seed": s, **f} for s, f in zip(seeded.seeds, seeded.figures)]
        summary: dict[str, Any] = {"seeds": seeded.seeds}
        for key in ("val_mae", "test_mae"):
            summary[f"{key}_mean"], summary[f"{key}_sd"] = mean_sd([f[key] for f in seeded.figures])
        summary.update(self._ensemble_errors([run.model_ for run in seeded.runs]))
        self.metrics_ = {**self.metrics_, **summary}
        if run_dir is not None:
            self.save(run_dir)                       # config.json records the seeds' summary too
        return self

    def _ensemble_errors(self, models: list[nn.Module | None]) -> dict[str, float | None]:
        """Validation and test MAE (the target's units) of the seeds' forecasts averaged: an ensemble, reported
        beside the seeds' mean, never instead of it. The seeds share the data, so one set of windows serves all."""
        if "windows_" not in vars(self) or any(m is None for m in models):
            return {}
        scale = self.normalizer_.std[:self.n_targets_]
        out: dict[str, float | None] = {}
        for split in ("val", "test"):
            rows = self.rows_[split]
            if not len(rows):
                out[f"{split}_mae_ensemble"] = None
                continue
            preds = [self._forecast(self.windows_, rows, m) for m in models]     # each (n, H, K) and truths
            mean = np.mean([p for p, _ in preds], axis=0)
            out[f"{split}_mae_ensemble"] = float(mae_per_target(mean, preds[0][1], scale).mean())
        return out

    def _fit_auto(self, data: dict[str, np.ndarray] | None, *, run_dir: str | None, resume: bool, dry_run: bool,
                  progress: bool | None, verbose: bool) -> Forecaster:
        """``model="auto"``: every model of AUTO_MODELS trained on the same windows (a comparison in
        ``RUN/candidates``, the budget shared among them), and this object becomes the one with the lowest mean
        validation MAE, or the simplest of those tied with it (the test MAE plays no part), saved in
        ``run_dir``. ``candidates_`` holds the table."""
        from rnnkit.tasks.forecast.compare import run_comparison, simplest_of_the_best

        cfg = self.config
        if no_validation(cfg):
            # Nothing to pick on: ridge, the model that never lost to both baselines on the sets measured.
            print("model auto: no validation part (val_frac=0) to pick a model on: ridge", file=sys.stderr)
            self.config = replace_config(cfg, model="ridge")
            return self.fit(data, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                            verbose=verbose)
        folder = None if run_dir is None else str(Path(run_dir) / CANDIDATES)
        line = None if run_dir is None else f"resume with: {resume_command(self.command(), run_dir)}"
        results, fitted = run_comparison(cfg, list(AUTO_MODELS), folder, resume=resume, dry_run=dry_run,
                                         progress=progress, resume_line=line, table=data, plots=False)
        # The lowest mean validation MAE, or the simplest of the models tied with it (see compare.rank).
        best = simplest_of_the_best(results, AUTO_MODELS)
        winner = fitted[best["model"]].runs[0]
        self.__dict__.update({k: v for k, v in vars(winner).items() if k != "config"})
        self.config = replace_config(cfg, model=best["model"], seeds=winner.config.seeds)
        self.candidates_ = results
        if run_dir is not None:
            self.save(run_dir)
        return self

    def fit_one(self, data: dict[str, np.ndarray] | None = None, *, run_dir: str | None = None,
                resume: bool = False, dry_run: bool = False, progress: bool | None = None,
                verbose: bool = True) -> Forecaster:
        """``fit`` for one seed, ``config.seed`` (whatever ``config.seeds`` says): the one ``Task.fit``
        sequence."""
        return super().fit(data, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                           verbose=verbose)

    def _train_config(self, prepared: Prepared, dry_run: bool):
        """The Trainer's options; within a command that trains several models or seeds, this fit's share of
        the command's --max-minutes (``_budget_minutes``, set by fit_seeds)."""
        train = super()._train_config(prepared, dry_run)
        share = self.__dict__.get("_budget_minutes")
        if share is not None and not dry_run and train.max_minutes is not None and share < train.max_minutes:
            train = dataclasses.replace(train, max_minutes=share)
        return train

    def _read_data(self, data: dict[str, np.ndarray] | None, *, run_dir: str | None, resume: bool,
                   verbose: bool = True) -> Prepared:
        """One regular series (``series``), its input values (``values``, (N, F)) and their ``columns``."""
        cfg, source = self.config, "data"
        if data is None:
            data, source = load_source(cfg)
        series, values, columns, held_out = prepare(cfg, data, source, load_test_source(cfg))
        return Prepared(source, (series.times, values, columns), series=series, values=values, columns=columns,
                        held_out=held_out, verbose=verbose)

    def _prepare(self, prepared: Prepared, *, run_dir: str | None, resume: bool, dry_run: bool) -> None:
        """The windows: lookback and delay settled, the split points, the scales (from the training rows), the
        window rows of each part; the Trainer's batches are window rows."""
        source, series, values, columns = prepared.source, prepared.series, prepared.values, prepared.columns
        # lookback and delay in steps of this series (the defaults are chosen by its step)
        cfg, window_note = with_window_defaults(self.config, series.freq)
        self.window_config_ = cfg
        try:
            W.check_length(len(series), cfg.lookback, cfg.delay, name=source)
        except ValueError as err:
            raise ValueError(f"{err} ({window_note})") from None
        val_start, test_start = split_points(cfg, series.times, prepared.held_out)
        self.series_, self.columns_, self.splits_ = series, columns, (val_start, test_start)
        self.n_targets_, self.best_epoch_ = len(series.targets), None
        if cfg.model == "seasonal_naive":
            self._season_positions()        # no season to use: refused before anything is written
        # what auto decides here: the other columns (--features auto), the calendar (--calendar auto, where the
        # step has calendar cycles)
        has_calendar = any(c in CALENDAR_COLUMNS for c in columns[self.n_targets_:])
        check, auto = None, cfg.features == ["auto"] or (cfg.calendar == "auto" and has_calendar)
        if len(columns) > self.n_targets_ and not dry_run and not no_validation(cfg) and (auto or prepared.verbose):
            # Do the other columns / the calendar help? Said when they do not; auto keeps the better inputs.
            check = feature_check(cfg, values, columns, self.n_targets_, val_start, test_start)
            if prepared.verbose and (auto or "worse here" in check["text"]):
                print(f"features: {check['text']}", file=sys.stderr)
        elif cfg.calendar == "auto" and has_calendar:
            # nothing to decide on (a dry run, no validation part): the calendar stays out, as it was by default
            check = {"columns": [c for c in columns if c not in CALENDAR_COLUMNS]}
        if check is not None and auto:
            keep = [columns.index(c) for c in check["columns"]]
            values, columns = values[:, keep], list(check["columns"])
            self.columns_ = columns
        self.normalizer_ = S.Normalizer.fit(values[:val_start])
        self.values_ = self.normalizer_.transform(values).astype(np.float32)   # (N, F)
        self.windows_ = make_windows(cfg, self.values_, self.n_targets_)
        valid = valid_windows(cfg, self.values_)
        self.rows_ = {"train": window_rows(cfg, valid, 0, val_start),
                      "val": window_rows(cfg, valid, val_start, test_start),
                      "test": window_rows(cfg, valid, test_start, len(series))}
        for name, rows in self.rows_.items():
            if len(rows) == 0 and not (name == "val" and no_validation(cfg)):
                raise ValueError(f"{source}: the {name} part has no complete window of lookback={cfg.lookback} "
                                 f"+ delay={cfg.delay} steps ({window_note}); use a longer series, a shorter "
                                 f"lookback/delay, or other split points (train_end/val_end, val_frac/test_frac)")
        if dry_run:
            self.rows_ = {k: v[:min(len(v), 2 * cfg.train.batch_size)] for k, v in self.rows_.items()}
        prepared.info = {"test_source": cfg.test_csv, "steps": len(series), "freq": S.describe_freq(series.freq),
                         "start": str(series.times[0]), "end": str(series.times[-1]), "input_columns": columns,
                         "window": window_note, "windows": {k: len(v) for k, v in self.rows_.items()},
                         "report": series.report}
        if check is not None and "maes" in check:
            prepared.info["features_check"] = {k: v for k, v in check.items() if k != "text"}
        if prepared.verbose:
            self._print_data(window_note)
        if cfg.model in BASELINES or cfg.model == "ridge":
            return                          # no Trainer: see _fit_without_trainer
        rows, tcfg = self.rows_["train"], cfg.train
        # A small set (airline: 48 training windows) gets a smaller batch, so that an epoch is several updates.
        batch = tcfg.batch_for(len(rows))
        if batch != tcfg.batch_size and prepared.verbose:
            print(f"data: batch {batch} instead of --batch-size {tcfg.batch_size}: {len(rows)} training windows "
                  f"would make {-(-len(rows) // tcfg.batch_size)} update(s) an epoch (--no-auto-batch keeps it)",
                  file=sys.stderr)

        def train_batches(epoch: int):
            # A batch is the window rows it trains on, as a tensor: under torchrun each process takes its
            # share of them (training/distributed.py).
            order = torch.from_numpy(np.random.default_rng([tcfg.seed, epoch]).permutation(rows))
            return [order[i:i + batch] for i in range(0, len(order), batch)]

        prepared.train, prepared.items_name = train_batches, "windows"
        prepared.val = None if no_validation(cfg) else self.rows_["val"]

    def _print_data(self, window_note: str) -> None:
        """What the series and its windows are, a line each (stderr)."""
        cfg, series, columns = self.window_config_, self.series_, self.columns_
        for line in series.report:
            print(f"data: {line}", file=sys.stderr)
        print(f"data: {len(series)} steps of {S.describe_freq(series.freq)}, {len(columns)} input columns "
              f"({', '.join(columns)}); {window_note}", file=sys.stderr)
        print(f"data: windows: {len(self.rows_['train'])} train, {len(self.rows_['val'])} val, "
              f"{len(self.rows_['test'])} test", file=sys.stderr)
        if no_validation(cfg) and cfg.model not in BASELINES:
            print("data: no validation part (val_frac=0): "
                  + ("alpha=1 unless given (no windows to choose it on)" if cfg.model == "ridge" else
                     f"trains all {cfg.train.epochs} epochs (no early stopping) and keeps the last weights"),
                  file=sys.stderr)

    def _make_model(self, prepared: Prepared) -> nn.Module:
        return self._build()

    def _loss(self, prepared: Prepared, model: nn.Module, batch_rows: torch.Tensor, state: Any) -> tuple:
        x, y = self._batch(batch_rows.cpu().numpy(), model_device(model))
        return F.l1_loss(model(x), y), None, len(batch_rows)     # MAE, the metric we report

    def _validation_metrics(self, prepared: Prepared, model: nn.Module) -> dict[str, float]:
        return {"val_loss": float(mae_per_target(*self.predict_rows(prepared.val, model)).mean())}

    def _fit_without_trainer(self, prepared: Prepared, progress: bool | None) -> nn.Module:
        """ridge in closed form; the baselines (naive, seasonal_naive) have nothing to fit."""
        self.model_ = self._build()
        if self.window_config_.model == "ridge":
            self._fit_ridge()
        return self.model_.eval()

    def _after_fit(self, prepared: Prepared) -> None:
        """The epoch records, and the validation and test MAE of the model and of the two baselines."""
        self.history_ = [r for r in self.history_ if r.get("event") == "epoch"]
        self.best_epoch_ = self.trainer_.best_epoch if self.trainer_ is not None else None
        self.metrics_ = self._split_metrics()

    def _season(self) -> int | None:
        """The seasonal naive forecast's period in steps: ``season``, else a day / week / year by the step."""
        return self.config.season or default_season(self.freq_)

    def _season_positions(self) -> list[int]:
        """Where the seasonal naive values lie in a window (see ``seasonal_positions``); SeasonError when the
        series has no season to guess or the window is too short for it."""
        cfg, season = self.window_config_, self._season()
        if season is None:
            raise SeasonError(f"season=None: expected a period in steps (it cannot be guessed from the step "
                              f"{S.describe_freq(self.freq_)}): give --season N")
        try:
            return seasonal_positions(season, cfg.lookback, cfg.step, cfg.delay, cfg.horizon)
        except ValueError as err:
            raise SeasonError(str(err)) from None

    def _build(self) -> nn.Module:
        cfg = self.window_config_
        positions = self._season_positions() if cfg.model == "seasonal_naive" else None
        torch.manual_seed(cfg.train.seed)
        return build_model(cfg.model, n_features=len(self.columns_), steps=cfg.lookback // cfg.step,
                           n_targets=self.n_targets_, horizon=cfg.horizon, positions=positions,
                           hidden_size=cfg.hidden_size, dropout=cfg.dropout,
                           recurrent_dropout=cfg.recurrent_dropout, residual=cfg.residual)

    def _batch(self, rows: np.ndarray, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.windows_.batch(rows)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)   # (B, L, F), (B, H, K)

    def _fit_ridge(self) -> None:
        """Closed-form ridge regression on the flattened training windows (sklearn), copied into the head.

        Without a given ``alpha`` the penalty is picked from a grid by the validation MAE.
        """
        from sklearn.linear_model import Ridge

        cfg, K = self.window_config_, self.n_targets_

        def flat(rows):
            x, y = self._batch(rows)
            X = x.flatten(1).numpy().astype(np.float64)                      # (N, L*F)
            Y = y.flatten(1).numpy().astype(np.float64)                      # (N, H*K)
            last = np.tile(x[:, -1, :K].numpy(), cfg.horizon) if cfg.residual else 0.0   # (N, H*K)
            return X, Y, last

        rows = self.rows_["train"]
        if len(rows) > 50_000:   # the closed form needs (windows x L*F) in memory: a random subset suffices
            rows = np.random.default_rng(cfg.train.seed).choice(rows, 50_000, replace=False)
        X, Y, last = flat(rows)
        alphas = [cfg.alpha] if cfg.alpha is not None else list(RIDGE_ALPHAS)
        if len(self.rows_["val"]) == 0 and cfg.alpha is None:
            alphas = [1.0]                                  # val_frac=0: no windows to choose alpha on
        if len(alphas) > 1:
            Xv, Yv, last_v = flat(self.rows_["val"])
        fits = []
        for alpha in alphas:
            reg = Ridge(alpha=alpha).fit(X, Y - last)
            if len(alphas) == 1:
                fits.append((0.0, alpha, reg))             # nothing to choose
                continue
            pred = reg.predict(Xv).reshape(Yv.shape)                         # sklearn drops a width-1 axis
            fits.append((float(np.abs(pred + last_v - Yv).mean()), alpha, reg))
        _, self.alpha_, reg = min(fits, key=lambda f: f[0])
        with torch.no_grad():
            self.model_.head.weight.copy_(torch.from_numpy(reg.coef_.reshape(Y.shape[1], -1)))
            self.model_.head.bias.copy_(torch.from_numpy(np.atleast_1d(reg.intercept_)))

    # -- evaluation ------------------------------------------------------------------------------------

    @torch.no_grad()
    def _forecast(self, windows: W.Windows, rows: np.ndarray, model: nn.Module | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised predictions and truths (n, H, K) for the window rows ``rows`` of ``windows``."""
        model = model or self.model_
        device = model_device(model)
        preds, truths = [], []
        for i in track(range(0, len(rows), 2048), "forecasting"):    # long work shows progress
            x, y = windows.batch(rows[i:i + 2048])
            preds.append(model(torch.from_numpy(x).to(device)).float().cpu().numpy())
            truths.append(y)
        return np.concatenate(preds), np.concatenate(truths)

    def predict_rows(self, rows: np.ndarray, model: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised predictions and truths (n, H, K) for window rows of the series ``fit`` prepared."""
        return self._forecast(self.windows_, rows, model)

    def _seasonal_naive(self) -> nn.Module | None:
        """The seasonal naive forecast as a baseline (None when the series has no season to guess or the
        window is too short for it)."""
        try:
            positions = self._season_positions()
        except SeasonError:
            return None
        return build_model("seasonal_naive", n_features=0, steps=0, n_targets=self.n_targets_,
                           horizon=self.window_config_.horizon, positions=positions)

    def _errors(self, windows: W.Windows, rows: np.ndarray) -> dict[str, Any]:
        """The model's and the naive forecast's MAE on some windows (see ``forecast_metrics``), and the
        seasonal naive forecast's (``seasonal_naive_mae``, ``..._norm``, ``vs_seasonal_naive_pct`` and its
        ``season`` in steps; None where there is no season)."""
        horizon, scale = self.window_config_.horizon, self.normalizer_.std[:self.n_targets_]
        naive = build_model("naive", n_features=0, steps=0, n_targets=self.n_targets_, horizon=horizon)
        p, y = self._forecast(windows, rows)
        q, _ = self._forecast(windows, rows, naive)
        out = forecast_metrics(p, y, q, scale, self.series_.targets)
        seasonal = self._seasonal_naive()
        out.update(season=None, seasonal_naive_mae=None, seasonal_naive_mae_norm=None, vs_seasonal_naive_pct=None)
        if seasonal is not None:
            sq, _ = self._forecast(windows, rows, seasonal)
            own, norm = float(mae_per_target(sq, y, scale).mean()), float(mae_per_target(sq, y).mean())
            out.update(season=self._season(), seasonal_naive_mae=own, seasonal_naive_mae_norm=norm,
                       vs_seasonal_naive_pct=100 * (1 - out["mae"] / own) if own > 0 else None)
        return out

    def _split_metrics(self) -> dict[str, Any]:
        """Validation and test MAE (normalised and original units) of the model, of the naive and of the
        seasonal naive forecast (None where a split has no windows (val_frac=0) or there is no season)."""
        out: dict[str, Any] = {}
        for split in ("val", "test"):
            m = self._errors(self.windows_, self.rows_[split]) if len(self.rows_[split]) else {}
            out[f"{split}_mae_norm"], out[f"{split}_mae"] = m.get("mae_norm"), m.get("mae")
            out[f"naive_{split}_mae_norm"], out[f"naive_{split}_mae"] = m.get("naive_mae_norm"), m.get("naive_mae")
            out[f"seasonal_naive_{split}_mae_norm"] = m.get("seasonal_naive_mae_norm")
            out[f"seasonal_naive_{split}_mae"] = m.get("seasonal_naive_mae")
        out["season"] = self._season() if self._seasonal_naive() is not None else None
        return out

    def evaluate(self, data: dict[str, np.ndarray] | None = None, *, source: str = "data") -> dict[str, float]:
        """MAE of the forecasts on every complete window of ``data`` (a table like the training one), or,
        with None, on the test part of the data ``fit`` used (read again from the config's dataset or csv
        after ``load``): ``mae`` (in the targets' units, mean over targets), ``mae_norm``, the naive
        forecast's, ``vs_naive_pct``, the seasonal naive forecast's (see ``_errors``), ``mae[<target>]`` and
        the number of ``windows``."""
        self._check_fitted()
        cfg = self.window_config_
        if data is None and "windows_" in vars(self):
            return self._errors(self.windows_, self.rows_["test"])
        test_part, test = data is None, None      # source: what the messages call ``data`` (the CLI: its file)
        if test_part:
            if cfg.dataset is None and cfg.csv is None:
                _checks.fail("data", None, "a table to evaluate on: this Forecaster was fitted on a table "
                                           "given to fit(), which its run directory does not hold")
            data, source = load_source(cfg)
            test = load_test_source(cfg)
        series, values, held_out = self._inputs(data, source, test)
        # Too short for one window: said here, naming the source (numpy said "negative dimensions are not allowed").
        W.check_length(len(values), cfg.lookback, cfg.delay, name=source)
        windows = make_windows(cfg, values, self.n_targets_)
        first = split_points(cfg, series.times, held_out)[1] if test_part else 0
        rows = window_rows(cfg, valid_windows(cfg, values), first, len(values))
        if len(rows) == 0:
            raise ValueError(f"{source}: no complete window of lookback={cfg.lookback} + delay={cfg.delay} "
                             f"steps (without missing values) to evaluate on")
        return self._errors(windows, rows)

    # -- prediction ------------------------------------------------------------------------------------

    def _inputs(self, data: dict[str, np.ndarray], source: str, test: tuple[dict[str, np.ndarray], str] | None = None
                ) -> tuple[S.Series, np.ndarray, int | None]:
        """New data prepared like the training data: the series, its normalised inputs (N, F) in the model's
        column order, and the row where the held-out ``test`` table begins (None without one)."""
        series, values, columns, held_out = prepare(self.config, data, source, test)
        if series.freq != self.freq_:
            raise ValueError(f"{source}: its steps are {S.describe_freq(series.freq)} apart, the model was "
                             f"trained on steps of {S.describe_freq(self.freq_)}")
        missing = [c for c in self.columns_ if c not in columns]
        if missing:
            raise ValueError(f"{source}: lacks the input column(s) {', '.join(missing)} the model was trained on")
        values = values[:, [columns.index(c) for c in self.columns_]]
        return series, self.normalizer_.transform(values).astype(np.float32), held_out

    def predict(self, data: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """The next ``horizon`` values after the end of ``data`` (a table like the training one; default: the
        training source, followed by its held-out file when it has one), as rows ``{"time": ..., target: value}``."""
        self._check_fitted()
        cfg = self.window_config_
        source, test = "data", None
        if data is None:
            (data, source), test = load_source(cfg), load_test_source(cfg)
        series, values, _ = self._inputs(data, source, test)
        W.check_length(len(values), cfg.lookback, 0, name=source)
        window = values[len(values) - cfg.lookback + cfg.step - 1::cfg.step]       # (L, F)
        if np.isnan(window).any():
            bad = [c for c, b in zip(self.columns_, np.isnan(window).any(axis=0)) if b]
            raise ValueError(f"{source}: the last lookback={cfg.lookback} steps have missing values in "
                             f"{', '.join(bad)} even after interpolation; cannot forecast from them")
        with torch.no_grad():
            x = torch.from_numpy(window)[None].to(model_device(self.model_))
            p = self.model_(x)[0].float().cpu().numpy()                              # (H, K)
        p = self.normalizer_.inverse(p, slice(0, self.n_targets_))
        last = series.times[-1]
        return [{"time": str(last + (cfg.delay + h) * series.freq),
                 **{t: float(p[h, k]) for k, t in enumerate(series.targets)}} for h in range(cfg.horizon)]

    @property
    def freq_(self):
        return self.series_.freq

    # -- save / load (the run directory: config.json and best.safetensors) --------------------------------

    def fitted_values(self) -> dict[str, Any]:
        return {"columns": self.columns_, "targets": self.series_.targets,
                "mean": self.normalizer_.mean.tolist(), "std": self.normalizer_.std.tolist(),
                "freq": freq_to_json(self.freq_), "lookback": self.window_config_.lookback,
                "delay": self.window_config_.delay, "metrics": self.metrics_, "best_epoch": self.best_epoch_,
                "train_seconds": self.train_seconds_, "alpha": vars(self).get("alpha_"),
                "candidates": vars(self).get("candidates_")}

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        if not fitted:
            # The scales and windows fit settled are written when training finishes: a checkpoint alone lacks them.
            raise ValueError(f"{run.config_path}: the forecast run has no trained model yet (its training did not "
                             f"finish, and its checkpoint lacks the scales fit records at the end); expected a "
                             f"finished run: go on with {resume_command(self.command(), run.path)}")
        self.columns_, self.n_targets_ = fitted["columns"], len(fitted["targets"])
        self.normalizer_ = S.Normalizer(np.array(fitted["mean"]), np.array(fitted["std"]))
        # Only the series' description is stored; evaluate and predict prepare their data afresh.
        self.series_ = S.Series(np.array([]), np.zeros((0, len(self.columns_))), list(self.columns_),
                                fitted["targets"], freq_from_json(fitted["freq"]), self.data_.get("report", []))
        # lookback and delay as fit settled them (runs written before the defaults by step had them in config)
        self.window_config_ = replace_config(self.config, lookback=fitted.get("lookback", self.config.lookback),
                                             delay=fitted.get("delay", self.config.delay))
        self.metrics_, self.best_epoch_ = fitted.get("metrics", {}), fitted.get("best_epoch")
        self.train_seconds_ = fitted.get("train_seconds")
        if fitted.get("alpha") is not None:
            self.alpha_ = fitted["alpha"]
        if fitted.get("candidates") is not None:
            self.candidates_ = fitted["candidates"]
        self._hold_weights(self._build(), tensors, run)

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A config.json written before format 2: ``{"task": "forecast", "model", "forecast": {flat fields},
        "prep": {columns, targets, mean, std, freq, report}, "metrics", "best_epoch", "train_seconds"}``."""
        if not isinstance(raw.get("forecast"), dict):
            return super().upgrade_config(raw)
        config = dict(raw["forecast"])
        config.pop("dry_run", None)
        config.setdefault("residual", False)             # those runs learned the value (the default then)
        config.setdefault("calendar", False)             # and had no calendar but time_features
        train = {k: config.pop(k) for k in ("epochs", "batch_size", "lr", "optimizer", "max_minutes", "seed")
                 if k in config}
        if "patience" in config:
            train["early_stop_patience"] = config.pop("patience")
        train.update(device="cpu", clip_grad_norm=1.0)          # what that version always trained with
        # The shares were train_frac and val_frac (the test part the rest); now val_frac and test_frac.
        train_frac = config.pop("train_frac", 0.5)
        config["test_frac"] = round(1 - train_frac - config.get("val_frac", 0.25), 12)
        config["train"] = train
        prep = raw.get("prep")
        fitted = {} if prep is None else {
            "columns": prep["columns"], "targets": prep["targets"], "mean": prep["mean"], "std": prep["std"],
            "freq": prep["freq"], "metrics": raw.get("metrics", {}), "best_epoch": raw.get("best_epoch"),
            "train_seconds": raw.get("train_seconds")}
        data = {"source": config.get("dataset") or config.get("csv"), "report": (prep or {}).get("report", [])}
        return {"task": "forecast", "format_version": FORMAT_VERSION, "rnnkit_version": raw.get("rnnkit_version"),
                "config": config, "data": data, "fitted": fitted}

    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        cfg = self.window_config_
        return {"targets": list(self.series_.targets), "columns": list(self.columns_), "lookback": cfg.lookback,
                "delay": cfg.delay, "horizon": cfg.horizon, "model": cfg.model}

    def apply(self, request: ForecastRequest | dict[str, Any]) -> dict[str, Any]:
        """The forecast after ``request.table`` (columns of JSON values, typed as the CSV reader types them;
        None: the run's own data, as ``predict()`` reads it) and the last ``request.history`` values of the
        targets before it."""
        request = self.make_request(request)
        if request.table is None:
            rows = self.predict()
            (data, source), test = load_source(self.window_config_), load_test_source(self.window_config_)
        else:
            sizes = {c: len(v) for c, v in request.table.items()}
            if len(set(sizes.values())) > 1:
                shown = ", ".join(f"{c}: {n}" for c, n in sizes.items())
                raise ValueError(f"table: columns of different lengths ({shown}); expected one value per row in "
                                 f"every column")
            data, source, test = {c: typed_column(v) for c, v in request.table.items()}, "table", None
            rows = self.predict(data)
        series = self._inputs(data, source, test)[0]           # the table prepared as predict prepares it
        targets = list(series.targets)
        past = []
        if request.history:
            for t, row in zip(series.times[-request.history:], series.values[-request.history:]):
                # the targets are the first columns
                past.append({"time": str(t), **{name: float(row[k]) for k, name in enumerate(targets)}})
        return {"targets": targets, "history": past, "forecast": rows}

    def export_spec(self, fmt: str):
        """ONNX: every model behind the run's normaliser (a window in the columns' units in, the forecast in the
        targets' units out). C: the one-direction recurrent models (gru, gru_dropout, stacked_gru, lstm)."""
        self._check_fitted()
        if fmt == "onnx":
            return self._onnx_spec()
        if fmt == "c":
            return self._c_model()
        return super().export_spec(fmt)

    def _onnx_spec(self):
        from rnnkit.export.onnx import OnnxSpec, require_fused
        from rnnkit.tasks.forecast.model import FIXED_WINDOW, ForecastGraph

        cfg, norm, K = self.window_config_, self.normalizer_, self.n_targets_
        require_fused(getattr(self.model_, "rnn", None), f"model {cfg.model!r}")
        steps = cfg.lookback // cfg.step            # lookback as the run settled it
        x = torch.randn(3, steps, len(self.columns_), generator=torch.Generator().manual_seed(0))
        time_axis = {} if cfg.model in FIXED_WINDOW else {1: "time"}
        axes = {"x": {0: "batch", **time_axis}, "forecast": {0: "batch"}}

        def compare(run, rng, B: int, T: int):
            T = steps if cfg.model in FIXED_WINDOW else T
            x = (norm.mean + norm.std * rng.normal(0, 1.5, (B, T, len(self.columns_)))).astype(np.float32)
            with torch.no_grad():
                normalised = torch.from_numpy(norm.transform(x).astype(np.float32))
                want = norm.inverse(self.model_.eval()(normalised).numpy(), slice(0, K))
            return [(run({"x": x})[0], want)]

        module = ForecastGraph(self.model_, norm.mean, norm.std, K)
        return OnnxSpec(module, (x,), ["x"], ["forecast"], axes, kind="whole-sequence", compare=compare)

    def _c_model(self):
        from rnnkit.export.c import CModel, rnn_layers

        cfg, norm, net, K = self.window_config_, self.normalizer_, self.model_, self.n_targets_
        what = f"model {cfg.model!r}"
        exports = "a C header takes a forecaster with model gru, gru_dropout, stacked_gru or lstm"
        if getattr(net, "rnn", None) is None:
            refuse_export(what, "c", f"it has no recurrent layer, which is what the header computes; {exports}")
        if hasattr(net, "conv"):
            refuse_export(f"{what} (convolutional)", "c", f"the header computes recurrent layers, not "
                                                          f"convolutions; {exports}")
        kind, layers = rnn_layers(net.rnn, what)
        steps = cfg.lookback // cfg.step

        def reference(windows: list[np.ndarray]) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(norm.transform(np.stack(windows)).astype(np.float32))
                out = norm.inverse(net.eval()(x).numpy(), slice(0, K))                       # (N, H, K)
            return out.reshape(len(windows), -1)

        def inputs(rng: np.random.Generator, n: int) -> list[np.ndarray]:
            # windows of the run's length on the scale of the training data
            return list((norm.mean + norm.std * rng.normal(0, 1, (n, steps, len(norm.mean)))).astype(np.float32))

        return CModel("values", kind, layers, net.head.weight.detach().float().cpu().numpy(),
                      net.head.bias.detach().float().cpu().numpy(), np.asarray(norm.mean, np.float32),
                      np.asarray(norm.std, np.float32), reference, inputs, horizon=net.horizon,
                      targets=list(self.series_.targets), residual=bool(net.residual), window=steps)
