"""Data for sequence classification: readers for user files, duplicate removal and splits.

Two kinds of input, one shape for both (``Split``: inputs ``X`` and string labels ``y``):

* **text**: a list of strings, from a named dataset (``imdb``, ``rotten-tomatoes``) or a CSV file with a
  text column and a label column. Empty texts are skipped and counted.
* **series**: a list of float32 arrays, one (T_i, C) array per sequence (lengths may differ), from a named
  dataset (``basic-motions``), a UEA/UCR ``.ts`` file (read by :mod:`rnnkit.datasets.ts`), or a
  long-format CSV with one row per time step (or per visit)::

      id,step,ax,ay,az,label        # the id column groups rows into sequences, step orders them,
      s1,0,0.1,0.3,9.8,walk         # every other column except the label is a channel
      s1,1,0.2,0.2,9.7,walk

  Long-format files as clinical records write them are read too (:func:`read_long_file`): pick or drop
  columns (``channels``, ``exclude``: a column that gives the outcome away must be easy to leave out), a
  column of text values (a ward, a drug) is one-hot encoded into one 0/1 channel per value, a blank cell is
  a value not measured at that visit, and the time column (numbers or ISO timestamps, read as hours) can
  be an input: the time elapsed since the previous visit (``time_input="elapsed"``), or the visits put on a
  regular grid with forward filling and missingness indicators (``time_input="grid"``, the same
  :func:`resample` and :func:`impute` as the multilabel mode).

Errors name the file and line (non-numeric or infinite sensor values, ragged rows, a label that marks a
missing value such as NaN, inf or NA, a column named twice in the header) so the user can fix the file.

Splits, in this order of preference:

* the split the user already has: a split column (``split_col``, values ``train``/``val``/``test`` or
  the names given in ``split_names``), a separate test file (``test_csv``/``test_series``), or a ``.ts``
  pair ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` (the second is found next to the first); validation rows are
  then taken out of the training rows when the user gave none (``val_frac`` of them);
* a dataset's own split (BasicMotions' train/test);
* otherwise duplicates are removed first (the same text in train and test would inflate the test score)
  and the rest is split stratified by class with a fixed seed, so every run of every model sees the same
  test set. A set too small to stratify (more classes than rows in a cut) is split at random with a
  warning that names ``--val-frac``; a class that would then be missing from training is an error that
  says what to change.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rnnkit import _checks
from rnnkit.datasets import series as series_prep
from rnnkit.datasets.files import MISSING, check_unique_header, missing_label, read_text
from rnnkit.datasets.ts import parse_number, read_ts

TEXT_DATASETS = ("imdb", "rotten-tomatoes")
# Series with the archive's own train/test split (UEA/UCR sets in the aeon wheel; see rnnkit data list).
SERIES_DATASETS = ("basic-motions", "arrow-head", "gun-point", "italy-power-demand", "osu-leaf", "acsf1")
TIME_INPUTS = ("none", "elapsed", "grid")
SPLIT_NAMES = "train,val,test"


@dataclass
class Split:
    """Inputs and labels of one part of the data: ``X`` is a list of str or of (T, C) float32 arrays."""

    X: list
    y: np.ndarray   # (N,) labels as str

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ClassificationData:
    """The train/validation/test parts plus what was done to the data on the way (for the run report)."""

    kind: str                        # "text" or "series"
    train: Split
    val: Split
    test: Split
    source: str                      # dataset name or file path
    stats: dict[str, Any] = field(default_factory=dict)
    encoding: dict[str, Any] = field(default_factory=dict)   # how a long-format file became inputs

    def summary(self) -> str:
        counts = ", ".join(f"{k} {len(getattr(self, k))}" for k in ("train", "val", "test"))
        extra = ", ".join(f"{k} {v}" for k, v in self.stats.items() if isinstance(v, (int, float, str)))
        return f"{self.source} ({self.kind}): {counts}" + (f"; {extra}" if extra else "")


def _open_csv(path: Path, encoding: str, what: str):
    """(csv reader, stripped header) of a CSV/TSV file; the delimiter follows the extension."""
    if not path.is_file():
        raise FileNotFoundError(f"{what}={str(path)!r}: no such file")
    text = read_text(path, encoding)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return reader, [h.strip() for h in (next(reader, None) or [])]


def read_header(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The column names of a CSV/TSV file (for a file to predict, which may lack the label columns)."""
    return _open_csv(Path(path), encoding, "file")[1]


def _require_columns(header: list[str], path: Path, named: Sequence[tuple[str, str | None]]) -> None:
    for name, col in named:
        if col is not None and col not in header:
            raise ValueError(f"{name}={col!r}: {path} has no such column; its columns are: {', '.join(header)}")


