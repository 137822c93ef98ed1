"""Training throughput of the parallel-scan cells (minGRU, minLSTM) on the CPU, at T = 128, 512, 2048.

The workload is a character language model: vocabulary 65, embedding 64, two recurrent layers, batch 32,
Adam, cross-entropy over every step. One training step per call (forward, backward, optimizer step) on random
tokens; characters/s = batch x T per second. Variants, interleaved round by round in one process (machine
noise hits them alike; the ratios are what to read):

* ``mingru scan``: rnnkit's minGRU, the blocked scan (the default, rnnkit/nn/scan.py);
* ``mingru log-scan``: the same cell and weights, Feng et al.'s log-space scan (cumsum + logcumsumexp);
* ``mingru loop``: the same cell through the layer's step-by-step loop (``cell.scan = None``);
* ``nn.GRU same width``: torch's fused GRU, 256 units (3x the recurrent weights and a matrix U per step);
* ``nn.GRU same params``: torch's fused GRU with about minGRU's parameter count;
* the same four for minLSTM against ``nn.LSTM``.

    python bench/scan.py --threads 1                      # every length, every variant
    python bench/scan.py --threads 1 --lengths 512 --cells mingru
    python bench/scan.py --threads 1 --profile 512        # where a minGRU training step spends its time
    python bench/scan.py --export-sizes 32                # flash and RAM of a minGRU-32 and an LSTM-32 C classifier

The paper's figures (175x minGRU over a sequential GRU at T = 512) are GPU figures against a non-cuDNN loop.
On a CPU the loop is not launch-bound: a step costs a few microseconds of dispatch on top of the same
element-wise work, which the loop does on small tensors that stay in the caches, and the input projections
and the head (matrix products that the scan and the loop share) take about half of a minGRU training step
(``--profile``). So the scan's gain over its own loop is small at batch 32 (about 1.1-1.2x on a busy 2-core
machine) and grows as batch x width shrinks (2.7x at batch 4); against torch's fused GRU of the same width it
is 2.4-4x, because minGRU has no recurrent matrix product at all. What would go further on the CPU: one
compiled kernel for the gates and the scan together (two passes over memory instead of about fifteen forward
and thirty backward).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import add_threads_argument, progress, start
from torch import nn

from rnnkit.nn.layers import RNN

VOCAB, EMB, HID, LAYERS = 65, 64, 256, 2


class CharModel(nn.Module):
    def __init__(self, rnn: nn.Module, width: int, raw: bool):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMB)
        self.rnn, self.raw = rnn, raw
        self.head = nn.Linear(width, VOCAB)

    def forward(self, x):                              # (B, T) -> (B, T, V)
        h = self.emb(x)
        h = self.rnn(h)[0] if self.raw else self.rnn(h)
        return self.head(h)


def recurrent_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def same_params_width(torch_cls, target: int) -> int:
    """The width at which torch's fused layer (2 layers, input EMB) has about ``target`` parameters."""
    best = 1
    for width in range(1, HID + 1):
        if recurrent_params(torch_cls(EMB, width, LAYERS)) <= target:
            best = width
    return best


def rnnkit_variant(cell: str, method: str) -> CharModel:
    rnn = RNN(cell, EMB, HID, LAYERS)
    for c in rnn.cells:
        if method == "loop":
            c.scan = None                                # the layer's loop: cell.step once per time step
        else:
            c.scan_method = method
    return CharModel(rnn, HID, raw=False)


def variants(cells: list[str]) -> dict[str, CharModel]:
    out = {}
    for cell in cells:
        torch_cls = nn.GRU if cell == "mingru" else nn.LSTM
        kind = torch_cls.__name__
        for method, label in (("blocked", "scan"), ("log", "log-scan"), ("loop", "loop")):
            out[f"{cell} {label}"] = rnnkit_variant(cell, method)
        target = recurrent_params(out[f"{cell} scan"].rnn)
        width = same_params_width(torch_cls, target)
        out[f"nn.{kind} same width ({HID})"] = CharModel(torch_cls(EMB, HID, LAYERS, batch_first=True), HID, True)
        out[f"nn.{kind} same params ({width})"] = CharModel(torch_cls(EMB, width, LAYERS, batch_first=True), width,
                                                            True)
    return out


