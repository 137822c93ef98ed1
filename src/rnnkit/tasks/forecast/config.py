"""Forecasting's config: ForecastConfig, what `rnnkit forecast train|compare` and ``Forecaster`` take.

Imports no torch (nor numpy): every ``rnnkit forecast ... --help`` is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

BASELINES = ("naive", "seasonal_naive")
RECURRENT = ("gru", "gru_dropout", "stacked_gru", "bigru", "lstm", "conv1d_gru")
MODELS = (*BASELINES, "ridge", "mlp", *RECURRENT[:5], "conv1d", "conv1d_gru")
# Models whose fit does not depend on the seed: one fit each in a comparison, whatever --seeds says.
DETERMINISTIC = (*BASELINES, "ridge")
# What `forecast compare` trains when --models is not given (see docs/forecast.md for the evidence).
DEFAULT_MODELS = tuple(m for m in MODELS if m != "mlp")   # mlp lost to naive on nyc-weather validation
# What `--model auto` (the default) chooses among, by the mean validation MAE: the two baselines, a linear
# model, a recurrent one and a convolutional one (see docs/forecast.md for the evidence).
AUTO_MODELS = ("naive", "seasonal_naive", "ridge", "gru", "conv1d")
MODEL_CHOICES = ("auto", *MODELS)
# Seeds per model in `forecast compare` (each a fit of its own; the deterministic models take one).
COMPARE_SEEDS = 3
# The long_gaps choices of rnnkit.datasets.series (which imports numpy); a test checks the two agree.
LONG_GAPS = ("fill", "drop", "skip")
# The words --features takes instead of column names (each alone).
FEATURE_WORDS = ("all", "none", "auto")
MAX_SEEDS = 100
# What --calendar takes besides true and false.
CALENDAR_WORDS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False,
                  "0": False, "auto": "auto"}
# Window bounds: a lookback of 100,000 steps is 11 years of hourly data; windows are (batch, lookback, inputs).
MAX_WINDOW = _checks.MAX_SEQ_LEN
MAX_HORIZON = 10_000

# What each named dataset needs to become a series (used when the config leaves a field empty).
PRESETS = {
    "nyc-weather": dict(time_col="time_hour", target=["temp"], filter=["origin=JFK"],
                        features=["dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"],
                        angles=["wind_dir"]),
    "airline": dict(time_col="month", target=["passengers"], filter=[], features=[], angles=[]),
}


def bool_or_auto(value: Any) -> Union[bool, str]:
    """``--calendar``'s value: True, False or "auto" (also the words true/false/on/off/yes/no/1/0)."""
    if isinstance(value, bool):
        return value
    word = CALENDAR_WORDS.get(str(value).strip().lower()) if isinstance(value, (str, int)) else None
    if word is None:
        _checks.fail("calendar", value, "true, false or auto")
    return word