def parse_split_names(split_names: str) -> tuple[str, str, str]:
    """``"train,dev,test"`` -> the values that mark training, validation and test rows."""
    names = tuple(n.strip() for n in str(split_names).split(","))
    if len(names) != 3 or not all(names) or len(set(names)) != 3:
        _checks.fail("split_names", split_names, "three different names for the training, validation and test "
                                                 "rows, separated by commas, e.g. train,dev,test")
    return names  # type: ignore[return-value]


def _check_split_value(value: str, names: tuple[str, str, str], path: Path, line: int, column: str) -> None:
    if value not in names:
        raise ValueError(f"{path}: line {line}: split {value!r} in column {column!r} is not one of "
                         f"{', '.join(names)}; fix the row, or name the values with --split-names "
                         f"TRAIN,VAL,TEST (now {','.join(names)})")


# ----------------------------------------------------------------------------- text

def read_text_csv(path: str | Path, text_col: str, label_col: str, encoding: str = "utf-8",
                  ) -> tuple[list[str], np.ndarray, int]:
    """Texts and labels from a CSV/TSV with a header; returns (texts, labels, empty_texts_skipped).

    A missing column is an error that lists the columns the file has.
    """
    texts, labels, empty, _ = read_text_rows(path, text_col, label_col, encoding)
    return texts, labels, empty


def read_text_rows(path: str | Path, text_col: str, label_col: str, encoding: str = "utf-8",
                   split_col: str | None = None, split_names: str = SPLIT_NAMES,
                   ) -> tuple[list[str], np.ndarray, int, np.ndarray | None]:
    """:func:`read_text_csv` plus each row's value in ``split_col`` (None without one); a value that is
    not one of ``split_names`` is refused with its file and line."""
    path = Path(path)
    reader, header = _open_csv(path, encoding, "csv")
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row naming the columns")
    _require_columns(header, path, (("text_col", text_col), ("label_col", label_col), ("split_col", split_col)))
    check_unique_header(header, [c for c in (text_col, label_col, split_col) if c], path)
    names = parse_split_names(split_names) if split_col else None
    ti, li = header.index(text_col), header.index(label_col)
    texts, labels, splits, empty = [], [], [], 0
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, the header has {len(header)}")
        t, lab = row[ti].strip(), row[li].strip()
        if not t:
            empty += 1
            continue
        if not lab:
            raise ValueError(f"{path}: line {reader.line_num}: empty label in column {label_col!r}")
        _check_label(lab, path, reader.line_num, label_col)
        if names:
            value = row[header.index(split_col)].strip()
            _check_split_value(value, names, path, reader.line_num, split_col)
            splits.append(names.index(value))
        texts.append(t)
        labels.append(lab)
    split = np.array(splits, dtype=np.int64) if names else None     # 0 train, 1 val, 2 test
    return texts, np.array(labels, dtype=str), empty, split


def _check_label(label: str, path: Path, line: int, column: str) -> None:
    if missing_label(label):
        raise ValueError(f"{path}: line {line}: label {label!r} in column {column!r} marks a missing value, "
                         f"not a class (NaN, inf, NA and null are refused); expected a class name: fix or "
                         f"remove the row")


def drop_empty_texts(texts: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray, int]:
    keep = [i for i, t in enumerate(texts) if t.strip()]
    return [texts[i] for i in keep], labels[keep], len(texts) - len(keep)


def first_copies(texts: list[str], labels: np.ndarray) -> tuple[list[int], int]:
    """Indices of the first copy of each text (compared after collapsing white space), and how many of the
    other copies had a label different from the kept copy's."""
    first: dict[str, str] = {}
    keep, conflicting = [], 0
    for i, t in enumerate(texts):
        key = " ".join(t.split())
        if key in first:
            conflicting += first[key] != labels[i]
            continue
        first[key] = labels[i]
        keep.append(i)
    return keep, conflicting


def remove_duplicates(texts: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray, int, int]:
    """Keep the first of each text (compared after collapsing white space).

    Returns (texts, labels, duplicates_removed, conflicting): ``conflicting`` counts duplicates whose
    label differed from the kept copy's (these are removed too; their true label is unknown).
    """
    keep, conflicting = first_copies(texts, labels)
    return [texts[i] for i in keep], labels[keep], len(texts) - len(keep), conflicting


# ----------------------------------------------------------------------------- series

def _number(value: str, path: Path, line: int, column: str) -> float:
    return parse_number(value, path, line, column, missing="leave it blank to mark it missing")


