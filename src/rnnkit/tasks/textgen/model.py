"""The language model: embedding -> stacked recurrent layer -> linear head over the vocabulary.

Token id 0 is padding (the tokenizer's convention): it is never a token of the text, so generation
never chooses it (:func:`no_padding`). :func:`onnx_spec` is what the ONNX exporter traces: one step with
explicit state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rnnkit.nn.layers import RNN


class LanguageModel(nn.Module):
    """Embedding -> stacked recurrent layer -> (dropout) -> linear head over the vocabulary."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int,
                 cell: str = "lstm", dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 recurrent_dropout_mode: str = "weight_drop"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        self.rnn = RNN(cell, embedding_size, hidden_size, num_layers=num_layers, dropout=dropout,
                       recurrent_dropout=recurrent_dropout, recurrent_dropout_mode=recurrent_dropout_mode,
                       return_state=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """ids (B, T) -> logits (B, T, V) and the final state (one (h[, c]) tuple of (B, H) per layer)."""
        out, state = self.rnn(self.embed(ids), initial_state=state)   # (B, T, H)
        return self.head(self.drop(out)), state

    def step(self, tokens: torch.Tensor, state):
        """One token per row, the step function of generation: tokens (N,) -> the next token's logits
        (N, V), padding masked, and the new state."""
        logits, state = self(tokens.view(-1, 1), state)                # (N, 1, V)
        return no_padding(logits[:, -1]), state


def no_padding(logits: torch.Tensor) -> torch.Tensor:
    """Index 0 is padding, never a token of the text: never choose it. (N, V) -> (N, V), a new tensor."""
    return torch.cat([torch.full_like(logits[:, :1], -math.inf), logits[:, 1:]], dim=1)


def stack_states(state) -> list[torch.Tensor]:
    """Per-layer (h[, c]) tuples -> [h (L, N, H)] or [h, c]: the layout the compiled samplers take."""
    return [torch.stack([st[k] for st in state]).contiguous() for k in range(len(state[0]))]


# ---------------------------------------------------------------------------------------------------------
# ONNX: the model as a step function with explicit state (see rnnkit.export.onnx)
# ---------------------------------------------------------------------------------------------------------

class StepGraph(nn.Module):
    """A language model's step with explicit state: token (B,), h (L, B, H)[, c] -> logits (B, V), h[, c].

    Calls the model's own ``step`` (the fused kernel, one time step); the state goes in and out as stacked
    tensors, the layout ONNX and the compiled samplers use."""

    def __init__(self, lm: LanguageModel):
        super().__init__()
        self.lm = lm
        self.lstm = len(lm.rnn.cells[0].state_size) == 2

    def forward(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        # per-layer state tuples, as the layer takes them
        state = [(h[k], c[k]) if self.lstm else (h[k],) for k in range(h.shape[0])]
        logits, state = self.lm.step(token, state)                   # (B, V), one tuple per layer
        return (logits, *stack_states(state))                        # logits, h (L, B, H)[, c]


def onnx_spec(lm: LanguageModel):
    """The :class:`~rnnkit.export.onnx.OnnxSpec` of a language model: one step, the state in and out. Its check
    chains ``length`` steps, feeding the file its own state back, against ``lm.step``: each step's logits and
    the final state."""
    from rnnkit.export.onnx import OnnxSpec

    L, H = len(lm.rnn.cells), lm.rnn.hidden_size
    names = ["h", "c"][:len(lm.rnn.cells[0].state_size)]
    token = torch.randint(1, lm.embed.num_embeddings, (3,), generator=torch.Generator().manual_seed(0))
    state = [torch.zeros(L, 3, H)] * len(names)
    axes = {"token": {0: "batch"}, "logits": {0: "batch"}, **{n: {1: "batch"} for n in names},
            **{n + "_out": {1: "batch"} for n in names}}

    def compare(run, rng, B: int, T: int):
        lm.eval()
        tokens = torch.from_numpy(rng.integers(1, lm.embed.num_embeddings, (T, B)))
        mine, theirs = None, [np.zeros((L, B, H), np.float32) for _ in names]
        pairs = []
        with torch.no_grad():
            for t in range(T):
                logits, mine = lm.step(tokens[t], mine)
                got = run({"token": tokens[t].numpy(), **dict(zip(names, theirs))})
                theirs = got[1:]
                pairs.append((got[0], logits.numpy()))
        return pairs + [(a, b.numpy()) for a, b in zip(theirs, stack_states(mine))]

    return OnnxSpec(StepGraph(lm), (token, *state), ["token", *names], ["logits", *[n + "_out" for n in names]],
                    axes, kind="step", compare=compare, counts="steps")
