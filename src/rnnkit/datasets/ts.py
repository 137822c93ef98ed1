"""The one reader of UEA/UCR ``.ts`` files (multichannel time series with a class label per series).

The format: ``@key value`` header lines up to ``@data``, then one series per line: the channels
separated by ``:``, the values of a channel by ``,``, the class label last::

    @problemName BasicMotions
    @dimensions 2
    @classLabel true Standing Running
    @data
    1,2,3:5,6,7:Running          # 2 channels x 3 steps
    0.5,?:0,0:Standing           # ? (or blank, NA) marks a missing value: NaN

Series may differ in length; the channels of one series may not. Errors name the source and the line,
so a user can fix the file: among them an infinite value and a label that marks a missing value (NaN,
inf, NA), which a model would otherwise learn as a value and as a class. Used by the ``basic-motions``
converter and by ``rnnkit classify --series``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit import _checks
from rnnkit.datasets.files import MISSING, missing_label, read_text


@dataclass
class TsData:
    """What a ``.ts`` file holds: ``X`` one (T_i, C) float32 array per series, ``y`` their labels."""

    X: list[np.ndarray]
    y: np.ndarray                     # (N,) str
    classes: list[str] | None         # the labels declared by ``@classLabel true ...`` (None: not declared)
    header: dict[str, str]            # lower-cased keys without the @

    def stacked(self, source: str = ".ts") -> np.ndarray:
        """X as one (N, T, C) array; every series must have the same length."""
        shapes = sorted({x.shape for x in self.X})
        if len(shapes) > 1:
            raise ValueError(f"{source}: series have different shapes {shapes}; expected equal lengths")
        return np.stack(self.X) if self.X else np.zeros((0, 0, 0), np.float32)


def parse_number(value: str, source, line: int, column: str, missing: str = "write ? to mark it missing") -> float:
    """One sensor reading: a finite float, or NaN for a missing one (blank, NA, ?); errors name the
    file, line and column. ``missing`` says how this file format marks a missing value."""
    v = value.strip()
    if v in MISSING or v == "?":
        return math.nan
    try:
        x = float(v)
    except ValueError:
        raise ValueError(f"{source}: line {line}, column {column!r}: {value!r} is not a number "
                         f"(sensor values must be numeric; blank, NA or ? mark a missing value)") from None
    if math.isinf(x):
        raise ValueError(f"{source}: line {line}, column {column!r}: {value!r} is not a finite number "
                         f"(fix the value, or {missing})")
    return x


def parse_ts(text: str, source: str = ".ts") -> TsData:
    """Parse the text of a ``.ts`` file; ``source`` names it in error messages."""
    header: dict[str, str] = {}
    in_data = False
    X, y = [], []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{source}: line {lineno}: expected a @header line before @data, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            if key.lower() == "data":
                in_data = True
                _check_header(header, source)
            else:
                header[key.lower()] = value.strip()
            continue
        *channels, label = line.split(":")
        if not channels:
            raise ValueError(f"{source}: line {lineno}: expected channels separated by ':' and a label last")
        label = label.strip()
        if not label or missing_label(label):
            raise ValueError(f"{source}: line {lineno}: row {len(y) + 1} has label {label!r}, which marks a "
                             f"missing value, not a class; expected a class name: fix or remove the row")
        classes = _declared_classes(header)
        if classes is not None and label not in classes:
            raise ValueError(f"{source}: line {lineno}: row {len(y) + 1} has label {label!r}, not one of {classes}")
        series = [[parse_number(v, source, lineno, f"channel {c + 1}") for v in ch.split(",")] for c, ch in enumerate(channels)]
        lengths = [len(s) for s in series]
        if len(set(lengths)) != 1:
            raise ValueError(f"{source}: line {lineno}: ragged row: its channels have {lengths} values; "
                             f"expected the same number in every channel")
        if X and len(series) != X[0].shape[1]:
            raise ValueError(f"{source}: line {lineno}: {len(series)} channels; the first series has "
                             f"{X[0].shape[1]}")
        X.append(np.array(series, dtype=np.float32).T)        # (C, T) -> (T, C)
        y.append(label)
    if not in_data:
        raise ValueError(f"{source}: no @data line; expected '@data' followed by one series per line")
    if not X:
        raise ValueError(f"{source}: no series found; expected '@data' followed by one series per line")
    if "dimensions" in header and X[0].shape[1] != int(header["dimensions"]):
        raise ValueError(f"{source}: @dimensions {header['dimensions']} but rows have {X[0].shape[1]} channels")
    if "serieslength" in header and any(len(x) != int(header["serieslength"]) for x in X):
        steps = sorted({len(x) for x in X})
        raise ValueError(f"{source}: @seriesLength {header['serieslength']} but rows have {steps} steps")
    return TsData(X, np.array(y, dtype=str), _declared_classes(header), header)


def _check_header(header: dict[str, str], source: str) -> None:
    if header.get("timestamps", "false").lower() == "true":
        raise ValueError(f"{source}: series with timestamps are not supported")
    spec = header.get("classlabel")
    if spec is not None and spec.lower().split()[:1] != ["true"]:
        raise ValueError(f"{source}: expected '@classLabel true <labels...>' (a classification problem), "
                         f"got '@classLabel {spec}'")


def _declared_classes(header: dict[str, str]) -> list[str] | None:
    spec = header.get("classlabel", "").split()
    return spec[1:] if len(spec) > 1 else None


def read_ts(path: str | Path, encoding: str = "utf-8") -> tuple[list[np.ndarray], np.ndarray]:
    """A ``.ts`` file -> (series, labels): a list of (T_i, C) float32 arrays and an (N,) str array."""
    path = Path(path)
    _checks.require_file("series", path)
    data = parse_ts(read_text(path, encoding), source=str(path))
    return data.X, data.y