def _is_number(value: str) -> bool:
    v = value.strip()
    if v in MISSING or v == "?":
        return True
    try:
        float(v)
        return True
    except ValueError:
        return False


@dataclass
class LongFile:
    """A long-format file read for classification: one entry per sequence (per id), its rows in time order."""

    ids: list[str]
    times: list[np.ndarray]          # (M_i,) float64: the step column (hours for timestamps), sorted
    values: list[np.ndarray]         # (M_i, C) float32, NaN where a cell was blank (not measured)
    channels: list[str]              # C names; a one-hot channel is named "column=value"
    labels: dict[str, np.ndarray]    # label column -> (N,) str, one value per sequence
    split: np.ndarray | None         # (N,) 0 train / 1 val / 2 test, from split_col (None without one)
    categories: dict[str, list[str]]   # text column -> its values, in the order of its one-hot channels
    report: list[str]                # what was chosen, dropped and encoded, one line each


def read_long_file(path: str | Path, *, id_col: str = "id", step_col: str | None = "step",
                   label_cols: Sequence[str] = ("label",), channels: Sequence[str] = (),
                   exclude: Sequence[str] = (), split_col: str | None = None, split_names: str = SPLIT_NAMES,
                   categories: dict[str, list[str]] | None = None, ignore: Sequence[str] = (),
                   encoding: str = "utf-8", what: str = "series") -> LongFile:
    """Read a long-format CSV/TSV: rows grouped by ``id_col`` (in order of first appearance), sorted by
    ``step_col`` (None: file order).

    The channels are ``channels`` when given, else every column but the id, step, label, split and
    ``exclude`` columns. A column whose values are all text is one-hot encoded (its values listed in the
    report); a column mixing numbers and text is refused at its first text value. ``categories`` (from a
    trained model) fixes the one-hot columns: a value not seen in training gets all zeros, and is counted.
    ``ignore``: columns that are never inputs when the file has them (a trained model's label and split
    columns, in a file to predict). Each sequence must carry one value in each label column and in the
    split column.
    """
    path = Path(path)
    reader, header = _open_csv(path, encoding, what)
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row: id, step, channels..., label")
    named = [("id_col", id_col), ("step_col", step_col), ("split_col", split_col)]
    named += [("label_cols" if len(label_cols) > 1 else "label_col", c) for c in label_cols]
    named += [("channels", c) for c in channels] + [("exclude", c) for c in exclude]
    _require_columns(header, path, named)
    roles = {id_col, step_col, split_col, *label_cols}
    taken = [c for c in channels if c in roles]
    if taken:
        _checks.fail("channels", list(channels), f"input columns, not the id, step, label or split column "
                                                 f"({', '.join(taken)})")
    chosen = list(channels) if channels else [h for h in header if h not in roles and h not in exclude
                                              and h not in ignore]
    check_unique_header(header, [c for c in roles if c] + chosen, path)
    if not chosen:
        raise ValueError(f"{path}: no channel columns besides {', '.join(repr(c) for c in roles if c)}"
                         + (f" and the excluded {', '.join(exclude)}" if exclude else ""))
    names = parse_split_names(split_names) if split_col else None
    rows, lines = [], []
    for row in reader:
        if not row or not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}: line {reader.line_num}: ragged row with {len(row)} fields; the header has "
                             f"{len(header)} ({', '.join(header)})")
        rows.append(row)
        lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    report = []
    if exclude:
        report.append(f"excluded columns: {', '.join(exclude)}")
    # Per-sequence values (labels, split) must be the same on every row of the sequence.
    col = {c: header.index(c) for c in header}
    per_id: dict[str, dict[str, tuple[str, int]]] = {}
    for row, line in zip(rows, lines):
        sid = row[col[id_col]].strip()
        seen = per_id.setdefault(sid, {})
        for c in (*label_cols, *([split_col] if split_col else [])):
            v = row[col[c]].strip()
            if c != split_col:
                if not v:
                    raise ValueError(f"{path}: line {line}: empty label in column {c!r}")
                _check_label(v, path, line, c)
            else:
                _check_split_value(v, names, path, line, c)
            if c in seen and seen[c][0] != v:
                kind = "split" if c == split_col else "label"
                raise ValueError(f"{path}: line {line}: sequence {sid!r} has {kind} {v!r} here but {seen[c][0]!r} "
                                 f"on line {seen[c][1]}; expected one {kind} per sequence")
            seen.setdefault(c, (v, line))
    # Each chosen column: numbers, or text to one-hot encode.
    categories = dict(categories) if categories is not None else None
    encoded: list[tuple[str, list[str] | None]] = []           # (column, its categories or None)
    unseen = 0
    for c in chosen:
        cells = [r[col[c]] for r in rows]
        if categories is not None:
            text = c in categories
        else:
            # Text when no cell holds a number and some cell holds text; numbers and text mixed: a typo.
            numeric = [_is_number(v) for v in cells]
            text = not all(numeric) and not any(ok and v.strip() not in MISSING and v.strip() != "?"
                                                for ok, v in zip(numeric, cells))
            if not text and not all(numeric):
                i = numeric.index(False)
                _number(cells[i], path, lines[i], c)               # raises: 'high' is not a number
        if text:
            values = categories[c] if categories is not None else sorted(
                {v.strip() for v in cells if v.strip() not in MISSING})
            if not values:
                raise ValueError(f"{path}: column {c!r} has no values; expected numbers or categories "
                                 f"(leave it out with --exclude {c})")
            encoded.append((c, list(values)))
        else:
            encoded.append((c, None))
    one_hot = {c: v for c, v in encoded if v is not None}
    if one_hot:
        report.append("one-hot encoded: " + "; ".join(f"{c} ({len(v)} values: {', '.join(v[:8])}"
                                                      f"{', ...' if len(v) > 8 else ''})" for c, v in one_hot.items()))
    channel_names = [name for c, vals in encoded for name in ([c] if vals is None else [f"{c}={v}" for v in vals])]
    table = np.full((len(rows), len(channel_names)), np.nan, dtype=np.float32)     # (rows, C)
    j = 0
    for c, vals in encoded:
        if vals is None:
            table[:, j] = [_number(r[col[c]], path, line, c) for r, line in zip(rows, lines)]
            j += 1
            continue
        index = {v: k for k, v in enumerate(vals)}
        for i, r in enumerate(rows):
            v = r[col[c]].strip()
            if v in MISSING:
                continue                                            # not recorded at this visit: NaN
            table[i, j:j + len(vals)] = 0.0
            if v in index:
                table[i, j + index[v]] = 1.0
            else:
                unseen += 1
        j += len(vals)
    if unseen:
        report.append(f"{unseen} value(s) of one-hot encoded columns not seen in training: encoded as all zeros")
    times = _read_times(rows, lines, col, step_col, path)
    order: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        order.setdefault(row[col[id_col]].strip(), []).append(i)
    ids = list(order)
    idx = [np.array(order[s])[np.argsort(times[order[s]], kind="stable")] for s in ids]
    labels = {c: np.array([per_id[s][c][0] for s in ids], dtype=str) for c in label_cols}
    split = np.array([names.index(per_id[s][split_col][0]) for s in ids], dtype=np.int64) if names else None
    return LongFile(ids, [times[i] for i in idx], [table[i] for i in idx], channel_names, labels, split,
                    one_hot, report)


