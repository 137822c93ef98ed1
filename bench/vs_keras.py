"""rnnkit against Keras 3 on the benchmark model of bench/layers.py, side by side, in fp32 and bf16.

The model: vocabulary 65, embedding 64, a 2-layer LSTM-256, sequences of 100, batch 64, Adam (lr 1e-3),
cross-entropy at every step, random tokens. rnnkit's variants train in this process (the model and the
training step are bench/layers.py's); Keras trains the same model in float32 in a worker process
(bench/keras_lstm.py) that runs in a virtual environment of its own, since Keras is not a dependency of
rnnkit:

    python -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install tensorflow-cpu keras
    python bench/vs_keras.py --keras-python /tmp/kvenv/bin/python --rounds 5 --steps 6 --threads 1

Every round runs every variant for ``--steps`` steps in turn, Keras's included (the worker waits while
torch runs, and torch while the worker runs), so machine noise hits all alike; the table gives the median
characters/s of each and its ratio to Keras's plain LSTM (and, for variational recurrent dropout, to Keras's
``recurrent_dropout=0.25``). The row marked "rnnkit default" is the precision rnnkit picks by itself
(``precision="auto"``, textgen's default: bf16 where the CPU multiplies bfloat16 natively, else fp32).
Both sides get ``--threads`` threads; each turn is shown as it starts (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from common import add_threads_argument, progress, start
from layers import BATCH, EMB, HID, LAYERS, SEQ, VOCAB, CharModel, train_steps
from torch import nn

from rnnkit.nn.layers import RNN
from rnnkit.training.trainer import fast_bf16, resolve_precision

KERAS_WORKER = Path(__file__).with_name("keras_lstm.py")


class KerasWorker:
    """bench/keras_lstm.py in a subprocess: ``run(variant, steps)`` trains that many steps there, returns chars/s."""

    def __init__(self, python: str, threads: int):
        # stderr passes through (TensorFlow's start-up lines, the worker's warm-up lines); stdout is the protocol.
        self.proc = subprocess.Popen([python, str(KERAS_WORKER), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()                     # {"ready": true, keras and tensorflow versions, ...}
        self.traces: dict[str, int] = dict(self.info["traces"])   # variant -> traces so far (after warm-up)

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the Keras worker ended (exit status {self.proc.wait()}); see its messages above")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"the Keras worker: {reply['error']}")
        return reply

    def run(self, variant: str, steps: int) -> float:
        self.proc.stdin.write(f"{variant} {steps}\n")
        self.proc.stdin.flush()
        reply = self._read()
        self.traces[variant] = reply["traces"]       # the compiled step's trace count: it must not grow
        return reply["chars_per_s"]

    def close(self) -> None:
        if self.proc.poll() is None:                 # still running (a worker that failed has ended already)
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def rnnkit_variants() -> dict[str, tuple[nn.Module, bool]]:
    """name -> (model, bf16). Each variant has its own model and optimizer, all from the same seed."""
    def model(recurrent_dropout: float = 0.0) -> nn.Module:
        torch.manual_seed(0)
        rnn = RNN("lstm", EMB, HID, LAYERS, recurrent_dropout=recurrent_dropout,
                  recurrent_dropout_mode="variational" if recurrent_dropout else "weight_drop")
        return CharModel(rnn, raw=False)

    torch.manual_seed(0)
    return {
        "raw torch.nn.LSTM, fp32": (CharModel(nn.LSTM(EMB, HID, LAYERS, batch_first=True), raw=True), False),
        "rnnkit fused, fp32": (model(), False),
        "rnnkit fused, bf16": (model(), True),
        "rnnkit variational 0.25 (kernel), fp32": (model(0.25), False),
        "rnnkit variational 0.25 (kernel), bf16": (model(0.25), True),
    }


KERAS = {"Keras LSTM, fp32": "lstm", "Keras LSTM recurrent_dropout=0.25, fp32": "recurrent_dropout"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keras-python", required=True,
                    help="the Python of a virtual environment with keras and tensorflow (e.g. /tmp/kvenv/bin/python)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per variant and round (default: 6)")
    ap.add_argument("--json", default=None, help="also write the per-round figures to this JSON file")
    add_threads_argument(ap)
    args = ap.parse_args()
    threads = start(args.threads)

    # What rnnkit's default precision ("auto") is on this CPU: the Trainer's own rule.
    default = resolve_precision("auto", torch.device("cpu"))
    cpu = getattr(torch, "cpu", None)
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    print(f"# rnnkit precision auto -> {default} on this CPU (AMX: {amx}, AVX-512 BF16: {avx512_bf16}; "
          f"fast_bf16: {fast_bf16(torch.device('cpu'))})", file=sys.stderr, flush=True)

    print("# starting the Keras worker (builds and warms up both Keras models)", file=sys.stderr, flush=True)
    keras = KerasWorker(args.keras_python, threads)
    try:
        rnnkit = rnnkit_variants()
        opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, (m, _) in rnnkit.items()}
        g = torch.Generator().manual_seed(1)
        x = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)          # (B, T) token ids
        y = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)          # (B, T) next-token targets
        for k in progress(rnnkit, "warm-up (2 steps per rnnkit variant)"):   # allocator, oneDNN primitives
            train_steps(rnnkit[k][0], opts[k], x, y, 2, rnnkit[k][1])

        def turn(name: str) -> float:
            if name in KERAS:
                return keras.run(KERAS[name], args.steps)
            model, bf16 = rnnkit[name]
            return train_steps(model, opts[name], x, y, args.steps, bf16)

        names = [*rnnkit, *KERAS]
        rates: dict[str, list[float]] = {k: [] for k in names}
        turns = [(r, k) for r in range(args.rounds) for k in names]       # interleaved: round by round
        for _, k in progress(turns, f"timed turns ({args.rounds} rounds x {len(names)} variants)"):
            rates[k].append(turn(k))
        # Traces during the timed turns: 0 when train_on_batch reused the graph compiled at warm-up.
        retraces = {k: n - keras.info["traces"][k] for k, n in keras.traces.items()}
    finally:
        keras.close()

    med = {k: statistics.median(r) for k, r in rates.items()}
    keras_plain, keras_rd = med["Keras LSTM, fp32"], med["Keras LSTM recurrent_dropout=0.25, fp32"]
    print(f"# {platform.processor() or platform.machine()}, {threads} thread{'s' if threads != 1 else ''} on each "
          f"side; torch {torch.__version__}; Keras {keras.info['keras']} (TensorFlow {keras.info['tensorflow']}, "
          f"train_on_batch; its compiled step traced {keras.info['traces']} at warm-up, {retraces} after); "
          f"{args.rounds} rounds x {args.steps} steps")
    print(f"# rnnkit's default precision (auto) on this CPU: {default}")
    print("| variant | chars/s (median) | min | max | vs Keras LSTM fp32 | vs Keras recurrent_dropout |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, r in rates.items():
        precision = "bf16" if k.endswith("bf16") else "fp32"
        mark = " **(rnnkit default)**" if k.startswith("rnnkit") and precision == default else ""
        vs_rd = f"{med[k] / keras_rd:.2f}" if "variational" in k or "recurrent_dropout" in k else ""
        print(f"| {k}{mark} | {med[k]:,.0f} | {min(r):,.0f} | {max(r):,.0f} | {med[k] / keras_plain:.2f} | {vs_rd} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"default_precision": default, "threads": threads, "rounds": args.rounds, "steps": args.steps,
                       "torch": torch.__version__, "keras": keras.info, "rates": rates, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()
