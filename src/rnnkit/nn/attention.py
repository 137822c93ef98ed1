"""Attention over an encoder's outputs, and the decoder cell that uses it (one step of a whole decoder stack).

An attention module compares ONE query (the decoder's state at a step, (B, Q)) with a *memory* of S encoder
outputs (B, S, M) and returns the weights over the memory and their weighted sum, the context::

    memory = attn.prepare(encoder_outputs, mask)     # once per source batch: what does not depend on the query
    context, weights = attn(query, memory)           # every step: (B, M), (B, S)

The three score functions (Bahdanau et al. 2015; Luong et al. 2015):

    dot       score(q, k_i) = q · k_i                        (q and the keys of the same size)
    general   score(q, k_i) = (W q) · k_i                    W: (M, Q), no bias
    additive  score(q, k_i) = v · tanh(W_q q + W_k k_i + b)  W_q: (A, Q), W_k: (A, M), v: (A,)

    weights  α_i = exp(score_i) / Σ_j exp(score_j)   over the valid steps; a masked step gets exactly 0
    context  c   = Σ_i α_i k_i                       (the memory's values)

``prepare`` does the query-independent work once (``W_k k_i + b`` for additive), so a step costs one small
projection and two batched products.

:class:`AttentionDecoderCell` is a whole decoder stack as ONE cell (one step per call, the shape of
:mod:`rnnkit.nn.cells`), with ``takes_context = True``: :class:`rnnkit.nn.layers.RNN` hands it the prepared
memory at every step, so the one time loop runs an attention decoder during training. Inside one step
(Luong's arrangement, with "input feeding")::

    x'    = [x_t ; h~_{t-1}]                     the previous attentional vector goes in with the token
    h^1   = cell_1(x', state^1)                  stacked cells; from the second on with a residual
    h^l   = cell_l(h^{l-1}, state^l) + h^{l-1}     connection (GNMT)
    c, α  = attention(h^L, memory)               the top state queries the memory
    h~_t  = tanh(W_c [c ; h^L])                  the attentional vector: the step's output

With ``attention=None`` it is the plain stack (Sutskever et al. 2014): the output is h^L and nothing is fed
back. The state is one flat tuple: every inner cell's state tensors in order, then h~ (with input feeding).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit._checks import check_choice, check_int, fail
from rnnkit.nn.cells import Cell, State, make_cell

__all__ = ["Memory", "Attention", "DotAttention", "GeneralAttention", "AdditiveAttention", "ATTENTIONS",
           "make_attention", "AttentionDecoderCell"]


class Memory(NamedTuple):
    """What a query attends over, as ``Attention.prepare`` leaves it."""

    values: Tensor   # (B, S, M): the encoder outputs, summed into the context
    keys: Tensor     # (B, S, K): what the scores compare the query with (the values, or a projection of them)
    mask: Tensor     # (B, S) bool: True at valid (not padded) steps


class Attention(nn.Module):
    """Base of the score functions: ``prepare`` once, then ``forward(query, memory)`` at every step.

    A subclass implements ``score(query (B, Q), memory) -> (B, S)`` and, when it has query-independent
    work, ``keys(values) -> (B, S, K)``."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.query_size = check_int("query_size", query_size, min=1)
        self.memory_size = check_int("memory_size", memory_size, min=1)

    def keys(self, values: Tensor) -> Tensor:
        return values

    def prepare(self, values: Tensor, mask: Tensor | None = None) -> Memory:
        """values (B, S, M), mask (B, S) of valid steps (None: all valid) -> the Memory to attend over."""
        if values.dim() != 3 or values.shape[-1] != self.memory_size:
            fail("values", tuple(values.shape), f"a tensor (B, S, {self.memory_size})")
        if mask is None:
            mask = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
        elif tuple(mask.shape) != tuple(values.shape[:2]):
            fail("mask", tuple(mask.shape), f"shape {tuple(values.shape[:2])}: one flag per memory step")
        return Memory(values, self.keys(values), mask.bool())

    def score(self, query: Tensor, memory: Memory) -> Tensor:
        raise NotImplementedError  # abstract: each score function defines it

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """query (B, Q) -> context (B, M) and weights (B, S) (zero at masked steps, summing to 1)."""
        scores = self.score(query, memory)                            # (B, S)
        if scores.dtype in (torch.bfloat16, torch.float16):
            scores = scores.float()                                   # softmax in float32 at least
        weights = torch.softmax(scores.masked_fill(~memory.mask, float("-inf")), dim=-1)
        values = memory.values
        context = torch.bmm(weights.to(values.dtype).unsqueeze(1), values).squeeze(1)   # (B, M)
        return context, weights

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, memory_size={self.memory_size}"


