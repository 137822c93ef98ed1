"""Word-vector benchmarks on GloVe 6B 50d: analogy accuracy and WS353 Spearman, with timings.

Reproduces the two anchors of the word-embeddings task and times the batched analogy evaluation:

* analogy accuracy on word2vec's questions-words.txt (19,544 questions, 14 sections), 3CosAdd, questions
  and answers restricted to the 30k most frequent words, case-insensitive, questions with a word outside
  them skipped (gensim's ``evaluate_word_analogies(restrict_vocab=30000)``): anchor 49.7%;
* WordSim-353 Spearman correlation between cosine and human scores: anchor 0.503.

Also timed side by side: the same evaluation one question at a time (``batch_size=1``) against batches
of matrix products, and 3CosMul.

    python bench/embeddings.py                      # everything, about half a minute on 2 cores
    python bench/embeddings.py --num-words 100000 --skip-single

Threads are the CLI's choice (torch's, as ``rnnkit embed`` sets them; the evaluations here run in numpy,
whose BLAS keeps its own, as under the CLI) unless ``--threads`` sets them; each stage is shown as it starts.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from common import add_threads_argument, progress, start

from rnnkit.tasks.embeddings.data import load_analogies, load_similarity
from rnnkit.tasks.embeddings.task import Embeddings, evaluate_analogies, evaluate_similarity

ANALOGY_ANCHOR, WS353_ANCHOR = 0.497, 0.503


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embeddings", default="glove-50d", help="dataset name or GloVe text file (default: glove-50d)")
    ap.add_argument("--num-words", type=int, default=30000, help="analogy vocabulary restriction (default: 30000)")
    ap.add_argument("--batch-size", type=int, default=512, help="questions per matrix product (default: 512)")
    ap.add_argument("--skip-single", action="store_true", help="skip the slow one-question-at-a-time timing")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    stages = iter(progress(["load", "3CosAdd", "3CosMul", *([] if args.skip_single else ["one at a time"]),
                            "WS353"], "stages"))

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; numpy {np.__version__}")
    next(stages)
    emb, t_load = timed(Embeddings.load, args.embeddings)
    _, t_unit = timed(emb.unit_vectors)
    print(f"loaded {emb} in {t_load:.2f} s; unit vectors in {t_unit:.2f} s")
    questions = load_analogies("analogy-questions")
    pairs = load_similarity("wordsim353")

    next(stages)
    res, t_add = timed(evaluate_analogies, emb, questions, num_words=args.num_words, batch_size=args.batch_size)
    print(f"\n3CosAdd, top {args.num_words:,} words, batches of {args.batch_size}: {t_add:.2f} s "
          f"({res['total']['answered'] / t_add:,.0f} questions/s)")
    print("| section | accuracy | correct | answered | skipped |\n|---|---:|---:|---:|---:|")
    for name, t in list(res["sections"].items()) + [(k, res[k]) for k in ("semantic", "syntactic", "total")]:
        bold = "**" if name in ("semantic", "syntactic", "total") else ""
        print(f"| {bold}{name}{bold} | {100 * t['accuracy']:.2f}% | {t['correct']:,} | {t['answered']:,} | "
              f"{t['skipped']:,} |")
    tot = res["total"]
    print(f"skipped questions counted as wrong instead: {100 * tot['accuracy_all']:.2f}%")

    next(stages)
    mul, t_mul = timed(evaluate_analogies, emb, questions, num_words=args.num_words, method="3cosmul",
                       batch_size=args.batch_size)
    print(f"\n3CosMul, same questions: {100 * mul['total']['accuracy']:.2f}% (semantic "
          f"{100 * mul['semantic']['accuracy']:.2f}%, syntactic {100 * mul['syntactic']['accuracy']:.2f}%) "
          f"in {t_mul:.2f} s")

    if not args.skip_single:
        next(stages)
        single, t_single = timed(evaluate_analogies, emb, questions, num_words=args.num_words, batch_size=1)
        assert single["total"]["correct"] == tot["correct"], "batched and single evaluations disagree"
        print(f"\none question at a time (batch_size=1): {t_single:.2f} s; batched is {t_single / t_add:.1f}x "
              f"faster, same answers ({single['total']['correct']:,} correct)")

    next(stages)
    sim, t_sim = timed(evaluate_similarity, emb, pairs)
    print(f"\nWS353: Spearman {sim['spearman']:.4f} over {sim['used']} of {sim['pairs']} pairs "
          f"({sim['skipped']} skipped) in {t_sim:.3f} s")
    next(stages, None)                               # the stages are done (a terminal's bar closes)

    print("\nanchors (within one point):")
    ok_a = abs(tot["accuracy"] - ANALOGY_ANCHOR) <= 0.01
    ok_s = abs(sim["spearman"] - WS353_ANCHOR) <= 0.01
    print(f"  analogy {100 * tot['accuracy']:.2f}% vs {100 * ANALOGY_ANCHOR:.1f}%: {'ok' if ok_a else 'MISSED'}")
    print(f"  WS353   {sim['spearman']:.4f} vs {WS353_ANCHOR:.3f}: {'ok' if ok_s else 'MISSED'}")


if __name__ == "__main__":
    main()
