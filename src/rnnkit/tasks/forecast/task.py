"""Time-series forecasting: ``ForecastConfig``, the ``Forecaster`` task object, and ``compare``.

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

import csv
import dataclasses
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from rnnkit import _checks
from rnnkit.config import config_to_dict, field
from rnnkit.datasets import series as S
from rnnkit.report.metrics import forecast_metrics, mae_per_target
from rnnkit.report.plots import new_figure, save_png
from rnnkit.runs.checkpoint import RunDir, atomic_write_text, load_weights, save_weights
from rnnkit.runs.schema import FORMAT_VERSION, read_run_config
from rnnkit.tasks.base import RESUME_FIELDS, Task, replace_config, resume_command, stop_if_interrupted
from rnnkit.tasks.forecast.data import (PRESETS, default_season, freq_from_json, freq_to_json, load_source,
                                        load_test_source, make_windows, no_validation, prepare, split_points,
                                        valid_windows, window_rows, with_window_defaults)
from rnnkit.tasks.forecast.model import BASELINES, MODELS, RECURRENT, build_model, seasonal_positions
from rnnkit.training import TrainConfig, Trainer, distributed
from rnnkit.training.progress import track


@dataclass
class ForecastConfig:
    # data
    dataset: Optional[str] = field(None, "named dataset (fetched on first use)", choices=tuple(PRESETS))
    csv: Optional[str] = field(None, "your own CSV/TSV file with a header row (instead of --dataset)")
    test_csv: Optional[str] = field(None, "your own held-out period: a file like --csv whose rows follow it in "
                                          "time; the test windows come from it (test_frac and val_end do not "
                                          "apply; val_frac is a share of the --csv rows)")
    time_col: Optional[str] = field(None, "column with the timestamps (ISO 8601) or integer step numbers")
    target: list[str] = field([], "column(s) to forecast (empty: a named dataset's main series)")
    features: list[str] = field([], "extra input columns (the targets are always inputs too); 'all': every "
                                    "numeric column")
    exclude: list[str] = field([], "columns to leave out of the inputs (with --features all, from a dataset's "
                                   "own features, or of the calendar ones, e.g. week_sin week_cos)")
    filter: list[str] = field([], "keep rows where COLUMN=VALUE, e.g. origin=JFK (several allowed; 'none' turns "
                                  "off a dataset's own filter)")
    wide_by: Optional[str] = field(None, "add the other values of this column (e.g. origin: the other stations) "
                                         "as extra input series")
    interpolate_limit: int = field(6, "fill runs of at most this many missing steps by linear interpolation")
    long_gaps: str = field("fill", "input values still missing after interpolation: fill (carry the last value "
                                   "forward), drop (the column), skip (the windows that touch them)",
                           choices=S.LONG_GAPS)
    angles: list[str] = field([], "input columns in degrees (e.g. wind_dir), given to the model as sine and "
                                  "cosine (empty: nyc-weather's wind_dir when it is an input)")
    calendar: bool = field(False, "add the calendar cycles that fit the series' step as sin/cos inputs: time "
                                  "of day (steps under a day), day of week (under a week), time of year "
                                  "(under a year)")
    time_features: bool = field(False, "the earlier, smaller set: time of day and of year only (kept so run "
                                       "directories and scripts that used it get the same inputs)", cli=False)
    # windows (None: chosen from the series' step; see data.window_defaults)
    lookback: Optional[int] = field(None, "steps of history in each input window (None: by the step: 5 days "
                                          "for hourly data, 8 weeks for daily, 2 years for monthly, ...)")
    step: int = field(1, "keep every step-th row of the window (lookback must be a multiple)")
    delay: Optional[int] = field(None, "forecast this many steps after the last input row (None: by the step: "
                                       "1 day for hourly data, the next step for daily and coarser)")
    horizon: int = field(1, "forecast this many consecutive steps (delay, delay+1, ...)")
    # held-out parts, in time order: train, validation, test
    train_end: Optional[str] = field(None, "first timestamp of the validation part (None: by the shares)")
    val_end: Optional[str] = field(None, "first timestamp of the test part (None: by the shares)")
    val_frac: float = field(0.25, "share of the rows for validation when train_end is not given (0: no "
                                  "validation: train all epochs, keep the last weights)")
    test_frac: float = field(0.25, "share of the rows (the last ones) for the test when val_end is not given")
    # model
    model: str = field("gru", "model to train", choices=MODELS)
    hidden_size: int = field(32, "units of the recurrent / convolutional / dense layer")
    dropout: float = field(0.1, "input dropout of the dropout models (gru_dropout, stacked_gru, conv1d_gru)")
    recurrent_dropout: float = field(0.5, "variational recurrent dropout of those models")
    residual: bool = field(False, "learn the change from the last observed value instead of the value")
    season: Optional[int] = field(None, "period in steps for seasonal_naive (None: 24 for hourly steps, 7 for "
                                        "daily, 12 for monthly)")
    alpha: Optional[float] = field(None, "L2 penalty of the ridge model (None: the best of 0.1 .. 10^4 on the "
                                         "validation windows)")
    # training: windows per batch, RMSprop, the gradient norm clipped to 1; up to 100 epochs, stopped after 5
    # without a better validation MAE (max_minutes bounds it too)
    train: TrainConfig = field(TrainConfig(epochs=100, batch_size=128, lr=1e-3, optimizer="rmsprop",
                                           clip_grad_norm=1.0, early_stop_patience=5), "training options")

    def __post_init__(self) -> None:
        if self.dataset is not None:
            _checks.check_choice("dataset", self.dataset, tuple(PRESETS))
        _checks.check_choice("long_gaps", self.long_gaps, S.LONG_GAPS)
        for name in ("target", "features", "exclude", "filter", "angles"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
        if "all" in self.features and self.features != ["all"]:
            _checks.fail("features", self.features, "either 'all' alone or a list of column names")
        for name in ("step", "horizon", "hidden_size"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("lookback", self.lookback, min=1, allow_none=True)
        _checks.check_int("delay", self.delay, min=1, allow_none=True)
        _checks.check_int("interpolate_limit", self.interpolate_limit, min=0)
        if self.lookback is not None and self.lookback % self.step:
            _checks.fail("lookback", self.lookback, f"a multiple of step={self.step}")
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1 - self.val_frac, min_open=True,
                            max_open=True)
        _checks.check_choice("model", self.model, MODELS)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_int("season", self.season, min=1, allow_none=True)
        _checks.check_float("alpha", self.alpha, min=0, allow_none=True)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


class SeasonError(ValueError):
    """seasonal_naive cannot run with this season (none given and none to guess, or one the window lacks)."""


def model_device(model: nn.Module) -> torch.device:
    """Where a model's weights live (the baselines have none: the CPU)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


