"""Long-format series files and irregular observations: the readers behind ``--series FILE.csv``.

A long-format file has one row per time step (or per visit), grouped into sequences by an id column::

    id,step,ax,ay,az,label        # the id column groups rows into sequences, step orders them,
    s1,0,0.1,0.3,9.8,walk         # every other column except the label is a channel
    s1,1,0.2,0.2,9.7,walk

:func:`read_long_file` reads them as clinical records write them too: pick or drop columns (``channels``,
``exclude``: a column that gives the outcome away must be easy to leave out), a column of text values (a
ward, a drug) is one-hot encoded into one 0/1 channel per value, a blank cell is a value not measured at
that visit, and the time column (numbers or ISO timestamps, read as hours) orders the rows. Errors name the
file and line (a non-numeric or infinite value, a ragged row, a label that marks a missing value, two
labels or splits for one sequence).

Irregular observations (a :class:`Stay`: times, channels and values) become a regular grid of slots
(:func:`resample`), forward filled with missingness indicators (:func:`impute`); :func:`time_inputs` turns
a long-format file into classifier inputs: the rows as they are, plus the time elapsed since the previous
row, or on that grid. The sequence classifier's ``--time-input`` and the multilabel task use the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit._checks import check_choice, check_float, fail
from rnnkit.datasets.files import (MISSING, SPLIT_NAMES, check_label, check_split_value, check_unique_header,
                                   open_csv, parse_split_names, require_columns)
from rnnkit.datasets.series import forward_fill, parse_times
from rnnkit.datasets.series import resample as series_resample
from rnnkit.datasets.ts import parse_number

# How the time column may enter a classifier (see time_inputs).
TIME_INPUTS = ("none", "elapsed", "grid")


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
    reader, header = open_csv(path, encoding, what)
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row: id, step, channels..., label")
    named = [("id_col", id_col), ("step_col", step_col), ("split_col", split_col)]
    named += [("label_cols" if len(label_cols) > 1 else "label_col", c) for c in label_cols]
    named += [("channels", c) for c in channels] + [("exclude", c) for c in exclude]
    require_columns(header, path, named)
    roles = {id_col, step_col, split_col, *label_cols}
    taken = [c for c in channels if c in roles]
    if taken:
        fail("channels", list(channels), f"input columns, not the id, step, label or split column "
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
                check_label(v, path, line, c)
            else:
                check_split_value(v, names, path, line, c)
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
    stamps = parse_times(np.array(cells, dtype=object), "step_col",
                                     lambda i: f"{path}: line {lines[i]}", step_col)
    return stamps.astype("datetime64[s]").astype(np.int64) / 3600.0        # hours


def read_long_csv(path: str | Path, label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
                  encoding: str = "utf-8") -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """A long-format CSV (one row per time step) -> (series, labels, channel names): the plain case of
    :func:`read_long_file` (every other column a channel, no time input)."""
    data = read_long_file(path, id_col=id_col, step_col=step_col, label_cols=(label_col,), encoding=encoding)
    return data.values, data.labels[label_col], data.channels


# ---------------------------------------------------------------------------------------------------------
# Irregular observations: a regular grid, forward filled, with missingness indicators
# ---------------------------------------------------------------------------------------------------------

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
    _, grid, _ = series_resample(times, wide, freq=step, start=0.0, stop=(T - 1) * step)
    return grid


def impute(grid: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) grid with NaN -> (forward-filled grid, missing indicator (T, C) float32); leading gaps get
    ``fill`` (C,)."""
    return forward_fill(grid, fill), np.isnan(grid).astype(np.float32)


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
    check_choice("time_input", time_input, TIME_INPUTS)
    if time_input == "none":
        return data.values, list(data.channels)
    if time_input == "elapsed":
        name = f"elapsed_{step_col or 'rows'}"
        X = [np.concatenate([v, np.diff(t, prepend=t[:1])[:, None].astype(np.float32)], axis=1)
             for t, v in zip(data.times, data.values)]
        return X, list(data.channels) + [name]
    check_float("grid_step", grid_step, min=0, min_open=True)
    C = len(data.channels)
    X = []
    for stay in to_stays(data.times, data.values, grid_step):
        filled, missing = impute(resample(stay, C, grid_step), np.full(C, np.nan))
        X.append(np.concatenate([filled, missing], axis=1).astype(np.float32))      # (T, 2C)
    return X, list(data.channels) + [f"missing:{c}" for c in data.channels]