def _read_times(rows: list, lines: list, col: dict, step_col: str | None, path: Path) -> np.ndarray:
    """(rows,) float64 times: numbers as written, ISO timestamps as hours; without a step column, the row order."""
    if step_col is None:
        return np.arange(len(rows), dtype=np.float64)
    cells = [r[col[step_col]].strip() for r in rows]
    if all(_is_number(v) for v in cells):
        out = np.array([_number(v, path, line, step_col) for v, line in zip(cells, lines)], dtype=np.float64)
        bad = np.flatnonzero(np.isnan(out))
        if len(bad):
            raise ValueError(f"{path}: line {lines[bad[0]]}: no value in step column {step_col!r}; expected a "
                             f"number or an ISO timestamp on every row")
        return out
    stamps = series_prep.parse_times(np.array(cells, dtype=object), "step_col",
                                     lambda i: f"{path}: line {lines[i]}", step_col)
    return stamps.astype("datetime64[s]").astype(np.int64) / 3600.0        # hours


def read_long_csv(path: str | Path, label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
                  encoding: str = "utf-8") -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """A long-format CSV (one row per time step) -> (series, labels, channel names): the plain case of
    :func:`read_long_file` (every other column a channel, no time input)."""
    data = read_long_file(path, id_col=id_col, step_col=step_col, label_cols=(label_col,), encoding=encoding)
    return data.values, data.labels[label_col], data.channels


