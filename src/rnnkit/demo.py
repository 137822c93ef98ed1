"""``rnnkit demo``: a small character-level Shakespeare model, trained for a few minutes and sampled.

The whole stack in one short path: the dataset registry fetches the plays, the char Tokenizer maps
characters to ids, the :class:`~rnnkit.layers.RNN` layer runs a 2-layer LSTM (fused kernel), the
Trainer trains it with truncated backprop through time (the state is carried from chunk to chunk
and detached), and generation carries the state one character at a time while the sampling
processors apply a temperature.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from rnnkit import _checks
from rnnkit.config import add_config_arguments, config_from_args, field
from rnnkit.layers import RNN
from rnnkit.sampling import greedy, make_generator, make_processors, sample
from rnnkit.text import Tokenizer
from rnnkit.train import TrainConfig, Trainer


@dataclass
class DemoConfig:
    corpus: Optional[str] = field(None, "train on this UTF-8 text file instead of the Shakespeare slice")
    hidden_size: int = field(256, "LSTM units per layer")
    num_layers: int = field(2, "stacked LSTM layers")
    embedding_size: int = field(64, "size of the character embedding")
    seq_len: int = field(100, "characters per truncated-BPTT chunk")
    batch_size: int = field(64, "parallel streams of text")
    lr: float = field(3e-3, "peak learning rate (Adam, cosine decay)")
    max_minutes: float = field(2.0, "training time budget in minutes")
    epochs: int = field(3, "passes over the training text (the time budget usually ends training first)")
    seed_text: str = field("QUEEN:\n", "text the samples start from")
    length: int = field(300, "characters to generate per sample")
    seed: int = field(0, "random seed for training and sampling")
    run_dir: Optional[str] = field(None, "save checkpoints and metrics here (default: no run directory)")

    def __post_init__(self):
        for name in ("hidden_size", "num_layers", "embedding_size", "seq_len", "batch_size", "length", "epochs"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_float("max_minutes", self.max_minutes, min=0, min_open=True)


class CharLM(nn.Module):
    """Embedding -> stacked LSTM -> linear head over the vocabulary."""

    def __init__(self, vocab: int, emb: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.rnn = RNN("lstm", emb, hidden, num_layers=layers, return_state=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embed(ids), initial_state=state)   # (B, T, H)
        return self.head(out), state                                  # (B, T, V)


def stream_batches(ids: torch.Tensor, batch_size: int, seq_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut one long id sequence into ``batch_size`` contiguous streams, then into chunks of
    ``seq_len``: chunk k of stream b follows chunk k-1 of stream b, so the carried state is valid."""
    n = (len(ids) - 1) // batch_size
    if n < seq_len:
        raise ValueError(f"corpus: {len(ids)} characters is too short for batch_size={batch_size} x "
                         f"seq_len={seq_len}; need at least {batch_size * seq_len + 1}")
    x = ids[: n * batch_size].view(batch_size, n)                     # (B, N)
    y = ids[1: n * batch_size + 1].view(batch_size, n)
    return [(x[:, k:k + seq_len], y[:, k:k + seq_len]) for k in range(0, n - seq_len + 1, seq_len)]


@torch.no_grad()
def generate(model: CharLM, tok: Tokenizer, seed_text: str, length: int, temperature: float,
             generator: torch.Generator) -> str:
    """Feed the seed once, then one character per step, carrying the LSTM state."""
    model.eval()
    ids = torch.tensor([tok.texts_to_sequences([seed_text])[0]])
    logits, state = model(ids)
    choose = make_processors(temperature=temperature) if temperature > 0 else None
    out = []
    for _ in range(length):
        last = logits[:, -1]                                          # (1, V)
        nxt = greedy(last) if choose is None else sample(choose(None, last), generator)
        out.append(int(nxt))
        logits, state = model(nxt.view(1, 1), state)
    model.train()
    return tok.sequences_to_texts([out])[0]


def run(cfg: DemoConfig) -> dict:
    from rnnkit import datasets

    text = datasets.load_text(cfg.corpus) if cfg.corpus else datasets.load("shakespeare", variant="tiny")
    tok = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts([text])
    ids = torch.tensor(tok.texts_to_sequences([text])[0])
    split = int(len(ids) * 0.9)                                       # last 10% held out
    train_b = stream_batches(ids[:split], cfg.batch_size, cfg.seq_len)
    val_b = stream_batches(ids[split:], min(cfg.batch_size, 16), cfg.seq_len)
    print(f"corpus: {len(text):,} characters, vocabulary {tok.vocab_size - 1}; "
          f"{len(train_b)} training batches of {cfg.batch_size}x{cfg.seq_len}", file=sys.stderr)

    torch.manual_seed(cfg.seed)
    model = CharLM(tok.vocab_size, cfg.embedding_size, cfg.hidden_size, cfg.num_layers)
    loss_fn = nn.CrossEntropyLoss()

    def compute_loss(model, batch, state):
        x, y = batch
        logits, state = model(x, state)
        return loss_fn(logits.flatten(0, 1), y.flatten()), state, x.numel()

    @torch.no_grad()
    def evaluate(model):
        model.eval()
        state, total = None, 0.0
        for x, y in val_b:
            logits, state = model(x, state)
            total += float(loss_fn(logits.flatten(0, 1), y.flatten()))
        model.train()
        nats = total / len(val_b)
        return {"val_loss": nats, "val_bits_per_char": nats / math.log(2)}

    tcfg = TrainConfig(epochs=cfg.epochs, max_minutes=cfg.max_minutes, lr=cfg.lr, schedule="cosine",
                       clip_grad_norm=5.0, seed=cfg.seed, log_every=20, device="cpu")
    trainer = Trainer(model, tcfg, run_dir=cfg.run_dir)
    if cfg.run_dir:
        trainer.run_dir.path.mkdir(parents=True, exist_ok=True)
        tok.save(trainer.run_dir.file("tokenizer.json"))
        trainer.run_dir.write_config({"task": "demo", "demo": dataclasses.asdict(cfg)})
    trainer.fit(lambda epoch: train_b, compute_loss, evaluate)
    metrics = evaluate(model)
    print(f"\nafter {trainer.step} steps: validation loss {metrics['val_loss']:.3f} nats/char "
          f"({metrics['val_bits_per_char']:.3f} bits/char)\n")
    gen = make_generator(cfg.seed)
    samples = {}
    for temperature in (0.2, 0.5, 1.0):
        samples[temperature] = generate(model, tok, cfg.seed_text, cfg.length, temperature, gen)
        print(f"----- temperature {temperature} -----\n{cfg.seed_text}{samples[temperature]}\n")
    return {"metrics": metrics, "samples": samples, "steps": trainer.step}


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="train a small Shakespeare character model and print samples",
                       description=__doc__.split("\n\n")[0])
    add_config_arguments(p, DemoConfig)
    p.set_defaults(func=lambda args: run(config_from_args(DemoConfig, args)) and 0)
