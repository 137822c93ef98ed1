"""Loaders for the user's own files: a text corpus, CSV/TSV tables, and the pieces of a labelled CSV reader.

``load_table`` returns ``{column: numpy array}``: a column whose values all parse as integers
becomes int64, one whose values all parse as numbers (blank or NA allowed) becomes float64 with
NaN where a value is missing, and anything else stays text, as an object array of ``str`` (an
object array rather than a fixed-width ``<U`` one, which would pad every review to the longest).
The table also remembers where each row came from (:class:`Table`), so that a later check can name
the file and line of a bad value.

Text files are decoded as UTF-8 unless a byte-order mark says otherwise (UTF-8, UTF-16 or UTF-32, as
spreadsheet programs write them).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit import _checks
from rnnkit._checks import fail

# Spellings of a missing number in the files we meet (R's NA, pandas' NaN, blank cells).
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
# The values of a split column that mark training, validation and test rows, unless the user names others.
SPLIT_NAMES = "train,val,test"
# Byte-order marks and the codec each one announces; UTF-32 first, since its little-endian mark begins
# with UTF-16's.
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class Table(dict):
    """``{column: array}`` as :func:`load_table` returns it, plus where its rows came from: ``path`` (the
    file) and ``lines`` (int64 (N,), the file line on which each row begins), for messages such as
    ``weather.csv: line 17: ...``. A plain dict works wherever a Table does; it just has no lines."""

    def __init__(self, columns: dict, path: str | None = None, lines: np.ndarray | None = None):
        super().__init__(columns)
        self.path, self.lines = path, lines

    def take(self, keep: np.ndarray) -> "Table":
        """The rows selected by ``keep`` (a boolean mask or indices), with their lines."""
        return Table({k: v[keep] for k, v in self.items()}, self.path,
                     None if self.lines is None else self.lines[keep])


def row_place(table: dict, row: int, source: str = "table") -> str:
    """``FILE: line N`` for row ``row`` of ``table`` when it knows its lines, else ``SOURCE: row N``."""
    if isinstance(table, Table) and table.lines is not None:
        return f"{table.path}: line {int(table.lines[row])}"
    return f"{source}: row {row + 1}"


def missing_label(label: str) -> bool:
    """True for a class label that marks a missing value instead of naming a class: NaN or inf in any
    spelling float() reads, NA, N/A, null. Taken as a class, it would be learned like any other."""
    if label.strip() in ("NA", "N/A", "null", "NULL"):
        return True
    try:
        return not math.isfinite(float(label))
    except ValueError:
        return False


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
    # A byte-order mark names the file's Unicode encoding: it wins over the default (a UTF codec), but
    # an encoding the user chose that is not a UTF one (latin-1, cp1252, ...) is taken at its word.
    bom = next(((mark, codec) for mark, codec in _BOMS if data.startswith(mark)), None)
    if bom is not None and encoding.lower().replace("_", "-").startswith("utf"):
        encoding, data = bom[1], data[len(bom[0]):]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 4].hex(" ")
        raise ValueError(
            f"{path}: not valid {encoding} at byte offset {err.start} (bytes {bad}: {err.reason}); "
            f"if the file uses another encoding, pass it, e.g. --encoding {_guess_encoding(data)} "
            f"(encoding='{_guess_encoding(data)}' in Python)") from None
    # NUL bytes decode as UTF-8 but never occur in text: every other byte zero is UTF-16 without a mark.
    if "\x00" in text and _guess_encoding(data).startswith("utf-16"):
        raise ValueError(f"{path}: every other byte is zero: this looks like UTF-16 text without a byte-order "
                         f"mark, not {encoding}; pass --encoding {_guess_encoding(data)} "
                         f"(encoding='{_guess_encoding(data)}' in Python)")
    # A UTF-8 byte-order mark is an encoding artefact, not text.
    return text[1:] if text.startswith("\ufeff") else text


def _guess_encoding(data: bytes) -> str:
    """A suggestion for a file that is not UTF-8: UTF-16 without a mark when every other byte of the
    start is zero (ASCII text in UTF-16), else latin-1 (any byte decodes)."""
    head = data[:4096]
    if len(head) >= 4:
        zeros_even, zeros_odd = head[0::2].count(0), head[1::2].count(0)
        if zeros_odd > 0.4 * len(head) / 2 > zeros_even:
            return "utf-16-le"
        if zeros_even > 0.4 * len(head) / 2 > zeros_odd:
            return "utf-16-be"
    return "latin-1"


def load_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A plain-text corpus (for character or word language models), newlines normalised to ``\\n``."""
    return read_text(path, encoding).replace("\r\n", "\n").replace("\r", "\n")


