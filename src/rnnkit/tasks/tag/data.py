"""Data for sequence labelling: the readers of tagged files, the tag schemes, and the encoder.

One shape for every reader (``Tagged``): ``X`` a list of sentences (each a list of tokens) or of series (each a
(T, C) float32 array), ``y`` a list of tag lists (one tag per token or step; None for unlabelled data), and the
line of every token in its file, so that an error names ``FILE:LINE``.

Readers (``.gz``, ``.xz`` and ``.bz2`` files are decompressed on the fly, whatever their name says):

* **CoNLL-U** (Universal Dependencies): ten tab-separated columns per word line, ``#`` comment lines, a blank
  line after each sentence. Any column can be the tag (``upos`` by default, ``xpos``, ``deprel``, ... or a
  column number). The rule for the two kinds of lines that are not words: a *multi-word token* line (ID
  ``1-2``, e.g. "don't" over the words "do" and "n't") is skipped and its words, the lines that follow it, are
  tagged, as UD annotates and evaluates tags on words; an *empty node* (ID ``8.1``, enhanced dependencies
  only) is skipped: it is no token of the text. Tagged output keeps both lines as they were.
* **columns** (CoNLL 2000/2003 style): one token per line, its tag in another column (tab-separated, or
  separated by spaces when the line has no tab), a blank line between sentences; with more than two
  columns the tag is the last one unless ``tag_column`` names another. ``-DOCSTART-`` lines (document
  breaks of CoNLL 2003) are skipped.
* **series**: a CSV with a header: an id column naming the series each row belongs to, a tag column, and
  numeric channels (every other column; a blank cell is a missing value); one row per step, in order.

Bad input is one line naming the file and line: a CoNLL-U line without ten columns, a tag column that does
not exist, a token without a tag, an empty sentence, and a file that mixes BIO and BIOES tags (the lines of
each kind are listed).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rnnkit import _checks

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
DOCSTART = "-DOCSTART-"
OOV = 1                       # the word id of <unk> (0 is padding)
_ENTITY_TAG = re.compile(r"^(?:O|[BIES]-.+)$")
_SEPARATOR = "\x1f"           # the word Tokenizer's split character: no token is ever split


@dataclass
class Tagged:
    """Sentences (token lists) or series ((T, C) arrays) ``X``, their tags ``y`` (None: unlabelled), where they
    come from (``source``) and the line of each token in it (``lines``; None for data made in Python)."""

    X: list
    y: list | None
    source: str = "the data"
    lines: list | None = None
    channels: list[str] = field(default_factory=list)   # series: the names of the value columns

    def __len__(self) -> int:
        return len(self.X)

    def where(self, i: int, j: int | None = None) -> str:
        """``FILE:LINE`` of sentence ``i`` (its token ``j``), or ``sentence i`` for data passed in Python."""
        if self.lines is not None:
            line = self.lines[i][0 if j is None else j]
            return f"{self.source}:{line}"
        return f"{self.source}: sentence {i}" + ("" if j is None else f", token {j}")

    def take(self, idx: Sequence[int]) -> "Tagged":
        return Tagged([self.X[i] for i in idx], None if self.y is None else [self.y[i] for i in idx], self.source,
                      None if self.lines is None else [self.lines[i] for i in idx], self.channels)


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------

def read_text(path: str | Path) -> str:
    """A text file as str, decompressed when it is gzip, xz or bzip2 (by its first bytes); a file that is not
    UTF-8 is refused naming the byte offset."""
    path = Path(path)
    _checks.require_file("file", path)
    data = path.read_bytes()
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:6] == b"\xfd7zXZ\x00":
            data = lzma.decompress(data)
        elif data[:3] == b"BZh":
            data = bz2.decompress(data)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as err:
        raise ValueError(f"{path}: a damaged compressed file ({err}); expected a whole .gz, .xz or .bz2 file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text at byte offset {err.start} ({err.reason}); expected a UTF-8 "
                         f"file") from None
    return text[1:] if text.startswith("\ufeff") else text


def guess_format(path: str | Path) -> str:
    """``conllu`` for a name with ``.conllu`` in it, ``series`` for ``.csv``, else ``columns``."""
    name = Path(path).name.lower()
    if ".conllu" in name:
        return "conllu"
    if ".csv" in name:
        return "series"
    return "columns"


def read_tagged(path: str | Path, format: str = "auto", tag_column: str | None = None, *,
                id_column: str = "id", labelled: bool = True) -> Tagged:
    """The sentences (or series) of a file in ``format`` (auto: by its name); ``labelled=False`` reads text to
    tag, whose tags may be missing."""
    _checks.check_choice("format", format, ("auto", "conllu", "columns", "series"))
    fmt = guess_format(path) if format == "auto" else format
    if fmt == "conllu":
        return read_conllu(path, tag_column, labelled=labelled)
    if fmt == "columns":
        return read_columns(path, tag_column, labelled=labelled)
    return read_series_csv(path, tag_column, id_column, labelled=labelled)


def conllu_column(tag_column: str | None) -> int:
    """The 0-based index of a CoNLL-U column given by name (upos, xpos, ...) or number (1-10); None: upos."""
    if tag_column is None:
        return CONLLU_COLUMNS.index("upos")
    name = str(tag_column).strip().lower()
    if name in CONLLU_COLUMNS:
        return CONLLU_COLUMNS.index(name)
    if name.isdigit() and 1 <= int(name) <= len(CONLLU_COLUMNS):
        return int(name) - 1
    _checks.fail("tag_column", tag_column, "a CoNLL-U column: " + ", ".join(CONLLU_COLUMNS) + ", or a column "
                 "number 1 to 10")
    raise AssertionError


def read_conllu(path: str | Path, tag_column: str | None = None, *, labelled: bool = True) -> Tagged:
    """Sentences of a CoNLL-U file: the FORM of each word and its tag from ``tag_column`` (see the module
    docstring for multi-word tokens and empty nodes)."""
    col = conllu_column(tag_column)
    name = CONLLU_COLUMNS[col].upper()
    X, y, lines = [], [], []
    tokens, tags, where, block_start, comments = [], [], [], None, 0

    def end(lineno: int) -> None:
        nonlocal tokens, tags, where, block_start, comments
        if block_start is not None and not tokens:
            raise ValueError(f"{path}:{block_start}: an empty sentence (comment lines, or only multi-word token "
                             f"and empty node lines, then the blank line at line {lineno}); expected at least one "
                             f"word line")
        if tokens:
            X.append(tokens)
            y.append(tags)
            lines.append(where)
        tokens, tags, where, block_start, comments = [], [], [], None, 0

    text = read_text(path)
    lineno = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            end(lineno)
            continue
        if block_start is None:
            block_start = lineno
        if line.startswith("#"):
            comments += 1
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(f"{path}:{lineno}: {len(fields)} tab-separated column{'s' * (len(fields) != 1)}; "
                             f"expected the 10 of CoNLL-U (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)")
        ident = fields[0]
        if "-" in ident or "." in ident:
            continue            # a multi-word token (its words follow) or an empty node: not a word of the text
        if not ident.isdigit():
            raise ValueError(f"{path}:{lineno}: ID {ident!r}; expected a word number (1, 2, ...), a range (1-2) "
                             f"or an empty node (1.1)")
        form, tag = fields[1], fields[col]
        if not form:
            raise ValueError(f"{path}:{lineno}: an empty FORM; expected the word")
        if labelled and tag in ("", "_"):
            raise ValueError(f"{path}:{lineno}: the word {form!r} has no tag in column {col + 1} ({name} is "
                             f"{tag!r}); expected a tag on every word (another column: --tag-column)")
        tokens.append(form)
        tags.append(tag)
        where.append(lineno)
    end(lineno + 1)
    if not X:
        raise ValueError(f"{path}: no sentences; expected CoNLL-U word lines (ten tab-separated columns)")
    return Tagged(X, y if labelled else None, str(path), lines)


def read_columns(path: str | Path, tag_column: str | None = None, *, labelled: bool = True) -> Tagged:
    """Sentences of a file of ``token<TAB>tag`` lines (or more columns), a blank line between sentences."""
    col = None
    if tag_column is not None:
        text = str(tag_column).strip()
        if not text.isdigit() or int(text) < 2:
            _checks.fail("tag_column", tag_column, "a column number >= 2 for the columns format (column 1 is the "
                                                   "token; default: the last column)")
        col = int(text) - 1
    X, y, lines = [], [], []
    tokens, tags, where = [], [], []
    width = first_line = None
    lineno = 0
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            if tokens:
                X.append(tokens)
                y.append(tags)
                lines.append(where)
            tokens, tags, where = [], [], []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if fields[0] == DOCSTART:
            continue
        if not fields[0]:
            raise ValueError(f"{path}:{lineno}: an empty token; expected token<TAB>tag")
        if labelled:
            if len(fields) < 2 or not fields[-1].strip():
                raise ValueError(f"{path}:{lineno}: the token {fields[0]!r} has no tag; expected token<TAB>tag")
            if width is None:
                width, first_line = len(fields), lineno
            elif len(fields) != width:
                raise ValueError(f"{path}:{lineno}: {len(fields)} columns, but line {first_line} has {width}; "
                                 f"expected the same columns on every token line")
            if col is not None and col >= len(fields):
                raise ValueError(f"{path}:{lineno}: tag_column={col + 1}, but the line has {len(fields)} "
                                 f"columns; expected a column that exists")
            tag = fields[-1 if col is None else col].strip()
            if not tag:
                raise ValueError(f"{path}:{lineno}: the token {fields[0]!r} has no tag in column {col + 1}; "
                                 f"expected token<TAB>tag")
            tags.append(tag)
        tokens.append(fields[0])
        where.append(lineno)
    if tokens:
        X.append(tokens)
        y.append(tags)
        lines.append(where)
    if not X:
        raise ValueError(f"{path}: no sentences; expected token<TAB>tag lines with a blank line between sentences")
    return Tagged(X, y if labelled else None, str(path), lines)


def read_series_csv(path: str | Path, tag_column: str | None = None, id_column: str = "id", *,
                    labelled: bool = True, channels: list[str] | None = None) -> Tagged:
    """Series of a CSV with a header: ``id_column`` names the series of each row (a step), ``tag_column``
    (default ``label``) its tag, the other columns (or ``channels``) are numbers (blank: missing)."""
    label = "label" if tag_column is None else str(tag_column)
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if not rows:
        raise ValueError(f"{path}: empty; expected a CSV header and one row per step")
    header = [h.strip() for h in rows[0]]
    if id_column not in header:
        _checks.fail("id_column", id_column, f"a column of {path} ({', '.join(header)})")
    if labelled and label not in header:
        _checks.fail("tag_column", label, f"a column of {path} ({', '.join(header)})")
    if channels is None:
        channels = [h for h in header if h not in (id_column, label)]
    missing = [c for c in channels if c not in header]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r}; expected the channels the model was trained on: "
                         f"{', '.join(channels)}")
    if not channels:
        raise ValueError(f"{path}: no value columns besides {id_column!r} and {label!r}; expected numeric channels")
    at = {h: i for i, h in enumerate(header)}
    order: list[str] = []
    steps: dict[str, list] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{lineno}: {len(row)} columns; expected the header's {len(header)}")
        key = row[at[id_column]].strip()
        values = []
        for c in channels:
            cell = row[at[c]].strip()
            try:
                v = float(cell) if cell else math.nan
            except ValueError:
                raise ValueError(f"{path}:{lineno}: column {c!r} holds {cell!r}; expected a number (blank: "
                                 f"missing)") from None
            if math.isinf(v):
                raise ValueError(f"{path}:{lineno}: column {c!r} holds {cell!r}; expected a finite number")
            values.append(v)
        tag = row[at[label]].strip() if label in at else ""
        if labelled and not tag:
            raise ValueError(f"{path}:{lineno}: the step has no tag in column {label!r}; expected a tag on every row")
        if key not in steps:
            order.append(key)
            steps[key] = []
        steps[key].append((values, tag, lineno))
    if not order:
        raise ValueError(f"{path}: no rows; expected one row per step")
    X = [np.asarray([s[0] for s in steps[k]], dtype=np.float32) for k in order]
    y = [[s[1] for s in steps[k]] for k in order]
    lines = [[s[2] for s in steps[k]] for k in order]
    return Tagged(X, y if labelled else None, str(path), lines, list(channels))


# ---------------------------------------------------------------------------------------------------------
# Checks of data passed in Python, and of tags
# ---------------------------------------------------------------------------------------------------------

def check_tagged(data: Tagged, labelled: bool = True) -> str:
    """Refuse empty sentences, empty tokens and a tag count that differs from the token count; returns the kind
    of input: ``"text"`` or ``"series"``."""
    if not len(data):
        _checks.fail("X", "[]", "at least one sentence (or series)")
    kind = "text" if isinstance(data.X[0], (list, tuple)) and (not data.X[0] or isinstance(data.X[0][0], str)) \
        else "series"
    if labelled and (data.y is None or len(data.y) != len(data.X)):
        n = "no" if data.y is None else len(data.y)
        _checks.fail("y", f"{n} tag lists", f"one tag list per sentence ({len(data.X)} sentences)")
    for i, x in enumerate(data.X):
        if kind == "text":
            if not isinstance(x, (list, tuple)) or not all(isinstance(t, str) for t in x):
                _checks.fail(f"X[{i}]", type(x).__name__, "a list of tokens (str), like the first sentence")
            if not x:
                raise ValueError(f"{data.where(i) if data.lines else f'X[{i}]'}: an empty sentence; expected at "
                                 f"least one token")
            empty = next((j for j, t in enumerate(x) if not t.strip()), None)
            if empty is not None:
                raise ValueError(f"X[{i}][{empty}]: an empty token; expected a word")
        else:
            arr = np.asarray(x, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise ValueError(f"X[{i}]: an array of shape {arr.shape}; expected (steps, channels) with at "
                                 f"least one step")
            if not np.all(np.isfinite(arr) | np.isnan(arr)):
                raise ValueError(f"X[{i}]: an infinite value; expected finite numbers (NaN: missing)")
        if labelled:
            tags = data.y[i]
            if len(tags) != len(x):
                raise ValueError(f"{data.where(i)}: {len(x)} tokens but {len(tags)} tags; expected a tag for every "
                                 f"token")
            bad = next((j for j, t in enumerate(tags) if not isinstance(t, str) or not t.strip()), None)
            if bad is not None:
                raise ValueError(f"{data.where(i, bad)}: the token {x[bad] if kind == 'text' else bad!r} has no "
                                 f"tag ({tags[bad]!r}); expected a tag for every token")
    return kind


def _shown_lines(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def detect_scheme(data: Tagged, scheme: str = "auto") -> str:
    """``none``, ``bio`` or ``bioes`` for the tags of ``data`` (``scheme`` auto: bio/bioes when every tag is O
    or B-/I-/E-/S- plus a type and one is not O). A file that mixes BIO and BIOES entities is refused, naming the
    lines of each kind."""
    _checks.check_choice("scheme", scheme, ("auto", "none", "bio", "bioes"))
    if scheme == "none" or data.y is None:
        return "none" if scheme == "auto" else scheme
    tags = {t for sent in data.y for t in sent}
    valid = all(_ENTITY_TAG.match(t) for t in tags)
    if scheme == "auto" and not (valid and any(t != "O" for t in tags)):
        return "none"
    if not valid:
        bad = sorted(t for t in tags if not _ENTITY_TAG.match(t))[:3]
        raise ValueError(f"{data.source}: tags {', '.join(map(repr, bad))} are not {scheme.upper()} tags; expected "
                         f"O or B-/I-{'/E-/S-' if scheme == 'bioes' else ''} plus a type (or --scheme none)")
    bioes_lines, bio_lines = [], []
    for i, sent in enumerate(data.y):
        for j, t in enumerate(sent):
            nxt = sent[j + 1] if j + 1 < len(sent) else "O"
            place = str(data.lines[i][j]) if data.lines else f"{i}:{j}"
            if t[:2] in ("E-", "S-"):
                bioes_lines.append(place)
            elif t[:2] in ("B-", "I-") and not (nxt[:2] in ("I-", "E-") and nxt[2:] == t[2:]):
                bio_lines.append(place)       # an entity that ends on B- or I-: BIO's way (BIOES ends on S-/E-)
    found = "bioes" if bioes_lines else "bio"
    if scheme == "bio" and bioes_lines:
        raise ValueError(f"{data.source}: BIOES tags (S-, E-) on lines {_shown_lines(bioes_lines)} in BIO tags "
                         f"(--scheme bio); expected BIO throughout (or --scheme bioes)")
    if (scheme == "bioes" or found == "bioes") and bio_lines:
        what = "lines" if data.lines else "sentence:token"
        raise ValueError(f"{data.source}: mixed BIO and BIOES tags: BIOES's S-/E- tags on {what} "
                         f"{_shown_lines(bioes_lines) or 'none'}, BIO's entity endings (on B- or I-) on {what} "
                         f"{_shown_lines(bio_lines)}; expected one scheme throughout")
    return found if scheme == "auto" else scheme


def spans(tags: Sequence[str], scheme: str) -> list[tuple[str, int, int]]:
    """The entities of one tag sequence as ``(type, start, end)``, ``end`` exclusive (BIO or BIOES; an I- or
    E- that starts without its B- starts an entity, as conlleval reads it)."""
    out, start, kind = [], None, None
    for j, t in enumerate(list(tags) + ["O"]):
        prefix, typ = (t[:1], t[2:]) if len(t) > 2 and t[1] == "-" else ("O", "")
        inside = start is not None and typ == kind and prefix in ("I", "E")
        if start is not None and not inside:
            out.append((kind, start, j))
            start = kind = None
        if prefix in ("B", "S") or (prefix in ("I", "E") and start is None):
            start, kind = j, typ
        if start is not None and prefix in ("E", "S") and scheme == "bioes":
            out.append((kind, start, j + 1))
            start = kind = None
    return out


def split_validation(data: Tagged, frac: float, seed: int) -> tuple[Tagged, Tagged | None]:
    """``frac`` of the sentences, chosen with ``seed``, held out for validation (None when ``frac`` is 0)."""
    n_val = int(round(frac * len(data)))
    if frac <= 0 or n_val == 0:
        return data, None
    if n_val >= len(data):
        raise ValueError(f"{data.source}: {len(data)} sentences, too few to hold out val_frac={frac} of them for "
                         f"validation; expected more sentences, a --dev file, or --val-frac 0")
    order = np.random.default_rng(seed).permutation(len(data))
    return data.take(sorted(order[n_val:])), data.take(sorted(order[:n_val]))


def small_sample(data: Tagged, n: int, seed: int = 0) -> Tagged:
    """``n`` sentences chosen at random (a dry run's data)."""
    if len(data) <= n:
        return data
    return data.take(sorted(np.random.default_rng(seed).choice(len(data), n, replace=False)))


# ---------------------------------------------------------------------------------------------------------
# The encoder: words, characters and tags to ids
# ---------------------------------------------------------------------------------------------------------

class Vocab:
    """Ids for the words (an rnnkit Tokenizer over whole tokens: id 0 padding, 1 ``<unk>``), the characters (a
    character-level Tokenizer) and the tags (0..K-1), plus the pretrained-only words (``extra``): words never
    seen in training whose pretrained vectors the model keeps, numbered after the training words."""

    def __init__(self, words: Any, chars: Any, tags: list[str], *, lowercase: bool = True,
                 max_word_chars: int = 30, extra: list[str] | None = None):
        self.words, self.chars, self.tags = words, chars, list(tags)
        self.lowercase, self.max_word_chars = lowercase, max_word_chars
        self.tag_index = {t: i for i, t in enumerate(self.tags)}
        self.set_extra(extra or [])

    def set_extra(self, extra: list[str]) -> None:
        self.extra = list(extra)
        base = self.words.vocab_size
        self.extra_index = {w: base + i for i, w in enumerate(self.extra)}

    @classmethod
    def build(cls, sentences: list[list[str]], tags: list[str], *, num_words: int | None, lowercase: bool,
              max_word_chars: int) -> "Vocab":
        from rnnkit.text import Tokenizer

        words = Tokenizer(num_words=num_words, filters="", lower=lowercase, split=_SEPARATOR, oov_token="<unk>")
        words.fit_on_texts(_SEPARATOR.join(_clean(t) for t in s) for s in sentences)
        chars = Tokenizer(char_level=True, lower=False, filters="", oov_token="<unk>")
        chars.fit_on_texts(t for s in sentences for t in s)
        return cls(words, chars, tags, lowercase=lowercase, max_word_chars=max_word_chars)

    @property
    def num_words(self) -> int:
        """Rows of the trainable embedding: padding, <unk> and the training words kept."""
        return self.words.vocab_size

    def key(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def seen(self, token: str) -> bool:
        """Whether ``token`` (lower-cased when the vocabulary is) occurred in the training data."""
        return self.key(_clean(token)) in self.words.word_counts

    def word_ids(self, tokens: Sequence[str]) -> np.ndarray:
        ids = [s[0] if s else OOV for s in self.words.texts_to_sequences([_clean(t) for t in tokens])]
        if self.extra:
            ids = [self.extra_index.get(self.key(t), i) if i == OOV else i for t, i in zip(tokens, ids)]
        return np.asarray(ids, dtype=np.int64)

    def char_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """(L, W) character ids of each token, 0-padded; a long token keeps its first and last halves."""
        m = self.max_word_chars
        kept = [t if len(t) <= m else t[:(m + 1) // 2] + t[len(t) - m // 2:] for t in tokens]
        seqs = self.chars.texts_to_sequences(kept)
        out = np.zeros((len(tokens), max((len(s) for s in seqs), default=1) or 1), dtype=np.int64)
        for i, s in enumerate(seqs):
            out[i, :len(s)] = s
        return out

    def tag_ids(self, tags: Sequence[str]) -> np.ndarray:
        return np.asarray([self.tag_index[t] for t in tags], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "rnnkit.tag.Vocab", "version": 1, "tags": self.tags, "lowercase": self.lowercase,
                "max_word_chars": self.max_word_chars, "words": self.words.to_json(),
                "chars": self.chars.to_json(), "extra": self.extra}

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> "Vocab":
        from rnnkit.text import Tokenizer

        keys = ("tags", "lowercase", "max_word_chars", "words", "chars", "extra")
        if not isinstance(doc, dict) or doc.get("format") != "rnnkit.tag.Vocab" or any(k not in doc for k in keys):
            raise ValueError(f"{source}: not a tagger's vocabulary (expected the keys {', '.join(keys)}); train the "
                             f"run again")
        try:
            words, chars = Tokenizer.from_json(doc["words"]), Tokenizer.from_json(doc["chars"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{source}: a damaged vocabulary: {err}") from None
        return cls(words, chars, list(doc["tags"]), lowercase=bool(doc["lowercase"]),
                   max_word_chars=int(doc["max_word_chars"]), extra=list(doc["extra"]))


def _clean(token: str) -> str:
    # The word Tokenizer splits at _SEPARATOR: a token holding one (never in real text) keeps one id.
    return token.replace(_SEPARATOR, " ")


@dataclass
class Encoded:
    """Sentences as ids (text: ``words`` (L,) and ``chars`` (L, W) arrays) or standardised ``values`` (T, C)
    (series), and ``tags`` (L,) (None: unlabelled)."""

    lengths: np.ndarray
    words: list | None = None
    chars: list | None = None
    values: list | None = None
    tags: list | None = None


def encode_text(vocab: Vocab, X: list[list[str]], y: list[list[str]] | None = None) -> Encoded:
    words = [vocab.word_ids(s) for s in X]
    chars = [vocab.char_ids(s) for s in X]
    tags = None if y is None else [vocab.tag_ids(t) for t in y]
    return Encoded(np.array([len(s) for s in X], dtype=np.int64), words=words, chars=chars, tags=tags)


def encode_series(X: list, mean: np.ndarray, std: np.ndarray, vocab: Vocab | None = None,
                  y: list | None = None) -> Encoded:
    values = [np.nan_to_num((np.asarray(x, dtype=np.float32) - mean) / std, nan=0.0).astype(np.float32) for x in X]
    tags = None if y is None or vocab is None else [vocab.tag_ids(t) for t in y]
    return Encoded(np.array([len(x) for x in X], dtype=np.int64), values=values, tags=tags)


def make_batch(enc: Encoded, idx: Iterable[int]) -> tuple:
    """One batch of the rows ``idx``, padded at the end: text ``(words (B, T), chars (B, T, W), lengths (B,)
    [, tags (B, T)])``, series ``(values (B, T, C), lengths [, tags])``; padded tags are 0 (the lengths mask
    them)."""
    import torch

    idx = list(idx)
    lengths = enc.lengths[idx]
    B, T = len(idx), int(lengths.max())
    out: list = []
    if enc.values is not None:
        C = enc.values[idx[0]].shape[1]
        x = np.zeros((B, T, C), dtype=np.float32)
        for b, i in enumerate(idx):
            x[b, :lengths[b]] = enc.values[i]
        out.append(torch.from_numpy(x))
    else:
        W = max(enc.chars[i].shape[1] for i in idx)
        words = np.zeros((B, T), dtype=np.int64)
        chars = np.zeros((B, T, W), dtype=np.int64)
        for b, i in enumerate(idx):
            words[b, :lengths[b]] = enc.words[i]
            c = enc.chars[i]
            chars[b, :c.shape[0], :c.shape[1]] = c
        out += [torch.from_numpy(words), torch.from_numpy(chars)]
    out.append(torch.from_numpy(lengths.copy()))
    if enc.tags is not None:
        tags = np.zeros((B, T), dtype=np.int64)
        for b, i in enumerate(idx):
            tags[b, :lengths[b]] = enc.tags[i]
        out.append(torch.from_numpy(tags))
    return tuple(out)


def batches(enc: Encoded, batch_size: int, rng: np.random.Generator | None = None) -> list[tuple]:
    """The batches of ``enc``, rows of similar length together (rnnkit.text.length_buckets: shuffled with
    ``rng``, in length order without); each batch ends with the row indices it holds when it has no tags."""
    import torch

    from rnnkit.text import length_buckets

    groups = length_buckets(enc.lengths, batch_size, rng)
    out = []
    for g in groups:
        batch = make_batch(enc, g)
        out.append(batch if enc.tags is not None else batch + (torch.from_numpy(np.asarray(g)),))
    return out
