"""Text-generation quality: held-out loss of rnnkit's default settings after a fixed training time.

Trains ``TextGenerator`` with its defaults (or the overrides given with ``--set``) on the Shakespeare
dataset for ``--minutes`` and prints the learning curve (validation loss on the held-out last 10%
against wall minutes) and the final loss in nats/char. ``--baseline`` also runs the plain PyTorch
script the bar is stated against (torch.nn.LSTM, embedding 64, batch 64, sequence 100, Adam with
cosine decay, clipping 5, truncated BPTT with carried state) on the same split, for comparison.

    python bench/textgen.py --minutes 15
    python bench/textgen.py --minutes 3 --set hidden_size=256 --set lr=0.002
    python bench/textgen.py --minutes 15 --baseline --baseline-hidden 512
    python bench/textgen.py --throughput      # training chars/s: rnnkit textgen vs a raw nn.LSTM loop
    python bench/textgen.py --throughput --hidden 512 --precisions fp32 bf16
    python bench/textgen.py --curves 600      # held-out loss every 50 steps, fp32 against bf16 (CSV, PNG)

Threads are the CLI's choice (one per CPU other processes leave free, looked at again while training)
unless ``--threads`` sets them. Training shows the Trainer's progress (a bar on a terminal, a line every
30 s in a log); the plain script a line at each evaluation; ``--throughput`` a line per timed turn;
``--curves`` the Trainer's progress and a line per evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import typing

import torch
from common import add_threads_argument, progress, start
from torch import nn

from rnnkit import datasets
from rnnkit.tasks.textgen.data import load_corpus, load_val_text, stream_batches, stream_loss
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator
from rnnkit.text import Tokenizer
from rnnkit.training import TrainConfig


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs typed like the TextGenConfig fields (or its training options) they name."""
    hints = {**typing.get_type_hints(TrainConfig), **typing.get_type_hints(TextGenConfig)}
    del hints["train"]
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in hints:
            raise SystemExit(f"--set {item!r}: {key!r} is not a TextGenConfig field or training option")
        if value.lower() == "none":
            out[key] = None
            continue
        tp = hints[key]
        base = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        out[key] = base[0](value) if base[0] in (int, float) else value
    return out


def run_rnnkit(minutes: float, overrides: dict, variant: str | None, threads: int | None) -> dict:
    # threads: the Trainer applies them as the CLI does (None: its own choice, looked at again while training).
    gen = TextGenerator(max_minutes=minutes, variant=variant, sample_max_tokens=0, **{"threads": threads, **overrides})
    began = time.monotonic()
    gen.fit()                        # the Trainer's progress: a bar on a terminal, lines in a log
    cfg = gen.config                 # after fit: --hidden-size auto is settled to the width it picked
    curve = [(r["elapsed_s"] / 60, r["val_loss"]) for r in gen.history_ if r.get("event") == "epoch"]
    # Training loss per log window against minutes: mostly text the model has not seen yet.
    train_curve = [(r["elapsed_s"] / 60, r["loss"]) for r in gen.history_ if r.get("event") == "train"]
    result = {"settings": dataclasses.asdict(cfg), "curve": curve, "train_curve": train_curve,
              "final": gen.metrics_["val_loss"],
              "steps": gen.trainer_.step, "wall_min": (time.monotonic() - began) / 60}
    if cfg.train.ema_decay and (cfg.val_file or cfg.val_frac):
        # The curve measures the averaged weights; measure the trained ones too, on the same validation text.
        if cfg.val_file:
            ids = torch.tensor(gen.tokenizer_.texts_to_sequences([load_val_text(cfg)])[0])
        else:
            ids = torch.tensor(gen.tokenizer_.texts_to_sequences([load_corpus(cfg)[0]])[0])
            ids = ids[int(len(ids) * (1 - cfg.val_frac)):]
        with torch.no_grad(), gen.trainer_.trained_weights() as model:
            result["final_trained_weights"] = stream_loss(model, ids, batch_size=16, seq_len=cfg.seq_len)[0]
    return result


