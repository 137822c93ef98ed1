"""The multilabel task's data: synthetic clinical-like stays, a user's long-format file, and the features.

**The built-in data is synthetic.** No real clinical time series ships in a package, so
:func:`make_clinical` generates stays with a structure that is known exactly: six vital-sign channels
measured at irregular times (each channel at its own rate, some never), whose labels are temporal patterns
planted in the signals: a transient *episode* on a channel (a bump of 2-6 hours), a *trend* over the stay,
and two conjunctions of patterns ("sepsis-like" = heart-rate episode AND temperature episode). A latent
severity makes labels co-occur and makes sicker stays measured more often, so when a value is missing is
itself informative, as in real records.

A user's own stays come from a long-format file (:func:`read_stay_file`: one row per visit, blank cells for
values not measured, 0/1 label columns per id in the same file or in a second one).

The features (:func:`features`), as in Lipton et al. 2015: each stay **resampled** to a grid of
``grid_step`` slots (mean of the observations in each slot, NaN where none), one **missingness indicator**
per channel (1 where the slot had no observation), values **imputed** (forward fill, then the training mean
before the first observation) and standardised with the training scales (:func:`channel_scales`).
:class:`Stay`, :func:`resample` and :func:`impute` live in :mod:`rnnkit.datasets.long_format`: the sequence
classifier's ``--time-input grid`` uses the same ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.datasets.files import SPLIT_NAMES, load_table, read_header
from rnnkit.datasets.long_format import Stay, impute, read_long_file, resample, to_stays
from rnnkit.text import pad_sequences

# name, baseline, per-patient spread, measurement noise, episode amplitude, trend amplitude, observations/hour
CHANNELS = (
    ("heart_rate", 80.0, 10.0, 5.0, 40.0, 25.0, 1.0),
    ("systolic_bp", 120.0, 12.0, 8.0, -35.0, -30.0, 0.7),
    ("resp_rate", 16.0, 3.0, 2.0, 10.0, 8.0, 0.6),
    ("temperature", 37.0, 0.3, 0.2, 2.0, 1.2, 0.25),
    ("spo2", 97.0, 1.0, 1.0, -8.0, -6.0, 0.8),
    ("glucose", 110.0, 15.0, 10.0, 90.0, 70.0, 0.15),
)
CHANNEL_NAMES = tuple(c[0] for c in CHANNELS)
LABEL_NAMES = tuple(f"{c}_{kind}" for c in CHANNEL_NAMES for kind in ("episode", "trend")) + (
    "sepsis_like", "respiratory_failure")
AUX_NAMES = tuple(f"{c}_episode_late" for c in CHANNEL_NAMES)


def make_clinical(n: int, seed: int = 0, min_hours: int = 24, max_hours: int = 48,
                  ) -> tuple[list[Stay], np.ndarray, np.ndarray]:
    """``n`` synthetic stays -> (stays, labels (n, 14) 0/1, auxiliary targets (n, 6) 0/1); see the module doc."""
    _checks.check_int("n", n, min=1)
    rng = np.random.default_rng(seed)
    C = len(CHANNELS)
    stays, labels, aux = [], [], []
    for _ in range(n):
        hours = float(rng.integers(min_hours, max_hours + 1))
        severity = rng.uniform()
        p = 0.1 + 0.35 * severity                                   # sicker stays have more patterns
        episode = rng.uniform(size=C) < p
        trend = rng.uniform(size=C) < p
        centre = rng.uniform(2.0, hours - 2.0, size=C)              # where each episode peaks
        width = rng.uniform(1.0, 3.0, size=C)                       # its half-width, hours
        times, chans, values = [], [], []
        for c, (_, base, spread, noise, amp_ep, amp_tr, rate) in enumerate(CHANNELS):
            if rng.uniform() < 0.08:
                continue                                            # this channel was never measured
            # Informative missingness: sicker stays are measured more often.
            m = rng.poisson(rate * hours * (0.6 + 0.8 * severity))
            t = np.sort(rng.uniform(0.0, hours, size=m))
            level = base + spread * rng.normal()
            v = level + noise * rng.normal(size=m)
            if episode[c]:
                v += amp_ep * np.exp(-0.5 * ((t - centre[c]) / width[c]) ** 2)
            if trend[c]:
                v += amp_tr * t / hours
            times.append(t)
            chans.append(np.full(m, c))
            values.append(v)
        stays.append(Stay(np.concatenate(times) if times else np.zeros(0),
                          np.concatenate(chans).astype(np.int64) if chans else np.zeros(0, np.int64),
                          np.concatenate(values) if values else np.zeros(0), hours))
        own = [x for c in range(C) for x in (episode[c], trend[c])]
        labels.append(own + [episode[0] and episode[3], trend[2] and trend[4]])
        aux.append([episode[c] and centre[c] > hours / 2 for c in range(C)])
    return stays, np.array(labels, dtype=np.float32), np.array(aux, dtype=np.float32)


MAX_STAYS = _checks.MAX_COUNT      # synthetic stays made at once (the default makes 3,000)
SYNTHETIC_SOURCE = "SYNTHETIC clinical-like stays (make_clinical), not real patients"


@dataclass
class SyntheticConfig:
    num_stays: int = field(3000, "SYNTHETIC clinical-like stays to generate (not real patients)")
    data_seed: int = field(0, "seed of the synthetic data generator")
    val_frac: float = field(0.1, "share of the stays held out for validation (best epoch, early stopping)")
    test_frac: float = field(0.2, "share of the stays held out for the test metrics")

    def __post_init__(self):
        _checks.check_int("num_stays", self.num_stays, min=1, cap=MAX_STAYS)
        _checks.check_int("data_seed", self.data_seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1, max_open=True)
        if self.val_frac + self.test_frac >= 1:
            _checks.fail("val_frac + test_frac", self.val_frac + self.test_frac,
                         "less than 1 (something must be left to train on)")


def synthetic_splits(scfg: SyntheticConfig) -> dict[str, tuple[list[Stay], np.ndarray, np.ndarray]]:
    """Generate the stays and cut them in order: {"train", "val", "test"} -> (stays, labels, aux targets)."""
    stays, Y, aux = make_clinical(scfg.num_stays, seed=scfg.data_seed)
    n = len(stays)
    a, b = int((1 - scfg.val_frac - scfg.test_frac) * n), int((1 - scfg.test_frac) * n)
    return {name: (stays[i:j], Y[i:j], aux[i:j]) for name, i, j in (("train", 0, a), ("val", a, b), ("test", b, n))}


def synthetic_info(scfg: SyntheticConfig) -> dict[str, Any]:
    """What config.json's ``data`` says about the synthetic data a run was trained on."""
    return {"source": SYNTHETIC_SOURCE, "synthetic": True, **dataclasses.asdict(scfg)}


