"""Benchmark: every classifier type side by side on IMDB, Rotten Tomatoes and BasicMotions.

Each model trains on the same split (IMDB and Rotten Tomatoes: duplicates removed, stratified 70/10/20 with
seed 0; BasicMotions: the given 40/40 split, validation taken from the training part) and is scored on the
test part. The best recurrent model gets the long budget (--best-minutes); every other model a short one
(--minutes), so the whole table fits in one sitting; the table says which budget each row had. bow (tf-idf
unigrams+bigrams, logistic regression) has no epochs: it trains on train + validation.
An ensemble row (mean of the best recurrent model's and bow's probabilities) is reported as such.

    python bench/classify.py --dataset imdb --out imdb.json
    python bench/classify.py --dataset rotten-tomatoes --minutes 1.5
    python bench/classify.py --dataset basic-motions
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import add_threads_argument, progress, start

from rnnkit.report.metrics import classification_metrics
from rnnkit.tasks.classify.data import Split, load_data
from rnnkit.tasks.classify.task import SequenceClassifier

RECURRENT = ("rnn", "gru", "lstm", "bilstm", "bigru", "cnn-lstm")

# Settings per dataset (the same for every model type, except what a row names).
PRESETS = {
    "imdb": dict(maxlen=400, num_words=30000, embedding_size=100, hidden_size=64, batch_size=64, lr=2e-3,
                 dropout=0.3, epochs=5, schedule="cosine", early_stop_patience=None),
    "rotten-tomatoes": dict(maxlen=60, num_words=20000, embedding_size=100, hidden_size=64, batch_size=32,
                            lr=2e-3, dropout=0.5, epochs=10, early_stop_patience=2, bow_c=16.0, bow_min_df=1),
    "basic-motions": dict(maxlen=100, hidden_size=32, batch_size=8, lr=5e-3, dropout=0.1, epochs=40,
                          early_stop_patience=None),
}
BEST = {"imdb": "bigru", "rotten-tomatoes": "bigru", "basic-motions": "bilstm"}


# The settings these tables were measured with: the epochs as given (no --min-steps), the batch as given.
FIXED = dict(min_steps=0, auto_batch=False)


def run_one(model: str, data, preset: dict, minutes: float, extra: dict) -> tuple[dict, np.ndarray]:
    # flat names: lr -> config.train
    clf = SequenceClassifier(model=model, max_minutes=minutes, **{**FIXED, **preset, **extra})
    train, val = data.train, data.val
    if model == "bow":
        train, val = Split(train.X + val.X, np.concatenate([train.y, val.y])), None
    t0 = time.monotonic()
    clf.fit(train.X, train.y, None if val is None else (val.X, val.y), progress=False)
    seconds = time.monotonic() - t0
    probs = clf.predict_proba(data.test.X)
    m = classification_metrics(data.test.y, probs, clf.classes_)
    row = {"model": model, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "roc_auc": m.get("roc_auc"),
           "train_seconds": round(seconds, 1), "budget_minutes": None if model == "bow" else minutes,
           "epochs": clf.trainer_.epoch if clf.trainer_ is not None else None,
           "stop": clf.trainer_.stop_reason if clf.trainer_ is not None else None, "settings": extra}
    return row, probs


def compare_packing(rounds: int = 5) -> None:
    """Time one bidirectional GRU layer (forward + backward) on a length-bucketed IMDB-like batch, two ways,
    interleaved, same weights, same batch: torch's packed sequences (nn.GRU over pack_padded_sequence) and
    rnnkit's layer with lengths (RNN(..., lengths=...): the padded route on the CPU), which the classifier's
    recurrent body is. Both must give the same outputs at the valid steps."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnkit.nn.layers import RNN

    torch.manual_seed(0)
    layer = RNN("gru", 100, 64, bidirectional=True)
    torch_gru = torch.nn.GRU(100, 64, bidirectional=True, batch_first=True)
    for i, c in enumerate(layer.cells):
        suffix = "_reverse" if i else ""
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(torch_gru, f"{name}_l0{suffix}").data.copy_(getattr(c, name))
    lengths = torch.randint(250, 301, (64,))
    x = torch.randn(64, 300, 100, requires_grad=True)

    def packed():
        out, _ = torch_gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True, total_length=300)[0]

    variants = {"torch packed": packed, "rnnkit RNN(lengths=)": lambda: layer(x, lengths=lengths)}
    with torch.no_grad():
        outs = {name: fn() for name, fn in variants.items()}
    for name, out in outs.items():
        assert torch.allclose(out, outs["torch packed"], atol=1e-5), name
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds + 1):                                 # round 0 warms all up and is not counted
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn().sum().backward()
            if r:
                times[name].append(time.perf_counter() - t0)
    base = np.median(times["torch packed"])
    print(f"bi-GRU 100->64, batch 64, lengths 250-300, forward+backward, median of {rounds} "
          f"({torch.get_num_threads()} threads); same outputs checked:")
    for name, t in times.items():
        print(f"  {name:22s} {np.median(t) * 1000:6.0f} ms   packed / this: {base / np.median(t):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="imdb", choices=sorted(PRESETS), help="which benchmark (default: imdb)")
    ap.add_argument("--models", nargs="*", default=["bow", "rnn", "gru", "lstm", "bilstm", "bigru", "conv1d",
                                                     "cnn-lstm"], help="model types to run (default: all)")
    ap.add_argument("--best", default=None, help="the model that gets the long budget (default: per dataset)")
    ap.add_argument("--best-minutes", type=float, default=20.0, help="time budget of the best model (default: 20)")
    ap.add_argument("--minutes", type=float, default=3.0, help="time budget of every other model (default: 3)")
    ap.add_argument("--embeddings", default=None, help="pretrained vectors for every text model, e.g. glove-50d")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--compare-packing", action="store_true", help="only time torch's packed sequences "
                    "against rnnkit's padded route for variable lengths, and exit")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    if args.compare_packing:
        compare_packing()
        return

    data = load_data(args.dataset, seed=0, val_frac=0.1, test_frac=0.2)
    print(data.summary(), file=sys.stderr)
    preset = PRESETS[args.dataset]
    best = args.best or BEST[args.dataset]
    rows, probs = [], {}
    for model in progress(args.models, "models"):
        minutes = args.best_minutes if model == best else args.minutes
        extra = {"embeddings": args.embeddings} if args.embeddings and model != "bow" else {}
        row, p = run_one(model, data, preset, minutes, extra)
        rows.append(row)
        probs[model] = p
        print(f"{model:9s} acc {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
              f"AUC {row['roc_auc'] if row['roc_auc'] is None else round(row['roc_auc'], 4)}  "
              f"{row['train_seconds']:.0f} s  epochs {row['epochs']}  ({row['stop']})", file=sys.stderr, flush=True)
    if "bow" in probs and best in probs:
        # An honest ensemble: the mean of two models' probabilities, reported as an ensemble.
        classes = sorted(np.unique(data.train.y).tolist())
        m = classification_metrics(data.test.y, (probs["bow"] + probs[best]) / 2, classes)
        rows.append({"model": f"ensemble(bow, {best})", "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "roc_auc": m.get("roc_auc"), "train_seconds": None, "budget_minutes": None})

    print(f"\n{args.dataset}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)}\n")
    print("| model | test accuracy | macro-F1 | ROC AUC | training time | budget |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.4f}"
        secs = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f} s"
        budget = "-" if r["budget_minutes"] is None else f"{r['budget_minutes']:g} min"
        print(f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {auc} | {secs} | {budget} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"dataset": args.dataset, "stats": data.stats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