def train_step(model: nn.Module, opt, x, y) -> float:
    """One training step; returns its seconds."""
    t0 = time.perf_counter()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def profile(T: int, batch: int) -> None:
    """torch.profiler's table for three training steps of the minGRU scan model at length T."""
    from torch.profiler import profile as torch_profile

    model = rnnkit_variant("mingru", "blocked")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, T))
    train_step(model, opt, x, x)
    with torch_profile() as prof:
        for _ in range(3):
            train_step(model, opt, x, x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def export_sizes(hidden: int) -> None:
    """Flash and RAM of int8 and float32 C headers of a minGRU and an LSTM classifier of ``hidden`` units, shaped
    like bench/export.py's BasicMotions model (6 channels, 4 classes, max+mean pooling, one layer). Sizes depend
    on the dimensions only, so the weights are random."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from rnnkit.export.c import CModel, memory, object_size, render, rnn_layers, weight_bytes

    print(f"| {hidden} units, 6 channels, 4 classes | weights | code + weights (text + data, -Os, this machine) "
          f"| RAM (state + stack + output) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("mingru", "lstm"):
            torch.manual_seed(0)
            kind, layers = rnn_layers(RNN(cell, 6, hidden), f"model {cell!r}")
            head = nn.Linear(2 * hidden, 4)
            model = CModel("classes", kind, layers, head.weight.detach().numpy(), head.bias.detach().numpy(),
                           np.zeros(6, np.float32), np.ones(6, np.float32), reference=None, inputs=None,
                           pooling="maxmean", classes=list("abcd"))
            for precision in ("int8", "float32"):
                path = Path(tmp) / f"{cell}_{precision}.h"
                path.write_text(render(model, path.stem, precision), encoding="utf-8")
                size = object_size(path, tmp)
                ram = memory(model)
                print(f"| {cell}, {precision} | {weight_bytes(model, precision):,} B | {size['text'] + size['data']:,} B "
                      f"| {ram['total']:,} B ({ram['state']} + {max(ram['step_stack'], ram['output_stack'])} + "
                      f"{ram['output_buffer']}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048], help="sequence lengths T")
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per step (default: 32)")
    ap.add_argument("--cells", nargs="+", default=["mingru", "minlstm"], choices=["mingru", "minlstm"],
                    help="the scan cells to measure (each against its torch counterpart)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per variant and round (default: 2)")
    ap.add_argument("--profile", type=int, default=None, metavar="T",
                    help="print torch.profiler's table for the minGRU scan at length T instead")
    ap.add_argument("--export-sizes", type=int, default=None, metavar="H",
                    help="print the flash and RAM of C headers of a minGRU-H and an LSTM-H classifier instead")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    if args.export_sizes:
        export_sizes(args.export_sizes)
        return
    if args.profile:
        profile(args.profile, args.batch_size)
        return

    torch.manual_seed(0)
    models = variants(args.cells)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    print(f"# {args.batch_size} sequences x T, embedding {EMB}, {LAYERS} layers; "
          f"{args.rounds} rounds x {args.steps} steps; median characters/s")
    for T in args.lengths:
        g = torch.Generator().manual_seed(T)
        x = torch.randint(0, VOCAB, (args.batch_size, T), generator=g)
        y = torch.randint(0, VOCAB, (args.batch_size, T), generator=g)
        for k, m in models.items():                      # warm-up: allocator, oneDNN primitives
            train_step(m, opts[k], x, y)
        rates: dict[str, list[float]] = {k: [] for k in models}
        for _ in progress(range(args.rounds), f"T={T} rounds"):
            for k, m in models.items():
                seconds = sum(train_step(m, opts[k], x, y) for _ in range(args.steps))
                rates[k].append(args.steps * x.numel() / seconds)
        med = {k: statistics.median(r) for k, r in rates.items()}
        print(f"\nT = {T}")
        print(f"{'variant':28s} {'params':>9s} {'chars/s':>10s} {'min':>9s} {'max':>9s}")
        for k, r in rates.items():
            print(f"{k:28s} {recurrent_params(models[k].rnn):9,d} {med[k]:10,.0f} {min(r):9,.0f} {max(r):9,.0f}")
        for cell in args.cells:
            kind = "GRU" if cell == "mingru" else "LSTM"
            scan = med[f"{cell} scan"]
            width = next(v for k, v in med.items() if k.startswith(f"nn.{kind} same width"))
            params = next(v for k, v in med.items() if k.startswith(f"nn.{kind} same params"))
            print(f"{cell} scan: {scan / med[f'{cell} loop']:.1f}x its loop, {scan / med[f'{cell} log-scan']:.1f}x "
                  f"the log-space scan, {scan / width:.1f}x nn.{kind} of the same width, {scan / params:.1f}x "
                  f"nn.{kind} of the same parameter count")


if __name__ == "__main__":
    main()
