"""The configs of `rnnkit embed neighbors|analogy|eval|plot`: one dataclass per verb, whose fields are its flags.

Imports no numpy (nor torch): every ``rnnkit embed ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field

ANALOGY_METHODS = ("3cosadd", "3cosmul")
MAX_WORDS = 10_000_000       # rows of a vector file read (GloVe 840B has 2.2 M)


@dataclass
class EmbedConfig:
    embeddings: str = field("glove-50d", "word vectors: a dataset name (glove-50d) or a GloVe-format text file",
                            group="data")
    num_words: Optional[int] = field(None, "use only the N most frequent words (the first N of the file); "
                                           f"none for all; at most {MAX_WORDS:,}", group="data")

    def __post_init__(self):
        _checks.check_int("num_words", self.num_words, min=1, cap=MAX_WORDS, allow_none=True)


@dataclass
class NeighborsConfig(EmbedConfig):
    RENAMED = {"top": "num_results"}         # rnnkit 0.1's --top: still parsed, with a warning

    num_results: int = field(10, f"how many neighbours to print (at most {_checks.MAX_RESULTS:,})", group="output")

    def __post_init__(self):
        super().__post_init__()
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_RESULTS)


@dataclass
class AnalogyConfig(EmbedConfig):
    RENAMED = {"top": "num_results"}         # rnnkit 0.1's --top: still parsed, with a warning

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
    analogies: Optional[str] = field("analogy-questions", "analogy questions: the dataset analogy-questions "
                                     "or a questions-words.txt-style file; 'none' skips them")
    similarity: Optional[str] = field("wordsim353", "word pairs with human scores: the dataset wordsim353 or a "
                                      "'word1 word2 score' file; 'none' skips them")
    num_words: Optional[int] = field(30000, "analogies only: questions and answers restricted to the N most "
                                            "frequent words (gensim's restrict_vocab); 'none' for all; at most "
                                            f"{MAX_WORDS:,}")
    method: str = field("3cosadd", "analogy scoring: 3cosadd or 3cosmul", choices=ANALOGY_METHODS)
    lower: bool = field(True, "match words case-insensitively (lowercased), as gensim's evaluation does")
    output: Optional[str] = field(None, "also write the results as JSON to this file (default: printed only)",
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
