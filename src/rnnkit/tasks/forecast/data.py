"""Forecasting data: the source table, one prepared series, its split in time and its windows.

The path from a table to the windows a model sees:

1. :func:`load_source`: the table named by the config's ``dataset`` or ``csv`` (and :func:`load_test_source`:
   the user's own held-out period, ``test_csv``);
2. :func:`prepare`: :func:`~rnnkit.datasets.series.prepare_series` makes one regular series (station filter,
   resampling, NaN interpolation, all reported) with a dataset's defaults filled in and ``features="all"`` (or
   "none", "auto") /
   ``exclude`` applied (:func:`resolved`); a held-out file is prepared the same way and put after it
   (:func:`join_held_out`); optional sin/cos calendar features are appended;
3. :func:`with_window_defaults`: ``lookback`` and ``delay`` left empty are chosen from the series' step
   (:func:`window_defaults`: 5 days back and 1 day ahead for hourly steps, 8 weeks back and 1 day ahead for
   daily ones, ...);
4. :func:`split_points`: the rows where validation and test begin (timestamps, shares of the rows, or the
   start of the held-out file; ``val_frac=0``: no validation part);
5. :func:`make_windows`, :func:`valid_windows`, :func:`window_rows`: the vectorised windows of
   :mod:`rnnkit.datasets.windows` and the window rows that lie inside one split.

``delay`` counts from the last input row here: with hourly data ``delay=24`` forecasts 24 hours after the
last observation. A window belongs to a split when its inputs and its targets all lie inside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.datasets import series as S
from rnnkit.tasks.forecast.config import PRESETS  # noqa: F401  (the presets are config: --help lists them)
from rnnkit.datasets import windows as W

from rnnkit.tasks.forecast.config import ForecastConfig

def read_table(path: str, name: str = "csv") -> dict[str, np.ndarray]:
    """A CSV/TSV file with a header row as ``{column: array}``; a missing file names the argument."""
    from rnnkit import datasets

    _checks.require_file(name, path)
    return datasets.load_table(path)


def load_source(cfg: ForecastConfig) -> tuple[dict[str, np.ndarray], str]:
    """The table named by ``dataset`` or ``csv`` and a name for messages."""
    from rnnkit import datasets

    if (cfg.dataset is None) == (cfg.csv is None):
        _checks.fail("dataset", cfg.dataset, "either a dataset name or --csv FILE (exactly one of them)")
    if cfg.dataset is not None:
        return datasets.load(cfg.dataset), cfg.dataset
    return read_table(cfg.csv), cfg.csv


def load_test_source(cfg: ForecastConfig) -> tuple[dict[str, np.ndarray], str] | None:
    """The user's held-out period (``test_csv``) and its name, or None."""
    if cfg.test_csv is None:
        return None
    return read_table(cfg.test_csv, "test_csv"), cfg.test_csv


# What --calendar may add (see rnnkit.datasets.series.calendar_features); --exclude can leave any of them out.
CALENDAR_COLUMNS = ("day_sin", "day_cos", "week_sin", "week_cos", "year_sin", "year_cos")