@dataclass
class ForecastConfig:
    # data
    dataset: Optional[str] = field(None, "named dataset (fetched on first use)", choices=tuple(PRESETS), group="data")
    csv: Optional[str] = field(None, "your own CSV/TSV file with a header row (instead of --dataset)", group="data")
    test_csv: Optional[str] = field(None, "your own held-out period: a file like --csv whose rows follow it in "
                                          "time; the test windows come from it (test_frac and val_end do not "
                                          "apply; val_frac is a share of the --csv rows)", group="data")
    time_col: Optional[str] = field(None, "column with the timestamps (ISO 8601) or integer step numbers", group="data")
    target: list[str] = field([], "column(s) to forecast (empty: a named dataset's main series)", group="data")
    features: list[str] = field([], "extra input columns (the targets are always inputs too); 'all': every "
                                    "numeric column; 'none': the targets alone (not a dataset's own features); "
                                    "'auto': the targets alone or with the other columns, whichever gives the "
                                    "lower validation MAE (both are trained)", group="data")
    exclude: list[str] = field([], "columns to leave out of the inputs (with --features all, from a dataset's "
                                   "own features, or of the calendar ones, e.g. week_sin week_cos)", group="data")
    filter: list[str] = field([], "keep rows where COLUMN=VALUE, e.g. origin=JFK (several allowed; 'none' turns "
                                  "off a dataset's own filter)", group="data")
    wide_by: Optional[str] = field(None, "add the other values of this column (e.g. origin: the other stations) "
                                         "as extra input series", group="data")
    interpolate_limit: int = field(6, "fill runs of at most this many missing steps by linear interpolation "
                                      f"(at most {_checks.MAX_COUNT:,})", group="data")
    long_gaps: str = field("fill", "input values still missing after interpolation: fill (carry the last value "
                                   "forward), drop (the column), skip (the windows that touch them)",
                           choices=LONG_GAPS, group="data")
    angles: list[str] = field([], "input columns in degrees (e.g. wind_dir), given to the model as sine and "
                                  "cosine (empty: nyc-weather's wind_dir when it is an input)", group="data")
    calendar: bool_or_auto = field("auto", "the calendar cycles that fit the series' step as sin/cos inputs: "
                                           "time of day (steps under a day), day of week (under a week), time "
                                           "of year (under a year); auto: added when a ridge model on the same "
                                           "windows has a lower validation MAE with them (decided in seconds, "
                                           "the line 'features: ...' says it); true (a bare --calendar) or "
                                           "false (--no-calendar)", group="data")
    time_features: bool = field(False, "the earlier, smaller set: time of day and of year only (kept so run "
                                       "directories and scripts that used it get the same inputs)", cli=False,
                                group="data")
    # windows (None: chosen from the series' step; see data.window_defaults)
    lookback: Optional[int] = field(None, "steps of history in each input window (None: by the step: 5 days "
                                          "for hourly data, 8 weeks for daily, 2 years for monthly, ...; at "
                                          f"most {MAX_WINDOW:,})", group="windows")
    step: int = field(1, f"keep every step-th row of the window (lookback must be a multiple; at most {MAX_WINDOW:,})",
                      group="windows")
    delay: Optional[int] = field(None, "forecast this many steps after the last input row (None: by the step: "
                                       "1 day for hourly data, the next step for daily and coarser; at most "
                                       f"{MAX_WINDOW:,})", group="windows")
    horizon: int = field(1, f"forecast this many consecutive steps (delay, delay+1, ...; at most {MAX_HORIZON:,})",
                         group="windows")
    # held-out parts, in time order: train, validation, test
    train_end: Optional[str] = field(None, "first timestamp of the validation part (None: by the shares)", group="data")
    val_end: Optional[str] = field(None, "first timestamp of the test part (None: by the shares)", group="data")
    val_frac: float = field(0.25, "share of the rows for validation when train_end is not given (0: no "
                                  "validation: train all epochs, keep the last weights)", group="data")
    test_frac: float = field(0.25, "share of the rows (the last ones) for the test when val_end is not given",
                             group="data")
    # model
    model: str = field("auto", "model to train; auto: the one with the lowest validation MAE among "
                               f"{', '.join(AUTO_MODELS)}, or the simplest of those tied with it (each "
                               "trained, the table printed and saved in RUN/candidates)", choices=MODEL_CHOICES,
                       group="model")
    hidden_size: int = field(32, "units of the recurrent / convolutional / dense layer (at most "
                                 f"{_checks.MAX_WIDTH:,})", group="model")
    dropout: float = field(0.1, "input dropout of the dropout models (gru_dropout, stacked_gru, conv1d_gru)",
                           group="model")
    recurrent_dropout: float = field(0.5, "variational recurrent dropout of those models", group="model")
    residual: bool = field(True, "learn the change from the last observed value instead of the value (on, "
                                 "because it helped every learned model on airline, nyc-weather and daily "
                                 "nyc-weather; --no-residual learns the value itself)", group="model")
    season: Optional[int] = field(None, "period in steps for seasonal_naive (None: 24 for hourly steps, 7 for "
                                        f"daily, 12 for monthly; at most {MAX_WINDOW:,})", group="model")
    alpha: Optional[float] = field(None, "L2 penalty of the ridge model (None: the best of 0.1 .. 10^4 on the "
                                         f"validation windows; at most {_checks.MAX_PENALTY:g})", group="model")
    seeds: int = field(1, "train this many seeds (--seed, --seed + 1, ...) and report the mean ± sd of the "
                          "validation and test MAE; the run keeps the model of --seed, the others are in "
                          f"RUN/seed-N (at most {MAX_SEEDS})", group="model")
    # training: windows per batch, RMSprop, the gradient norm clipped to 1; up to 100 epochs, stopped after 5
    # without a better validation MAE but not before 200 updates; a small set's batch shrinks so that an epoch
    # is at least 8 updates (airline: 48 training windows, one update an epoch at batch 128); max_minutes
    # bounds it too
    train: TrainConfig = field(TrainConfig(epochs=100, batch_size=128, lr=1e-3, optimizer="rmsprop",
                                           clip_grad_norm=1.0, early_stop_patience=5, min_steps=200,
                                           auto_batch=True), "training options")

    def __post_init__(self) -> None:
        if self.dataset is not None:
            _checks.check_choice("dataset", self.dataset, tuple(PRESETS))
        _checks.check_choice("long_gaps", self.long_gaps, LONG_GAPS)
        for name in ("target", "features", "exclude", "filter", "angles"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
        for word in FEATURE_WORDS:
            if word in self.features and self.features != [word]:
                _checks.fail("features", self.features, f"either '{word}' alone or a list of column names")
        self.calendar = bool_or_auto(self.calendar)
        if self.time_features and self.calendar == "auto":
            self.calendar = False        # a run of the earlier option: its inputs, not the calendar check's
        _checks.check_int("step", self.step, min=1, cap=MAX_WINDOW)
        _checks.check_int("horizon", self.horizon, min=1, cap=MAX_HORIZON)
        _checks.check_int("hidden_size", self.hidden_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("lookback", self.lookback, min=1, cap=MAX_WINDOW, allow_none=True)
        _checks.check_int("delay", self.delay, min=1, cap=MAX_WINDOW, allow_none=True)
        _checks.check_int("interpolate_limit", self.interpolate_limit, min=0, cap=_checks.MAX_COUNT)
        if self.lookback is not None and self.lookback % self.step:
            _checks.fail("lookback", self.lookback, f"a multiple of step={self.step}")
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1 - self.val_frac, min_open=True,
                            max_open=True)
        _checks.check_choice("model", self.model, MODEL_CHOICES)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_int("season", self.season, min=1, cap=MAX_WINDOW, allow_none=True)
        _checks.check_float("alpha", self.alpha, min=0, max=_checks.MAX_PENALTY, allow_none=True)
        _checks.check_int("seeds", self.seeds, min=1, cap=MAX_SEEDS)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


MAX_HISTORY = 10_000      # most past points a forecast request may ask back


@dataclass
class ForecastRequest:
    """One request for a forecast: what ``Forecaster.apply`` and ``POST .../forecast`` take; ``limits`` are what
    the server holds a request to (see rnnkit.config.field)."""

    table: Optional[dict[str, list[Union[float, int, str, None]]]] = field(
        None, "columns like the training table's, oldest row first; null: a missing value (none: the run's own "
              "data)", limits={"max_length": 1000})
    history: int = field(200, "how many past points of the targets to send back", limits={"ge": 0, "le": MAX_HISTORY})

    def __post_init__(self):
        _checks.check_int("history", self.history, min=0)