def load_table(path: str | os.PathLike, columns: list[str] | None = None, delimiter: str | None = None,
               encoding: str = "utf-8") -> Table:
    """A CSV/TSV file with a header row as ``{column: array}`` (see the module docstring for types).

    ``delimiter`` defaults from the extension (.csv comma, .tsv/.tab tab), else is sniffed from the
    first lines; ``columns`` picks and orders columns, and a name the file lacks is an error that
    lists the columns it has. A column named twice in the header is refused (which one is meant?).
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header row naming the columns")
    body, lines = [], []
    start = reader.line_num + 1                      # a quoted field may span lines: a row's first line
    for row in reader:
        if row:                                      # blank lines are skipped
            if len(row) != len(header):
                raise ValueError(f"{path}: line {start} has {len(row)} fields, the header has {len(header)}")
            body.append(row)
            lines.append(start)
        start = reader.line_num + 1
    wanted = header if columns is None else list(columns)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"columns={list(columns)!r}: {path} has no column {', '.join(map(repr, missing))}; "
                         f"its columns are: {', '.join(header)}")
    check_unique_header(header, wanted, path)
    return Table({c: _typed([r[header.index(c)] for r in body]) for c in wanted}, str(path),
                 np.array(lines, dtype=np.int64))


def check_unique_header(header: list[str], wanted, path) -> None:
    """Refuse a wanted column that the header names more than once: taking the first would be a guess."""
    for c in wanted:
        at = [i + 1 for i, h in enumerate(header) if h == c]
        if len(at) > 1:
            raise ValueError(f"{path}: the header names column {c!r} {len(at)} times (fields "
                             f"{', '.join(map(str, at))}); expected each column name once: rename or remove "
                             f"the extra one(s)")


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


def typed_column(values: list) -> np.ndarray:
    """A column given as JSON values (None: missing) typed as the CSV reader types one: int64, float64 (NaN for
    missing) or str."""
    return _typed(["" if v is None else str(v) for v in values])


# ---------------------------------------------------------------------------------------------------------
# Labelled CSV/TSV files, read row by row (the classifiers' text and long-format readers)
# ---------------------------------------------------------------------------------------------------------

def open_csv(path: Path, encoding: str, what: str):
    """(csv reader, stripped header) of a CSV/TSV file; the delimiter follows the extension."""
    _checks.require_file(what, path)
    text = read_text(path, encoding)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return reader, [h.strip() for h in (next(reader, None) or [])]


def read_header(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The column names of a CSV/TSV file (for a file to predict, which may lack the label columns)."""
    return open_csv(Path(path), encoding, "file")[1]


def require_columns(header: list[str], path: Path, named: Sequence[tuple[str, str | None]]) -> None:
    """Refuse a column argument (``(argument, column)``; None: not given) that the header lacks."""
    for name, col in named:
        if col is not None and col not in header:
            raise ValueError(f"{name}={col!r}: {path} has no such column; its columns are: {', '.join(header)}")


def check_label(label: str, path: Path, line: int, column: str) -> None:
    """Refuse a label that marks a missing value (see :func:`missing_label`), naming the file and line."""
    if missing_label(label):
        raise ValueError(f"{path}: line {line}: label {label!r} in column {column!r} marks a missing value, "
                         f"not a class (NaN, inf, NA and null are refused); expected a class name: fix or "
                         f"remove the row")


def parse_split_names(split_names: str) -> tuple[str, str, str]:
    """``"train,dev,test"`` -> the values that mark training, validation and test rows."""
    names = tuple(n.strip() for n in str(split_names).split(","))
    if len(names) != 3 or not all(names) or len(set(names)) != 3:
        fail("split_names", split_names, "three different names for the training, validation and test "
                                         "rows, separated by commas, e.g. train,dev,test")
    return names  # type: ignore[return-value]


def check_split_value(value: str, names: tuple[str, str, str], path: Path, line: int, column: str) -> None:
    """Refuse a split column value that is not one of ``names``, naming the file and line."""
    if value not in names:
        raise ValueError(f"{path}: line {line}: split {value!r} in column {column!r} is not one of "
                         f"{', '.join(names)}; fix the row, or name the values with --split-names "
                         f"TRAIN,VAL,TEST (now {','.join(names)})")