class Forecaster(Task):
    """Forecast one or several columns of a series ``delay`` steps after a window of ``lookback`` steps.

    Learned attributes after ``fit``: ``series_`` (the prepared series), ``columns_`` (input columns),
    ``window_config_`` (the config with ``lookback`` and ``delay`` settled: the defaults for the series' step
    where they were None), ``normalizer_``, ``model_``, ``splits_`` (rows where validation and test begin),
    ``windows_`` and ``rows_`` (the windows of the normalised series and their rows per split), ``history_``
    (epoch records), ``best_epoch_``, ``metrics_`` (val/test MAE, normalised and in original units, and the
    naive and seasonal naive baselines'; the val figures are None without a validation part; empty when
    Ctrl-C stopped training, see ``trainer_.interrupted``), ``train_seconds_``, ``trainer_`` (None for the
    baselines and ridge); ``alpha_`` for ridge.
    """

    name = "forecast"
    config_class = ForecastConfig
    train_command = "rnnkit forecast train"

    # -- fit -------------------------------------------------------------------------------------------

    def fit(self, data: dict[str, np.ndarray] | None = None, *, run_dir: str | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            verbose: bool = True) -> "Forecaster":
        """Prepare the series (from ``data``, a table ``{column: array}``, or the config's dataset/csv),
        train, and measure validation and test MAE (``metrics_``); saved in ``run_dir`` when given.

        ``resume=True`` continues the training saved in ``run_dir`` (the same config and data prepare the
        same windows; weights, optimizer and position come from the checkpoint). ``dry_run`` trains on one
        tiny batch: seconds, for smoke tests."""
        cfg = self.config
        for name in [k for k in vars(self) if k.endswith("_")]:   # a new fit starts from nothing learned
            delattr(self, name)
        source = "data"
        if data is None:
            data, source = load_source(cfg)
        series, values, columns, held_out = prepare(cfg, data, source, load_test_source(cfg))
        # What the run trains on; a resumed run refuses data that changed since it began.
        record = self._data_record(source, series.times, values, columns, run_dir=run_dir, resume=resume)
        # lookback and delay in steps of this series (the defaults are chosen by its step)
        cfg, window_note = with_window_defaults(cfg, series.freq)
        self.window_config_ = cfg
        try:
            S.check_length(len(series), cfg.lookback, cfg.delay, name=source)
        except ValueError as err:
            raise ValueError(f"{err} ({window_note})") from None
        val_start, test_start = split_points(cfg, series.times, held_out)
        self.series_, self.columns_, self.splits_ = series, columns, (val_start, test_start)
        self.n_targets_ = len(series.targets)
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
        self.data_ = {**record, "test_source": cfg.test_csv, "steps": len(series),
                      "freq": S.describe_freq(series.freq), "start": str(series.times[0]),
                      "end": str(series.times[-1]), "input_columns": columns, "window": window_note,
                      "windows": {k: len(v) for k, v in self.rows_.items()}, "report": series.report}
        if verbose:
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
        distributed.barrier()    # under torchrun: every process has checked the run directory before rank 0 writes
        if run_dir is not None and distributed.is_main():
            self.write_config(run_dir)      # a run directory in training says what it is (and can be resumed)

        self.model_ = self._build()
        start = time.monotonic()
        self.history_, self.best_epoch_, self.trainer_ = [], None, None
        if cfg.model == "ridge":
            self._fit_ridge()
        elif cfg.model not in BASELINES:
            self._fit_net(run_dir, resume, dry_run, progress)
        self.train_seconds_ = time.monotonic() - start
        self.model_.eval()
        if self.trainer_ is not None and self.trainer_.interrupted:
            # Ctrl-C: stop now, without measuring (the checkpoint is saved; resume=True goes on from it).
            self.metrics_ = {}
            return self
        self.metrics_ = self._split_metrics()
        if run_dir is not None and distributed.is_main():    # under torchrun rank 0 writes the run
            self.save(run_dir)
        return self

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
        alphas = [cfg.alpha] if cfg.alpha is not None else [0.1, 1.0, 10.0, 100.0, 1e3, 1e4]
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

    def _fit_net(self, run_dir: str | None, resume: bool, dry_run: bool, progress: bool | None) -> None:
        """The one Trainer on the MAE; it ends with the best validation epoch's weights in the model
        (``restore_best``), after a resume too."""
        cfg = self.window_config_
        if resume and run_dir is None:
            _checks.fail("run_dir", None, "the run directory to resume")
        tcfg = dataclasses.replace(cfg.train, epochs=1, max_steps=1) if dry_run else cfg.train
        if no_validation(cfg):
            # Nothing to pick a best epoch or stop early by: train the epochs, keep the last weights.
            tcfg = dataclasses.replace(tcfg, restore_best=False, early_stop_patience=None)
        trainer = Trainer(self.model_, tcfg, run_dir=run_dir, progress=progress, items_name="windows")
        loss_fn = nn.L1Loss()   # MAE, the metric we report
        rows = self.rows_["train"]

        def train_batches(epoch: int):
            # A batch is the window rows it trains on, as a tensor: under torchrun each process takes its
            # share of them (training/distributed.py).
            order = torch.from_numpy(np.random.default_rng([tcfg.seed, epoch]).permutation(rows))
            return [order[i:i + tcfg.batch_size] for i in range(0, len(order), tcfg.batch_size)]

        def compute_loss(model, batch_rows, state):
            x, y = self._batch(batch_rows.cpu().numpy(), model_device(model))
            return loss_fn(model(x), y), None, len(batch_rows)

        def evaluate(model):
            return {"val_loss": float(mae_per_target(*self.predict_rows(self.rows_["val"], model)).mean())}

        trainer.fit(train_batches, compute_loss, None if no_validation(cfg) else evaluate, resume=resume)
        self._refuse_spent_budget(trainer, run_dir, resume)
        self.trainer_ = trainer
        self.history_ = [r for r in trainer.history if r.get("event") == "epoch"]
        self.best_epoch_ = trainer.best_epoch

    # -- evaluation ------------------------------------------------------------------------------------

    @torch.no_grad()
    def _forecast(self, windows: S.Windows, rows: np.ndarray, model: nn.Module | None = None
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

    def _errors(self, windows: S.Windows, rows: np.ndarray) -> dict[str, Any]:
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

    def evaluate(self, data: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """MAE of the forecasts on every complete window of ``data`` (a table like the training one), or,
        with None, on the test part of the data ``fit`` used (read again from the config's dataset or csv
        after ``load``): ``mae`` (in the targets' units, mean over targets), ``mae_norm``, the naive
        forecast's, ``vs_naive_pct``, the seasonal naive forecast's (see ``_errors``), ``mae[<target>]`` and
        the number of ``windows``."""
        self._check_fitted()
        cfg = self.window_config_
        if data is None and "windows_" in vars(self):
            return self._errors(self.windows_, self.rows_["test"])
        test_part, source, test = data is None, "data", None
        if test_part:
            if cfg.dataset is None and cfg.csv is None:
                _checks.fail("data", None, "a table to evaluate on: this Forecaster was fitted on a table "
                                           "given to fit(), which its run directory does not hold")
            data, source = load_source(cfg)
            test = load_test_source(cfg)
        series, values, held_out = self._inputs(data, source, test)
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
        S.check_length(len(values), cfg.lookback, 0, name=source)
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
                "train_seconds": self.train_seconds_, "alpha": vars(self).get("alpha_")}

    def _save_files(self, run: RunDir) -> None:
        save_weights(run.best_path, self.model_.state_dict())

    def _load_files(self, run: RunDir, fitted: dict[str, Any], **options: Any) -> None:
        if not fitted:
            # config.json is written when training starts; "fitted" only when it has finished.
            raise ValueError(f"{run.config_path}: the forecast run has no trained model yet (its training did not "
                             f"finish); expected a finished run: go on with "
                             f"{resume_command(self.command(), run.path)}")
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
        self.model_ = self._build()
        load_weights(run.best_path, self.model_)
        self.model_.eval()

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A config.json written before format 2: ``{"task": "forecast", "model", "forecast": {flat fields},
        "prep": {columns, targets, mean, std, freq, report}, "metrics", "best_epoch", "train_seconds"}``."""
        if not isinstance(raw.get("forecast"), dict):
            return super().upgrade_config(raw)
        config = dict(raw["forecast"])
        config.pop("dry_run", None)
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


# ---------------------------------------------------------------------------------------------------------
# compare: every model on the same windows
# ---------------------------------------------------------------------------------------------------------

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
        text += f"; seasonal naive = the value {season} steps ({S.describe_steps(season, fc.freq_)}) before"
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