def resolved(cfg: ForecastConfig, table: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """time_col, target, features, filter and angles with a dataset's defaults filled in where the config is
    empty; ``features=["all"]`` becomes every numeric column of ``table`` (except the time column, the
    targets and the filter / wide_by columns), and the ``exclude`` columns leave the features."""
    preset = PRESETS.get(cfg.dataset, {})
    out = {k: getattr(cfg, k) or preset.get(k, [] if k != "time_col" else None)
           for k in ("time_col", "target", "features", "filter", "angles")}
    if [f.lower() for f in cfg.filter] == ["none"]:
        out["filter"] = []
    if cfg.features == ["none"]:
        out["features"] = []
    elif cfg.features == ["auto"]:
        # The larger of the two candidates (the model may keep only the targets): a dataset's own features,
        # else every numeric column.
        out["features"] = preset.get("features") or ["all"]
    if not out["time_col"]:
        _checks.fail("time_col", None, "the name of the column with the timestamps")
    if not out["target"]:
        _checks.fail("target", [], "at least one column name to forecast")
    calendar = CALENDAR_COLUMNS if cfg.calendar else ()
    for name in cfg.exclude:
        if name in out["target"]:
            _checks.fail("exclude", name, f"input columns only, not a target ({', '.join(out['target'])})")
        if table is not None and name not in table and name not in calendar:
            _checks.fail("exclude", name, f"a column of the data{' or a calendar column' if calendar else ''}; "
                                          f"its columns are: {', '.join([*table, *calendar])}")
    if out["features"] == ["all"] and table is not None:
        skip = [out["time_col"], *out["target"], *(f.split("=", 1)[0] for f in out["filter"]),
                *([cfg.wide_by] if cfg.wide_by else [])]
        out["features"] = S.numeric_columns(table, skip)
    out["features"] = [c for c in out["features"] if c not in cfg.exclude]
    if not cfg.angles:   # a preset's angle columns apply only where they are among the inputs
        out["angles"] = [a for a in out["angles"] if a in out["features"]]
    return out


def window_defaults(freq) -> tuple[int, int] | None:
    """Default ``(lookback, delay)`` in steps for a series with this step, chosen in time units: steps shorter
    than an hour look back 1 day and forecast 1 hour ahead; hourly to sub-daily steps 5 days back, 1 day
    ahead; daily steps 8 weeks back; weekly ones 1 year; monthly to quarterly 2 years; longer steps 10
    steps; from daily steps on, the next step ahead. None for a step-numbered series (no time unit)."""
    if not isinstance(freq, np.timedelta64):
        return None
    step, hour, day = S.freq_seconds(freq), 3600, 86400
    if step < hour:
        back, ahead = day, hour
    elif step < day:
        back, ahead = 5 * day, day
    elif step < 7 * day:
        back, ahead = 56 * day, step
    elif step < 28 * day:
        back, ahead = 365.2425 * day, step
    elif step < 365 * day:
        back, ahead = 2 * 365.2425 * day, step
    else:
        back, ahead = 10 * step, step
    return max(1, round(back / step)), max(1, round(ahead / step))


def with_window_defaults(cfg: ForecastConfig, freq) -> tuple[ForecastConfig, str]:
    """``cfg`` with ``lookback`` and ``delay`` settled (a default from :func:`window_defaults` where empty;
    a default lookback rounded up to a multiple of ``step``) and a line saying what they mean in time."""
    defaults = window_defaults(freq)
    if defaults is None and (cfg.lookback is None or cfg.delay is None):
        name = "lookback" if cfg.lookback is None else "delay"
        _checks.fail(name, None, f"a number of steps (--{name} N): the time column holds step numbers, not "
                                 f"timestamps, so no default can be inferred from its frequency")
    lookback = cfg.lookback or -(-defaults[0] // cfg.step) * cfg.step
    delay = cfg.delay or defaults[1]
    chosen = [name for name in ("lookback", "delay") if getattr(cfg, name) is None]
    note = (f"lookback {lookback} steps = {S.describe_steps(lookback, freq)}, delay {delay} "
            f"step{'s' if delay != 1 else ''} = {S.describe_steps(delay, freq)} ahead"
            + (f" ({' and '.join(chosen)}: the default for steps of {S.describe_steps(1, freq)})" if chosen else ""))
    return dataclasses.replace(cfg, lookback=lookback, delay=delay), note


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


def prepare(cfg: ForecastConfig, table: dict[str, np.ndarray], source: str,
            test: tuple[dict[str, np.ndarray], str] | None = None
            ) -> tuple[S.Series, np.ndarray, list[str], int | None]:
    """The prepared series plus its input matrix (N, F) in raw units (calendar features appended), the
    input column names (the targets first), and the row where the held-out ``test`` table (``(table, name)``,
    prepared the same way and put after ``table``) begins (None without one)."""
    r = resolved(cfg, table)

    def one(table: dict[str, np.ndarray], source: str) -> S.Series:
        return S.prepare_series(table, r["time_col"], r["target"], r["features"], r["filter"], cfg.wide_by,
                                cfg.interpolate_limit, source, angles=r["angles"], long_gaps=cfg.long_gaps)

    series, test_start = one(table, source), None
    if test is not None:
        series, test_start = join_held_out(series, one(*test), source, test[1])
    values, columns = series.values, list(series.columns)
    if cfg.calendar or cfg.time_features:      # time_features: the earlier set, without the day of the week
        extra, names = (S.calendar_features if cfg.calendar else S.time_features)(series.times, series.freq)
        keep = [j for j, name in enumerate(names) if name not in cfg.exclude]
        values, columns = np.concatenate([values, extra[:, keep]], axis=1), columns + [names[j] for j in keep]
    return series, values, columns, test_start


def join_held_out(train: S.Series, test: S.Series, source: str, test_source: str) -> tuple[S.Series, int]:
    """One series: ``train``, the steps between the two (missing: no window crosses them), then ``test``;
    and the row where ``test`` begins. Both must have the same step and columns, and ``test`` must begin
    after ``train`` ends, on its grid."""
    if test.freq != train.freq:
        _checks.fail("test_csv", test_source, f"a file with the step of {source} ({S.describe_freq(train.freq)}); "
                                              f"its step is {S.describe_freq(test.freq)}")
    if test.columns != train.columns:
        _checks.fail("test_csv", test_source, f"a file that gives the input columns of {source} "
                                              f"({', '.join(train.columns)}); it gives {', '.join(test.columns)}")
    if test.times[0] <= train.times[-1]:
        _checks.fail("test_csv", test_source, f"a held-out period after the end of {source} ({train.times[-1]}); "
                                              f"it begins at {test.times[0]}")
    gap, rest = divmod(test.times[0] - train.times[-1], train.freq)
    if rest:
        _checks.fail("test_csv", test_source, f"timestamps on the grid of {source} (every "
                                              f"{S.describe_freq(train.freq)} from {train.times[0]}); it begins at "
                                              f"{test.times[0]}")
    gap = int(gap) - 1                                               # missing steps between the two files
    if gap > len(train) + len(test):
        _checks.fail("test_csv", test_source, f"a held-out period soon after {source} (it ends at "
                                              f"{train.times[-1]}); it begins {gap} steps later, at {test.times[0]}")
    missing = np.full((gap, train.values.shape[1]), np.nan)
    times = np.concatenate([train.times, train.times[-1] + np.arange(1, gap + 1) * train.freq, test.times])
    report = [*train.report, *(f"{test_source}: {line}" for line in test.report),
              f"test part: {test_source} ({len(test)} steps from {test.times[0]})"
              + (f", {gap} missing steps after {source}" if gap else "")]
    return (S.Series(times, np.concatenate([train.values, missing, test.values]), train.columns, train.targets,
                     train.freq, report), len(train) + gap)


def no_validation(cfg: ForecastConfig) -> bool:
    """``val_frac=0`` (and no ``train_end``): the run has no validation part; it trains the given epochs and
    keeps the last weights."""
    return cfg.val_frac == 0 and cfg.train_end is None


def split_points(cfg: ForecastConfig, times: np.ndarray, test_start: int | None = None) -> tuple[int, int]:
    """Row indices where validation and test begin: at ``train_end`` / ``val_end`` when given, else where
    the last ``val_frac + test_frac`` and ``test_frac`` of the rows begin. With a held-out file the test
    begins at its first row (``test_start``) and ``val_frac`` is a share of the rows before it. Without
    validation (:func:`no_validation`) both are the same row."""
    n = len(times)
    if test_start is not None and cfg.val_end is not None:
        _checks.fail("val_end", cfg.val_end, "no val_end with test_csv (the held-out file is the test part)")
    last = n if test_start is None else test_start                   # the rows the shares are taken of
    test_frac = cfg.test_frac if test_start is None else 0.0
    bounds = []
    for name, stamp, share in (("train_end", cfg.train_end, 1 - cfg.val_frac - test_frac),
                               ("val_end", cfg.val_end, 1 - test_frac)):
        if stamp is None:
            bounds.append(int(last * share))
            continue
        try:
            at = np.datetime64(stamp) if times.dtype.kind == "M" else int(stamp)
        except ValueError:
            _checks.fail(name, stamp, "a timestamp such as '2013-07-01'")
        bounds.append(int(np.searchsorted(times, at)))
    if no_validation(cfg):
        bounds[0] = bounds[1]
    if not (0 < bounds[0] <= bounds[1] < n and (bounds[0] < bounds[1] or no_validation(cfg))):
        _checks.fail("val_end" if cfg.val_end else "train_end", cfg.val_end or cfg.train_end,
                     f"split points inside the series ({times[0]} .. {times[-1]}) with training before "
                     f"validation before test; got rows {bounds[0]} and {bounds[1]} of {n}")
    return bounds[0], bounds[1]


def make_windows(cfg: ForecastConfig, values: np.ndarray, n_targets: int) -> W.Windows:
    """Every (window, target) pair of the normalised inputs (N, F), whose first ``n_targets`` columns are
    the targets."""
    # The lecture's delay counts from the row after the window's last step; ours from that last row.
    return W.Windows(values, cfg.lookback, cfg.step, cfg.delay - cfg.step, values[:, :n_targets], cfg.horizon)


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
    # The inputs end at row r - 1 < hi, the last target at r + last_target < hi (delay < step: before r).
    r = np.arange(max(lo + cfg.lookback, cfg.lookback), min(hi - last_target, hi + 1, len(valid)))
    return r[valid[r]] if len(r) else r


def freq_to_json(freq) -> list:
    """A series step for config.json: ``[count, unit]`` (unit None for step-numbered series)."""
    if isinstance(freq, np.timedelta64):
        return [int(np.asarray(freq).astype(np.int64)), np.datetime_data(np.asarray(freq).dtype)[0]]
    return [int(freq), None]


def freq_from_json(value: list):
    count, unit = value
    return np.timedelta64(count, unit) if unit else count
