"""The text pipeline: tokenize -> vectorize -> pad -> (one-hot | embed).

``Tokenizer`` follows the semantics of Keras's ``Tokenizer`` so that numbers from Keras tutorials can
be reproduced here:

* ``fit_on_texts`` counts tokens (``word_counts``) and the documents each token occurs in
  (``word_docs``), then builds ``word_index``: indices start at 1 (0 is kept for padding), the most
  frequent token gets 1, ties keep the order of first appearance. An ``oov_token`` takes index 1.
* ``num_words`` does not shrink ``word_index``; it is applied when converting: only indices
  ``< num_words`` survive (the ``num_words - 1`` most frequent tokens), the rest become the
  out-of-vocabulary index or are dropped when there is no ``oov_token``.
* Word level: lower-case (``lower``), replace every character of ``filters`` by ``split``, split on
  ``split``, drop empty pieces.
* Character level (``char_level=True``): every character is a token. As in Keras, ``lower`` still
  applies but ``filters`` and ``split`` are ignored, so spaces, punctuation and newlines are tokens.
  For a character language model you usually want ``lower=False`` (and ``filters=''`` for clarity)
  so that the model sees the text exactly as written.

Deliberate differences from Keras, each for a reason:

* ``sequences_to_texts`` joins character-level tokens with ``''`` (Keras joins with ``' '``), so
  decoding a character sequence gives back the text.
* A text that contains the ``oov_token`` itself does not move it away from index 1.
* Vocabularies are saved as plain JSON in rnnkit's own layout (``to_json``/``save``), never pickled.

``length_buckets`` groups sequences of similar length into batches, so that padding each batch to its
longest member wastes little (training shuffles the groups; evaluation and inference take them in order).

``split_words`` and ``join_words`` are a second, reversible word tokenizer for natural language (sequence to
sequence reads sentences with it): Unicode NFC, punctuation split from words, and a joiner mark that records
where a mark touched its neighbour, so that the tokens give the text back exactly.

``pad_sequences`` and ``to_categorical`` match Keras; ``one_hot`` one-hot encodes integer sequences
(``(N, T) -> (N, T, V)``, what a character model with one-hot inputs eats). It is *not* Keras's
``one_hot``, which hashes words to integers.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from rnnkit._checks import check_choice, check_int, fail
from rnnkit.runs.io import atomic_write_text

__all__ = [
    "DEFAULT_FILTERS",
    "Tokenizer",
    "text_to_word_sequence",
    "split_words",
    "join_words",
    "pad_sequences",
    "length_buckets",
    "to_categorical",
    "one_hot",
]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
MATRIX_MODES = ("binary", "count", "freq", "tfidf")
_FORMAT = "rnnkit.Tokenizer"
_FORMAT_VERSION = 1


class _Abbrev:
    """Wraps a value so that error messages show a short ``repr`` (a corpus can be megabytes)."""

    def __init__(self, value: Any, limit: int = 80):
        self.value, self.limit = value, limit

    def __repr__(self) -> str:
        text = re.sub(r"\n\s*", " ", repr(self.value))  # numpy reprs span lines; keep messages on one
        return text if len(text) <= self.limit else text[: self.limit - 3] + "..."


def _memory_bytes() -> int:
    """This machine's physical memory (1 TiB when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


_ZEROS = object()   # _allocate's default fill: np.zeros, which leaves untouched pages unwritten


def _allocate(name: str, value: Any, shape: tuple, dtype: np.dtype, fill: Any = _ZEROS) -> np.ndarray:
    """``np.full(shape, fill, dtype)`` (zeros without ``fill``), refused with a message naming argument
    ``name`` when it cannot fit in this machine's memory (numpy would raise MemoryError, or the system
    would kill the process)."""
    need = math.prod(shape) * dtype.itemsize
    have = _memory_bytes()
    expected = (f"a size whose {shape} {dtype.name} array fits in memory: it would take {_size_text(need)}, "
                f"this machine has {_size_text(have)}")
    if need > have:
        fail(name, value, expected)
    try:
        return np.zeros(shape, dtype=dtype) if fill is _ZEROS else np.full(shape, fill, dtype=dtype)
    except MemoryError:
        fail(name, value, expected)
    raise AssertionError  # unreachable: fail raises


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether numbers can become integers of ``dtype`` as they are: finite and in range (numpy would
    silently wrap 256 to 0 in uint8). Anything else is left to numpy's own conversion."""
    if dtype.kind not in "iu" or values.dtype.kind not in "iuf" or not values.size:
        return True
    info = np.iinfo(dtype)
    return bool(np.isfinite(values).all()) and values.min() >= info.min and values.max() <= info.max


