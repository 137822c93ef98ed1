"""Distributed training under torchrun: 2 CPU processes (gloo) against 1 process with the same global batch.

Each test launches ``python -m torch.distributed.run --nproc-per-node 2 --standalone -m rnnkit ...`` as a
subprocess (torchrun starts and watches the processes; rnnkit starts none) for one half of a run on data
the test writes, runs the other half in this process (a checkpoint does not depend on the number of
processes: 2 -> 1 for textgen, 1 -> 2 for classify), and compares metrics.jsonl with a one-process run of
the same command: the same loss at every logged step (the ranks split each batch's rows and DDP averages
their gradients, so the step is the whole batch's), the same run files, each record written once (rank 0).
"""

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def torchrun(*argv: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([SRC, env.get("PYTHONPATH", "")]))
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")    # gloo on the loopback: a hostname that resolves oddly is moot
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--standalone",
           "-m", "rnnkit", *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> dict[tuple, float]:
    """{(event, step, partial): loss} for every record: a record written twice would show up as a repeat."""
    out = {}
    for r in records(run):
        key = (r["event"], r["step"], r.get("partial"))
        assert key not in out, f"{run}/metrics.jsonl: {key} written twice"
        out[key] = r["loss"] if r["event"] == "train" else r["train_loss"]
    return out


def run_files(run: Path) -> set[str]:
    return {p.name for p in run.iterdir() if not p.name.startswith(".")}


def check_same_curve(one: Path, two: Path, skip: set = frozenset()) -> None:
    a, b = losses(one), losses(two)
    assert set(a) == set(b) - set(skip), (sorted(a), sorted(b))
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    # The validation figures too: every rank trained to the same weights, rank 0 evaluated.
    val_a = [r["val_loss"] for r in records(one) if r["event"] == "epoch"]
    val_b = [r["val_loss"] for r in records(two) if r["event"] == "epoch" and (r["event"], r["step"],
                                                                                r.get("partial")) not in skip]
    assert val_b == pytest.approx(val_a, rel=1e-4)


def test_textgen_two_processes_follow_one_and_resume(tmp_path, capsys):
    rng = random.Random(0)
    words = "the quick brown fox jumps over a lazy dog while cats sit on warm mats".split()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(60)))
    # batch 6 = 3 streams per process; a constant learning rate, so that a shorter first run (max_steps)
    # changes nothing in the schedule.
    flags = ["textgen", "train", "--corpus", str(corpus), "--hidden-size", "16", "--num-layers", "1",
             "--embedding-size", "8", "--batch-size", "6", "--seq-len", "12", "--epochs", "1",
             "--max-minutes", "none", "--schedule", "constant", "--warmup-steps", "0", "--sample-max-tokens", "0",
             "--log-every", "2", "--precision", "fp32", "--device", "cpu"]

    one = tmp_path / "one"
    assert main(flags + ["--run-dir", str(one), "--max-steps", "8"]) == 0

    two = tmp_path / "two"
    # Stopped in mid-epoch: the checkpoint gathers the carried state of every process's streams ...
    first = torchrun(*flags, "--run-dir", str(two), "--max-steps", "4")
    assert first.stdout.count("validation loss") == 1          # results printed once (rank 0)
    assert first.stderr.count("corpus:") == 1
    # ... so that the run goes on exactly as the one process did (here in one process).
    assert main(["textgen", "train", "--run-dir", str(two), "--resume", "--max-steps", "8"]) == 0
    check_same_curve(one, two, skip={("epoch", 4, True)})      # the extra record: where the first run stopped
    assert run_files(two) == run_files(one)
    state = json.loads((two / "checkpoint.json").read_text())
    assert state["step"] == 8


