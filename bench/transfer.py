"""Benchmark: language-model pretraining for a classifier (--encoder-from, the ULMFiT recipe) on IMDB.

Two measurements on rnnkit's IMDB split (24,902 reviews after duplicates: 70% training, 10% validation, 20%
test, stratified, seed 0 -- `rnnkit classify train --dataset imdb`'s default):

* the label-efficiency curve: 100, 500, 1,000, 5,000 labelled reviews (a stratified sample of the training
  rows, seed 0), each trained three ways: the LSTM started from the language model (pretrained), the same
  LSTM from random weights (scratch; the same width, depth, pooling, schedule and minutes), and the tf-idf
  baseline (bow: seconds). A table (CSV + markdown) and a plot;
* the full-IMDB bar (`--sizes all`): every training row, pretrained against bow in the same run.

The language model is trained once on the training rows' texts only (`rnnkit textgen train --dataset imdb`
never reads the validation or test reviews) and reused by every point:

    rnnkit textgen train --dataset imdb --level word --num-words 10000 --hidden-size 256 --num-layers 2 \\
        --embedding-size 128 --dropout 0.1 --seq-len 70 --batch-size 32 --val-frac 0.03 --max-minutes 40 \\
        --sample-max-tokens 0 --precision bf16 --threads 1 --run-dir runs/lm-imdb

    python bench/transfer.py --lm runs/lm-imdb --sizes 100 500 1000 5000 --minutes 4 --threads 1
    python bench/transfer.py --lm runs/lm-imdb --sizes all --minutes 20 --threads 1 --out bench-out/transfer-full

Every network validates on the same 500 validation reviews (best epoch, early stopping) and is tested on the
first --test-rows reviews of the test split in a fixed shuffled order (default: all 4,981).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_argument, progress, start

METHODS = ("pretrained", "scratch", "bow")


def sample(X: list, y: np.ndarray, n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """A stratified sample of n rows (half of each class for IMDB's balanced labels), fixed by the seed."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        idx += list(rng.choice(rows, size=min(len(rows), round(n * len(rows) / len(y))), replace=False))
    idx = rng.permutation(np.array(idx))
    return [X[i] for i in idx], y[idx]


def run_one(method: str, train, val, test, args) -> dict:
    from rnnkit.tasks.classify.task import SequenceClassifier

    common = dict(maxlen=args.maxlen, pooling="concat", max_minutes=args.minutes, lr=args.lr, schedule="slanted",
                  threads=args.threads, precision=args.precision, seed=args.seed)
    if method == "bow":
        clf = SequenceClassifier(model="bow", seed=args.seed)
    elif method == "pretrained":
        clf = SequenceClassifier(encoder_from=args.lm, unfreeze_every=args.unfreeze_every, **common)
    else:
        from rnnkit.tasks.transfer import read_encoder

        lm = read_encoder(args.lm, task="classifier")
        clf = SequenceClassifier(model=lm["cell"], hidden_size=lm["hidden_size"], num_layers=lm["num_layers"],
                                 embedding_size=lm["embedding_size"], **common)
    t0 = time.monotonic()
    clf.fit(train[0], train[1], None if method == "bow" else val, progress=False)
    seconds = time.monotonic() - t0
    acc = clf.evaluate(test[0], test[1])["accuracy"]
    steps = clf.trainer_.step if clf.__dict__.get("trainer_") is not None else 0
    return {"method": method, "labelled": len(train[1]), "test_accuracy": round(float(acc), 4),
            "train_seconds": round(seconds, 1), "steps": steps}


def plot(rows: list[dict], path: Path) -> None:
    from rnnkit.report.plots import new_figure, save_png

    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    for method in METHODS:
        pts = sorted((r["labelled"], r["test_accuracy"]) for r in rows if r["method"] == method)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("labelled IMDB reviews")
    ax.set_ylabel("test accuracy")
    ax.set_title("IMDB: pretrained LM vs scratch vs tf-idf")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", required=True, help="the language-model run (rnnkit textgen train --level word)")
    ap.add_argument("--sizes", nargs="+", default=["100", "500", "1000", "5000"],
                    help="labelled training reviews per point; 'all': every training row")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget of each network (equal minutes)")
    ap.add_argument("--maxlen", type=int, default=200, help="words kept per review (the end: 'pre' truncation)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (slanted schedule) of both networks")
    ap.add_argument("--unfreeze-every", type=int, default=20,
                    help="pretrained: one more layer group after this many updates (or an epoch)")
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--val-rows", type=int, default=500, help="validation reviews (best epoch, early stopping)")
    ap.add_argument("--test-rows", type=int, default=None, help="test reviews (default: the whole test split)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench-out/transfer", help="folder of results.csv, results.md, curve.png")
    add_threads_argument(ap)
    args = ap.parse_args()
    args.threads = start(args.threads)

    from rnnkit.tasks.classify.data import load_data

    data = load_data("imdb")                       # rnnkit's split: the CLI's defaults
    Xtr, ytr = data.train.X, data.train.y
    val = sample(data.val.X, data.val.y, args.val_rows, seed=1)
    order = np.random.default_rng(2).permutation(len(data.test.y))[:args.test_rows]
    test = ([data.test.X[i] for i in order], data.test.y[order])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    work = [(s, m) for s in args.sizes for m in args.methods]
    for size, method in progress(work, "points"):
        train = (list(Xtr), ytr) if size == "all" else sample(Xtr, ytr, int(size), seed=args.seed)
        row = run_one(method, train, val, test, args)
        rows.append(row)
        print(f"{row['labelled']:>6} labelled, {method:<10}: test accuracy {row['test_accuracy']:.4f} "
              f"({row['train_seconds']:.0f} s, {row['steps']} updates)", flush=True)
        with (out / "results.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
    sizes = sorted({r["labelled"] for r in rows})
    lines = ["| labelled reviews | " + " | ".join(m for m in args.methods) + " |",
             "|---:|" + "---:|" * len(args.methods)]
    for n in sizes:
        acc = {r["method"]: r["test_accuracy"] for r in rows if r["labelled"] == n}
        lines.append(f"| {n:,} | " + " | ".join(f"{acc[m]:.4f}" if m in acc else "-" for m in args.methods) + " |")
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    print(table)
    if len(sizes) > 1:
        plot(rows, out / "curve.png")
        print(f"plot: {out / 'curve.png'}")


if __name__ == "__main__":
    main()
