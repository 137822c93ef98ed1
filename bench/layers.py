"""Training throughput of rnnkit's recurrent layer against raw torch.nn.LSTM.

The workload is a character language model: vocabulary 65, embedding 64, a 2-layer LSTM-256,
sequences of 100 characters, batch 64, Adam, cross-entropy over every step. Each variant trains
for a few steps in turn (interleaved, so machine noise hits every variant alike), and the median
characters/s per variant is reported with its ratio to raw ``torch.nn.LSTM`` measured in the same
process.

    python bench/layers.py                    # defaults: 5 rounds of 6 timed steps each
    python bench/layers.py --rounds 9 --steps 10 --threads 2
    python bench/layers.py --precision bf16   # every variant under bfloat16 autocast (CPUs with AMX or AVX-512 BF16)
    RNNKIT_NATIVE=0 python bench/layers.py    # the LSTM kernel's steps as torch operations (as without a C compiler)

Threads are the CLI's choice (one per CPU other processes leave free) unless ``--threads`` sets them; each
variant's turn is shown as it starts (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from common import add_threads_argument, progress, start
from torch import nn

from rnnkit.nn.layers import RNN
from rnnkit.nn.lstm_kernel import steps_status

VOCAB, EMB, HID, LAYERS, SEQ, BATCH = 65, 64, 256, 2, 100, 64


class LSTMCellLoop(nn.Module):
    """The textbook loop: torch.nn.LSTMCell called once per step, input projection inside the step."""

    def __init__(self):
        super().__init__()
        self.cells = nn.ModuleList([nn.LSTMCell(EMB if k == 0 else HID, HID) for k in range(LAYERS)])

    def forward(self, x):                            # (B, T, E)
        for cell in self.cells:
            h = c = x.new_zeros(x.shape[0], HID)
            outs = []
            for x_t in x.unbind(1):
                h, c = cell(x_t, (h, c))
                outs.append(h)
            x = torch.stack(outs, dim=1)
        return x


class CharModel(nn.Module):
    def __init__(self, rnn: nn.Module, raw: bool):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMB)
        self.rnn, self.raw = rnn, raw
        self.head = nn.Linear(HID, VOCAB)

    def forward(self, x):
        h = self.emb(x)                              # (B, T, E)
        h = self.rnn(h)[0] if self.raw else self.rnn(h)
        return self.head(h)                          # (B, T, V)


def generic_loop(rnn: RNN) -> RNN:
    rnn.variational_kernel = False                   # the generic loop instead of rnnkit.nn.lstm_kernel
    return rnn


def variants() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "raw torch.nn.LSTM": CharModel(nn.LSTM(EMB, HID, LAYERS, batch_first=True), raw=True),
        "rnnkit fused": CharModel(RNN("lstm", EMB, HID, LAYERS), raw=False),
        "rnnkit weight-drop 0.25 (fused)": CharModel(
            RNN("lstm", EMB, HID, LAYERS, recurrent_dropout=0.25, recurrent_dropout_mode="weight_drop"), raw=False),
        "rnnkit variational 0.25 (kernel)": CharModel(
            RNN("lstm", EMB, HID, LAYERS, recurrent_dropout=0.25, recurrent_dropout_mode="variational"), raw=False),
        "rnnkit variational 0.25 (loop)": CharModel(generic_loop(
            RNN("lstm", EMB, HID, LAYERS, recurrent_dropout=0.25, recurrent_dropout_mode="variational")), raw=False),
        "rnnkit loop, no dropout": CharModel(RNN("lstm", EMB, HID, LAYERS, fused="never"), raw=False),
        "plain nn.LSTMCell loop": CharModel(LSTMCellLoop(), raw=False),
    }


def train_steps(model: nn.Module, opt, x, y, steps: int, bf16: bool = False) -> float:
    """Run ``steps`` training steps (the forward under bfloat16 autocast if ``bf16``); return characters/s."""
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB).float(), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * x.numel() / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per variant and round (default: 6)")
    add_threads_argument(ap)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: every variant's forward under torch.autocast(bfloat16) (default: fp32)")
    args = ap.parse_args()
    start(args.threads)

    models = variants()
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    y = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    for k in progress(models, "warm-up (2 steps per variant)"):   # allocator, oneDNN primitives
        train_steps(models[k], opts[k], x, y, 2, args.precision == "bf16")
    rates: dict[str, list[float]] = {k: [] for k in models}
    turns = [(r, k) for r in range(args.rounds) for k in models]    # interleaved: round by round
    for _, k in progress(turns, f"timed turns ({args.rounds} rounds x {len(models)} variants)"):
        rates[k].append(train_steps(models[k], opts[k], x, y, args.steps, args.precision == "bf16"))

    base = statistics.median(rates["raw torch.nn.LSTM"])
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {args.precision}; {args.rounds} rounds x {args.steps} steps; "
          f"the kernel's element-wise steps: {steps_status()}")
    print(f"{'variant':36s} {'chars/s (median)':>17s} {'min':>8s} {'max':>8s} {'vs raw':>7s}")
    for k, r in rates.items():
        med = statistics.median(r)
        print(f"{k:36s} {med:17,.0f} {min(r):8,.0f} {max(r):8,.0f} {med / base:7.2f}")


if __name__ == "__main__":
    main()
