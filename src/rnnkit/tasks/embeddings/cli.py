"""`rnnkit embed neighbors|analogy|eval|plot`: pretrained word vectors from the command line.

A thin layer over task.py: each verb has a config dataclass whose fields are its flags, loads the
vectors (`--embeddings glove-50d` or a GloVe text file) and calls one function.

    rnnkit embed neighbors frog --top 10
    rnnkit embed analogy king man woman            # king - man + woman = queen, as Embeddings.analogy
    rnnkit embed eval -o eval.json                 # analogy accuracy (top 30k words) and WS353 Spearman
    rnnkit embed plot king queen man woman paris france -o words.png
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from typing import Optional

from rnnkit import _checks
from rnnkit.config import add_config_arguments, config_from_args, field
from rnnkit.tasks.embeddings.data import load_analogies, load_similarity
from rnnkit.tasks.embeddings.task import (ANALOGY_METHODS, Embeddings, evaluate_analogies, evaluate_similarity,
                                          plot_words)


@dataclass
class EmbedConfig:
    embeddings: str = field("glove-50d", "word vectors: a dataset name (glove-50d) or a GloVe-format text file")
    num_words: Optional[int] = field(None, "use only the N most frequent words (the first N of the file); "
                                           "none for all")

    def __post_init__(self):
        _checks.check_int("num_words", self.num_words, min=1, allow_none=True)

    def load(self) -> Embeddings:
        return Embeddings.load(self.embeddings, num_words=self.num_words)


@dataclass
class NeighborsConfig(EmbedConfig):
    top: int = field(10, "how many neighbours to print")

    def __post_init__(self):
        super().__post_init__()
        _checks.check_int("top", self.top, min=1)


@dataclass
class AnalogyConfig(EmbedConfig):
    top: int = field(5, "how many answers to print, best first")
    method: str = field("3cosadd", "3cosadd: argmax cos(x,A) - cos(x,B) + cos(x,C); 3cosmul: Levy & "
                                   "Goldberg's multiplicative form", choices=ANALOGY_METHODS)

    def __post_init__(self):
        super().__post_init__()
        _checks.check_int("top", self.top, min=1)
        _checks.check_choice("method", self.method, ANALOGY_METHODS)


@dataclass
class EvalConfig:
    embeddings: str = field("glove-50d", "word vectors: a dataset name (glove-50d) or a GloVe-format text file")
    analogies: Optional[str] = field("analogy-questions", "analogy questions: the dataset analogy-questions "
                                     "or a questions-words.txt-style file; 'none' skips them")
    similarity: Optional[str] = field("wordsim353", "word pairs with human scores: the dataset wordsim353 or a "
                                      "'word1 word2 score' file; 'none' skips them")
    num_words: Optional[int] = field(30000, "analogies only: questions and answers restricted to the N most "
                                            "frequent words (gensim's restrict_vocab); 'none' for all")
    method: str = field("3cosadd", "analogy scoring: 3cosadd or 3cosmul", choices=ANALOGY_METHODS)
    lower: bool = field(True, "match words case-insensitively (lowercased), as gensim's evaluation does")
    output: Optional[str] = field(None, "also write the results as JSON to this file (default: printed only)",
                                  cli=False)   # -o/--output, added by add_commands
    dry_run: bool = field(False, "evaluate only the first 5 questions of each section and 20 word pairs")

    def __post_init__(self):
        _checks.check_int("num_words", self.num_words, min=1, allow_none=True)
        _checks.check_choice("method", self.method, ANALOGY_METHODS)
        if self.analogies is None and self.similarity is None:
            raise ValueError("analogies=None, similarity=None: expected at least one benchmark to evaluate")


@dataclass
class PlotConfig(EmbedConfig):
    output: str = field("words.png", "the PNG file to write (default: words.png)", cli=False)  # -o/--output


# ---------------------------------------------------------------------------------------------------------
# The verbs
# ---------------------------------------------------------------------------------------------------------

def neighbors(cfg: NeighborsConfig, word: str) -> list[tuple[str, float]]:
    emb = cfg.load()
    result = emb.neighbors(word, top=cfg.top)
    print(f"nearest neighbours of {word!r} in {emb.source} ({len(emb):,} words), by cosine:")
    for rank, (w, cos) in enumerate(result, start=1):
        print(f"{rank:4d}  {w:<24} {cos:.4f}")
    return result


def analogy(cfg: AnalogyConfig, a: str, b: str, c: str) -> list[tuple[str, float]]:
    """``a b c`` reads "a - b + c" ("b is to a as c is to ?"), as ``Embeddings.analogy(a, b, c)`` does."""
    emb = cfg.load()
    for name, word in (("A", a), ("B", b), ("C", c)):
        emb.require(word, name)                                        # errors name the argument as in --help
    result = emb.analogy(a, b, c, top=cfg.top, method=cfg.method)
    print(f"{a} - {b} + {c}  ({b} is to {a} as {c} is to ?), {cfg.method} over {len(emb):,} words:")
    for rank, (w, score) in enumerate(result, start=1):
        print(f"{rank:4d}  {w:<24} {score:.4f}")
    return result


def evaluate(cfg: EvalConfig) -> dict:
    emb = Embeddings.load(cfg.embeddings)
    out: dict = {"embeddings": emb.source, "words": len(emb), "config": asdict(cfg)}
    if cfg.analogies is not None:
        questions = load_analogies(cfg.analogies)
        if cfg.dry_run:
            questions = _first_per_section(questions, 5)
        res = evaluate_analogies(emb, questions, num_words=cfg.num_words, method=cfg.method, lower=cfg.lower)
        out["analogies"] = res
        _print_analogies(res, cfg.analogies)
    if cfg.similarity is not None:
        pairs = load_similarity(cfg.similarity)
        if cfg.dry_run:
            pairs = {k: v[:20] for k, v in pairs.items()}
        res = evaluate_similarity(emb, pairs, lower=cfg.lower)
        out["similarity"] = res
        print(f"\nword similarity ({cfg.similarity}): Spearman {res['spearman']:.4f} between cosine and human "
              f"scores over {res['used']} of {res['pairs']} pairs; {res['skipped']} skipped (a word unknown)")
        if res["skipped_pairs"]:
            print("  skipped: " + ", ".join(f"{a}/{b}" for a, b in res["skipped_pairs"][:10])
                  + (" ..." if res["skipped"] > 10 else ""))
    if cfg.output:
        from rnnkit.runs.checkpoint import atomic_write_json
        atomic_write_json(cfg.output, _json_safe(out))
        print(f"\nresults written to {cfg.output}", file=sys.stderr)
    return out


def plot(cfg: PlotConfig, words: list[str]) -> None:
    emb = cfg.load()
    path = plot_words(emb, words, cfg.output)
    print(f"wrote {path} ({len(words)} words, first two principal components)")


def _first_per_section(questions: dict, n: int) -> dict:
    seen: dict[str, int] = {}
    keep = []
    for i, s in enumerate(questions["section"]):
        seen[s] = seen.get(s, 0) + 1
        if seen[s] <= n:
            keep.append(i)
    return {k: v[keep] for k, v in questions.items()}


def _print_analogies(res: dict, source: str) -> None:
    def line(name: str, t: dict) -> str:
        acc = "   n/a" if t["answered"] == 0 else f"{100 * t['accuracy']:6.2f}"
        return f"{name:<30} {acc}  {t['correct']:>7,} {t['answered']:>8,} {t['skipped']:>8,}"

    print(f"analogies ({source}), {res['method']}, questions and answers among the {res['num_words']:,} most "
          f"frequent words{', case-insensitive' if res['lower'] else ''}:")
    print(f"{'section':<30} {'acc %':>6}  {'correct':>7} {'answered':>8} {'skipped':>8}")
    for name, t in res["sections"].items():
        print(line(name, t))
    print("-" * 64)
    for name in ("semantic", "syntactic", "total"):
        print(line(name, res[name]))
    tot = res["total"]
    print(f"{tot['skipped']:,} of {tot['questions']:,} questions skipped (a word outside the vocabulary) and not "
          f"scored; counting them as wrong gives {100 * tot['accuracy_all']:.2f}%")


def _json_safe(obj):
    """NaN is not JSON: write it as null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------------------