def _range_text(dtype: np.dtype) -> str:
    info = np.iinfo(dtype)
    return f"integers that fit dtype={dtype.name!r} ({info.min} to {info.max})"


def _check_str(name: str, value: Any, *, allow_none: bool = False, nonempty: bool = False) -> Any:
    if value is None and allow_none:
        return value
    if not isinstance(value, str) or (nonempty and not value):
        fail(name, _Abbrev(value), "a non-empty str" if nonempty else "a str")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        fail(name, value, "True or False")
    return bool(value)


def _check_texts(texts: Any, name: str = "texts") -> list[str]:
    # A bare str is iterable too, and would silently be read as one document per character.
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        fail(name, _Abbrev(texts), "a list of str")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            fail(f"{name}[{i}]", _Abbrev(text), "a str")
    return texts


def _check_sequences(sequences: Any, name: str = "sequences") -> list:
    """A list of integer sequences (lists, tuples or 1-D arrays); returns it as a list of lists."""
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        fail(name, _Abbrev(sequences), "a list of integer sequences")
    out = []
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Iterable):
            fail(f"{name}[{i}]", _Abbrev(seq), "a sequence of integers")
        row = []
        for j, v in enumerate(seq):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                fail(f"{name}[{i}][{j}]", v, "an integer")
            row.append(int(v))
        out.append(row)
    return out


def text_to_word_sequence(text: str, filters: str = DEFAULT_FILTERS, lower: bool = True,
                          split: str = " ") -> list[str]:
    """Split ``text`` into words the Keras way: lower, filter characters to ``split``, split, drop ''."""
    _check_str("text", text)
    _check_str("filters", filters)
    _check_str("split", split, nonempty=True)
    if lower:
        text = text.lower()
    if filters:
        text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


# Marks the side where a punctuation token touched its neighbour in the text ("it." -> "it", "￭.").
# U+FFED, as OpenNMT's tokenizer writes it: a character that natural text does not use.
JOINER = "\uffed"
_APOSTROPHES = "'\u2019"


def _is_word_char(c: str) -> bool:
    # Letters, combining marks (Devanagari vowel signs, Greek accents left decomposed) and digits.
    return unicodedata.category(c)[0] in "LMN"


def split_words(text: str) -> list[str]:
    """A text -> words and punctuation as separate tokens, reversibly (``join_words`` gives the text back).

    The text is put in Unicode NFC first (an accented letter written as letter + accent becomes the one
    character). Words are runs of letters, marks and digits; an apostrophe between two letters stays in the
    word ("don't", "l'homme"). Every other character that is not a space (punctuation, symbols) is a token of
    its own, with the joiner (U+FFED) on each side where it touched another token: ``"Hi, (you)."`` ->
    ``["Hi", "￭,", "(￭", "you", "￭)", "￭."]``. So "it." and "it" share the word, and a vocabulary
    holds "￭." once instead of a copy of every word with a full stop glued on."""
    _check_str("text", text)
    tokens: list[str] = []
    for chunk in unicodedata.normalize("NFC", text).split():
        if chunk.isalnum():                       # the common case: a plain word
            tokens.append(chunk)
            continue
        pieces: list[str] = []                    # (word or mark) pieces of this whitespace-free chunk
        word = ""
        for i, c in enumerate(chunk):
            inner_apostrophe = (c in _APOSTROPHES and word and i + 1 < len(chunk)
                                and _is_word_char(chunk[i + 1]))
            if _is_word_char(c) or inner_apostrophe:
                word += c
                continue
            if word:
                pieces.append(word)
                word = ""
            pieces.append(JOINER + c)             # a mark: joined to what came before, if anything did
        if word:
            pieces.append(word)
        # The joiner goes on the mark's side only: a mark that starts the chunk touched nothing before it,
        # and a mark followed by a word is joined to that word ("(you" -> "(￭", "you").
        for j, piece in enumerate(pieces):
            if not piece.startswith(JOINER):
                continue
            mark = piece[1:]
            before = j > 0 and not pieces[j - 1].startswith(JOINER)
            after = j + 1 < len(pieces)
            previous_mark = j > 0 and pieces[j - 1].startswith(JOINER)
            # Between two marks (".." or "?!") the joiner is written once, on the later one.
            pieces[j] = (JOINER if before or previous_mark else "") + mark + (
                JOINER if after and not pieces[j + 1].startswith(JOINER) else "")
        tokens.extend(pieces)
    return tokens