class DotAttention(Attention):
    """Luong's dot score, ``q · k_i``: no weights; the query and the memory have the same size."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__(query_size, memory_size)
        if query_size != memory_size:
            fail("memory_size", memory_size, f"the query's size {query_size} for dot attention (or use general)")

    def score(self, query, memory):
        return torch.bmm(memory.keys, query.unsqueeze(2)).squeeze(2)            # (B, S)


class GeneralAttention(Attention):
    """Luong's general score, ``(W q) · k_i`` with ``W`` (M, Q) (``self.weight``, no bias)."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__(query_size, memory_size)
        self.weight = nn.Parameter(torch.empty(memory_size, query_size))
        nn.init.xavier_uniform_(self.weight)

    def score(self, query, memory):
        q = F.linear(query, self.weight)                                        # (B, M)
        return torch.bmm(memory.keys, q.unsqueeze(2)).squeeze(2)                # (B, S)


class AdditiveAttention(Attention):
    """Bahdanau's additive score, ``v · tanh(W_q q + W_k k_i + b)``; ``attention_size`` A (default M).

    ``query_proj`` is W_q (no bias), ``key_proj`` is W_k with the bias b, ``v`` the vector v."""

    def __init__(self, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__(query_size, memory_size)
        size = check_int("attention_size", attention_size if attention_size is not None else memory_size, min=1)
        self.attention_size = size
        self.query_proj = nn.Linear(query_size, size, bias=False)
        self.key_proj = nn.Linear(memory_size, size)
        self.v = nn.Parameter(torch.empty(size))
        nn.init.uniform_(self.v, -size ** -0.5, size ** -0.5)

    def keys(self, values):
        return self.key_proj(values)                                            # (B, S, A): once per batch

    def score(self, query, memory):
        hidden = torch.tanh(memory.keys + self.query_proj(query).unsqueeze(1))  # (B, S, A)
        return torch.matmul(hidden, self.v.to(hidden.dtype))                    # (B, S)


# Registered names, so a config or a CLI flag picks a score function by name (a subclass works too).
ATTENTIONS: dict[str, type[Attention]] = {
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
}


def make_attention(kind: str | type[Attention] | None, query_size: int, memory_size: int,
                   **kwargs) -> Attention | None:
    """An attention module by registered name or :class:`Attention` subclass; ``None`` or ``"none"``: None."""
    if kind is None or kind == "none":
        return None
    if isinstance(kind, type) and issubclass(kind, Attention):
        return kind(query_size, memory_size, **kwargs)
    check_choice("attention", kind, ["none", *ATTENTIONS])
    return ATTENTIONS[kind](query_size, memory_size, **kwargs)


class AttentionDecoderCell(Cell):
    """A decoder stack with attention as ONE cell; see the module docstring for the step.

    Args:
        input_size: size of x_t (the target token's embedding).
        hidden_size: H, the size of every inner cell and of the output.
        inner: the cell type of the stack (a registered name such as "lstm" or "gru", or a Cell subclass).
        depth: number of stacked inner cells.
        attention: "dot", "general", "additive" (or an Attention subclass), or None for no attention.
        memory_size: M, the size of the memory's values (default H).
        input_feeding: feed h~_{t-1} into the first cell with x_t (only with attention).
        residual: add each inner cell's input to its output from the second cell on.

    ``step(xp, state, context=memory)`` returns ``(h~_t, new_state)``; :meth:`attend` also returns the
    attention weights (B, S). The memory comes from ``cell.attention.prepare(encoder_outputs, mask)``.
    """

    takes_context = True

    def __init__(self, input_size: int, hidden_size: int, inner: str | type[Cell] = "lstm", depth: int = 1,
                 attention: str | type[Attention] | None = "general", memory_size: int | None = None,
                 input_feeding: bool = True, residual: bool = True, attention_size: int | None = None):
        super().__init__()
        self.input_size = check_int("input_size", input_size, min=1)
        self.hidden_size = H = check_int("hidden_size", hidden_size, min=1)
        self.depth = check_int("depth", depth, min=1)
        M = H if memory_size is None else check_int("memory_size", memory_size, min=1)
        kwargs = {"attention_size": attention_size} if attention_size is not None else {}
        self.attention = make_attention(attention, H, M, **kwargs)
        self.input_feeding = bool(input_feeding) and self.attention is not None
        self.residual = bool(residual)
        first_in = input_size + (H if self.input_feeding else 0)
        self.layers = nn.ModuleList([make_cell(inner, first_in, H)] + [make_cell(inner, H, H) for _ in range(depth - 1)])
        # W_c of the attentional vector h~ = tanh(W_c [c ; h]).
        self.combine = nn.Linear(M + H, H, bias=False) if self.attention is not None else None
        self._state_counts = [len(c.state_size) for c in self.layers]
        self.state_size = tuple(s for c in self.layers for s in c.state_size) + ((H,) if self.input_feeding else ())
        self.output_size = H

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def project_input(self, x: Tensor) -> Tensor:
        """The first cell's input projection of x_t alone (any leading shape; the layer runs it once for
        all steps); the fed-back h~ is projected inside the step."""
        first = self.layers[0]
        return F.linear(x, first.weight_ih[:, :self.input_size], first.bias_ih)

    def step(self, xp: Tensor, state: State, h_mask: Tensor | None = None, weight_hh: Tensor | None = None,
             context: Memory | None = None) -> tuple[Tensor, State]:
        if h_mask is not None or weight_hh is not None:
            raise ValueError("recurrent_dropout: expected 0 for an RNN of AttentionDecoderCell (its inner "
                             "cells take no recurrent dropout)")
        out, state, _ = self.attend(xp, state, context)
        return out, state

    def attend(self, xp: Tensor, state: State, memory: Memory | None) -> tuple[Tensor, State, Tensor | None]:
        """One decoder step: xp (B, gates*H) from :meth:`project_input`, the flat state, the memory ->
        (output (B, H), new state, attention weights (B, S) or None without attention)."""
        if self.attention is not None and memory is None:
            fail("context", None, "the encoder's Memory (attention.prepare(outputs, mask)) for an attention decoder")
        parts, k = [], 0
        for n in self._state_counts:
            parts.append(tuple(state[k:k + n]))
            k += n
        first = self.layers[0]
        if self.input_feeding:
            xp = xp + F.linear(state[-1], first.weight_ih[:, self.input_size:])   # + W_f h~_{t-1}
        h, new = first.step(xp, parts[0])                                        # (B, H)
        new_state = list(new)
        for cell, part in zip(self.layers[1:], parts[1:]):
            y, new = cell(h, part)
            h = y + h if self.residual else y
            new_state.extend(new)
        if self.attention is None:
            return h, tuple(new_state), None
        context, weights = self.attention(h, memory)                             # (B, M), (B, S)
        out = torch.tanh(self.combine(torch.cat([context.to(h.dtype), h], dim=-1)))   # (B, H)
        if self.input_feeding:
            new_state.append(out)
        return out, tuple(new_state), weights

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, depth={self.depth}, input_feeding={self.input_feeding}, "
                f"residual={self.residual}")
