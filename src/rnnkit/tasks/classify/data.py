"""Data for sequence classification: readers for user files, duplicate removal and splits.

Two kinds of input, one shape for both (``Split``: inputs ``X`` and string labels ``y``):

* **text**: a list of strings, from a named dataset (``imdb``, ``rotten-tomatoes``) or a CSV file with a
  text column and a label column. Empty texts are skipped and counted.
* **series**: a list of float32 arrays, one (T_i, C) array per sequence (lengths may differ), from a named
  dataset (``basic-motions``), a UEA/UCR ``.ts`` file (read by :mod:`rnnkit.datasets.ts`), or a
  long-format CSV with one row per time step or per visit (read by :mod:`rnnkit.datasets.long_format`:
  chosen or excluded columns, one-hot text columns, blank cells for values not measured, and the time
  column as an input if asked: the time elapsed since the previous row, or a regular grid with forward
  filling and missingness indicators).

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

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rnnkit import _checks
from rnnkit.datasets.files import (SPLIT_NAMES, check_label, check_split_value, check_unique_header, open_csv,
                                   parse_split_names, read_header, require_columns)
from rnnkit.datasets.long_format import TIME_INPUTS, read_long_file, time_inputs
from rnnkit.datasets.ts import read_ts

TEXT_DATASETS = ("imdb", "rotten-tomatoes")
# Series with the archive's own train/test split (UEA/UCR sets in the aeon wheel; see rnnkit data list).
SERIES_DATASETS = ("basic-motions", "arrow-head", "gun-point", "italy-power-demand", "osu-leaf", "acsf1")


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
    # A named dataset's label values -> the class names its source gives them (IMDB: 0 -> negative); the labels
    # of the parts are the names already. Empty: the labels are shown as they are.
    class_names: dict[str, str] = field(default_factory=dict)

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
    texts, labels, empty, _ = read_text_rows(path, text_col, label_col, encoding)
    return texts, labels, empty


def read_text_rows(path: str | Path, text_col: str, label_col: str, encoding: str = "utf-8",
                   split_col: str | None = None, split_names: str = SPLIT_NAMES,
                   ) -> tuple[list[str], np.ndarray, int, np.ndarray | None]:
    """:func:`read_text_csv` plus each row's value in ``split_col`` (None without one); a value that is
    not one of ``split_names`` is refused with its file and line."""
    path = Path(path)
    reader, header = open_csv(path, encoding, "csv")
    if not header:
        raise ValueError(f"{path}: empty file; expected a header row naming the columns")
    require_columns(header, path, (("text_col", text_col), ("label_col", label_col), ("split_col", split_col)))
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
        check_label(lab, path, reader.line_num, label_col)
        if names:
            value = row[header.index(split_col)].strip()
            check_split_value(value, names, path, reader.line_num, split_col)
            splits.append(names.index(value))
        texts.append(t)
        labels.append(lab)
    split = np.array(splits, dtype=np.int64) if names else None     # 0 train, 1 val, 2 test
    return texts, np.array(labels, dtype=str), empty, split


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
    class_names: dict[str, str] = {}
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
        class_names = dict(datasets.get(dataset).class_names)
        if class_names:
            # The names the source gives its labels (IMDB: 0 negative, 1 positive), shown wherever a class is.
            y = np.array([class_names.get(v, v) for v in y], dtype=str)
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
    return ClassificationData(kind, *parts, str(source), stats, encoding, class_names)


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


# ---------------------------------------------------------------------------------------------------------
# The encoder: inputs -> padded arrays (as fit, evaluate and predict all read them), and batches of them
# ---------------------------------------------------------------------------------------------------------

TEXT_MAXLEN = 400     # words of a text kept when --maxlen is not given (the IMDB lessons' cut)


def truncate(seq, maxlen: int | None, truncating: str):
    """The last (``pre``) or first (``post``) ``maxlen`` steps of a sequence; all of it when maxlen is None."""
    if maxlen is None or len(seq) <= maxlen:
        return seq
    return seq[-maxlen:] if truncating == "pre" else seq[:maxlen]


def encode_texts(tokenizer: Any, texts: list[str], maxlen: int | None,
                 truncating: str) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (N, T) token ids padded at the end, and (N,) lengths >= 1."""
    from rnnkit.text import pad_sequences

    seqs = [truncate(s, maxlen or TEXT_MAXLEN, truncating) for s in tokenizer.texts_to_sequences(texts)]
    # A text with no word left becomes one <unk> step: a model needs at least one step to read.
    seqs = [s if s else [1] for s in seqs]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    return pad_sequences(seqs, maxlen=int(max(lengths, default=1)), dtype="int64", padding="post"), lengths


def encode_series(series: list, mean: np.ndarray, std: np.ndarray, maxlen: int | None,
                  truncating: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, C) arrays -> (N, T, C) values standardised with the training statistics and padded at the end,
    and (N,) lengths >= 1. A missing value (NaN) becomes the channel mean (0 after standardising)."""
    from rnnkit.text import pad_sequences

    arrs = []
    for i, x in enumerate(series):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(mean):
            _checks.fail(f"X[{i}]", tuple(x.shape), f"a (steps, {len(mean)}) array of channel values")
        x = np.nan_to_num((truncate(x, maxlen, truncating) - mean) / std, nan=0.0)
        # An empty series becomes one step of channel means: a model needs at least one step to read.
        arrs.append(x if len(x) else np.zeros((1, len(mean)), dtype=np.float32))
    lengths = np.array([len(a) for a in arrs], dtype=np.int64)
    T = int(max(lengths, default=1))
    out = pad_sequences(arrs, maxlen=T, dtype="float32", padding="post")
    return out.reshape(len(arrs), T, len(mean)), lengths                  # (N, T, C), also when N = 0


def batches(X: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, batch_size: int,
            rng: np.random.Generator | None = None) -> list:
    """CPU batches ``(x, lengths, y)`` (or ``(x, lengths, row indices)`` without labels) of rows of similar
    length (:func:`~rnnkit.text.length_buckets`; shuffled groups with ``rng``), each trimmed to its longest row."""
    import torch

    from rnnkit.text import length_buckets

    out = []
    for g in length_buckets(lengths, batch_size, rng):
        T = int(lengths[g].max())
        xb, lb = torch.from_numpy(X[g, :T]), torch.from_numpy(lengths[g])
        out.append((xb, lb, torch.from_numpy(y[g] if y is not None else g)))
    return out