def join_words(tokens: Iterable[str]) -> str:
    """Tokens of ``split_words`` -> the text: a space between two tokens unless a joiner says they touched."""
    out = []
    glue = True                                   # no space before the first token
    for token in tokens:
        if not isinstance(token, str):
            fail("tokens", _Abbrev(token), "str tokens")
        if not (glue or token.startswith(JOINER)):
            out.append(" ")
        out.append(token.strip(JOINER) if len(token) > 1 else token)
        glue = token.endswith(JOINER) and len(token) > 1
    return "".join(out)


class Tokenizer:
    """Map texts to integer sequences and back (Keras ``Tokenizer`` semantics; see the module doc).

    Args:
        num_words: keep only indices ``< num_words`` when converting (``None``: keep all).
        filters: characters removed (turned into ``split``) at word level.
        lower: lower-case texts before tokenizing.
        split: word separator.
        char_level: every character is a token.
        oov_token: token that replaces unknown (and cut-off) tokens; gets index 1.

    Attributes after ``fit_on_texts``: ``word_counts``, ``word_docs``, ``index_docs``,
    ``document_count``, ``word_index`` (token -> index, 1-based), ``index_word`` (the inverse).
    """

    def __init__(self, num_words: int | None = None, filters: str = DEFAULT_FILTERS, lower: bool = True,
                 split: str = " ", char_level: bool = False, oov_token: str | None = None):
        self.num_words = check_int("num_words", num_words, min=1, allow_none=True)
        self.filters = _check_str("filters", filters)
        self.lower = _check_bool("lower", lower)
        self.split = _check_str("split", split, nonempty=True)
        self.char_level = _check_bool("char_level", char_level)
        self.oov_token = _check_str("oov_token", oov_token, allow_none=True)
        self.word_counts: dict[str, int] = {}   # insertion order = first appearance
        self.word_docs: dict[str, int] = {}
        self.document_count = 0
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}
        self.index_docs: dict[int, int] = {}

    def __repr__(self) -> str:
        return (f"Tokenizer(num_words={self.num_words!r}, char_level={self.char_level!r}, "
                f"lower={self.lower!r}, oov_token={self.oov_token!r}, vocab={len(self.word_index)})")

    # --- tokenizing -----------------------------------------------------------------------------

    def _tokens(self, text: str) -> Sequence[str]:
        if self.char_level:
            # Keras applies lower but not filters at character level: each character is a token.
            return text.lower() if self.lower else text
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts: Iterable[str]) -> "Tokenizer":
        """Count the tokens of ``texts`` (adds to earlier fits) and rebuild ``word_index``."""
        texts = _check_texts(texts)
        for text in texts:
            self.document_count += 1
            tokens = self._tokens(text)
            for w in tokens:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in dict.fromkeys(tokens):  # distinct tokens, in a stable order
                self.word_docs[w] = self.word_docs.get(w, 0) + 1
        self._build_index()
        return self

    def _build_index(self) -> None:
        # sorted() is stable, so equal counts keep the order in which tokens were first seen.
        ranked = sorted(self.word_counts.items(), key=lambda item: item[1], reverse=True)
        vocab = [] if self.oov_token is None else [self.oov_token]
        vocab += [w for w, _ in ranked if w != self.oov_token]
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = {self.word_index[w]: c for w, c in self.word_docs.items() if w in self.word_index}

    @property
    def vocab_size(self) -> int:
        """Rows an embedding (or softmax) needs: the largest index a conversion can give, plus 1.

        ``len(word_index) + 1`` (index 0 is padding), capped at ``num_words`` when that is set.
        ``texts_to_matrix`` keeps Keras's width, ``num_words`` columns, even when that is larger.
        """
        size = len(self.word_index) + 1
        return size if self.num_words is None else min(size, self.num_words)

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Each text as a list of indices; unknown or cut-off tokens become the OOV index or vanish."""
        texts = _check_texts(texts)
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for text in texts:
            seq = []
            for w in self._tokens(text):
                i = self.word_index.get(w)
                if i is None or (self.num_words is not None and i >= self.num_words):
                    i = oov
                if i is not None:
                    seq.append(i)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """The inverse of ``texts_to_sequences`` (up to lower-casing and filtering).

        Index 0 and unknown indices are dropped (or become the OOV token); words are joined with a
        space, characters (``char_level``) with nothing.
        """
        sequences = _check_sequences(sequences)
        oov_word = self.oov_token if self.oov_token in self.word_index else None
        joiner = "" if self.char_level else " "
        out = []
        for seq in sequences:
            words = []
            for i in seq:
                w = self.index_word.get(i)
                if w is None or (self.num_words is not None and i >= self.num_words):
                    w = oov_word
                if w is not None:
                    words.append(w)
            out.append(joiner.join(words))
        return out

    def texts_to_matrix(self, texts: Iterable[str], mode: str = "binary") -> np.ndarray:
        """Bag-of-words matrix ``(len(texts), num_words or vocab)``; see ``sequences_to_matrix``."""
        check_choice("mode", mode, MATRIX_MODES)
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Iterable[Sequence[int]], mode: str = "binary") -> np.ndarray:
        """One row per sequence, one column per index (column 0, padding, stays 0), float64.

        ``binary``: 1 if the index occurs; ``count``: occurrences; ``freq``: occurrences / len(seq);
        ``tfidf``: ``(1 + log(count)) * log(1 + document_count / (1 + docs containing it))``.
        Indices ``>= num_words`` are ignored (they still count in ``len(seq)`` for ``freq``, as in Keras).
        """
        check_choice("mode", mode, MATRIX_MODES)
        sequences = _check_sequences(sequences)
        width = self.num_words
        if width is None:
            if not self.word_index:
                raise ValueError("Tokenizer is not fitted and num_words is None: call fit_on_texts first "
                                 "or set num_words to fix the number of columns")
            width = len(self.word_index) + 1
        if mode == "tfidf" and not self.document_count:
            raise ValueError("mode='tfidf' needs document counts: call fit_on_texts first")
        # One column per index: a num_words of 10**12 would ask for terabytes.
        x = _allocate("num_words" if self.num_words is not None else "sequences",
                      self.num_words if self.num_words is not None else _Abbrev(sequences),
                      (len(sequences), width), np.dtype(np.float64))
        for row, seq in enumerate(sequences):
            if not seq:
                continue
            counts = Counter(j for j in seq if 0 <= j < width)
            for j, c in counts.items():
                if mode == "count":
                    x[row, j] = c
                elif mode == "freq":
                    x[row, j] = c / len(seq)
                elif mode == "binary":
                    x[row, j] = 1.0
                else:
                    tf = 1.0 + math.log(c)
                    idf = math.log(1.0 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[row, j] = tf * idf
        return x

    # --- saving ---------------------------------------------------------------------------------

    def get_config(self) -> dict:
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower,
                "split": self.split, "char_level": self.char_level, "oov_token": self.oov_token}

    def to_json(self, **json_kwargs: Any) -> str:
        """The config and learned vocabulary as a JSON string (``json.dumps`` keywords pass through)."""
        data = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "config": self.get_config(),
            "document_count": self.document_count,
            # JSON objects keep key order, which carries the first-appearance order of word_counts.
            "word_counts": self.word_counts,
            "word_docs": self.word_docs,
            "word_index": self.word_index,
        }
        json_kwargs.setdefault("ensure_ascii", False)
        return json.dumps(data, **json_kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Tokenizer":
        """Rebuild a tokenizer from ``to_json`` output; malformed input raises ``ValueError``."""
        _check_str("text", text)
        try:
            data = json.loads(text)
        except RecursionError:   # "[[[[..." nested deeper than Python's stack: no Tokenizer is like that
            fail("text", _Abbrev(text, 40), "a Tokenizer's JSON (to_json output), not JSON nested too deeply "
                                            "to read")
        except ValueError as e:  # JSONDecodeError, and integers longer than Python converts
            raise ValueError(f"invalid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != _FORMAT:
            raise ValueError(f"'format' is {data.get('format')!r}, expected {_FORMAT!r}")
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"'version' is {data.get('version')!r}, this rnnkit reads version {_FORMAT_VERSION}")
        missing = [k for k in ("config", "document_count", "word_counts", "word_docs", "word_index") if k not in data]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        config = data["config"]
        if not isinstance(config, dict):
            raise ValueError("'config' is not a JSON object")
        unknown = sorted(set(config) - set(cls().get_config()))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}")
        tok = cls(**config)  # the constructor's checks name any bad field
        doc_count = data["document_count"]
        if isinstance(doc_count, bool) or not isinstance(doc_count, int) or doc_count < 0:
            raise ValueError(f"'document_count' is {doc_count!r}, expected an integer >= 0")
        tables = {}
        for key in ("word_counts", "word_docs", "word_index"):
            table = data[key]
            if not isinstance(table, dict) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in table.values()):
                raise ValueError(f"'{key}' is not an object of token -> integer >= 0")
            tables[key] = table
        index = tables["word_index"]
        if sorted(index.values()) != list(range(1, len(index) + 1)):
            raise ValueError("'word_index' does not number its tokens 1..n without gaps or repeats")
        if not set(tables["word_counts"]) <= set(index) or not set(tables["word_docs"]) <= set(index):
            raise ValueError("'word_counts' or 'word_docs' has tokens missing from 'word_index'")
        tok.document_count = doc_count
        tok.word_counts = dict(tables["word_counts"])
        tok.word_docs = dict(tables["word_docs"])
        # The stored index is the truth (it is what a saved model was trained with), not a recount.
        tok.word_index = dict(index)
        tok.index_word = {i: w for w, i in tok.word_index.items()}
        tok.index_docs = {tok.word_index[w]: c for w, c in tok.word_docs.items()}
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_json()`` to ``path`` atomically: a reader sees the old file or the new, never half."""
        atomic_write_text(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a file written by ``save``; a corrupt file raises ``ValueError`` naming it."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            return cls.from_json(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not a Tokenizer file: not UTF-8 text ({e})") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a valid Tokenizer file: {e}") from None