def run_baseline(minutes: float, hidden: int, variant: str | None, eval_every_min: float) -> dict:
    """The plain script: nothing from rnnkit but the data split and the evaluation function."""
    text = datasets.load("shakespeare", **({"variant": variant} if variant else {}))
    tok = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts([text])
    ids = torch.tensor(tok.texts_to_sequences([text])[0])
    split = int(len(ids) * 0.9)
    batches = stream_batches(ids[:split], 64, 100)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.lstm = nn.Embedding(tok.vocab_size, 64), nn.LSTM(64, hidden, 2, batch_first=True)
            self.head = nn.Linear(hidden, tok.vocab_size)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    torch.manual_seed(0)
    model = Plain()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    began, curve, state, step = time.monotonic(), [], None, 0
    next_eval = eval_every_min * 60
    while True:
        for x, y in batches:
            frac = (time.monotonic() - began) / (60 * minutes)
            if frac >= 1:
                break
            for g in opt.param_groups:                               # cosine decay over the time budget
                g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * frac))
            logits, state = model(x, state)
            state = tuple(s.detach() for s in state)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            if time.monotonic() - began >= next_eval:
                curve.append(((time.monotonic() - began) / 60, stream_loss(model, ids[split:])[0]))
                next_eval += eval_every_min * 60
                print(f"# baseline: {curve[-1][0]:.1f} of {minutes:g} minutes, step {step}, val loss "
                      f"{curve[-1][1]:.4f}", file=sys.stderr, flush=True)
        else:
            state = None
            continue
        break
    final = stream_loss(model, ids[split:])[0]
    curve.append(((time.monotonic() - began) / 60, final))
    return {"settings": {"hidden": hidden, "layers": 2, "lr": 2e-3}, "curve": curve, "final": final, "steps": step}


def throughput(hidden: int, rounds: int, steps: int, precisions: list[str], threads: int | None) -> None:
    """Training chars/s, interleaved: rnnkit's model + Trainer (as fit runs them) vs a raw nn.LSTM loop, in
    each precision (bf16: the forward under torch.autocast, bfloat16 on CPUs with AMX/AVX-512 BF16)."""
    from rnnkit.tasks.textgen.model import LanguageModel
    from rnnkit.training.trainer import Trainer

    V, B, T = 76, 64, 100
    torch.manual_seed(0)
    batches = [(torch.randint(1, V, (B, T)), torch.randint(1, V, (B, T))) for _ in range(steps)]
    loss_fn = nn.CrossEntropyLoss()

    def compute_loss(model, batch, state):                          # the one TextGenerator.fit uses
        x, y = batch
        logits, state = model(x, state)
        return loss_fn(logits.flatten(0, 1), y.flatten()), state, x.numel()

    raw_embed, raw_lstm, raw_head = nn.Embedding(V, 64), nn.LSTM(64, hidden, 2, batch_first=True), nn.Linear(hidden, V)
    raw_params = [*raw_embed.parameters(), *raw_lstm.parameters(), *raw_head.parameters()]
    raw_opt = torch.optim.Adam(raw_params, lr=1e-3)

    def raw_round(precision):
        state = None
        for x, y in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out, state = raw_lstm(raw_embed(x), state)
                loss = loss_fn(raw_head(out).flatten(0, 1), y.flatten())
            state = tuple(s.detach().float() for s in state)
            raw_opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(raw_params, 5.0)
            raw_opt.step()

    model = LanguageModel(V, 64, hidden, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def rnnkit_round(precision):                                    # one epoch of the batches, one fit call
        tcfg = TrainConfig(epochs=1, lr=1e-3, schedule="cosine", clip_grad_norm=5.0, log_every=50, device="cpu",
                           precision=precision, threads=threads)       # the Trainer applies the same threads
        Trainer(model, tcfg, optimizer=opt, progress=False).fit(batches, compute_loss)

    variants = {}
    for p in precisions:
        variants[f"raw torch.nn.LSTM loop, {p}"] = lambda p=p: raw_round(p)
        variants[f"rnnkit LanguageModel + Trainer, {p}"] = lambda p=p: rnnkit_round(p)
    for name in progress(variants, "warm-up (one round per variant)"):
        variants[name]()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    turns = [(r, name) for r in range(rounds) for name in variants]  # interleaved: round by round
    for _, name in progress(turns, f"timed turns ({rounds} rounds x {len(variants)} variants)"):
        began = time.perf_counter()
        variants[name]()
        rates[name].append(steps * B * T / (time.perf_counter() - began))
    med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    base = med[f"raw torch.nn.LSTM loop, {precisions[0]}"]
    print(f"training throughput, 2-layer LSTM-{hidden}, batch {B}, sequence {T}, median of {rounds} rounds of "
          f"{steps} steps ({torch.get_num_threads()} threads):")
    print(f"| variant | chars/s | vs raw {precisions[0]} | vs raw, same precision |\n|---|---:|---:|---:|")
    for name, rate in med.items():
        same = med["raw torch.nn.LSTM loop, " + name.rsplit(", ", 1)[1]]
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} | {rate / same:.3f} |")


