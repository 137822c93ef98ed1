"""Data for sequence classification: readers for user files, duplicate removal and splits.

Two kinds of input, one shape for both (``Split``: inputs ``X`` and string labels ``y``):

* **text**: a list of strings, from a named dataset (``imdb``, ``rotten-tomatoes``) or a CSV file with a
  text column and a label column. Empty texts are skipped and counted.
* **series**: a list of float32 arrays, one (T_i, C) array per sequence (lengths may differ), from a named
  dataset (``basic-motions``), a UEA/UCR ``.ts`` file (read by :mod:`rnnkit.datasets.ts`), or a
  long-format CSV with one row per time step::

      id,step,ax,ay,az,label        # the id column groups rows into sequences, step orders them,
      s1,0,0.1,0.3,9.8,walk         # every other column except the label is a channel
      s1,1,0.2,0.2,9.7,walk

Errors name the file and line (non-numeric or infinite sensor values, ragged rows, a label that marks a
missing value such as NaN, inf or NA, a column named twice in the header) so the user can fix the file.

Splits: a dataset's own split is used where it has one (BasicMotions' train/test); otherwise duplicates
are removed first (the same text in train and test would inflate the test score) and the rest is split
stratified by class with a fixed seed, so every run of every model sees the same test set.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.datasets.files import check_unique_header, missing_label, read_text
from rnnkit.datasets.ts import parse_number, read_ts

TEXT_DATASETS = ("imdb", "rotten-tomatoes")
SERIES_DATASETS = ("basic-motions",)


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

    def summary(self) -> str:
        counts = ", ".join(f"{k} {len(getattr(self, k))}" for k in ("train", "val", "test"))
        extra = ", ".join(f"{k} {v}" for k, v in self.stats.items() if isinstance(v, (int, float, str)))
        return f"{self.source} ({self.kind}): {counts}" + (f"; {extra}" if extra else "")


# ----------------------------------------------------------------------------- text

def read_text_csv(path: str | Path, text_col: str, label_col: str, encoding: str = "utf-8",
                  ) -> tuple[list[str], np.ndarray, int]:
    """Texts and labels from a CSV/TSV with a header; returns (texts, labels, empty_texts_skipped).

    A missing column is an error that lists the columns the file has.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"csv={str(path)!r}: no such file")
    text = read_text(path, encoding)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row naming the columns")
    header = [h.strip() for h in header]
    for name, col in (("text_col", text_col), ("label_col", label_col)):
        if col not in header:
            raise ValueError(f"{name}={col!r}: {path} has no such column; its columns are: {', '.join(header)}")
    check_unique_header(header, (text_col, label_col), path)
    ti, li = header.index(text_col), header.index(label_col)
    texts, labels, empty = [], [], 0
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
        texts.append(t)
        labels.append(lab)
    return texts, np.array(labels, dtype=str), empty


def _check_label(label: str, path: Path, line: int, column: str) -> None:
    if missing_label(label):
        raise ValueError(f"{path}: line {line}: label {label!r} in column {column!r} marks a missing value, "
                         f"not a class (NaN, inf, NA and null are refused); expected a class name: fix or "
                         f"remove the row")


def drop_empty_texts(texts: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray, int]:
    keep = [i for i, t in enumerate(texts) if t.strip()]
    return [texts[i] for i in keep], labels[keep], len(texts) - len(keep)


def remove_duplicates(texts: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray, int, int]:
    """Keep the first of each text (compared after collapsing white space).

    Returns (texts, labels, duplicates_removed, conflicting): ``conflicting`` counts duplicates whose
    label differed from the kept copy's (these are removed too; their true label is unknown).
    """
    first: dict[str, str] = {}
    keep, conflicting = [], 0
    for i, t in enumerate(texts):
        key = " ".join(t.split())
        if key in first:
            conflicting += first[key] != labels[i]
            continue
        first[key] = labels[i]
        keep.append(i)
    return [texts[i] for i in keep], labels[keep], len(texts) - len(keep), conflicting


# ----------------------------------------------------------------------------- series

def _number(value: str, path: Path, line: int, column: str) -> float:
    return parse_number(value, path, line, column, missing="leave it blank to mark it missing")


