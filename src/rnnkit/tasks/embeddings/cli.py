"""`rnnkit embed neighbors|analogy|eval|plot|train|predict|export`: word vectors from the command line.

A thin layer over task.py, word2vec.py and export.py: each verb has a config dataclass whose fields are its
flags, loads the vectors (`--embeddings glove-50d` or a GloVe text file) or a run, and calls one function.

    rnnkit embed neighbors frog --num-results 10
    rnnkit embed analogy king man woman            # king - man + woman = queen, as Embeddings.analogy
    rnnkit embed eval -o eval.json                 # analogy accuracy (top 30k words) and WS353 Spearman
    rnnkit embed plot king queen man woman paris france -o words.png
    rnnkit embed train --corpus text.txt -o vectors.txt --run-dir runs/w2v    # word2vec
    rnnkit embed predict runs/w2v coffee          # the context words skip-gram predicts around a word
    rnnkit embed export runs/imdb -o vectors.txt   # the embedding layer of any trained run
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, fields

from rnnkit.config import (
    add_checkpoint_argument,
    add_config_arguments,
    add_train_arguments,
    config_from_args,
    given_fields,
)
from rnnkit.tasks.embeddings.config import (
    DEFAULT_VECTORS,
    AnalogyConfig,
    EvalConfig,
    ExportConfig,
    NeighborsConfig,
    PlotConfig,
    PredictConfig,
    Word2VecConfig,
)

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
    from rnnkit.tasks.embeddings.task import plot_projection, project_words

    emb = vectors_of(cfg)
    projection = project_words(emb, words, method=cfg.method, seed=cfg.seed)
    path = plot_projection(projection, cfg.output)
    if cfg.method == "tsne":
        print(f"wrote {path} ({len(words)} words, t-SNE with perplexity {projection.perplexity:g}): near points are "
              f"near words; the axes and the distances between far groups mean nothing")
        return
    print(f"wrote {path} ({len(words)} words, PCA): each axis is a direction in the {emb.dim}-dimensional space, "
          f"the one along which these words differ most, then the next at right angles")
    for j, ends in enumerate(projection.ends):
        (low, high), (vlow, vhigh) = ends["plotted"], ends["vocabulary"]
        print(f"  axis {j + 1} ({100 * projection.share[j]:.0f}% of the spread): {', '.join(low)}  <->  "
              f"{', '.join(high)}")
        print(f"    furthest along it among the {min(len(emb), 10000):,} most frequent words: {', '.join(vlow)}  "
              f"<->  {', '.join(vhigh)}")


def train(cfg: Word2VecConfig, *, run_dir: str | None = None, resume: bool = False, dry_run: bool = False):
    """word2vec on ``cfg.corpus``; writes the vectors to ``cfg.output`` (GloVe text)."""
    from rnnkit.tasks.base import stop_if_interrupted
    from rnnkit.tasks.embeddings.word2vec import Word2Vec
    from rnnkit.training.phases import phase

    w2v = Word2Vec(cfg).fit(run_dir=run_dir, resume=resume, dry_run=dry_run)
    stop_if_interrupted(w2v.trainer_, run_dir, Word2Vec.command())     # Ctrl-C: the checkpoint, then exit 130
    phase("save")
    path = w2v.save_vectors(cfg.output)
    trainer = w2v.trainer_
    passes = w2v.words_trained_ / max(1, w2v.data_["in_vocabulary"])     # words trained on: the vocabulary's
    seconds = w2v.train_seconds_
    rate = f", {w2v.words_trained_ / seconds:,.0f} words/s" if seconds > 0 else ""
    print(f"wrote {path}: {len(w2v.words_):,} words x {cfg.embedding_size} (GloVe text format), after "
          f"{trainer.epoch} epoch{'s' if trainer.epoch != 1 else ''} ({passes:.2f} passes over the text in "
          f"{trainer.step:,} steps, {seconds:.0f} s{rate})")
    print(f"try: rnnkit embed neighbors {w2v.words_[min(50, len(w2v.words_) - 1)]} --embeddings {path}")
    return w2v


def predict(run: str, word: str, cfg: PredictConfig, checkpoint: str | None = None) -> list[tuple[str, float]]:
    from rnnkit.tasks.embeddings.word2vec import Word2Vec, is_word2vec_run
    from rnnkit.training.phases import phase

    if not is_word2vec_run(run):
        raise ValueError(f"run={run!r}: not a word2vec run directory; expected one written by rnnkit embed train "
                         f"--run-dir DIR (predicting context words needs its output layer, which a vectors file "
                         f"does not hold)")
    w2v = Word2Vec.load(run, checkpoint=checkpoint)
    phase("loaded")
    result = w2v.predict(word, num_results=cfg.num_results)
    print(f"words skip-gram expects near {word!r} (sigmoid of word . context; its neighbours by cosine are "
          f"another thing: rnnkit embed neighbors):")
    for rank, (w, p) in enumerate(result, start=1):
        print(f"{rank:4d}  {w:<24} {p:.4f}")
    return result


def export(run: str, cfg: ExportConfig, checkpoint: str | None = None):
    from rnnkit.tasks.embeddings.export import run_vectors, write_vectors
    from rnnkit.training.phases import phase

    found = run_vectors(run, side=cfg.side, checkpoint=checkpoint)
    phase("loaded")
    path = write_vectors(found, cfg.output)
    emb = found.embeddings
    what = {"character": "character vectors (a character model: one row per character, spaces and line ends "
                         "written as <space> and <newline>)",
            "subword": "subword vectors (one row per piece of the run's byte-pair vocabulary)"}.get(
        found.level, "word vectors")
    left = f"; left out: {', '.join(found.left_out)}" if found.left_out else ""
    print(f"wrote {path}: {len(emb):,} {what} x {emb.dim} from the {found.layer} layer of the {found.task} run "
          f"{run}{left}")
    return found


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


def _cmd_train(args) -> int:
    from rnnkit.tasks.base import claim_run_dir

    if args.resume:
        if args.overwrite:
            raise ValueError("--overwrite=True: expected no --overwrite with --resume (--resume goes on with the "
                             "run in --run-dir, --overwrite replaces it)")
        if not args.run_dir:
            raise ValueError("--resume=True: expected a --run-dir to resume")
        from rnnkit.tasks.embeddings.word2vec import resume_config

        cfg = resume_config(args.run_dir, {name: getattr(args, name) for name in given_fields(args)})
        if args.output is not None:                    # -o: the vectors go elsewhere this time (not a setting)
            from dataclasses import replace
            cfg = replace(cfg, output=args.output)
    else:
        cfg = config_from_args(Word2VecConfig, args, output=args.output or DEFAULT_VECTORS)
        if cfg.corpus is None:
            raise ValueError("corpus=None: expected --corpus FILE (a text file, one sentence or document per line) "
                             "or a text dataset such as --corpus imdb")
        from rnnkit.tasks.embeddings.word2vec import Word2Vec
        claim_run_dir(args.run_dir, Word2Vec, overwrite=args.overwrite)
    train(cfg, run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run)
    return 0


def _cmd_predict(args) -> int:
    predict(args.run, args.word, config_from_args(PredictConfig, args), args.checkpoint)
    return 0


def _cmd_export(args) -> int:
    export(args.run, config_from_args(ExportConfig, args), args.checkpoint)
    return 0


def _add_output_argument(parser, cls) -> None:
    """`-o/--output FILE`, the one output file of every verb that writes one: the config field `output`."""
    (f,) = [f for f in fields(cls) if f.name == "output"]
    parser.add_argument("-o", "--output", metavar="FILE", default=f.default, help=f.metadata["help"])


def add_commands(sub) -> None:
    # help= must stay the line rnnkit.cli.COMMANDS shows for the group (tests/test_cli.py checks they agree).
    group = sub.add_parser("embed", help="pretrained word vectors: neighbours, analogies, evaluation, plots",
                           description="Word vectors: pretrained (GloVe), learned from a text (word2vec: train, "
                                       "predict) or taken from a trained run (export); nearest neighbours, "
                                       "analogies, benchmark evaluation and 2-D plots of chosen words.")
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

    p = verbs.add_parser("plot", help="a labelled 2-D projection of chosen words (PCA or t-SNE), as a PNG",
                         description="Place chosen words in 2-D. PCA: the two directions of the vector space along "
                                     "which the words differ most; the words at the two ends of each axis are "
                                     "printed, so you can read what the axis stands for. t-SNE: neighbours kept "
                                     "together, axes without meaning.")
    p.add_argument("words", metavar="WORD", nargs="+", help="the words to plot")
    add_config_arguments(p, PlotConfig)
    _add_output_argument(p, PlotConfig)
    p.set_defaults(func=_cmd_plot)

    p = verbs.add_parser("train", help="learn word vectors from a text: word2vec (skip-gram, negative sampling)",
                         description="word2vec (skip-gram with negative sampling and subsampling of frequent "
                                     "words) on a text, one sentence or document per line; the vectors are "
                                     "written in GloVe's text format (-o), so --embeddings FILE and every embed "
                                     "verb read them. With --run-dir the run keeps checkpoints: --resume goes on "
                                     "(a larger --max-minutes or --epochs trains longer).")
    add_train_arguments(p, Word2VecConfig, default_run_dir=None)
    # -o without a default value here: a resumed run writes where it wrote before unless -o says otherwise.
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help=f"the vectors file to write, in GloVe's text format (default: {DEFAULT_VECTORS}; a resumed "
                        f"run: its own)")
    p.set_defaults(func=_cmd_train)

    p = verbs.add_parser("predict", help="the context words a word2vec run predicts around WORD",
                         description="What skip-gram is trained to do: the words it expects near WORD (sigmoid of "
                                     "the word's vector and each context vector), from a run directory of "
                                     "rnnkit embed train --run-dir.")
    p.add_argument("run", metavar="RUN", help="a word2vec run directory (rnnkit embed train --run-dir)")
    p.add_argument("word", metavar="WORD", help="the word to predict the context of")
    add_config_arguments(p, PredictConfig)
    add_checkpoint_argument(p)
    p.set_defaults(func=_cmd_predict)

    p = verbs.add_parser("export", help="the embedding layer of a trained run, as a GloVe text file",
                         description="Write the embedding layer of a trained run with its vocabulary in GloVe's "
                                     "text format: a word language model (a character model gives character "
                                     "vectors), a text classifier or tagger, a sequence-to-sequence model "
                                     "(--side), or a word2vec run. Padding and markers (<unk>, <eos>) are left "
                                     "out.")
    p.add_argument("run", metavar="RUN", help="a run directory whose model reads words")
    add_config_arguments(p, ExportConfig)
    _add_output_argument(p, ExportConfig)
    add_checkpoint_argument(p)
    p.set_defaults(func=_cmd_export)


def vectors_of(cfg):
    """The word vectors an EmbedConfig names (imported here, when a verb runs: numpy and the file readers)."""
    from rnnkit.tasks.embeddings.task import Embeddings

    return Embeddings.load(cfg.embeddings, num_words=cfg.num_words)
