"""Forecasting data: the source table, one prepared series, its split in time and its windows.

The path from a table to the windows a model sees:

1. :func:`load_source`: the table named by the config's ``dataset`` or ``csv``;
2. :func:`prepare`: :func:`~rnnkit.datasets.series.prepare_series` makes one regular series (station filter,
   resampling, NaN interpolation, all reported) with a dataset's defaults filled in (:func:`resolved`);
   optional sin/cos time features are appended;
3. :func:`split_points`: the rows where validation and test begin (timestamps or shares of the rows);
4. :func:`make_windows`, :func:`valid_windows`, :func:`window_rows`: the vectorised windows of
   :mod:`rnnkit.datasets.series` and the window rows that lie inside one split.

``delay`` counts from the last input row here: with hourly data ``delay=24`` forecasts 24 hours after the
last observation. A window belongs to a split when its inputs and its targets all lie inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnkit import _checks
from rnnkit.datasets import series as S

if TYPE_CHECKING:   # task.py imports this module; the config is only needed for type hints
    from rnnkit.tasks.forecast.task import ForecastConfig

# What each named dataset needs to become a series (used when the config leaves a field empty).
PRESETS = {
    "nyc-weather": dict(time_col="time_hour", target=["temp"], filter=["origin=JFK"],
                        features=["dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"],
                        angles=["wind_dir"]),
    "airline": dict(time_col="month", target=["passengers"], filter=[], features=[], angles=[]),
}


def read_table(path: str, name: str = "csv") -> dict[str, np.ndarray]:
    """A CSV/TSV file with a header row as ``{column: array}``; a missing file names the argument."""
    from rnnkit import datasets

    if not Path(path).is_file():
        raise FileNotFoundError(f"{name}={path!r}: no such file")
    return datasets.load_table(path)


def load_source(cfg: ForecastConfig) -> tuple[dict[str, np.ndarray], str]:
    """The table named by ``dataset`` or ``csv`` and a name for messages."""
    from rnnkit import datasets

    if (cfg.dataset is None) == (cfg.csv is None):
        _checks.fail("dataset", cfg.dataset, "either a dataset name or --csv FILE (exactly one of them)")
    if cfg.dataset is not None:
        return datasets.load(cfg.dataset), cfg.dataset
    return read_table(cfg.csv), cfg.csv


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


def prepare(cfg: ForecastConfig, table: dict[str, np.ndarray], source: str
            ) -> tuple[S.Series, np.ndarray, list[str]]:
    """The prepared series plus its input matrix (N, F) in raw units (time features appended) and the
    input column names (the targets first)."""
    r = resolved(cfg)
    series = S.prepare_series(table, r["time_col"], r["target"], r["features"], r["filter"], cfg.wide_by,
                              cfg.interpolate_limit, source, angles=r["angles"], long_gaps=cfg.long_gaps)
    values, columns = series.values, list(series.columns)
    if cfg.time_features:
        extra, names = S.time_features(series.times, series.freq)
        values, columns = np.concatenate([values, extra], axis=1), columns + names
    return series, values, columns


def split_points(cfg: ForecastConfig, times: np.ndarray) -> tuple[int, int]:
    """Row indices where validation and test begin: at ``train_end`` / ``val_end`` when given, else where
    the last ``val_frac + test_frac`` and ``test_frac`` of the rows begin."""
    n = len(times)
    bounds = []
    for name, stamp, share in (("train_end", cfg.train_end, 1 - cfg.val_frac - cfg.test_frac),
                               ("val_end", cfg.val_end, 1 - cfg.test_frac)):
        if stamp is None:
            bounds.append(int(n * share))
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


def make_windows(cfg: ForecastConfig, values: np.ndarray, n_targets: int) -> S.Windows:
    """Every (window, target) pair of the normalised inputs (N, F), whose first ``n_targets`` columns are
    the targets."""
    # The lecture's delay counts from the row after the window's last step; ours from that last row.
    return S.Windows(values, cfg.lookback, cfg.step, cfg.delay - cfg.step, values[:, :n_targets], cfg.horizon)


def valid_windows(cfg: ForecastConfig, values: np.ndarray) -> np.ndarray:
    """valid[r]: the window at row r and its targets hold no NaN (cumulative counts: one pass)."""
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


def window_rows(cfg: ForecastConfig, valid: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Window rows r (lecture convention) whose inputs [r - lookback, r) and targets lie in [lo, hi)."""
    last_target = cfg.delay - cfg.step + cfg.horizon - 1                 # offset of the last target from r
    r = np.arange(max(lo + cfg.lookback, cfg.lookback), hi - last_target)
    return r[valid[r]] if len(r) else r


def freq_to_json(freq) -> list:
    """A series step for config.json: ``[count, unit]`` (unit None for step-numbered series)."""
    if isinstance(freq, np.timedelta64):
        return [int(np.asarray(freq).astype(np.int64)), np.datetime_data(np.asarray(freq).dtype)[0]]
    return [int(freq), None]


def freq_from_json(value: list):
    count, unit = value
    return np.timedelta64(count, unit) if unit else count