def curves(steps: int, every: int, hidden: int, eval_chars: int, precisions: list[str], noise_seed: int | None,
           threads: int | None, out: str) -> None:
    """Held-out loss against optimizer steps in each precision: the same model, seed and batches, so the curves
    differ only by the arithmetic of the forward pass (bf16: bfloat16 autocast, as ``precision="bf16"`` trains).

    The model and training are textgen's defaults (Shakespeare, embedding 64, 2 layers, batch 64, sequence 100,
    lr 3e-3 with 50 warmup steps, clipping 5, truncated BPTT with carried state) at a fixed width ``hidden``,
    with the cosine schedule over ``steps`` instead of a time budget (so both precisions take the same steps).
    Every ``every`` steps the weights are evaluated in float32 (as the Trainer evaluates) on the first
    ``eval_chars`` characters of the held-out last 10%. ``noise_seed``: also train fp32 from that seed, to show
    how far two float32 runs end apart.
    """
    import csv
    from pathlib import Path

    from rnnkit.report.plots import new_figure, save_png
    from rnnkit.tasks.textgen.data import make_tokenizer
    from rnnkit.tasks.textgen.model import LanguageModel
    from rnnkit.training.trainer import Trainer, seed_everything

    cfg = TextGenConfig(hidden_size=hidden)
    text, _ = load_corpus(cfg)
    tok = make_tokenizer(cfg).fit_on_texts([text])
    ids = torch.tensor(tok.texts_to_sequences([text])[0])                   # (n,)
    split = int(len(ids) * (1 - cfg.val_frac))
    batches = stream_batches(ids[:split], cfg.train.batch_size, cfg.seq_len)   # [(x, y)], each (64, 100)
    held_out = ids[split:split + eval_chars]
    train = dataclasses.replace(cfg.train, max_minutes=None, max_steps=steps, schedule="cosine",
                                early_stop_patience=None, restore_best=False, threads=threads)

    def compute_loss(model, batch, state):                                  # TextGenerator's loss
        x, y = batch
        logits, state = model(x, state)                                     # (B, T, V)
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), state, x.numel()

    runs = [(p, train.seed) for p in precisions] + ([("fp32", noise_seed)] if noise_seed is not None else [])
    losses: dict[str, list[float]] = {}
    minutes: dict[str, float] = {}                                          # wall time, evaluations included
    for precision, seed in runs:
        name = precision if seed == train.seed else f"{precision}, seed {seed}"
        seed_everything(seed)                                               # the same initial weights
        model = LanguageModel(tok.vocab_size, cfg.embedding_size, hidden, cfg.num_layers)
        curve = losses[name] = [stream_loss(model, held_out, batch_size=16, seq_len=cfg.seq_len)[0]]

        def evaluate(trainer, curve=curve, name=name):
            if trainer.step % every == 0 or trainer.step == steps:
                with torch.no_grad():                                       # outside autocast: float32
                    curve.append(stream_loss(trainer.model, held_out, batch_size=16, seq_len=cfg.seq_len)[0])
                print(f"# {name}: step {trainer.step}, held-out loss {curve[-1]:.4f}", file=sys.stderr, flush=True)

        tcfg = dataclasses.replace(train, precision=precision, seed=seed)
        began = time.monotonic()
        Trainer(model, tcfg, callbacks={"on_step_end": evaluate}).fit(batches, compute_loss)
        minutes[name] = (time.monotonic() - began) / 60
    at = [0, *range(every, steps + 1, every)] + ([steps] if steps % every else [])

    print(f"held-out loss (nats/char, first {len(held_out):,} characters of the held-out 10% of Shakespeare), "
          f"2-layer LSTM-{hidden}, the same seed and batches, {torch.get_num_threads()} thread(s):")
    names = list(losses)
    print("| step | " + " | ".join(names) + " | bf16 - fp32 |\n|---:|" + "---:|" * (len(names) + 1))
    for i, step in enumerate(at):
        diff = losses["bf16"][i] - losses["fp32"][i] if {"bf16", "fp32"} <= set(losses) else math.nan
        print(f"| {step} | " + " | ".join(f"{losses[n][i]:.4f}" for n in names) + f" | {diff:+.4f} |")
    for n in names[1:]:
        print(f"after {steps} steps: {n} - {names[0]} = {losses[n][-1] - losses[names[0]][-1]:+.4f} nats/char")
    print("wall minutes (training and evaluations): " + ", ".join(f"{n} {m:.1f}" for n, m in minutes.items()))

    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *names])
        w.writerows([step, *(f"{losses[n][i]:.5f}" for n in names)] for i, step in enumerate(at))
    fig = new_figure(7, 4)
    ax = fig.add_subplot()
    for n in names:
        # bf16 dashed over fp32 solid, so that one curve lying on the other still shows; step 0 (about ln V)
        # is left out, it would squash the scale.
        ax.plot(at[1:], losses[n][1:], ls="--" if n.startswith("bf16") else "-",
                marker="x" if n.startswith("bf16") else "o", ms=4, label=n)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("held-out loss (nats/char)")
    ax.set_title(f"Shakespeare, 2-layer LSTM-{hidden}, batch 64 x 100: held-out loss by step")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_png(fig, Path(out) / "curves.png")
    print(f"wrote {Path(out) / 'curves.csv'} and {Path(out) / 'curves.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget (wall minutes)")
    parser.add_argument("--variant", default=None, help="shakespeare variant: None (full, 4.8 M chars) or tiny")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TextGenConfig field (repeatable)")
    parser.add_argument("--baseline", action="store_true", help="also run the plain PyTorch script")
    parser.add_argument("--baseline-hidden", type=int, default=512, help="LSTM units of the plain script")
    parser.add_argument("--only-baseline", action="store_true", help="run only the plain script")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--throughput", action="store_true", help="measure training chars/s against a raw "
                                                                   "nn.LSTM loop instead of quality")
    parser.add_argument("--hidden", type=int, default=256, help="--throughput, --curves: LSTM units per layer")
    parser.add_argument("--rounds", type=int, default=5, help="--throughput: interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="--throughput: steps per round")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="--throughput, --curves: precisions to time or train (default: fp32 bf16)")
    parser.add_argument("--curves", type=int, default=None, metavar="STEPS",
                        help="train STEPS optimizer steps in each of --precisions from the same seed and batches "
                             "(width --hidden) and print the held-out loss curves; writes curves.csv and "
                             "curves.png to --out")
    parser.add_argument("--every", type=int, default=50, help="--curves: steps between evaluations (default: 50)")
    parser.add_argument("--eval-chars", type=int, default=100_000,
                        help="--curves: held-out characters each evaluation reads (default: 100,000)")
    parser.add_argument("--noise-seed", type=int, default=None,
                        help="--curves: also train fp32 from this seed, to show the spread between two fp32 runs")
    parser.add_argument("--out", default="bench-out/textgen-curves", help="--curves: output folder")
    add_threads_argument(parser)
    args = parser.parse_args()
    start(args.threads)
    if args.throughput:
        throughput(args.hidden, args.rounds, args.steps, args.precisions, args.threads)
        return
    if args.curves:
        curves(args.curves, args.every, args.hidden, args.eval_chars, args.precisions, args.noise_seed, args.threads,
               args.out)
        return

    results = {}
    if not args.only_baseline:
        results["rnnkit"] = run_rnnkit(args.minutes, parse_set(args.set), args.variant, args.threads)
    if args.baseline or args.only_baseline:
        results["baseline"] = run_baseline(args.minutes, args.baseline_hidden, args.variant, eval_every_min=3.0)
    for name, res in results.items():
        print(f"\n{name}: {res['final']:.4f} nats/char ({res['final'] / math.log(2):.4f} bits/char) on the held-out "
              f"last 10% after {args.minutes} minutes, {res['steps']} steps")
        if "final_trained_weights" in res:
            print(f"(weight average; the trained weights themselves: {res['final_trained_weights']:.4f} nats/char)")
        print("| minutes | val loss (nats/char) |\n|---:|---:|")
        for minute, loss in res["curve"]:
            print(f"| {minute:.1f} | {loss:.4f} |")
        if res.get("train_curve"):
            # About one point per minute of the logged training loss (the text ahead of the model).
            print("| minutes | training loss (logged) |\n|---:|---:|")
            shown = -1
            for minute, loss in res["train_curve"]:
                if int(minute) > shown:
                    shown = int(minute)
                    print(f"| {minute:.1f} | {loss:.4f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
