"""Sort-of-CLEVR visual question answering: test accuracy (overall, non-relational, relational, per kind) of each
--merge within a time budget, beside the question-only baseline (--merge none).

    python bench/vqa.py --threads 1 --minutes 30 --merges film none

Each merge trains from the same seed on the same rendered scenes (10,000 training scenes; 500 validation and
1,000 test scenes; every object asked about with each of the 6 question kinds where the picture settles it, about
33 questions a scene) for --minutes, keeping its best validation epoch; one JSON line per merge.
"""

import argparse
import json
import time

from common import add_threads_argument, start

from rnnkit.datasets.sort_of_clevr import make_splits
from rnnkit.tasks.vqa.task import VisualQA

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_threads_argument(ap)
ap.add_argument("--minutes", type=float, default=30.0, help="training budget of each merge")
ap.add_argument("--merges", nargs="+", default=["film", "none"], help="the merges to train")
ap.add_argument("--scenes", type=int, default=10_000, help="training scenes")
ap.add_argument("--lr", type=float, default=1e-3)
args = ap.parse_args()
threads = start(args.threads)
train, val, test = make_splits(args.scenes, 500, 1000, seed=0)
for merge in args.merges:
    t = time.monotonic()
    model = VisualQA(merge=merge, max_minutes=args.minutes, lr=args.lr, threads=threads, log_every=200).fit(
        train, val, progress=False)
    m = model.evaluate(test)
    curve = [(r.get("step"), round(r.get("val_accuracy", 0), 3)) for r in model.history_ if r.get("event") == "epoch"]
    print(json.dumps({"merge": merge, "minutes": round((time.monotonic() - t) / 60, 1),
                      "steps": model.trainer_.step, "test": m, "val_curve": curve}), flush=True)
