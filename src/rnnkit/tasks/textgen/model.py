"""The language model: embedding -> stacked recurrent layer -> linear head over the vocabulary.

Token id 0 is padding (the tokenizer's convention): it is never a token of the text, so generation
never chooses it (:func:`no_padding`).
"""

from __future__ import annotations

import math

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