# Command registration: each verb builds its config from the flags, runs, and returns exit code 0
# ---------------------------------------------------------------------------------------------------------

def _cmd_neighbors(args) -> int:
    neighbors(config_from_args(NeighborsConfig, args), args.word)
    return 0


def _cmd_analogy(args) -> int:
    analogy(config_from_args(AnalogyConfig, args), args.a, args.b, args.c)
    return 0


def _cmd_eval(args) -> int:
    evaluate(config_from_args(EvalConfig, args))
    return 0


def _cmd_plot(args) -> int:
    plot(config_from_args(PlotConfig, args), args.words)
    return 0


def _add_output_argument(parser, cls) -> None:
    """`-o/--output FILE`, the one output file of every verb that writes one: the config field `output`."""
    (f,) = [f for f in fields(cls) if f.name == "output"]
    parser.add_argument("-o", "--output", metavar="FILE", default=f.default, help=f.metadata["help"])


def add_commands(sub) -> None:
    group = sub.add_parser("embed", help="pretrained word vectors: neighbours, analogies, evaluation, plots",
                           description="Pretrained word vectors (GloVe): nearest neighbours, analogies, "
                                       "benchmark evaluation and 2-D plots of chosen words.")
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")

    p = verbs.add_parser("neighbors", help="the words closest to WORD by cosine similarity")
    p.add_argument("word", metavar="WORD", help="the word to look up")
    add_config_arguments(p, NeighborsConfig)
    p.set_defaults(func=_cmd_neighbors)

    p = verbs.add_parser("analogy", help="A - B + C: e.g. 'king man woman' -> queen",
                         description="The words closest to A - B + C: 'king man woman' answers queen (B is "
                                     "to A as C is to ?). Embeddings.analogy(a, b, c) takes the words in the "
                                     "same order.")
    p.add_argument("a", metavar="A", help="the word to start from (king)")
    p.add_argument("b", metavar="B", help="the word to subtract (man)")
    p.add_argument("c", metavar="C", help="the word to add (woman)")
    add_config_arguments(p, AnalogyConfig)
    p.set_defaults(func=_cmd_analogy)

    p = verbs.add_parser("eval", help="analogy accuracy and word-similarity Spearman correlation")
    add_config_arguments(p, EvalConfig)
    _add_output_argument(p, EvalConfig)
    p.set_defaults(func=_cmd_eval)

    p = verbs.add_parser("plot", help="a labelled 2-D PCA projection of chosen words, as a PNG")
    p.add_argument("words", metavar="WORD", nargs="+", help="the words to plot")
    add_config_arguments(p, PlotConfig)
    _add_output_argument(p, PlotConfig)
    p.set_defaults(func=_cmd_plot)
