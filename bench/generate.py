"""Generation speed: characters per second of five ways to sample from one character model.

The model is a 2-layer LSTM-256 character model (embedding 64, vocabulary 76: the Shakespeare
character set) with random weights; speed does not depend on what the weights learned, and every
variant runs the same number of steps (no end token). Variants, interleaved round by round:

* window: re-run the last 60 characters through the model for every new character (the
  DLwP / textgenrnn method), batch 1;
* python loop: carry the state, one Python-level ``model(token, state)`` call per character, batch 1
  (``TextGenerator.generate(..., fast=False)``);
* the TorchScript loop, batch 1 (``TextGenerator.generate(...)`` with ``RNNKIT_NATIVE=0``);
* rnnkit fast path, batch 1 (``TextGenerator.generate(...)``: the C loop of generation/native.py);
* rnnkit fast path, 64 samples as one batch (total characters of all samples per second; the
  TorchScript loop).

Also checks that the fast paths and the python loop give the same text for the same seed.

    python bench/generate.py --rounds 5 --max-tokens 2000
    python bench/generate.py --floor          # the matrix products alone, two layouts

Threads are the CLI's choice (one per CPU other processes leave free) unless ``--threads`` sets them; each
round is shown as it starts (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from common import add_threads_argument, progress, start

from rnnkit.generation.native import kernel_status
from rnnkit.tasks.textgen.model import LanguageModel
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator
from rnnkit.text import Tokenizer

CHARS = "\n !&',-.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz3$[]|_()\"*"


def make_generator(hidden: int, layers: int, seed: int) -> TextGenerator:
    torch.manual_seed(seed)
    gen = TextGenerator(TextGenConfig(hidden_size=hidden, num_layers=layers, embedding_size=64))
    gen.tokenizer_ = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts([CHARS])
    gen.end_token_ = None
    gen.model_ = LanguageModel(gen.tokenizer_.vocab_size, 64, hidden, layers).eval()
    return gen


@torch.inference_mode()
def window_method(gen: TextGenerator, prompt: str, max_tokens: int, window: int, rng: torch.Generator) -> str:
    """Re-read the last ``window`` characters for every new one; no state is carried."""
    ids = gen.encode_seed(prompt)
    for _ in range(max_tokens):
        logits, _ = gen.model_(torch.tensor([ids[-window:]]))        # (1, T, V): the whole window again
        probs = torch.softmax(logits[0, -1, 1:] / 0.5, dim=-1)
        ids.append(1 + int(torch.multinomial(probs, 1, generator=rng)))
    return gen.tokenizer_.sequences_to_texts([ids[len(prompt):]])[0]


@torch.inference_mode()
def product_floor(gen: TextGenerator, rounds: int, steps: int = 2000) -> None:
    """Time the matrix-vector products of one batch-1 character, alone, in two layouts.

    Each character reads every recurrent and input matrix once (for the 2x256 model, three 1024x256
    float32 matrices, 1 MB each) plus the head: 3.07 MB, more than one core's 2 MB L2 cache.

    * ``addmv`` on torch's (out, in) layout (what the TorchScript loop does at batch 1): BLAS splits
      the rows over the threads, so on 2 threads each core reads the same half of every matrix at
      every step, and that half stays in its L2;
    * ``mm(h, W^T)`` on the transposed (in, out) layout (what it did before): on one thread, and in
      practice on two, each product streams its matrix from L3.

    The products alone, with no other work, bound what any batch-1 loop built from these calls can reach.
    """
    rnn, head = gen.model_.rnn, gen.model_.head
    rows = [c.weight_hh for c in rnn.cells] + [c.weight_ih for c in rnn.cells[1:]] + [head.weight]
    rows = [w.detach().contiguous() for w in rows]                       # (out, in)
    cols = [w.t().contiguous() for w in rows]                            # (in, out)
    h = torch.randn(rnn.hidden_size)
    outs = [torch.empty(w.shape[0]) for w in rows]

    def addmv():
        for _ in range(steps):
            for w, o in zip(rows, outs):
                torch.mv(w, h, out=o)

    def mm():
        for _ in range(steps):
            for w, o in zip(cols, outs):
                torch.mm(h[None], w, out=o[None])

    threads = sorted({1, torch.get_num_threads()})
    times = {(k, n): [] for n in threads for k in ("addmv", "mm")}
    for _ in progress(range(rounds), "rounds of the products"):
        for (name, n), row in times.items():
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            (addmv if name == "addmv" else mm)()
            row.append((time.perf_counter() - t0) / steps * 1e6)
    # The same products for 64 samples (one step of the batched loop): matrix-matrix, arithmetic-bound.
    batch = torch.randn(64, rnn.hidden_size)
    t64 = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps // 10):
            for w in cols:
                torch.mm(batch, w)
        t64.append((time.perf_counter() - t0) / (steps // 10) * 1e6)
    macs = 64 * sum(w.numel() for w in rows)
    mb = sum(w.numel() for w in rows) * 4 / 2**20
    print(f"{len(rows)} products per character, {mb:.2f} MB of float32 weights, median of {rounds} rounds")
    print("| products per character | threads | µs | chars/s at most |\n|---|---:|---:|---:|")
    for (name, n), row in times.items():
        what = "`mv` on the (out, in) layout" if name == "addmv" else "`mm(h, W^T)` on the (in, out) layout"
        print(f"| {what} | {n} | {statistics.median(row):.1f} | {1e6 / statistics.median(row):,.0f} |")
    print(f"\n64 samples, one step's products ({macs / 1e6:.1f} M multiply-adds), {torch.get_num_threads()} "
          f"threads: {statistics.median(t64):.0f} µs")


@contextlib.contextmanager
def torchscript_only():
    """Batch 1 on the TorchScript loop instead of the C loop."""
    os.environ["RNNKIT_NATIVE"] = "0"
    try:
        yield
    finally:
        del os.environ["RNNKIT_NATIVE"]


def timed(fn, chars: int) -> float:
    start = time.perf_counter()
    fn()
    return chars / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256, help="LSTM units per layer")
    parser.add_argument("--layers", type=int, default=2, help="LSTM layers")
    parser.add_argument("--max-tokens", type=int, default=2000, help="characters per sample (fast path)")
    parser.add_argument("--slow-max-tokens", type=int, default=400, help="characters per sample for the window "
                                                                         "method and the python loop (slower)")
    parser.add_argument("--batch", type=int, default=64, help="samples in the batched run")
    parser.add_argument("--window", type=int, default=60, help="window of the window method")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    add_threads_argument(parser)
    parser.add_argument("--floor", action="store_true", help="only time the products one character needs "
                                                             "(the floor under batch-1 sampling) and exit")
    args = parser.parse_args()
    start(args.threads)

    gen = make_generator(args.hidden, args.layers, seed=0)
    if args.floor:
        product_floor(gen, args.rounds)
        return
    prompt = "QUEEN:\nWhat say you to my"
    rng = torch.Generator().manual_seed(0)

    print(f"C loop: {kernel_status()}")
    # Equality first: the fast paths and the plain Python loop, same seed, same processors.
    checks = [(4, 500, kwargs) for kwargs in ({"temperature": 0.5}, {"temperature": 1.0, "top_k": 10, "top_p": 0.9},
                                             {"greedy": True})]
    checks += [(1, 2000, kwargs) for kwargs in ({"temperature": 0.5}, {"temperature": 1.0}, {"greedy": True})]
    for n, length, kwargs in progress(checks, "equality checks"):
        a = gen.generate(prompt, length, seed=7, num_results=n, fast=True, **kwargs)
        b = gen.generate(prompt, length, seed=7, num_results=n, fast=False, **kwargs)
        what = f"{n} samples" if n > 1 else "1 sample"
        print(f"same tokens, fast path ({what}) vs python loop, {kwargs}: {a == b}", flush=True)
    gen.generate(prompt, 50)                                       # compile the fast path once

    results: dict[str, list[float]] = {k: [] for k in ("window", "python", "script1", "fast1", "fast64")}
    for r in progress(range(args.rounds), "rounds of the five variants"):
        results["window"].append(timed(lambda: window_method(gen, prompt, args.slow_max_tokens, args.window, rng),
                                       args.slow_max_tokens))
        results["python"].append(timed(lambda r=r: gen.generate(prompt, args.slow_max_tokens, 0.5, seed=r,
                                                                fast=False), args.slow_max_tokens))
        with torchscript_only():
            results["script1"].append(timed(lambda r=r: gen.generate(prompt, args.max_tokens, 0.5, seed=r),
                                            args.max_tokens))
        results["fast1"].append(timed(lambda r=r: gen.generate(prompt, args.max_tokens, 0.5, seed=r),
                                      args.max_tokens))
        results["fast64"].append(timed(lambda r=r: gen.generate(prompt, args.max_tokens, 0.5, seed=r,
                                                                num_results=args.batch),
                                       args.max_tokens * args.batch))
    med = {k: statistics.median(v) for k, v in results.items()}
    names = {"window": f"window method ({args.window} chars re-run per char), batch 1",
             "python": "python loop, state carried, batch 1",
             "script1": "TorchScript loop, batch 1",
             "fast1": "rnnkit fast path (C loop), batch 1",
             "fast64": f"rnnkit fast path (TorchScript loop), {args.batch} samples in one batch (total)"}
    print(f"\n2-layer LSTM-{args.hidden}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds")
    print("| variant | chars/s | vs window method |\n|---|---:|---:|")
    for k, name in names.items():
        print(f"| {name} | {med[k]:,.0f} | {med[k] / med['window']:.1f}x |")
    print(f"\nfast path batch 1 / window method: {med['fast1'] / med['window']:.1f}x (bar >= 30x)")
    print(f"fast path batch {args.batch} / fast path batch 1: {med['fast64'] / med['fast1']:.1f}x (bar >= 20x)")
    print(f"fast path batch {args.batch} / python loop batch 1: {med['fast64'] / med['python']:.1f}x")


if __name__ == "__main__":
    main()