def read_series(path: str | Path, label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """``.ts`` files by extension, anything else as a long-format CSV/TSV."""
    if Path(path).suffix.lower() == ".ts":
        return read_ts(path)
    X, y, _ = read_long_csv(path, label_col, id_col, step_col)
    return X, y


# ----------------------------------------------------------------------------- irregular times as inputs

@dataclass
class Stay:
    """One sequence of irregular observations: times (from 0), channel index and value of each."""

    times: np.ndarray      # (M,) float
    channels: np.ndarray   # (M,) int
    values: np.ndarray     # (M,) float
    hours: float           # length of the stay (the grid covers [0, hours))


def resample(stay: Stay, num_channels: int, step: float = 1.0) -> np.ndarray:
    """Irregular observations -> (T, C) grid of the mean value per slot of ``step`` hours, NaN where a slot has
    none; T = ceil(hours / step). The averaging is :func:`rnnkit.datasets.series.resample`'s."""
    T = max(1, int(np.ceil(stay.hours / step)))
    wide = np.full((len(stay.times), num_channels), np.nan)          # (M, C): each observation in its channel
    wide[np.arange(len(stay.times)), stay.channels] = stay.values
    # The last slot runs to the end of the stay: an observation at t = hours belongs to it.
    times = np.minimum(stay.times, (T - 1) * step)
    _, grid, _ = series_prep.resample(times, wide, freq=step, start=0.0, stop=(T - 1) * step)
    return grid


def impute(grid: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) grid with NaN -> (forward-filled grid, missing indicator); leading gaps get ``fill`` (C,)."""
    missing = np.isnan(grid)
    out = grid.copy()
    for t in range(len(out)):
        prev = out[t - 1] if t > 0 else fill
        out[t] = np.where(missing[t], prev, out[t])
    return out, missing.astype(np.float32)


def to_stays(times: list[np.ndarray], values: list[np.ndarray], step: float = 1.0) -> list[Stay]:
    """Rows of a long-format file (times (M,), values (M, C) with NaN) -> one :class:`Stay` per sequence:
    each non-blank cell is an observation; times count from the sequence's first row; the grid of ``step``
    ends with the slot that holds the last row."""
    stays = []
    for t, v in zip(times, values):
        t = np.asarray(t, dtype=np.float64) - (t[0] if len(t) else 0.0)
        rows, chans = np.nonzero(~np.isnan(v))
        hours = (np.floor(t[-1] / step) + 1) * step if len(t) else step
        stays.append(Stay(t[rows], chans.astype(np.int64), v[rows, chans].astype(np.float64), float(hours)))
    return stays


def time_inputs(data: LongFile, time_input: str = "none", grid_step: float = 1.0,
                step_col: str | None = "step") -> tuple[list[np.ndarray], list[str]]:
    """The sequences of a long-format file as classifier inputs and their channel names.

    ``none``: the rows as they are (the time column only orders them); ``elapsed``: plus one channel, the
    time since the previous row (0 at the first); ``grid``: resampled to slots of ``grid_step``, forward
    filled, plus one missing-indicator channel per channel (what the multilabel mode feeds its LSTM).
    A value still missing (before a channel's first observation) stays NaN: the classifier reads it as
    the channel's training mean.
    """
    _checks.check_choice("time_input", time_input, TIME_INPUTS)
    if time_input == "none":
        return data.values, list(data.channels)
    if time_input == "elapsed":
        name = f"elapsed_{step_col or 'rows'}"
        X = [np.concatenate([v, np.diff(t, prepend=t[:1])[:, None].astype(np.float32)], axis=1)
             for t, v in zip(data.times, data.values)]
        return X, list(data.channels) + [name]
    _checks.check_float("grid_step", grid_step, min=0, min_open=True)
    C = len(data.channels)
    X = []
    for stay in to_stays(data.times, data.values, grid_step):
        filled, missing = impute(resample(stay, C, grid_step), np.full(C, np.nan))
        X.append(np.concatenate([filled, missing], axis=1).astype(np.float32))      # (T, 2C)
    return X, list(data.channels) + [f"missing:{c}" for c in data.channels]


# ----------------------------------------------------------------------------- splits

def check_classes(labels: np.ndarray, source: str, name: str = "labels") -> None:
    classes = np.unique(labels)
    if len(classes) < 2:
        shown = repr(str(classes[0])) if len(classes) else "none"
        raise ValueError(f"{name}: {source} has only one class ({shown}) among {len(labels)} examples; "
                         f"expected at least two classes to classify")


def stratified_split(y: np.ndarray, val_frac: float, test_frac: float, seed: int, source: str = "the data",
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test), each holding every class in about the same proportion.

    Too few examples for the shares are refused with a message naming ``source`` and the shares. Too few
    per class for stratification give a random split instead, with a warning that names the shares; a
    class that the random split leaves out of training is refused, saying what to change."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_test = math.ceil(test_frac * n) if test_frac > 0 else 0            # as scikit-learn rounds them
    n_val = math.ceil(val_frac / (1.0 - test_frac) * (n - n_test)) if val_frac > 0 else 0
    if n - n_test - n_val < 1:
        raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: {source} has {n} example(s), which "
                         f"leaves none to train on after {n_test} for test and {n_val} for validation; "
                         f"expected more examples, or smaller (or zero) --val-frac/--test-frac")
    idx = np.arange(n)
    test = val = np.array([], dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    # Stratifying needs at least two examples of every class in each cut; with fewer, split at random.
    allowed = counts.min() >= 3
    random_cuts = []
    try:
        if test_frac > 0:
            strat = _stratify(y, n_test, allowed)
            random_cuts += [f"test_frac={test_frac:g} ({n_test} rows)"] if strat is None else []
            idx, test = train_test_split(idx, test_size=test_frac, random_state=seed, stratify=strat)
        if val_frac > 0:
            strat = _stratify(y[idx], n_val, allowed)
            random_cuts += [f"val_frac={val_frac:g} ({n_val} rows)"] if strat is None else []
            idx, val = train_test_split(idx, test_size=val_frac / (1.0 - test_frac), random_state=seed + 1,
                                        stratify=strat)
    except ValueError as err:   # a case the checks above missed: still say it in rnnkit's terms
        raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: cannot split the {n} examples of "
                         f"{source} ({err}); expected more examples, or other --val-frac/--test-frac") from None
    if random_cuts:
        why = (f"{len(classes)} classes, the rarest with {counts.min()} example(s)" if not allowed
               else f"{len(classes)} classes")
        missing = sorted(set(classes.tolist()) - set(y[idx].tolist()))
        if missing:
            raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: {source} is too small to split "
                             f"by class ({why}), and the random split leaves class(es) {', '.join(missing)} out "
                             f"of training; expected more examples of them, a smaller --val-frac/--test-frac "
                             f"(0 for none), or a split of your own (--split-col)")
        warnings.warn(f"{source}: too few rows to split by class ({why}); the held-out rows of "
                      f"{' and '.join(random_cuts)} were drawn at random, so some classes may be missing from "
                      f"them (a larger --val-frac/--test-frac or more rows per class keep every class; or give "
                      f"your own split with --split-col)",
                      stacklevel=2)
    return np.sort(idx), np.sort(val), np.sort(test)


def _stratify(labels: np.ndarray, n_cut: int, allowed: bool) -> np.ndarray | None:
    """The labels to stratify a cut of ``n_cut`` examples by, or None for a random cut: a stratified cut
    needs room for every class on both of its sides."""
    room = min(n_cut, len(labels) - n_cut) >= len(np.unique(labels))
    return labels if allowed and room else None


def small_sample(X: list, y: np.ndarray, n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """At most ``n`` examples holding every class (one of each first, the rest at random): for --dry-run."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    firsts = [int(order[np.argmax(y[order] == c)]) for c in np.unique(y)]
    rest = [int(i) for i in order if int(i) not in set(firsts)]
    idx = (firsts + rest)[:max(n, len(firsts))]
    return [X[i] for i in idx], y[idx]


def _take(X: list, y: np.ndarray, idx: np.ndarray) -> Split:
    return Split([X[i] for i in idx], y[idx])


def ts_test_file(path: str | Path) -> Path | None:
    """The ``NAME_TEST.ts`` next to a ``NAME_TRAIN.ts`` (any case), or None."""
    path = Path(path)
    stem = path.name[:-len(path.suffix)] if path.suffix else path.name
    if path.suffix.lower() != ".ts" or not stem.upper().endswith("_TRAIN"):
        return None
    base = stem[:-len("_TRAIN")]
    word = "TEST" if stem.endswith("TRAIN") else "test" if stem.endswith("train") else "Test"
    candidate = path.with_name(f"{base}_{word}{path.suffix}")
    return candidate if candidate.is_file() else None


def _given_split(y: np.ndarray, split: np.ndarray, val_frac: float, seed: int, source: str, stats: dict,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices from the user's split; validation out of training when none is marked."""
    tr, va, te = (np.flatnonzero(split == k) for k in range(3))
    if not len(tr):
        raise ValueError(f"{source}: no training rows in the split column; expected some rows marked as training")
    if not len(va) and val_frac > 0:
        keep, val, _ = stratified_split(y[tr], val_frac, 0.0, seed, f"the training rows of {source}")
        tr, va = tr[keep], tr[val]
        stats["split"] = f"given; validation: val_frac {val_frac:g} of the training rows"
    else:
        stats["split"] = "given"
    return tr, va, te


def load_data(dataset: str | None = None, csv_path: str | None = None, series: str | None = None, *,
              text_col: str = "text", label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
              val_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0, split_col: str | None = None,
              split_names: str = SPLIT_NAMES, test_csv: str | None = None, test_series: str | None = None,
              channels: Sequence[str] = (), exclude: Sequence[str] = (), time_input: str = "none",
              grid_step: float = 1.0) -> ClassificationData:
    """Read one source (exactly one of ``dataset``, ``csv_path``, ``series``) and split it: by the user's own
    split (``split_col``, ``test_csv``/``test_series``, a ``.ts`` pair), the dataset's, or stratified.

    With a split of the user's, ``val_frac`` is the share of the training rows held out for validation when
    no rows are marked for it, and ``test_frac`` is not used. ``channels``, ``exclude``, ``time_input`` and
    ``grid_step`` shape a long-format series file (:func:`read_long_file`, :func:`time_inputs`).
    """
    given = [n for n, v in (("dataset", dataset), ("csv", csv_path), ("series", series)) if v]
    if len(given) != 1:
        _checks.fail("dataset/csv/series", given or None, "exactly one data source: --dataset NAME, --csv FILE "
                     "(text) or --series FILE (.ts or long-format CSV)")
    _checks.check_float("val_frac", val_frac, min=0, max=1, max_open=True)
    _checks.check_float("test_frac", test_frac, min=0, max=1, max_open=True)
    if val_frac + test_frac >= 1:
        _checks.fail("val_frac + test_frac", val_frac + test_frac, "less than 1 (something must be left to train on)")
    if test_csv and not csv_path:
        _checks.fail("test_csv", test_csv, "a test file of texts, given with --csv (for series: --test-series)")
    if test_series and not series:
        _checks.fail("test_series", test_series, "a test file of series, given with --series (for texts: --test-csv)")
    if split_col and (test_csv or test_series or dataset):
        _checks.fail("split_col", split_col, "no split column together with --dataset, --test-csv or --test-series "
                                             "(one way to say which rows are for testing)")
    _checks.check_choice("time_input", time_input, TIME_INPUTS)
    stats: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    split = None
    test_part: Split | None = None
    if dataset:
        from rnnkit import datasets

        _checks.check_choice("dataset", dataset, TEXT_DATASETS + SERIES_DATASETS)
        data = datasets.load(dataset)
        if dataset in SERIES_DATASETS:
            # The dataset's own split is the benchmark's; validation comes out of its training part.
            X_tr, y_tr = list(data["X_train"]), np.asarray(data["y_train"], dtype=str)
            tr, va, _ = stratified_split(y_tr, val_frac / (1 - test_frac) if val_frac else 0.0, 0.0, seed,
                                         f"the training part of {dataset}")
            stats["split"] = "given train/test; validation taken from train"
            return ClassificationData("series", _take(X_tr, y_tr, tr), _take(X_tr, y_tr, va),
                                      Split(list(data["X_test"]), np.asarray(data["y_test"], dtype=str)),
                                      dataset, stats)
        X, y = list(data["text"]), np.asarray(data["label"]).astype(str)
        kind = "text"
        # The converter already dropped the duplicates it found when the dataset was cached: count them.
        stats["duplicates_removed_when_cached"] = int(
            (datasets.cached_info(dataset) or {}).get("stats", {}).get("duplicates_removed", 0))
    elif csv_path:
        X, y, stats["empty_texts_skipped"], split = read_text_rows(csv_path, text_col, label_col,
                                                                   split_col=split_col, split_names=split_names)
        kind = "text"
        if test_csv:
            Xt, yt, empty = read_text_csv(test_csv, text_col, label_col)
            stats["empty_texts_skipped"] += empty
            test_part = Split(Xt, yt)
    else:
        kind = "series"
        test_series = test_series or ts_test_file(series)
        if Path(series).suffix.lower() == ".ts":
            if split_col:
                _checks.fail("split_col", split_col, "a long-format CSV; a .ts file has no columns (give the test "
                                                     "series as NAME_TEST.ts next to NAME_TRAIN.ts, or --test-series)")
            X, y = read_ts(series)
        else:
            long = read_long_file(series, id_col=id_col, step_col=step_col, label_cols=(label_col,),
                                  channels=channels, exclude=exclude, split_col=split_col, split_names=split_names)
            X, names = time_inputs(long, time_input, grid_step, step_col)
            y, split = long.labels[label_col], long.split
            encoding = {"channel_names": names, "categories": long.categories, "report": long.report}
        if test_series:
            test_part = Split(*_read_series_like(test_series, encoding, id_col=id_col, step_col=step_col,
                                                 label_col=label_col, channels=channels, exclude=exclude,
                                                 time_input=time_input, grid_step=grid_step)[:2])
    source = dataset or csv_path or series
    if kind == "text":
        keep = [i for i, t in enumerate(X) if t.strip()]
        stats["empty_texts_skipped"] = stats.get("empty_texts_skipped", 0) + len(X) - len(keep)
        X, y, split = [X[i] for i in keep], y[keep], None if split is None else split[keep]
        # A text given twice keeps its first copy, whatever the split says (no copy in train and test).
        keep, stats["conflicting_duplicates"] = first_copies(X, y)
        stats["duplicates_removed"] = len(X) - len(keep)
        X, y, split = [X[i] for i in keep], y[keep], None if split is None else split[keep]
        if test_part is not None:
            seen = {" ".join(t.split()) for t in X}
            kept = [i for i, t in enumerate(test_part.X) if " ".join(t.split()) not in seen]
            stats["test_texts_also_in_training_removed"] = len(test_part) - len(kept)
            test_part = _take(test_part.X, test_part.y, np.array(kept, dtype=np.int64))
    if not len(y):
        raise ValueError(f"{source}: no examples left to train on")
    check_classes(y, str(source), "labels" if dataset else f"label_col={label_col!r}")
    if split is not None:
        tr, va, te = _given_split(y, split, val_frac, seed, str(source), stats)
        stats["split"] += f" by column {split_col!r}"
        parts = [_take(X, y, i) for i in (tr, va, te)]
    elif test_part is not None:
        tr, va, _ = stratified_split(y, val_frac, 0.0, seed, str(source))
        stats["split"] = (f"given: test rows from {test_csv or test_series}" +
                          (f"; validation: val_frac {val_frac:g} of {source}" if val_frac else ""))
        parts = [_take(X, y, tr), _take(X, y, va), test_part]
    else:
        tr, va, te = stratified_split(y, val_frac, test_frac, seed, str(source))
        stats["split"] = f"stratified, seed {seed}: val {val_frac:g}, test {test_frac:g}"
        parts = [_take(X, y, i) for i in (tr, va, te)]
    unknown = sorted(set(parts[2].y.tolist()) - set(parts[0].y.tolist()))
    if unknown:
        warnings.warn(f"{source}: test rows of class(es) {', '.join(unknown[:5])} that no training row has; the "
                      f"model cannot predict them", stacklevel=2)
    return ClassificationData(kind, *parts, str(source), stats, encoding)


def _read_series_like(path: str | Path, encoding: dict[str, Any], *, id_col: str, step_col: str | None,
                      label_col: str | None, channels: Sequence[str], exclude: Sequence[str], time_input: str,
                      grid_step: float, ignore: Sequence[str] = ()) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Series of another file (a test file, or a file to predict) encoded as the training file was:
    (inputs, labels (empty without a label column), ids or row numbers)."""
    if Path(path).suffix.lower() == ".ts":
        X, y = read_ts(path)
        return X, y, [str(i + 1) for i in range(len(X))]
    long = read_long_file(path, id_col=id_col, step_col=step_col, label_cols=(label_col,) if label_col else (),
                          channels=channels, exclude=exclude, categories=encoding.get("categories") or {},
                          ignore=ignore, what="series")
    X, names = time_inputs(long, time_input, grid_step, step_col)
    want = encoding.get("channel_names")
    if want and names != want:
        raise ValueError(f"{path}: its channels are {', '.join(names)}; the model was trained on "
                         f"{', '.join(want)}; expected the same columns")
    y = long.labels[label_col] if label_col else np.array([], dtype=str)
    return X, y, long.ids


def read_series_for(data: dict[str, Any], path: str | Path, labelled: bool = True,
                    ) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """A series file read as a trained classifier's data (``data``: its run's data record) was read:
    same columns, one-hot values and time input. -> (inputs, labels, ids or row numbers)."""
    label_col = trained_label = data.get("label_col", "label")
    if not labelled and Path(path).suffix.lower() != ".ts":
        label_col = label_col if label_col in read_header(path) else None
    return _read_series_like(path, data.get("encoding") or {}, id_col=data.get("id_col", "id"),
                             step_col=data.get("step_col", "step"), label_col=label_col,
                             channels=data.get("channels") or (), exclude=data.get("exclude") or (),
                             time_input=data.get("time_input", "none"), grid_step=data.get("grid_step", 1.0),
                             ignore=[c for c in (trained_label, data.get("split_col")) if c])