def test_classify_two_processes_follow_one_and_resume(tmp_path):
    rng = random.Random(1)
    good, bad = "good great fine lovely superb".split(), "bad awful poor dull weak".split()
    filler = "the a movie film plot actor was is very quite".split()
    data = tmp_path / "reviews.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(90):
            words = [rng.choice(filler) for _ in range(rng.randint(2, 12))] + [rng.choice(good if i % 2 else bad)]
            rng.shuffle(words)
            w.writerow([" ".join(words), "pos" if i % 2 else "neg"])
    # batch 13: an odd global batch (7 + 6 rows), and an epoch that ends in a short batch.
    flags = ["classify", "train", "--csv", str(data), "--model", "gru", "--hidden-size", "8",
             "--embedding-size", "8", "--dropout", "0", "--batch-size", "13", "--log-every", "2",
             "--device", "cpu", "--precision", "fp32", "--min-steps", "0"]

    one = tmp_path / "one"
    assert main(flags + ["--run-dir", str(one), "--epochs", "2"]) == 0

    two = tmp_path / "two"
    assert main(flags + ["--run-dir", str(two), "--epochs", "1"]) == 0
    # Resumed by two processes: both load the checkpoint and split the second epoch's batches.
    second = torchrun("classify", "train", "--run-dir", str(two), "--resume", "--epochs", "2")
    assert second.stdout.count("test accuracy") == 1
    check_same_curve(one, two)
    assert run_files(two) == run_files(one)
    assert (json.loads((two / "test_metrics.json").read_text())["accuracy"]
            == pytest.approx(json.loads((one / "test_metrics.json").read_text())["accuracy"]))


def test_forecast_two_processes_follow_one(tmp_path):
    # An hourly series with a daily cycle; the windows' batches split 5 + 5 rows over the two processes.
    rng = random.Random(2)
    data = tmp_path / "temps.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "temp"])
        for h in range(24 * 20):
            w.writerow([f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00", f"{10 + 5 * ((h % 24) / 12 - 1) ** 2 + rng.gauss(0, 0.3):.3f}"])
    flags = ["forecast", "train", "--csv", str(data), "--time-col", "time", "--target", "temp", "--model", "gru",
             "--lookback", "24", "--delay", "3", "--hidden-size", "8", "--batch-size", "10", "--epochs", "2",
             "--log-every", "5", "--device", "cpu", "--precision", "fp32"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(flags + ["--run-dir", str(one)]) == 0
    run = torchrun(*flags, "--run-dir", str(two))
    assert run.stdout.count("MAE of temp") == 1                 # results printed once (rank 0)
    check_same_curve(one, two)
    assert run_files(two) == run_files(one)


@pytest.mark.parametrize("rows", [7, 2])
def test_shard_rows_weights_give_the_whole_batch_mean_and_gather_undoes_them(monkeypatch, rows):
    """Rows rank::3 of a batch of 7 (3 + 2 + 2 rows) or of 2 (a rank left with none trains on row 0 at
    weight 0): the ranks' weighted means average to the batch mean; gathering (a carried state, which needs
    a row per rank) puts the rows back."""
    import torch
    from rnnkit.training import distributed

    world = 3
    x = torch.arange(rows * 2, dtype=torch.float64).view(rows, 2) ** 1.5        # (B, 2)
    y = torch.arange(rows)                                                       # (B,)
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    pieces, total = [], 0.0
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        (xr, yr), share = distributed.shard_rows((x, y))
        assert torch.equal(xr, x[yr])                     # y numbers the rows: the same rows of both
        assert torch.equal(yr, y[r::world] if r < rows else y[:1])
        total += share * xr.mean(0)
        pieces.append((xr, yr))
    assert torch.allclose(total / world, x.mean(0))
    if rows >= world:
        back_x, back_y = distributed._interleave(pieces)
        assert torch.equal(back_x, x) and torch.equal(back_y, y)
    with pytest.raises(ValueError, match=r"dim 0 sizes \[2, 3\].*share it among 3 processes"):
        distributed.shard_rows((torch.zeros(2, 4), torch.zeros(3)))
