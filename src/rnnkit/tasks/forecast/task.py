"""Time-series forecasting: ``Forecaster`` and ``rnnkit forecast train|compare|predict``.

The lecture's Jena walk-through, on data rnnkit can fetch (hourly 2013 weather at three New York airports;
monthly airline passengers) or on the user's CSV file::

    fc = Forecaster(dataset="nyc-weather", model="gru", lookback=120, delay=24).fit()
    fc.metrics_["test_mae"]                  # MAE in the target's own units (°F here)
    fc.save("runs/jfk"); Forecaster.load("runs/jfk").predict()   # the next value(s) with their timestamps

The path: :func:`~rnnkit.datasets.series.prepare_series` makes one regular series (station filter, resampling,
NaN interpolation, all reported); optional sin/cos time features are appended; the rows are split in time
order (train, validation, test); a :class:`~rnnkit.datasets.series.Normalizer` is fitted on the training rows;
windows are cut with the vectorised gather of :mod:`rnnkit.datasets.series`; the model (see
:mod:`rnnkit.tasks.forecast.model`) is trained by the one Trainer on the mean absolute error, and the epoch
with the best validation MAE is kept.

``delay`` here counts from the last input row: with hourly data ``delay=24`` forecasts 24 hours after the
last observation. A window belongs to a split when its inputs and its targets all lie inside it.
"""

from __future__ import annotations

import copy
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
from rnnkit.runs.checkpoint import RunDir, atomic_write_text, load_weights, save_weights
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field, given_fields
from rnnkit.datasets import series as S
from rnnkit.tasks.forecast.model import BASELINES, MODELS, RECURRENT, build_model, seasonal_positions
from rnnkit.training.trainer import TrainConfig, Trainer

# What each named dataset needs to become a series (used when the config leaves a field empty).
PRESETS = {
    "nyc-weather": dict(time_col="time_hour", target=["temp"], filter=["origin=JFK"],
                        features=["dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"],
                        angles=["wind_dir"]),
    "airline": dict(time_col="month", target=["passengers"], filter=[], features=[], angles=[]),
}


