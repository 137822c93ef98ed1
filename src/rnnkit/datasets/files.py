"""Loaders for the user's own files: a text corpus, and CSV/TSV tables.

``load_table`` returns ``{column: numpy array}``: a column whose values all parse as integers
becomes int64, one whose values all parse as numbers (blank or NA allowed) becomes float64 with
NaN where a value is missing, and anything else stays text, as an object array of ``str`` (an
object array rather than a fixed-width ``<U`` one, which would pad every review to the longest).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from rnnkit._checks import fail

# Spellings of a missing number in the files we meet (R's NA, pandas' NaN, blank cells).
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole file decoded with ``encoding``; a decoding error names the file and byte offset."""
    path = Path(path)
    if not isinstance(encoding, str) or not encoding:
        fail("encoding", encoding, "a codec name such as 'utf-8' or 'latin-1'")
    try:
        "".encode(encoding)
    except LookupError:
        fail("encoding", encoding, "a codec name Python knows, such as 'utf-8' or 'latin-1'")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 4].hex(" ")
        raise ValueError(
            f"{path}: not valid {encoding} at byte offset {err.start} (bytes {bad}: {err.reason}); "
            f"if the file uses another encoding, pass it, e.g. --encoding latin-1 "
            f"(encoding='latin-1' in Python)") from None
    # A UTF-8 byte-order mark is an encoding artefact, not text.
    return text[1:] if text.startswith("\ufeff") else text


def load_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A plain-text corpus (for character or word language models), newlines normalised to ``\\n``."""
    return read_text(path, encoding).replace("\r\n", "\n").replace("\r", "\n")


def load_table(path: str | os.PathLike, columns: list[str] | None = None, delimiter: str | None = None,
               encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """A CSV/TSV file with a header row as ``{column: array}`` (see the module docstring for types).

    ``delimiter`` defaults from the extension (.csv comma, .tsv/.tab tab), else is sniffed from the
    first lines; ``columns`` picks and orders columns, and a name the file lacks is an error that
    lists the columns it has.
    """
    path = Path(path)
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        fail("delimiter", delimiter, "a single character such as ',' or '\\t', or None to infer it")
    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        fail("columns", columns, "a list of column names, or None for all")
    text = read_text(path, encoding)
    if delimiter is None:
        delimiter = _DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",\t;|").delimiter
        except csv.Error:
            raise ValueError(f"{path}: cannot tell the delimiter from the extension {path.suffix!r} or the "
                             f"first lines; pass delimiter=',' or '\\t'") from None
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows:
        raise ValueError(f"{path}: empty file; expected a header row naming the columns")
    header, body = rows[0], [r for r in rows[1:] if r]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {i + 2} has {len(row)} fields, the header has {len(header)}")
    wanted = header if columns is None else list(columns)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"columns={list(columns)!r}: {path} has no column {', '.join(map(repr, missing))}; "
                         f"its columns are: {', '.join(header)}")
    return {c: _typed([r[header.index(c)] for r in body]) for c in wanted}


def _typed(values: list[str]) -> np.ndarray:
    """int64 if every value is an integer, float64 (NaN for missing) if every value is a number, else str."""
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([np.nan if v.strip() in MISSING else float(v) for v in values], dtype=np.float64)
    except ValueError:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
