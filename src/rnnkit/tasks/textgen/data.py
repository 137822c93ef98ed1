"""Text generation's data: corpus -> tokens -> contiguous streams, and the loss over a stream.

The lectures' recipe: cut the token ids into ``batch_size`` contiguous streams, read them in chunks
of ``seq_len`` tokens, and carry the recurrent state from one chunk to the next (:func:`stream_batches`);
the held-out loss reads a text the same way (:func:`stream_loss`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit import _checks
from rnnkit.text import Tokenizer
from rnnkit.training.progress import track

from rnnkit.tasks.textgen.config import TextGenConfig

OOV = "<unk>"                   # word level: the token that replaces rare and unseen words


def load_corpus(config: "TextGenConfig") -> tuple[str, bool]:
    """The training text and whether it is a one-item-per-line corpus (whose samples end at a newline)."""
    from rnnkit import datasets

    if config.corpus is not None:
        path = Path(config.corpus)
        _checks.require_file("corpus", config.corpus)
        text, line_corpus = datasets.load_text(path, encoding=config.encoding), False
    elif config.dataset in CLASSIFY_DATASETS:
        text, line_corpus = classify_texts(config.dataset), False
    else:
        options = {"variant": config.variant} if config.variant is not None else {}
        data = datasets.load(config.dataset, **options)
        text, line_corpus = corpus_text(data, source=f"dataset={config.dataset!r}")
    if config.unlabeled is not None:
        from rnnkit.tasks.transfer import check_unlabeled

        # One more document a line after the corpus; the held-out end (val_frac) then comes from it.
        text = text.rstrip("\n") + "\n" + check_unlabeled(config.unlabeled, config.encoding)
    return text, line_corpus


# Labelled text sets of `rnnkit classify`: a language model reads only their training rows' texts.
CLASSIFY_DATASETS = ("imdb", "rotten-tomatoes")


def classify_texts(name: str) -> str:
    """The texts of the training rows of ``rnnkit classify train --dataset NAME``'s default split (duplicates
    removed; validation 0.1, test 0.2, split seed 0), one a line: a language model for ``--encoder-from`` that
    never reads the reviews the classifier is validated or tested on."""
    from rnnkit.tasks.classify.config import DataConfig
    from rnnkit.tasks.classify.data import load_data

    d = DataConfig()
    data = load_data(name, val_frac=d.val_frac, test_frac=d.test_frac, seed=d.split_seed)
    return "".join(" ".join(t.split()) + "\n" for t in data.train.X)


def load_val_text(config: "TextGenConfig") -> str | None:
    """The text of ``--val-file`` (read like ``--corpus``), or None when the run holds out part of its corpus
    (or, with ``val_frac=0``, validates on nothing)."""
    from rnnkit import datasets

    if config.val_file is None:
        return None
    _checks.require_file("val_file", config.val_file)
    return datasets.load_text(Path(config.val_file), encoding=config.encoding)


def corpus_text(data: Any, source: str = "text") -> tuple[str, bool]:
    """A str is used as it is; a list of strings (or a dataset dict with ``names``) becomes one item per line."""
    if isinstance(data, dict) and "names" in data:
        data = data["names"]
    if isinstance(data, str):
        return data, False
    if isinstance(data, (list, tuple)) and all(isinstance(s, str) for s in data):
        # Every item ends with a newline, so the model learns where an item ends.
        return "".join(s.replace("\n", " ") + "\n" for s in data), True
    raise ValueError(f"{source}: expected a text (str) or a list of strings, got {type(data).__name__}")


def held_out_text(text: str, val_frac: float) -> str:
    """The last ``val_frac`` of a text, cut at a character: the part training holds out (approximately,
    since training cuts the token ids)."""
    return text[int(len(text) * (1 - val_frac)):]


def make_tokenizer(config: "TextGenConfig") -> Tokenizer:
    if config.level == "char":
        # Every character as written is a token: no lower-casing, no filters.
        return Tokenizer(char_level=True, lower=False, filters="")
    return Tokenizer(num_words=config.num_words, oov_token=OOV)


def stream_batches(ids: torch.Tensor, batch_size: int, seq_len: int, *, name: str = "corpus",
                   unit: str = "tokens") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut one id sequence into ``batch_size`` contiguous streams, then into chunks of ``seq_len``.

    Chunk k of stream b follows chunk k-1 of stream b, so the state carried between batches is valid.
    Returns a list of (x, y) pairs, each (B, seq_len), y being x shifted by one token.
    """
    n = (len(ids) - 1) // batch_size                                  # steps per stream
    if n < seq_len:
        need = batch_size * seq_len + 1
        raise ValueError(f"{name}: {len(ids)} {unit} is too short for one batch of batch_size={batch_size} x "
                         f"seq_len={seq_len} ({need} {unit} needed); use a longer text or lower --batch-size "
                         f"or --seq-len")
    x = ids[: n * batch_size].view(batch_size, n)                     # (B, N)
    y = ids[1: n * batch_size + 1].view(batch_size, n)
    return [(x[:, k:k + seq_len], y[:, k:k + seq_len]) for k in range(0, n - seq_len + 1, seq_len)]


@torch.no_grad()
def stream_loss(model: nn.Module, ids: torch.Tensor, batch_size: int = 16, seq_len: int = 100) -> tuple[float, int]:
    """Mean next-token loss (nats) over ``ids`` read as up to ``batch_size`` streams, state carried.

    Every token but the first of each stream (and a tail shorter than the number of streams) is
    predicted once; returns (mean nats per predicted token, tokens predicted). ``ids`` may live on
    any device: each chunk moves to the model's.
    """
    batch_size = max(1, min(batch_size, (len(ids) - 1) // max(1, seq_len)))
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise ValueError(f"text: {len(ids)} tokens is too short to evaluate; need at least 2")
    x = ids[: n * batch_size].view(batch_size, n)                     # (B, N)
    y = ids[1: n * batch_size + 1].view(batch_size, n)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device                         # chunks go where the model is
    state, total = None, torch.zeros((), dtype=torch.float64, device=device)
    try:
        # The last chunk may be shorter. A long text shows progress (a bar, or lines in a log).
        for k in track(range(0, n, seq_len), "evaluation", unit="chunk"):
            logits, state = model(x[:, k:k + seq_len].to(device), state)          # (B, T, V)
            total += nn.functional.cross_entropy(logits.flatten(0, 1), y[:, k:k + seq_len].flatten().to(device),
                                                 reduction="sum").double()
    finally:
        model.train(was_training)
    return float(total) / y.numel(), y.numel()