@dataclass
class ForecastConfig:
    # data
    dataset: Optional[str] = field(None, "named dataset (fetched on first use)", choices=tuple(PRESETS))
    csv: Optional[str] = field(None, "your own CSV/TSV file with a header row (instead of --dataset)")
    time_col: Optional[str] = field(None, "column with the timestamps (ISO 8601) or integer step numbers")
    target: list[str] = field([], "column(s) to forecast (default for a dataset: its main series)")
    features: list[str] = field([], "extra input columns (the targets are always inputs too)")
    filter: list[str] = field([], "keep rows where COLUMN=VALUE, e.g. origin=JFK (several allowed; 'none' turns "
                                  "off a dataset's default filter)")
    wide_by: Optional[str] = field(None, "add the other values of this column (e.g. origin: the other stations) "
                                         "as extra input series")
    interpolate_limit: int = field(6, "fill runs of at most this many missing steps by linear interpolation")
    long_gaps: str = field("fill", "input values still missing after interpolation: fill (carry the last value "
                                   "forward), drop (the column), skip (the windows that touch them)",
                           choices=S.LONG_GAPS)
    angles: list[str] = field([], "input columns in degrees (e.g. wind_dir), given to the model as sine and "
                                  "cosine (default for nyc-weather: wind_dir)")
    time_features: bool = field(False, "add sin/cos of the time of day and of the year as inputs")
    # windows
    lookback: int = field(120, "steps of history in each input window")
    step: int = field(1, "keep every step-th row of the window (lookback must be a multiple)")
    delay: int = field(24, "forecast this many steps after the last input row")
    horizon: int = field(1, "forecast this many consecutive steps (delay, delay+1, ...)")
    train_end: Optional[str] = field(None, "first timestamp of the validation part (default: train_frac)")
    val_end: Optional[str] = field(None, "first timestamp of the test part (default: train_frac + val_frac)")
    train_frac: float = field(0.5, "share of the rows for training when train_end is not given")
    val_frac: float = field(0.25, "share of the rows for validation when val_end is not given")
    # model
    model: str = field("gru", "model to train", choices=MODELS)
    hidden_size: int = field(32, "units of the recurrent / convolutional / dense layer")
    dropout: float = field(0.1, "input dropout of the dropout models (gru_dropout, stacked_gru, conv1d_gru)")
    recurrent_dropout: float = field(0.5, "variational recurrent dropout of those models")
    residual: bool = field(False, "learn the change from the last observed value instead of the value")
    season: Optional[int] = field(None, "period in steps for seasonal_naive (default: 24 hourly, 7 daily, "
                                        "12 monthly)")
    alpha: Optional[float] = field(None, "L2 penalty of the ridge model (None: the best of 0.1 .. 10^4 on the "
                                         "validation windows)")
    # training
    epochs: int = field(20, "passes over the training windows")
    batch_size: int = field(128, "windows per batch")
    lr: float = field(1e-3, "learning rate")
    optimizer: str = field("rmsprop", "optimizer", choices=("adam", "adamw", "rmsprop", "sgd"))
    patience: Optional[int] = field(None, "stop after this many epochs without a better validation MAE")
    max_minutes: Optional[float] = field(None, "training time budget per model in minutes")
    seed: int = field(0, "random seed")
    dry_run: bool = field(False, "one tiny batch of training, for a quick check of the whole path", cli=False)

    def __post_init__(self) -> None:
        if self.dataset is not None:
            _checks.check_choice("dataset", self.dataset, tuple(PRESETS))
        _checks.check_choice("long_gaps", self.long_gaps, S.LONG_GAPS)
        for name in ("target", "features", "filter", "angles"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
        for name in ("lookback", "step", "horizon", "hidden_size", "epochs", "batch_size"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("delay", self.delay, min=1)
        _checks.check_int("interpolate_limit", self.interpolate_limit, min=0)
        if self.lookback % self.step:
            _checks.fail("lookback", self.lookback, f"a multiple of step={self.step}")
        _checks.check_float("train_frac", self.train_frac, min=0, max=1, min_open=True, max_open=True)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1 - self.train_frac, min_open=True, max_open=True)
        _checks.check_choice("model", self.model, MODELS)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_int("season", self.season, min=1, allow_none=True)
        _checks.check_float("alpha", self.alpha, min=0, allow_none=True)
        _checks.check_int("patience", self.patience, min=1, allow_none=True)


def load_source(cfg: ForecastConfig) -> tuple[dict[str, np.ndarray], str]:
    """The table named by ``--dataset`` or ``--csv`` and a name for messages."""
    from rnnkit import datasets

    if (cfg.dataset is None) == (cfg.csv is None):
        _checks.fail("dataset", cfg.dataset, "either a dataset name or --csv FILE (exactly one of them)")
    if cfg.dataset is not None:
        return datasets.load(cfg.dataset), cfg.dataset
    if not Path(cfg.csv).is_file():
        raise FileNotFoundError(f"csv={cfg.csv!r}: no such file")
    return datasets.load_table(cfg.csv), cfg.csv


def resolved(cfg: ForecastConfig) -> dict[str, Any]:
    """time_col, target, features, filter and angles with a dataset's defaults filled in where the config is
    empty."""
    preset = PRESETS.get(cfg.dataset, {})
    out = {k: getattr(cfg, k) or preset.get(k, [] if k != "time_col" else None)
           for k in ("time_col", "target", "features", "filter", "angles")}
    if [f.lower() for f in cfg.filter] == ["none"]:
        out["filter"] = []
    if not cfg.angles:   # a preset's angle columns apply only where they are among the inputs
        out["angles"] = [a for a in out["angles"] if a in out["features"]]
    if not out["time_col"]:
        _checks.fail("time_col", None, "the name of the column with the timestamps")
    if not out["target"]:
        _checks.fail("target", [], "at least one column name to forecast")
    return out


def default_season(freq) -> int | None:
    """A natural period in steps: a day for sub-daily steps, a week for daily, a year for monthly."""
    if not isinstance(freq, np.timedelta64):
        return None
    seconds = S.freq_seconds(freq)
    for period in (86400, 7 * 86400, 365.2425 * 86400):
        n = period / seconds
        if n >= 2 and abs(n - round(n)) < 0.02 * n:
            return int(round(n))
    return None


class Forecaster:
    """Forecast one or several columns of a series ``delay`` steps after a window of ``lookback`` steps.

    Learned attributes after ``fit``: ``series_`` (the prepared series), ``columns_`` (input columns),
    ``normalizer_``, ``model_``, ``splits_`` (row bounds), ``history_`` (epoch records), ``best_epoch_``,
    ``metrics_`` (val/test MAE, normalised and in original units, and the naive baseline's), ``train_seconds_``.
    """

    def __init__(self, config: ForecastConfig | None = None, **overrides: Any):
        base = dataclasses.asdict(config) if config is not None else {}
        self.config = ForecastConfig(**{**base, **overrides})

    # -- data ------------------------------------------------------------------------------------------

    def _prepare(self, table: dict[str, np.ndarray], source: str) -> tuple[S.Series, np.ndarray, list[str]]:
        """The prepared series plus its input matrix (N, F) (time features appended) and column names."""
        cfg, r = self.config, resolved(self.config)
        series = S.prepare_series(table, r["time_col"], r["target"], r["features"], r["filter"], cfg.wide_by,
                                  cfg.interpolate_limit, source, angles=r["angles"], long_gaps=cfg.long_gaps)
        values, columns = series.values, list(series.columns)
        if cfg.time_features:
            extra, names = S.time_features(series.times, series.freq)
            values, columns = np.concatenate([values, extra], axis=1), columns + names
        return series, values, columns

    def _split_rows(self, times: np.ndarray) -> tuple[int, int]:
        """Row indices where validation and test begin."""
        cfg, n = self.config, len(times)
        bounds = []
        for name, stamp, frac in (("train_end", cfg.train_end, cfg.train_frac),
                                  ("val_end", cfg.val_end, cfg.train_frac + cfg.val_frac)):
            if stamp is None:
                bounds.append(int(n * frac))
                continue
            try:
                at = np.datetime64(stamp) if times.dtype.kind == "M" else int(stamp)
            except ValueError:
                _checks.fail(name, stamp, "a timestamp such as '2013-07-01'")
            bounds.append(int(np.searchsorted(times, at)))
        if not 0 < bounds[0] < bounds[1] < n:
            _checks.fail("val_end" if cfg.val_end else "train_end", cfg.val_end or cfg.train_end,
                         f"split points inside the series ({times[0]} .. {times[-1]}) with training before "
                         f"validation before test; got rows {bounds[0]} and {bounds[1]} of {n}")
        return bounds[0], bounds[1]

    def _rows(self, valid: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Window rows r (lecture convention) whose inputs [r - lookback, r) and targets lie in [lo, hi)."""
        cfg = self.config
        last_target = cfg.delay - cfg.step + cfg.horizon - 1                 # offset of the last target from r
        r = np.arange(max(lo + cfg.lookback, cfg.lookback), hi - last_target)
        return r[valid[r]] if len(r) else r

    def _valid(self, values: np.ndarray) -> np.ndarray:
        """valid[r]: the window at row r and its targets hold no NaN (cumulative counts: one pass)."""
        cfg = self.config
        bad = np.isnan(values).any(axis=1)
        csum = np.concatenate([[0], np.cumsum(bad)])                         # csum[i] = bad rows before i
        n = len(values)
        r = np.arange(n)
        lo_in, hi_in = r - cfg.lookback, r
        lo_t = r + cfg.delay - cfg.step
        hi_t = lo_t + cfg.horizon
        ok = (lo_in >= 0) & (hi_t <= n)
        lo_in, hi_in, lo_t, hi_t = (np.clip(a, 0, n) for a in (lo_in, hi_in, lo_t, hi_t))
        return ok & (csum[hi_in] == csum[lo_in]) & (csum[hi_t] == csum[lo_t])

    def _batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.windows_.batch(rows)
        return torch.from_numpy(x), torch.from_numpy(y)                     # (B, L, F), (B, H, K)

    # -- fit -------------------------------------------------------------------------------------------

    def fit(self, data: dict[str, np.ndarray] | None = None, *, run_dir: str | None = None,
            progress: bool | None = None, verbose: bool = True, resume: bool = False) -> "Forecaster":
        """Prepare the series (from ``data``, a table, or the config's dataset/csv), train, evaluate.

        ``resume=True`` continues the training saved in ``run_dir`` (the same config and data prepare the
        same windows; weights, optimizer and position come from the checkpoint)."""
        cfg = self.config
        source = "data"
        if data is None:
            data, source = load_source(cfg)
        self.source_ = source
        series, values, columns = self._prepare(data, source)
        S.check_length(len(series), cfg.lookback, cfg.delay, name=source)
        train_end, val_end = self._split_rows(series.times)
        self.series_, self.columns_, self.splits_ = series, columns, (train_end, val_end)
        self.n_targets_ = len(series.targets)
        self.normalizer_ = S.Normalizer.fit(values[:train_end])
        self.data_ = self.normalizer_.transform(values).astype(np.float32)  # (N, F)
        # The lecture's delay counts from the row after the window's last step; ours from that last row.
        self.windows_ = S.Windows(self.data_, cfg.lookback, cfg.step, cfg.delay - cfg.step,
                                  self.data_[:, :self.n_targets_], cfg.horizon)
        valid = self._valid(self.data_)
        self.rows_ = {"train": self._rows(valid, 0, train_end), "val": self._rows(valid, train_end, val_end),
                      "test": self._rows(valid, val_end, len(series))}
        for name, rows in self.rows_.items():
            if len(rows) == 0:
                raise ValueError(f"{source}: the {name} part has no complete window of lookback={cfg.lookback} "
                                 f"+ delay={cfg.delay} steps; use a longer series, a shorter lookback/delay, or "
                                 f"other split points (train_end/val_end)")
        if cfg.dry_run:
            self.rows_ = {k: v[:min(len(v), 2 * cfg.batch_size)] for k, v in self.rows_.items()}
        if verbose:
            for line in series.report:
                print(f"data: {line}", file=sys.stderr)
            print(f"data: {len(series)} steps of {S._describe_freq(series.freq)}, {len(columns)} input columns; "
                  f"windows: {len(self.rows_['train'])} train, {len(self.rows_['val'])} val, "
                  f"{len(self.rows_['test'])} test", file=sys.stderr)

        self.model_ = self._build()
        start = time.monotonic()
        self.history_, self.best_epoch_ = [], None
        if cfg.model == "ridge":
            self._fit_ridge()
        elif cfg.model not in BASELINES:
            self._fit_net(run_dir, progress, resume)
        self.train_seconds_ = time.monotonic() - start
        self.model_.eval()
        self.metrics_ = self.evaluate()
        if run_dir is not None:
            self.save(run_dir)
        return self

    def _build(self) -> nn.Module:
        cfg = self.config
        positions = None
        if cfg.model == "seasonal_naive":
            season = cfg.season or default_season(self.series_.freq)
            if season is None:
                _checks.fail("season", None, f"a period in steps (it cannot be guessed from the step "
                                             f"{S._describe_freq(self.series_.freq)})")
            positions = seasonal_positions(season, cfg.lookback, cfg.step, cfg.delay, cfg.horizon)
        torch.manual_seed(cfg.seed)
        return build_model(cfg.model, n_features=len(self.columns_), steps=cfg.lookback // cfg.step,
                           n_targets=self.n_targets_, horizon=cfg.horizon, positions=positions,
                           hidden_size=cfg.hidden_size, dropout=cfg.dropout,
                           recurrent_dropout=cfg.recurrent_dropout, residual=cfg.residual)

    def _fit_ridge(self) -> None:
        """Closed-form ridge regression on the flattened training windows (sklearn), copied into the head.

        Without a given ``alpha`` the penalty is picked from a grid by the validation MAE.
        """
        from sklearn.linear_model import Ridge

        cfg, K = self.config, self.n_targets_

        def flat(rows):
            x, y = self._batch(rows)
            X = x.flatten(1).numpy().astype(np.float64)                      # (N, L*F)
            Y = y.flatten(1).numpy().astype(np.float64)                      # (N, H*K)
            last = np.tile(x[:, -1, :K].numpy(), cfg.horizon) if cfg.residual else 0.0   # (N, H*K)
            return X, Y, last

        rows = self.rows_["train"]
        if len(rows) > 50_000:   # the closed form needs (windows x L*F) in memory: a random subset suffices
            rows = np.random.default_rng(cfg.seed).choice(rows, 50_000, replace=False)
        X, Y, last = flat(rows)
        Xv, Yv, last_v = flat(self.rows_["val"])
        fits = []
        for alpha in ([cfg.alpha] if cfg.alpha is not None else [0.1, 1.0, 10.0, 100.0, 1e3, 1e4]):
            reg = Ridge(alpha=alpha).fit(X, Y - last)
            pred = reg.predict(Xv).reshape(Yv.shape)                         # sklearn drops a width-1 axis
            fits.append((float(np.abs(pred + last_v - Yv).mean()), alpha, reg))
        _, self.alpha_, reg = min(fits, key=lambda f: f[0])
        with torch.no_grad():
            self.model_.head.weight.copy_(torch.from_numpy(reg.coef_.reshape(Y.shape[1], -1)))
            self.model_.head.bias.copy_(torch.from_numpy(np.atleast_1d(reg.intercept_)))

    def _fit_net(self, run_dir: str | None, progress: bool | None, resume: bool = False) -> None:
        cfg = self.config
        tcfg = TrainConfig(epochs=1 if cfg.dry_run else cfg.epochs, max_steps=1 if cfg.dry_run else None,
                           max_minutes=cfg.max_minutes, lr=cfg.lr, optimizer=cfg.optimizer,
                           early_stop_patience=cfg.patience, log_every=50, seed=cfg.seed, device="cpu",
                           monitor="val_loss")
        trainer = Trainer(self.model_, tcfg, run_dir=run_dir, progress=progress)
        if run_dir is not None:
            trainer.run_dir.write_config(self._config_json())
        loss_fn = nn.L1Loss()   # MAE, the metric we report
        rows = self.rows_["train"]

        def train_batches(epoch: int):
            order = np.random.default_rng([cfg.seed, epoch]).permutation(rows)
            return [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]

        def compute_loss(model, batch_rows, state):
            x, y = self._batch(batch_rows)
            return loss_fn(model(x), y), None, len(batch_rows)

        best: dict[str, Any] = {}

        def keep_best(trainer, epoch, metrics):
            if trainer.best_epoch == epoch:
                best["state"] = copy.deepcopy(self.model_.state_dict())

        if resume and run_dir is None:
            _checks.fail("run_dir", None, "the run directory to resume")
        trainer.fit(train_batches, compute_loss, lambda model: {"val_loss": self._mae("val", model)[0]},
                    on_epoch_end=keep_best, resume=resume)
        # Keep the epoch with the best validation MAE (after a resume it may lie before it: on disk).
        if "state" in best:
            self.model_.load_state_dict(best["state"])
        elif resume and trainer.best_epoch is not None and trainer.run_dir.best_path.is_file():
            load_weights(trainer.run_dir.best_path, self.model_)
        self.history_ = [r for r in trainer.history if r.get("event") == "epoch"]
        self.best_epoch_ = trainer.best_epoch

    # -- evaluation ------------------------------------------------------------------------------------

    @torch.no_grad()
    def predict_rows(self, rows: np.ndarray, model: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised predictions and truths (n, H, K) for window rows of the prepared series."""
        model = model or self.model_
        preds, truths = [], []
        for i in range(0, len(rows), 2048):
            x, y = self._batch(rows[i:i + 2048])
            preds.append(model(x).numpy())
            truths.append(y.numpy())
        return np.concatenate(preds), np.concatenate(truths)

    def _mae(self, split: str, model: nn.Module | None = None) -> tuple[float, float]:
        """MAE on a split in normalised units and in the targets' own units (mean over targets)."""
        p, y = self.predict_rows(self.rows_[split], model)
        err = np.abs(p - y).mean(axis=(0, 1))                                 # (K,)
        return float(err.mean()), float((err * self.normalizer_.std[:self.n_targets_]).mean())

    def evaluate(self) -> dict[str, float]:
        """Validation and test MAE (normalised and original units) of the model and of the naive forecast."""
        naive = build_model("naive", n_features=0, steps=0, n_targets=self.n_targets_, horizon=self.config.horizon)
        out = {}
        for split in ("val", "test"):
            out[f"{split}_mae_norm"], out[f"{split}_mae"] = self._mae(split)
            out[f"naive_{split}_mae_norm"], out[f"naive_{split}_mae"] = self._mae(split, naive)
        return out

    # -- prediction ------------------------------------------------------------------------------------

    def predict(self, data: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """The next ``horizon`` values after the end of ``data`` (a table like the training one; default: the
        training source), as rows ``{"time": ..., target: value}``."""
        cfg = self.config
        source = "data"
        if data is None:
            data, source = load_source(cfg)
        series, values, columns = self._prepare(data, source)
        if series.freq != self.freq_:
            raise ValueError(f"{source}: its steps are {S._describe_freq(series.freq)} apart, the model was "
                             f"trained on steps of {S._describe_freq(self.freq_)}")
        missing = [c for c in self.columns_ if c not in columns]
        if missing:
            raise ValueError(f"{source}: lacks the input column(s) {', '.join(missing)} the model was trained on")
        values = values[:, [columns.index(c) for c in self.columns_]]
        S.check_length(len(values), cfg.lookback, 0, name=source)
        window = self.normalizer_.transform(values[len(values) - cfg.lookback + cfg.step - 1::cfg.step])
        if np.isnan(window).any():
            bad = [c for c, b in zip(self.columns_, np.isnan(window).any(axis=0)) if b]
            raise ValueError(f"{source}: the last lookback={cfg.lookback} steps have missing values in "
                             f"{', '.join(bad)} even after interpolation; cannot forecast from them")
        with torch.no_grad():
            p = self.model_(torch.from_numpy(window.astype(np.float32))[None])[0].numpy()   # (H, K)
        p = self.normalizer_.inverse(p, slice(0, self.n_targets_))
        last = series.times[-1]
        return [{"time": str(last + (cfg.delay + h) * series.freq),
                 **{t: float(p[h, k]) for k, t in enumerate(series.targets)}} for h in range(cfg.horizon)]

    @property
    def freq_(self):
        return self.series_.freq

    # -- save / load -----------------------------------------------------------------------------------

    def _config_json(self) -> dict[str, Any]:
        return {"task": "forecast", "model": self.config.model, "forecast": dataclasses.asdict(self.config)}

    def save(self, path: str) -> "Forecaster":
        """A run directory: config.json (config, columns, normaliser, metrics) and best.safetensors."""
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        save_weights(run.best_path, self.model_.state_dict())
        freq = self.freq_
        run.write_config({**self._config_json(),
                          "prep": {"columns": self.columns_, "targets": self.series_.targets,
                                   "mean": self.normalizer_.mean.tolist(), "std": self.normalizer_.std.tolist(),
                                   "freq": [int(np.asarray(freq).astype(np.int64)),
                                            np.datetime_data(np.asarray(freq).dtype)[0]
                                            if isinstance(freq, np.timedelta64) else None],
                                   "report": self.series_.report},
                          "metrics": self.metrics_, "best_epoch": self.best_epoch_,
                          "train_seconds": self.train_seconds_})
        return self

    @classmethod
    def load(cls, path: str) -> "Forecaster":
        run = RunDir(path)
        doc = run.read_config()
        if doc.get("task") != "forecast" or "prep" not in doc:
            raise ValueError(f"{run.config_path}: not a forecast run (task {doc.get('task')!r}); expected one "
                             f"written by Forecaster.save or `rnnkit forecast train --run-dir`")
        self = cls(config_from_dict(ForecastConfig, doc["forecast"], source=str(run.config_path)))
        prep = doc["prep"]
        count, unit = prep["freq"]
        freq = np.timedelta64(count, unit) if unit else count
        self.columns_, self.n_targets_ = prep["columns"], len(prep["targets"])
        self.normalizer_ = S.Normalizer(np.array(prep["mean"]), np.array(prep["std"]))
        # Only the series' description is stored; predict prepares the recent data afresh.
        self.series_ = S.Series(np.array([]), np.zeros((0, len(self.columns_))), list(self.columns_),
                                prep["targets"], freq, prep["report"])
        self.metrics_, self.best_epoch_ = doc.get("metrics", {}), doc.get("best_epoch")
        self.train_seconds_ = doc.get("train_seconds")
        self.model_ = self._build()
        load_weights(run.best_path, self.model_)
        self.model_.eval()
        return self


# ---------------------------------------------------------------------------------------------------------
# compare: every model on the same windows
# ---------------------------------------------------------------------------------------------------------

def compare(cfg: ForecastConfig, models: list[str] | None = None, out_dir: str | None = None,
            progress: bool | None = None) -> list[dict[str, Any]]:
    """Train every model in ``models`` (default: all) on the same windows; one row of results per model.

    With ``out_dir``: each model's run directory, ``compare.csv``, ``compare.md``, ``predictions.png``
    (the test series against each model's forecast) and ``losses.png`` (validation MAE per epoch).
    """
    models = list(models or MODELS)
    for m in models:
        _checks.check_choice("models", m, MODELS)
    table, source = load_source(cfg)
    results, fitted = [], {}
    for i, name in enumerate(models):
        run = str(Path(out_dir) / name) if out_dir else None
        fc = Forecaster(cfg, model=name).fit(table, run_dir=run, progress=progress, verbose=(i == 0))
        m = fc.metrics_
        results.append({"model": name, "val_mae": m["val_mae"], "test_mae": m["test_mae"],
                        "val_mae_norm": m["val_mae_norm"], "test_mae_norm": m["test_mae_norm"],
                        "val_vs_naive_pct": 100 * (1 - m["val_mae"] / m["naive_val_mae"]),
                        "test_vs_naive_pct": 100 * (1 - m["test_mae"] / m["naive_test_mae"]),
                        "best_epoch": None if fc.best_epoch_ is None else fc.best_epoch_ + 1,
                        "train_s": fc.train_seconds_})
        fitted[name] = fc
        print(f"{name:15s} val {m['val_mae']:.3f}  test {m['test_mae']:.3f}  ({fc.train_seconds_:.1f} s)",
              file=sys.stderr)
    if out_dir:
        out = Path(out_dir)
        atomic_write_text(out / "compare.csv", results_csv(results))
        atomic_write_text(out / "compare.md", results_markdown(results))
        plot_predictions(fitted, out / "predictions.png")
        plot_losses(fitted, out / "losses.png")
    return results


def best_recurrent(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recurrent model with the lowest validation MAE (the test MAE plays no part in the choice)."""
    rec = [r for r in results if r["model"] in RECURRENT]
    return min(rec, key=lambda r: r["val_mae"]) if rec else None


def results_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(results[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(results)
    return buf.getvalue()


def results_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| model | val MAE | test MAE | val MAE (norm.) | test MAE (norm.) | val vs naive | test vs naive "
             "| best epoch | train s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['val_mae']:.3f} | {r['test_mae']:.3f} | {r['val_mae_norm']:.4f} | "
                     f"{r['test_mae_norm']:.4f} | {r['val_vs_naive_pct']:+.1f}% | {r['test_vs_naive_pct']:+.1f}% | "
                     f"{'' if r['best_epoch'] is None else r['best_epoch']} | {r['train_s']:.1f} |")
    return "\n".join(lines) + "\n"


def _figure(width: float = 10, height: float = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> None:
    from rnnkit.runs.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def plot_predictions(fitted: dict[str, "Forecaster"], path: Path, points: int = 336) -> None:
    """The first ``points`` test windows: truth and each model's forecast of the first target, in its units."""
    fig = _figure()
    ax = fig.add_subplot()
    truth_drawn = False
    for name, fc in fitted.items():
        rows = fc.rows_["test"][:points]
        p, y = fc.predict_rows(rows)
        mean, std = fc.normalizer_.mean[0], fc.normalizer_.std[0]
        times = fc.series_.times[rows + fc.config.delay - fc.config.step]
        if not truth_drawn:
            ax.plot(times, y[:, 0, 0] * std + mean, color="black", lw=2, label="truth")
            truth_drawn = True
        ax.plot(times, p[:, 0, 0] * std + mean, lw=1, label=name)
    ax.set_ylabel(fc.series_.targets[0])
    ax.set_title("test set: forecasts against the truth")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(True, alpha=0.3)
    _save_png(fig, path)


def plot_losses(fitted: dict[str, "Forecaster"], path: Path) -> None:
    """Validation MAE (normalised) per epoch of every trained model; baselines as flat lines."""
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    for name, fc in fitted.items():
        if fc.history_:
            ax.plot([r["epoch"] + 1 for r in fc.history_], [r["val_loss"] for r in fc.history_],
                    marker=".", label=name)
        else:
            ax.axhline(fc.metrics_["val_mae_norm"], ls="--", lw=1, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAE (normalised)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    _save_png(fig, path)


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------

def _print_metrics(fc: Forecaster) -> None:
    m = fc.metrics_
    target = ", ".join(fc.series_.targets)
    print(f"{fc.config.model}: MAE of {target} {fc.config.delay} steps ahead: validation {m['val_mae']:.4f} "
          f"({m['val_mae_norm']:.4f} normalised), test {m['test_mae']:.4f} ({m['test_mae_norm']:.4f}); naive: "
          f"validation {m['naive_val_mae']:.4f}, test {m['naive_test_mae']:.4f}")


# What a resumed training may change: how long it goes on, never the data, windows or model.
RESUME_FIELDS = ("epochs", "max_minutes", "patience")


def _train_cmd(args) -> int:
    if args.resume:
        run = RunDir(args.resume)
        run.require("config.json")
        doc = run.read_config()
        if doc.get("task") != "forecast":
            raise ValueError(f"{run.config_path}: not a forecast run (task {doc.get('task')!r})")
        cfg = config_from_dict(ForecastConfig, doc["forecast"], source=str(run.config_path))
        fixed = sorted(given_fields(args) - set(RESUME_FIELDS))
        if fixed:
            name = fixed[0]
            _checks.fail(name, getattr(args, name), f"no --{name.replace('_', '-')} with --resume: the run keeps "
                         f"its own ({getattr(cfg, name)!r}); a resumed run may change only "
                         + ", ".join("--" + f.replace("_", "-") for f in RESUME_FIELDS))
        cfg = dataclasses.replace(cfg, **{k: getattr(args, k) for k in given_fields(args)})
        fc = Forecaster(cfg).fit(run_dir=args.resume, resume=True)
        _print_metrics(fc)
        return 0
    cfg = config_from_args(ForecastConfig, args, dry_run=args.dry_run)
    fc = Forecaster(cfg).fit(run_dir=args.run_dir)
    _print_metrics(fc)
    return 0


def _compare_cmd(args) -> int:
    cfg = config_from_args(ForecastConfig, args, dry_run=args.dry_run)
    results = compare(cfg, args.models or None, args.out)
    print(results_markdown(results), end="")
    best = best_recurrent(results)
    if best:
        print(f"\nbest recurrent model by validation: {best['model']} ({best['val_vs_naive_pct']:+.1f}% val, "
              f"{best['test_vs_naive_pct']:+.1f}% test against naive)")
    if args.out:
        print(f"\nwrote {args.out}/compare.csv, compare.md, predictions.png, losses.png")
    return 0


def _predict_cmd(args) -> int:
    fc = Forecaster.load(args.run)
    data = None
    if args.csv:
        from rnnkit import datasets
        if not Path(args.csv).is_file():
            raise FileNotFoundError(f"csv={args.csv!r}: no such file")
        data = datasets.load_table(args.csv)
    rows = fc.predict(data)
    targets = fc.series_.targets
    print(",".join(["time", *targets]))
    for r in rows:
        print(",".join([r["time"], *(f"{r[t]:.4f}" for t in targets)]))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("forecast", help="time-series forecasting: windows, baselines, GRU/LSTM/Conv1D",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")
    p.set_defaults(group_parser=p)

    t = verbs.add_parser("train", help="train one model and report validation and test MAE")
    add_config_arguments(t, ForecastConfig)
    t.add_argument("--dry-run", action="store_true", help="one tiny batch of training: checks the whole path")
    t.add_argument("--run-dir", default=None, help="save the run here (config, weights, metrics, loss.png)")
    t.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the training saved in RUN with its own config (after Ctrl-C, or with more "
                        "--epochs / --max-minutes / --patience)")
    t.set_defaults(func=_train_cmd)

    c = verbs.add_parser("compare", help="train every model on the same windows; one table of results")
    add_config_arguments(c, ForecastConfig, skip=("model",))
    c.add_argument("--dry-run", action="store_true", help="one tiny batch per model: checks the whole path")
    c.add_argument("--models", nargs="*", choices=MODELS, default=None,
                   help="models to compare (default: all of them)")
    c.add_argument("--out", default=None, help="write compare.csv, compare.md, PNGs and each model's run here")
    c.set_defaults(func=_compare_cmd)

    q = verbs.add_parser("predict", help="forecast the next value(s) after the end of a file, with timestamps")
    q.add_argument("run", help="a run directory written by `forecast train --run-dir`")
    q.add_argument("--csv", default=None, help="recent data in the training file's format (default: the "
                                               "training source itself)")
    q.set_defaults(func=_predict_cmd)
