"""Which cells learn long memory within a fixed budget: the adding problem at T = 50, 100, 200.

The adding problem (rnnkit/diagnose/tasks.py): every step carries a value from U(0, 1) and a marker; exactly two
steps are marked, one in each half; the target at the last step is the sum of the two marked values. Predicting 1
always scores a mean squared error of 0.167. A cell "learns it" when its test MSE (1,000 fresh sequences) falls
below a tenth of that, 0.0167: it has to carry the first value over up to T steps.

Every cell trains on the same batches (one seed), with the same budget of Adam updates (batch 64, lr 3e-3,
gradient norm clipped at 1), one recurrent layer of ``--hidden-size`` units and a linear read-out; the test MSE is
checked every ``--check-every`` updates. The table gives the last test MSE and the update at which it first fell
below the threshold (a dash: never within the budget).

    python bench/long_memory.py --threads 1                       # 5 cells x T = 50, 100, 200, 2,000 updates
    python bench/long_memory.py --threads 1 --lengths 50 --steps 500 --cells rnn lstm
"""

from __future__ import annotations

import argparse
import time

import torch
from common import add_threads_argument, progress, start

from rnnkit.diagnose.tasks import BASELINE_MSE, MemoryModel, evaluate, train

THRESHOLD = BASELINE_MSE / 10


def run_one(cell: str, T: int, args) -> dict:
    torch.manual_seed(args.seed)
    model = MemoryModel(cell, args.hidden_size)
    checks: list[tuple[int, float]] = []

    def check(step: int) -> None:
        checks.append((step, evaluate(model, T)))
        model.train()

    t0 = time.perf_counter()
    done = train(model, T, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 every=args.check_every, on_check=check)
    solved = next((step for step, mse in checks if mse < THRESHOLD), None)
    return {"mse": checks[-1][1], "solved_at": solved, "seconds": time.perf_counter() - t0, "steps": done["steps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm", "mingru", "minlstm"],
                    choices=["rnn", "gru", "lstm", "mingru", "minlstm"], help="cells to train")
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200], help="sequence lengths T")
    ap.add_argument("--steps", type=int, default=2000, help="Adam updates per cell and length (default: 2000)")
    ap.add_argument("--hidden-size", type=int, default=64, help="units of the recurrent layer (default: 64)")
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per update (default: 64)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default: 3e-3)")
    ap.add_argument("--check-every", type=int, default=250, help="updates between test checks (default: 250)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches (default: 0)")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)

    jobs = [(cell, T) for T in args.lengths for cell in args.cells]
    results = {}
    for cell, T in progress(jobs, "cell x length"):
        results[cell, T] = run_one(cell, T, args)
        r = results[cell, T]
        print(f"# {cell} T={T}: test MSE {r['mse']:.4f}, below {THRESHOLD:.4f} at update {r['solved_at']}, "
              f"{r['seconds']:.0f} s", flush=True)

    print(f"\nAdding problem: test MSE after {args.steps:,} updates (batch {args.batch_size}, {args.hidden_size} units, "
          f"seed {args.seed}); in brackets the update at which it first fell below {THRESHOLD:.4f} (a tenth of "
          f"predicting 1 always), checked every {args.check_every}")
    print("| cell | " + " | ".join(f"T = {T}" for T in args.lengths) + " | seconds (all T) |")
    print("|---|" + "---|" * len(args.lengths) + "---|")
    for cell in args.cells:
        cells = []
        for T in args.lengths:
            r = results[cell, T]
            solved = f"{r['solved_at']:,}" if r["solved_at"] is not None else "–"
            cells.append(f"{r['mse']:.4f} ({solved})")
        seconds = sum(results[cell, T]["seconds"] for T in args.lengths)
        print(f"| {cell} | " + " | ".join(cells) + f" | {seconds:.0f} |")


if __name__ == "__main__":
    main()
