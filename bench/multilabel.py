"""Benchmark: does target replication (and do auxiliary outputs) help the multilabel LSTM?

On SYNTHETIC clinical-like stays (rnnkit.tasks.multilabel.data.make_clinical: irregular sampling, missing
values, 14 labels planted as temporal patterns), the same LSTM is trained with
  * final-step loss only (alpha 0),
  * target replication (alpha > 0: the loss at every step mixed with the final-step loss),
  * target replication plus auxiliary outputs (aux_weight > 0),
for several seeds (each seed: new data, new initialisation) and scored on held-out stays. The table gives
mean and standard deviation over seeds, and the per-seed difference to the final-step-only model.

    python bench/multilabel.py --seeds 0 1 2 --num-stays 3000
    python bench/multilabel.py --seeds 0 --defaults          # the task's defaults (the shared training policy)
    python bench/multilabel.py --basic-motions               # real data: the old defaults against the policy's

Without --defaults each run trains as the tables in docs/benchmarks.md were measured: --epochs as given, early
stopping after 4 epochs without a better validation loss, the batch as given, no minimum of updates.

--basic-motions: the registered BasicMotions set (real smartwatch series, 6 channels x 100 steps) as 4
one-vs-rest labels, through the user-file path: 35 training series, 5 for validation, the archive's 40 test
series. The task's defaults (the shared policy) against the defaults before it (20 epochs at batch 64:
one update an epoch on 35 series, early stopping after 4).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import add_threads_argument, progress, start

from rnnkit.tasks.base import replace_config
from rnnkit.tasks.multilabel import MultilabelConfig
from rnnkit.tasks.multilabel.data import SyntheticConfig
from rnnkit.tasks.multilabel.task import run_synthetic

METRICS = ("micro_auc", "macro_auc", "micro_f1", "macro_f1", "precision_at_10")


OLD_DEFAULTS = dict(epochs=20, batch_size=64, early_stop_patience=4, min_steps=0, auto_batch=False, max_minutes=None)


def basic_motions(folder: Path) -> None:
    """The policy's defaults against the old ones on real series (see the module docstring)."""
    from rnnkit import datasets
    from rnnkit.tasks.multilabel.data import FileConfig
    from rnnkit.tasks.multilabel.task import run_file

    d = datasets.load("basic-motions")
    classes = [str(c) for c in d["classes"]]
    path = folder / "basic_motions_multilabel.csv"
    parts = [("train" if i < 35 else "val", x, label) for i, (x, label) in enumerate(zip(d["X_train"], d["y_train"]))]
    parts += [("test", x, label) for x, label in zip(d["X_test"], d["y_test"])]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "step", *[f"c{k}" for k in range(6)], "split", *classes])
        for i, (split, x, label) in enumerate(parts):
            w.writerows([f"s{i}", t, *np.round(x[t], 5), split, *[int(label == c) for c in classes]]
                        for t in range(len(x)))
    fcfg = FileConfig(series=str(path), label_cols=classes, split_col="split")
    print("| defaults | micro AUC | macro AUC | micro F1 | macro F1 | updates | epochs | training time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, settings in (("before the policy (20 epochs, batch 64, patience 4)", OLD_DEFAULTS),
                           ("the policy's (patience 5, >= 300 updates, auto batch, 5 min)", {})):
        cfg = replace_config(MultilabelConfig(), **settings)
        began = time.monotonic()
        run = folder / f"run{len(settings)}"
        m, _ = run_file(cfg, fcfg, 0.1, 0.2, str(run), progress=False)
        steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in steps if r.get("event") == "epoch"][-1]
        print(f"| {name} | {m['micro_auc']:.4f} | {m['macro_auc']:.4f} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | "
              f"{last['step']} | {last['epoch'] + 1} | {time.monotonic() - began:.0f} s |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="seeds (data and model) (default: 0 1 2)")
    ap.add_argument("--num-stays", type=int, default=3000, help="synthetic stays per seed (default: 3000)")
    ap.add_argument("--alpha", type=float, default=0.5, help="target-replication weight to test (default: 0.5)")
    ap.add_argument("--aux-weight", type=float, default=0.3, help="auxiliary-output weight to test (default: 0.3)")
    ap.add_argument("--epochs", type=int, default=30, help="epoch limit (early stopping on validation) (default: 30)")
    ap.add_argument("--hidden-size", type=int, default=64, help="LSTM units (default: 64)")
    ap.add_argument("--max-minutes", type=float, default=None, help="time budget per training run (default: none)")
    ap.add_argument("--defaults", action="store_true", help="train with the task's default budgets (the shared "
                    "policy: patience 5, at least 300 updates, auto batch, 5 minutes); --epochs and --max-minutes "
                    "are then not used")
    ap.add_argument("--basic-motions", action="store_true", help="only the real-data check of the defaults (see "
                    "above), and exit")
    ap.add_argument("--out", default=None, help="write all results as JSON here")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    if args.basic_motions:
        with tempfile.TemporaryDirectory(prefix="multilabel-bm-") as tmp:
            basic_motions(Path(tmp))
        return
    # The settings the tables were measured with, unless --defaults.
    budget = {} if args.defaults else dict(epochs=args.epochs, max_minutes=args.max_minutes, early_stop_patience=4,
                                           min_steps=0, auto_batch=False)

    variants = {"final step only": dict(alpha=0.0, aux_weight=0.0),
                f"target replication (alpha {args.alpha:g})": dict(alpha=args.alpha, aux_weight=0.0),
                f"TR + auxiliary outputs (weight {args.aux_weight:g})": dict(alpha=args.alpha,
                                                                             aux_weight=args.aux_weight)}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in progress(args.seeds, "seeds"):
        for name, v in variants.items():
            cfg = replace_config(MultilabelConfig(), hidden_size=args.hidden_size, seed=seed, **budget,
                                 **v)   # flat names: epochs -> cfg.train.epochs
            m = run_synthetic(cfg, SyntheticConfig(num_stays=args.num_stays, data_seed=seed))
            results[name].append(m)
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {m[k]:.4f}" for k in METRICS)
                  + f", {m['train_seconds']:.0f} s, {m['epochs']} epochs", file=sys.stderr, flush=True)

    print(f"\nSYNTHETIC data, {args.num_stays} stays per seed, seeds {args.seeds}: mean ± std over seeds\n")
    print("| training | " + " | ".join(METRICS) + " | time per run |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for name, runs in results.items():
        cells = [f"{np.mean([r[k] for r in runs]):.4f} ± {np.std([r[k] for r in runs]):.4f}" for k in METRICS]
        secs = np.mean([r["train_seconds"] for r in runs])
        print(f"| {name} | " + " | ".join(cells) + f" | {secs:.0f} s |")
    base = results["final step only"]
    print("\nPer-seed difference to 'final step only' (positive = better):\n")
    for name, runs in list(results.items())[1:]:
        for k in ("micro_auc", "macro_auc"):
            diffs = [r[k] - b[k] for r, b in zip(runs, base)]
            print(f"- {name}, {k}: " + ", ".join(f"{d:+.4f}" for d in diffs)
                  + f" (better in {sum(d > 0 for d in diffs)} of {len(diffs)} seeds)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"num_stays": args.num_stays, "seeds": args.seeds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