@dataclass
class FileConfig:
    """Where the stays and their labels are in a user's files (``rnnkit classify multilabel train --series``)."""

    series: str | None = field(None, "your own stays: a long-format CSV, one row per visit (id, time, channels...; "
                                     "a blank cell is a value not measured); without it, SYNTHETIC stays")
    labels: str | None = field(None, "a CSV of labels per id (the id column and one 0/1 column per label), "
                                     "instead of label columns in --series")
    label_cols: list[str] = field([], "the 0/1 label columns (in --series, or in --labels, where none given "
                                      "means every column but the id)")
    aux_cols: list[str] = field([], "0/1 auxiliary targets, trained with --aux-weight and never evaluated")
    id_col: str = field("id", "stay id column")
    step_col: str | None = field("step", "time column: numbers (e.g. hours since admission) or ISO timestamps "
                                         "(read as hours)")
    channels: list[str] = field([], "the input columns (none given: every column but the id, time, label and "
                                    "split columns)")
    exclude: list[str] = field([], "columns to leave out of the inputs (e.g. one that gives the outcome away)")
    split_col: str | None = field(None, "a column saying which stays are train, val or test (see --split-names)")
    split_names: str = field(SPLIT_NAMES, "the values of --split-col for training, validation and test rows")
    split_seed: int = field(0, "seed of the random split of the stays (when no --split-col; 0 to "
                               f"{_checks.MAX_SEED:,})")


@dataclass
class StayFile:
    """Stays read from a user's file, with their 0/1 labels (None when the file has none)."""

    ids: list[str]
    stays: list[Stay]
    Y: np.ndarray | None       # (N, L) float32 0/1
    aux: np.ndarray | None     # (N, A) float32 0/1
    labels: list[str]
    channels: list[str]
    split: np.ndarray | None   # (N,) 0 train / 1 val / 2 test
    categories: dict[str, list[str]]
    report: list[str]


def _zero_one(values, column: str, source: str, ids) -> np.ndarray:
    """Label values as 0/1 floats (0, 1, true, false in any case); anything else is refused, naming the stay."""
    out = np.zeros(len(values), dtype=np.float32)
    for i, v in enumerate(values):
        t = str(v).strip().lower()
        if t in ("1", "1.0", "true"):
            out[i] = 1.0
        elif t not in ("0", "0.0", "false"):
            raise ValueError(f"{source}: stay {ids[i]!r} has {str(v)!r} in label column {column!r}; expected 0 or 1")
    return out