def pad_sequences(sequences: Iterable[Sequence[Any]], maxlen: int | None = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre", value: Any = 0) -> np.ndarray:
    """Make a ragged list of sequences one ``(N, maxlen, ...)`` array (Keras semantics).

    ``maxlen`` defaults to the longest sequence. Longer sequences lose items at the start
    (``truncating='pre'``) or end (``'post'``); shorter ones get ``value`` before (``padding='pre'``)
    or after (``'post'``). Items may themselves be arrays of one common shape (e.g. vectors).
    """
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        fail("sequences", _Abbrev(sequences), "a list of sequences")
    sequences = list(sequences)
    maxlen = check_int("maxlen", maxlen, min=0, allow_none=True)
    check_choice("padding", padding, ("pre", "post"))
    check_choice("truncating", truncating, ("pre", "post"))
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        fail("dtype", dtype, "a numpy dtype such as 'int32' or 'float32'")
    if isinstance(value, str) and np_dtype.kind not in ("U", "S", "O"):
        fail("value", value, f"a number for dtype={np_dtype.name!r} (a str value needs dtype=object or str)")
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and \
            not _fits(np.asarray(value), np_dtype):
        fail("value", value, _range_text(np_dtype))

    lengths = []
    sample_shape: tuple = ()
    found_shape = False
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            fail(f"sequences[{i}]", _Abbrev(seq), "a sequence (list, tuple or array)")
        lengths.append(len(seq))
        if not found_shape and len(seq):
            sample_shape = np.asarray(seq).shape[1:]
            found_shape = True
    given_maxlen = maxlen is not None
    if maxlen is None:
        maxlen = max(lengths, default=0)

    x = _allocate("maxlen" if given_maxlen else "sequences", maxlen if given_maxlen else _Abbrev(sequences),
                  (len(sequences), maxlen) + sample_shape, np_dtype, value)
    if maxlen == 0:
        return x
    for i, seq in enumerate(sequences):
        if not len(seq):
            continue
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        try:
            raw = np.asarray(kept)
            kept = raw.astype(np_dtype)
        except (TypeError, ValueError, OverflowError):
            fail(f"sequences[{i}]", _Abbrev(seq), f"items convertible to dtype={np_dtype.name!r}")
        if not _fits(raw, np_dtype):
            fail(f"sequences[{i}]", _Abbrev(seq), _range_text(np_dtype))
        if kept.shape[1:] != sample_shape:
            fail(f"sequences[{i}]", _Abbrev(seq), f"items of shape {sample_shape} like the first non-empty sequence")
        if padding == "post":
            x[i, : len(kept)] = kept
        else:
            x[i, -len(kept):] = kept
    return x


def length_buckets(lengths: Sequence[int] | np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                   chunk_batches: int = 20) -> list[np.ndarray]:
    """Row indices grouped into batches of at most ``batch_size`` rows of similar length.

    Without ``rng`` (evaluation, inference): every row sorted by length (stable), cut into batches in that
    order. With ``rng`` (training): the rows shuffled, sorted by length within chunks of ``chunk_batches``
    batches, cut into batches, and the batches shuffled; so a batch holds rows of similar length, yet which
    rows meet in a batch, and the order of the batches, change with ``rng`` (every epoch).
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    chunks = np.array_split(order, max(1, math.ceil(n / (batch_size * chunk_batches))))
    order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
    groups = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [groups[i] for i in rng.permutation(len(groups))]


def _int_array(name: str, y: Any) -> np.ndarray:
    """``y`` as an int64 array, refusing ragged input, non-integers and negatives."""
    try:
        arr = np.asarray(y)
    except ValueError:
        fail(name, _Abbrev(y), "a rectangular array of integers (pad ragged sequences first)")
    if arr.dtype == object:
        fail(name, _Abbrev(y), "a rectangular array of integers (pad ragged sequences first)")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            fail(name, _Abbrev(y), "integer class indices")
    elif arr.dtype.kind not in ("i", "u") and arr.size:
        fail(name, _Abbrev(y), "integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        fail(name, _Abbrev(y), "class indices >= 0")
    return arr


def _encode(arr: np.ndarray, name: str, num_classes: int, dtype: Any) -> np.ndarray:
    if arr.size and arr.max() >= num_classes:
        fail(name, _Abbrev(arr.tolist()), f"class indices < num_classes={num_classes}")
    # Row k of the identity is the one-hot vector of class k; fancy indexing keeps arr's shape.
    return np.eye(num_classes, dtype=dtype)[arr]


def to_categorical(y: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """Class vector -> one-hot matrix, Keras semantics.

    ``num_classes`` defaults to ``max(y) + 1``. A trailing axis of size 1 (labels shaped ``(N, 1)``)
    is dropped first, so ``(N, 1) -> (N, C)``; any other shape ``S`` gives ``S + (C,)``.
    """
    arr = _int_array("y", y)
    num_classes = check_int("num_classes", num_classes, min=1, allow_none=True)
    if arr.ndim > 1 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if num_classes is None:
        if not arr.size:
            fail("num_classes", None, "an integer >= 1 when y is empty")
        num_classes = int(arr.max()) + 1
    return _encode(arr, "y", num_classes, dtype)


def one_hot(sequences: Any, num_classes: int, dtype: Any = "float32") -> np.ndarray:
    """One-hot encode integer sequences: shape ``S -> S + (num_classes,)``, e.g. ``(N, T) -> (N, T, V)``.

    Padding (index 0) becomes the vector of class 0 like any index; pass padded, rectangular input.
    Use ``Tokenizer.vocab_size`` as ``num_classes``.
    """
    arr = _int_array("sequences", sequences)
    num_classes = check_int("num_classes", num_classes, min=1)
    return _encode(arr, "sequences", num_classes, dtype)
