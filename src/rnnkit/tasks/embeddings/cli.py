"""`rnnkit embed neighbors|analogy|eval|plot`: pretrained word vectors from the command line.

A thin layer over task.py: each verb has a config dataclass whose fields are its flags, loads the
vectors (`--embeddings glove-50d` or a GloVe text file) and calls one function.

    rnnkit embed neighbors frog --num-results 10
    rnnkit embed analogy king man woman            # king - man + woman = queen, as Embeddings.analogy
    rnnkit embed eval -o eval.json                 # analogy accuracy (top 30k words) and WS353 Spearman
    rnnkit embed plot king queen man woman paris france -o words.png
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, fields

from rnnkit.config import add_config_arguments, config_from_args
from rnnkit.tasks.embeddings.config import AnalogyConfig, EvalConfig, NeighborsConfig, PlotConfig

# The vectors' readers and the evaluations import numpy: each verb imports them when it runs, so that the
# parser (and every --help) is built from the configs alone.


# ---------------------------------------------------------------------------------------------------------
# The verbs
# ---------------------------------------------------------------------------------------------------------

def neighbors(cfg: NeighborsConfig, word: str) -> list[tuple[str, float]]:
    emb = vectors_of(cfg)
    result = emb.neighbors(word, num_results=cfg.num_results)
    print(f"nearest neighbours of {word!r} in {emb.source} ({len(emb):,} words), by cosine:")
    for rank, (w, cos) in enumerate(result, start=1):
        print(f"{rank:4d}  {w:<24} {cos:.4f}")
    return result


def analogy(cfg: AnalogyConfig, a: str, b: str, c: str) -> list[tuple[str, float]]:
    """``a b c`` reads "a - b + c" ("b is to a as c is to ?"), as ``Embeddings.analogy(a, b, c)`` does."""
    emb = vectors_of(cfg)
    for name, word in (("A", a), ("B", b), ("C", c)):
        emb.require(word, name)                                        # errors name the argument as in --help
    result = emb.analogy(a, b, c, num_results=cfg.num_results, method=cfg.method)
    print(f"{a} - {b} + {c}  ({b} is to {a} as {c} is to ?), {cfg.method} over {len(emb):,} words:")
    for rank, (w, score) in enumerate(result, start=1):
        print(f"{rank:4d}  {w:<24} {score:.4f}")
    return result


def evaluate(cfg: EvalConfig) -> dict:
    from rnnkit.tasks.embeddings.data import load_analogies, load_similarity
    from rnnkit.tasks.embeddings.task import Embeddings, evaluate_analogies, evaluate_similarity

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
        from rnnkit.runs.io import atomic_write_json
        atomic_write_json(cfg.output, _json_safe(out))
        print(f"\nresults written to {cfg.output}", file=sys.stderr)
    return out


def plot(cfg: PlotConfig, words: list[str]) -> None:
    from rnnkit.tasks.embeddings.task import plot_words

    emb = vectors_of(cfg)
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


def vectors_of(cfg):
    """The word vectors an EmbedConfig names (imported here, when a verb runs: numpy and the file readers)."""
    from rnnkit.tasks.embeddings.task import Embeddings

    return Embeddings.load(cfg.embeddings, num_words=cfg.num_words)