def read_long_csv(path: str | Path, label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
                  encoding: str = "utf-8") -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """A long-format CSV (one row per time step) -> (series, labels, channel names).

    Rows are grouped by ``id_col`` (in order of first appearance) and sorted by ``step_col`` when it is
    given; every other column except the label is a channel. Each sequence must carry one label.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"series={str(path)!r}: no such file")
    text = read_text(path, encoding)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (next(reader, None) or [])]
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row: id, step, channels..., label")
    for name, col in (("id_col", id_col), ("step_col", step_col), ("label_col", label_col)):
        if col is not None and col not in header:
            raise ValueError(f"{name}={col!r}: {path} has no such column; its columns are: {', '.join(header)}")
    check_unique_header(header, header, path)    # every column is used: the channels too
    channels = [h for h in header if h not in (id_col, step_col, label_col)]
    if not channels:
        raise ValueError(f"{path}: no channel columns besides {id_col!r}, {step_col!r}, {label_col!r}")
    ci = [header.index(c) for c in channels]
    rows: dict[str, list[tuple[float, list[float]]]] = {}
    labels: dict[str, str] = {}
    for row in reader:
        if not row or not any(v.strip() for v in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line}: ragged row with {len(row)} fields; the header has "
                             f"{len(header)} ({', '.join(header)})")
        sid = row[header.index(id_col)].strip()
        lab = row[header.index(label_col)].strip()
        if not lab:
            raise ValueError(f"{path}: line {line}: empty label in column {label_col!r}")
        _check_label(lab, path, line, label_col)
        if sid in labels and labels[sid] != lab:
            raise ValueError(f"{path}: line {line}: sequence {sid!r} has label {lab!r} here but "
                             f"{labels[sid]!r} on an earlier line; expected one label per sequence")
        labels[sid] = lab
        step = _number(row[header.index(step_col)], path, line, step_col) if step_col else len(rows.get(sid, []))
        values = [_number(row[i], path, line, c) for i, c in zip(ci, channels)]
        rows.setdefault(sid, []).append((step, values))
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    X = [np.array([v for _, v in sorted(r, key=lambda sv: sv[0])], dtype=np.float32) for r in rows.values()]
    return X, np.array([labels[s] for s in rows], dtype=str), channels


def read_series(path: str | Path, label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """``.ts`` files by extension, anything else as a long-format CSV/TSV."""
    if Path(path).suffix.lower() == ".ts":
        return read_ts(path)
    X, y, _ = read_long_csv(path, label_col, id_col, step_col)
    return X, y


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

    Too few examples for the shares are refused with a message naming ``source`` and the shares; too few
    per class for stratification give a random split instead."""
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
    _, counts = np.unique(y, return_counts=True)
    # Stratifying needs at least two examples of every class in each cut; with fewer, split at random.
    stratify = counts.min() >= 3
    try:
        if test_frac > 0:
            idx, test = train_test_split(idx, test_size=test_frac, random_state=seed,
                                         stratify=_stratify(y, n_test, stratify))
        if val_frac > 0:
            idx, val = train_test_split(idx, test_size=val_frac / (1.0 - test_frac), random_state=seed + 1,
                                        stratify=_stratify(y[idx], n_val, stratify))
    except ValueError as err:   # a case the checks above missed: still say it in rnnkit's terms
        raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: cannot split the {n} examples of "
                         f"{source} ({err}); expected more examples, or other --val-frac/--test-frac") from None
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


def load_data(dataset: str | None = None, csv_path: str | None = None, series: str | None = None, *,
              text_col: str = "text", label_col: str = "label", id_col: str = "id", step_col: str | None = "step",
              val_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0) -> ClassificationData:
    """Read one source (exactly one of ``dataset``, ``csv_path``, ``series``) and split it."""
    given = [n for n, v in (("dataset", dataset), ("csv", csv_path), ("series", series)) if v]
    if len(given) != 1:
        _checks.fail("dataset/csv/series", given or None, "exactly one data source: --dataset NAME, --csv FILE "
                     "(text) or --series FILE (.ts or long-format CSV)")
    _checks.check_float("val_frac", val_frac, min=0, max=1, max_open=True)
    _checks.check_float("test_frac", test_frac, min=0, max=1, max_open=True)
    if val_frac + test_frac >= 1:
        _checks.fail("val_frac + test_frac", val_frac + test_frac, "less than 1 (something must be left to train on)")
    stats: dict[str, Any] = {}
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
        X, y, stats["empty_texts_skipped"] = read_text_csv(csv_path, text_col, label_col)
        kind = "text"
    else:
        X, y = read_series(series, label_col, id_col, step_col)
        kind = "series"
    source = dataset or csv_path or series
    if kind == "text":
        X, y, empty = drop_empty_texts(X, y)
        stats["empty_texts_skipped"] = stats.get("empty_texts_skipped", 0) + empty
        X, y, stats["duplicates_removed"], stats["conflicting_duplicates"] = remove_duplicates(X, y)
    if not len(y):
        raise ValueError(f"{source}: no examples left to train on")
    check_classes(y, str(source), "labels" if dataset else f"label_col={label_col!r}")
    tr, va, te = stratified_split(y, val_frac, test_frac, seed, str(source))
    stats["split"] = f"stratified, seed {seed}: val {val_frac:g}, test {test_frac:g}"
    return ClassificationData(kind, _take(X, y, tr), _take(X, y, va), _take(X, y, te), str(source), stats)