def read_stay_file(cfg: FileConfig, *, grid_step: float = 1.0, categories: dict[str, list[str]] | None = None,
                   labelled: bool = True, series: str | None = None, labels: str | None = None) -> StayFile:
    """Read the stays of ``series`` (default ``cfg.series``) with their labels from the label columns or from
    ``labels`` (default ``cfg.labels``); ``categories``: a trained model's one-hot values. ``labelled=False``
    reads a file to predict (its labels are used when it has them)."""
    path = series or cfg.series
    label_file = labels if series else (labels or cfg.labels)
    from_rows = [] if label_file else list(cfg.label_cols) + list(cfg.aux_cols)
    if labelled and not label_file and not cfg.label_cols:
        _checks.fail("label_cols", [], "the names of the 0/1 label columns of --series, or --labels FILE with "
                                       "the labels per id")
    if not labelled and from_rows:
        # A file to predict may lack the label columns: read the ones it has.
        from_rows = [c for c in from_rows if c in read_header(path)]
    # The label, auxiliary and split columns of the training file are never inputs.
    data = read_long_file(path, id_col=cfg.id_col, step_col=cfg.step_col, label_cols=from_rows,
                          channels=cfg.channels, exclude=cfg.exclude, split_col=cfg.split_col if labelled else None,
                          split_names=cfg.split_names, categories=categories,
                          ignore=[*cfg.label_cols, *cfg.aux_cols, *([cfg.split_col] if cfg.split_col else [])])
    ids = data.ids
    table: dict[str, np.ndarray] = {c: data.labels[c] for c in from_rows}
    if label_file:
        per_id = load_table(label_file)
        if cfg.id_col not in per_id:
            _checks.fail("id_col", cfg.id_col, f"a column of the labels file {label_file}; its columns are: "
                                               f"{', '.join(per_id)}")
        wanted = list(cfg.label_cols) or [c for c in per_id if c != cfg.id_col and c not in cfg.aux_cols]
        for c in wanted + list(cfg.aux_cols):
            if c not in per_id:
                _checks.fail("label_cols", c, f"a column of the labels file {label_file}; its columns are: "
                                              f"{', '.join(per_id)}")
        row_of = {str(v).strip(): i for i, v in enumerate(per_id[cfg.id_col])}
        missing = [s for s in ids if s not in row_of]
        if missing:
            raise ValueError(f"{label_file}: no labels for {len(missing)} stay(s) of {path}, e.g. "
                             f"{', '.join(map(repr, missing[:5]))}; expected one row per stay id")
        rows = np.array([row_of[s] for s in ids], dtype=np.int64)
        table = {c: np.asarray(per_id[c])[rows] for c in wanted + list(cfg.aux_cols)}
        label_names = wanted
    else:
        label_names = list(cfg.label_cols)
    source = label_file or path
    have = label_names and all(c in table for c in label_names)
    Y = np.stack([_zero_one(table[c], c, source, ids) for c in label_names], axis=1) if have else None
    A = (np.stack([_zero_one(table[c], c, source, ids) for c in cfg.aux_cols], axis=1)
         if cfg.aux_cols and all(c in table for c in cfg.aux_cols) else None)
    return StayFile(ids, to_stays(data.times, data.values, grid_step), Y, A, label_names, data.channels,
                    data.split, data.categories, data.report)


def file_splits(stays: StayFile, val_frac: float, test_frac: float, seed: int, source: str,
                ) -> dict[str, np.ndarray]:
    """{"train", "val", "test"} -> stay indices: the split column's, or a random split with ``seed``."""
    n = len(stays.ids)
    if stays.split is not None:
        parts = {name: np.flatnonzero(stays.split == k) for k, name in enumerate(("train", "val", "test"))}
    else:
        order = np.random.default_rng(seed).permutation(n)
        n_test, n_val = math.ceil(test_frac * n), math.ceil(val_frac * n)
        parts = {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
                 "train": np.sort(order[n_test + n_val:])}
    if not len(parts["train"]):
        raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: {source} has {n} stay(s), which leaves "
                         f"none to train on; expected more stays, or smaller --val-frac/--test-frac")
    return parts


def subset(stays: StayFile, idx: np.ndarray) -> tuple[list[Stay], np.ndarray, np.ndarray | None]:
    return ([stays.stays[i] for i in idx], stays.Y[idx],
            None if stays.aux is None else stays.aux[idx])


# ---------------------------------------------------------------------------------------------------------
# The features: what the network reads
# ---------------------------------------------------------------------------------------------------------

def channel_scales(stays: list[Stay], num_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per channel over every training observation (a channel never measured: 0 and 1)."""
    vals = np.concatenate([s.values for s in stays])
    chans = np.concatenate([s.channels for s in stays])
    mean = np.array([vals[chans == c].mean() if (chans == c).any() else 0.0 for c in range(num_channels)])
    std = np.array([vals[chans == c].std() if (chans == c).sum() > 1 else 1.0 for c in range(num_channels)])
    return mean, np.where(std > 1e-8, std, 1.0)


def features(stays: list[Stay], mean: np.ndarray, std: np.ndarray, grid_step: float,
             ) -> tuple[np.ndarray, np.ndarray]:
    """-> (N, T, 2C) standardised values then missing indicators, padded at the end; (N,) lengths."""
    C = len(mean)
    rows = []
    for s in stays:
        values, missing = impute(resample(s, C, grid_step), mean)
        rows.append(np.concatenate([(values - mean) / std, missing], axis=1))
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    return pad_sequences(rows, dtype="float32", padding="post"), lengths          # (N, T, 2C)
