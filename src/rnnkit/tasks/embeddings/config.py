"""The configs of `rnnkit embed neighbors|analogy|eval|plot|train|predict|export`: one dataclass per verb,
whose fields are its flags.

Imports no numpy (nor torch): every ``rnnkit embed ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

ANALOGY_METHODS = ("3cosadd", "3cosmul")
PLOT_METHODS = ("pca", "tsne")
MAX_WORDS = 10_000_000       # rows of a vector file read (GloVe 840B has 2.2 M)
# word2vec's window and negatives: each center word's batch row holds 2 x window contexts and 1 + negative
# targets, so a typo (window 10**6) would allocate (batch x 2,000,000 x dim) floats. Published settings stay
# far below: window 2-15, negative 2-25 (Mikolov et al. 2013; Levy et al. 2015).
MAX_WINDOW = 100
DEFAULT_VECTORS = "vectors.txt"      # where `rnnkit embed train` and `export` write the vectors
MAX_NEGATIVE = 100


@dataclass
class EmbedConfig:
    embeddings: str = field("glove-50d", "word vectors: a dataset name (glove-50d) or a GloVe-format text file",
                            group="data")
    num_words: int | None = field(None, "use only the N most frequent words (the first N of the file); "
                                           f"none for all; at most {MAX_WORDS:,}", group="data")

    def __post_init__(self):
        _checks.check_int("num_words", self.num_words, min=1, cap=MAX_WORDS, allow_none=True)


@dataclass
class NeighborsConfig(EmbedConfig):
    RENAMED: ClassVar[dict[str, str]] = {"top": "num_results"}    # rnnkit 0.1's --top: still parsed, with a warning

    num_results: int = field(10, f"how many neighbours to print (at most {_checks.MAX_RESULTS:,})", group="output")

    def __post_init__(self):
        super().__post_init__()
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_RESULTS)


@dataclass
class AnalogyConfig(EmbedConfig):
    RENAMED: ClassVar[dict[str, str]] = {"top": "num_results"}    # rnnkit 0.1's --top: still parsed, with a warning

    num_results: int = field(5, f"how many answers to print, best first (at most {_checks.MAX_RESULTS:,})",
                             group="output")
    method: str = field("3cosadd", "3cosadd: argmax cos(x,A) - cos(x,B) + cos(x,C); 3cosmul: Levy & "
                                   "Goldberg's multiplicative form", choices=ANALOGY_METHODS)

    def __post_init__(self):
        super().__post_init__()
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_RESULTS)
        _checks.check_choice("method", self.method, ANALOGY_METHODS)


@dataclass
class EvalConfig:
    embeddings: str = field("glove-50d", "word vectors: a dataset name (glove-50d) or a GloVe-format text file")
    analogies: str | None = field("analogy-questions", "analogy questions: the dataset analogy-questions "
                                     "or a questions-words.txt-style file; 'none' skips them")
    similarity: str | None = field("wordsim353", "word pairs with human scores: the dataset wordsim353 or a "
                                      "'word1 word2 score' file; 'none' skips them")
    num_words: int | None = field(30000, "analogies only: questions and answers restricted to the N most "
                                            "frequent words (gensim's restrict_vocab); 'none' for all; at most "
                                            f"{MAX_WORDS:,}")
    method: str = field("3cosadd", "analogy scoring: 3cosadd or 3cosmul", choices=ANALOGY_METHODS)
    lower: bool = field(True, "match words case-insensitively (lowercased), as gensim's evaluation does")
    output: str | None = field(None, "also write the results as JSON to this file (default: printed only)",
                                  cli=False)   # -o/--output, added by add_commands
    dry_run: bool = field(False, "evaluate only the first 5 questions of each section and 20 word pairs")

    def __post_init__(self):
        _checks.check_int("num_words", self.num_words, min=1, cap=MAX_WORDS, allow_none=True)
        _checks.check_choice("method", self.method, ANALOGY_METHODS)
        if self.analogies is None and self.similarity is None:
            raise ValueError("analogies=None, similarity=None: expected at least one benchmark to evaluate")


@dataclass
class PlotConfig(EmbedConfig):
    output: str = field("words.png", "the PNG file to write (default: words.png)", cli=False)  # -o/--output
    method: str = field("pca", "pca: the two directions along which the words differ most (each axis is a "
                               "direction in the vector space; the words at its two ends are printed); tsne: "
                               "t-SNE, which keeps neighbours together but whose axes mean nothing",
                        choices=PLOT_METHODS, group="output")
    seed: int = field(0, f"t-SNE's random start (0 to {_checks.MAX_SEED:,})", group="output")

    def __post_init__(self):
        super().__post_init__()
        _checks.check_choice("method", self.method, PLOT_METHODS)
        _checks.check_int("seed", self.seed, min=0, cap=_checks.MAX_SEED)


@dataclass
class Word2VecConfig:
    """`rnnkit embed train`: skip-gram with negative sampling (word2vec) on a text, as in Mikolov et al. 2013.

    The defaults are word2vec's and gensim's (dim 100, window 5, 5 negatives, min count 5, subsampling 1e-3,
    5 epochs, learning rate 0.025 decaying to 0.0001 over the run) with plain SGD on sparse rows."""

    corpus: str | None = field(None, "the text to learn from: a UTF-8 text file, one sentence or document per "
                                        "line (windows never cross a line), or a text dataset (imdb, "
                                        "rotten-tomatoes, shakespeare); required", group="data")
    encoding: str = field("utf-8", "text encoding of --corpus", group="data")
    lower: bool = field(True, "lower-case the text before splitting it into words (the analogy and WordSim "
                              "benchmarks are lower-case)", group="data")
    min_count: int = field(5, "words seen fewer times than this are dropped from the text before training (at "
                              f"most {_checks.MAX_COUNT:,})", group="data")
    num_words: int | None = field(None, "keep at most the N most frequent words (after --min-count); none for "
                                           f"all; at most {_checks.MAX_VOCAB:,}", group="data")
    subsample: float = field(1e-3, "drop each occurrence of a word of frequency f with probability "
                                   "1 - (sqrt(f/t) + 1) t/f for this t (word2vec's -sample; 0: keep every word)",
                             group="data")
    embedding_size: int = field(100, f"dimensions of each word vector (at most {_checks.MAX_WIDTH:,})",
                                group="model")
    window: int = field(5, "largest distance between a word and a context word; each word draws its own "
                           f"window from 1 to this, so near words count more (at most {MAX_WINDOW})",
                        group="model")
    negative: int = field(5, "random words drawn (from the unigram distribution to the power 0.75) to contrast "
                             f"with each word's true context words (at most {MAX_NEGATIVE})", group="model")
    update_cap: int | None = field(16, "in one step a word's vector takes the summed updates of at most this "
                                          "many of its occurrences, the rest scaled down: a batch repeats a "
                                          "frequent word hundreds of times, and those updates, all computed "
                                          "from the same weights, overshoot (none: no cap; at most "
                                          f"{_checks.MAX_COUNT:,})", group="model")
    output: str = field(DEFAULT_VECTORS, "the vectors file to write, in GloVe's text format", cli=False)  # -o
    # word2vec's training: plain SGD at its per-pair rate, decaying over the run; no validation set, so no best
    # epoch to keep. (field() copies the nested default for every instance, as in every task's config.)
    train: TrainConfig = field(  # noqa: RUF009
        TrainConfig(epochs=5, batch_size=2048, lr=0.025, min_lr=1e-4, optimizer="sgd", momentum=0.0,
                    clip_grad_norm=None, schedule="auto", restore_best=False, log_every=20),
        "training options")

    def __post_init__(self):
        if self.corpus is not None and (not isinstance(self.corpus, str) or not self.corpus):
            _checks.fail("corpus", self.corpus, "a text file or a text dataset name")
        _checks.check_int("min_count", self.min_count, min=1, cap=_checks.MAX_COUNT)
        _checks.check_int("num_words", self.num_words, min=2, cap=_checks.MAX_VOCAB, allow_none=True)
        _checks.check_float("subsample", self.subsample, min=0, max=1)
        _checks.check_int("embedding_size", self.embedding_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("window", self.window, min=1, cap=MAX_WINDOW)
        _checks.check_int("negative", self.negative, min=1, cap=MAX_NEGATIVE)
        _checks.check_int("update_cap", self.update_cap, min=1, cap=_checks.MAX_COUNT, allow_none=True)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


@dataclass
class PredictConfig:
    num_results: int = field(10, f"how many context words to print, most likely first (at most "
                                 f"{_checks.MAX_RESULTS:,})", group="output")

    def __post_init__(self):
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_RESULTS)


EXPORT_SIDES = ("source", "target")


@dataclass
class ExportConfig:
    side: str = field("source", "a sequence-to-sequence run has two embeddings: the source's (encoder) or the "
                                "target's (decoder)", choices=EXPORT_SIDES)
    output: str = field(DEFAULT_VECTORS, f"the vectors file to write, in GloVe's text format (default: "
                                         f"{DEFAULT_VECTORS})", cli=False)   # -o/--output

    def __post_init__(self):
        _checks.check_choice("side", self.side, EXPORT_SIDES)
