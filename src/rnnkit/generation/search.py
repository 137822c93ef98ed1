"""Choosing tokens: greedy, random sampling, and beam search over any stateful step function.

``greedy`` takes the argmax and ``sample`` draws from ``softmax(logits)``; pass a generator from
``make_generator(seed)`` for draws that repeat run after run.

``sample_uniform`` makes the same draw from a uniform number the caller supplies (inverse CDF), so
two implementations of a sampling loop fed the same pre-drawn numbers choose the same tokens (the
plain loop in ``stateful.py`` and the compiled ones in ``fast.py`` and ``native.py``).

``beam_search`` keeps the ``beam_size`` most likely continuations under any stateful step function,
scoring with the log-softmax of the processed logits (so temperature, top-k, top-p and a user's own
processors apply to it too). A step function is the one shape every decoder gives generation::

    step(tokens (K,), state) -> (logits (K, V), state)

Temperature 0 has no distribution to sample from; its limit is the argmax, so callers map
``temperature == 0`` to ``greedy`` themselves (the text-generation task does).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from rnnkit._checks import check_int, fail
from rnnkit.generation.processors import _check_logits, _ShapeOf

__all__ = ["greedy", "sample", "make_generator", "sample_uniform", "beam_search"]


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token per row: ``(B, V) -> (B,)`` (first index on ties)."""
    _check_logits(logits)
    return torch.argmax(logits, dim=-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits)``: ``(B, V) -> (B,)`` (any leading shape works).

    ``generator`` (see ``make_generator``) must live on the same device as ``logits``.
    """
    _check_logits(logits)
    if generator is not None and not isinstance(generator, torch.Generator):
        fail("generator", generator, "a torch.Generator or None")
    work = logits if logits.dtype == torch.float64 else logits.float()
    probs = torch.softmax(work, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])                                    # (N, V)
    choice = torch.multinomial(flat, num_samples=1, generator=generator)         # (N, 1)
    return choice.reshape(probs.shape[:-1])


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed``: the same seed gives the same draws from ``sample``."""
    seed = check_int("seed", seed, min=0, max=2**64 - 1)
    try:
        gen = torch.Generator(device=device)
    except (RuntimeError, TypeError) as e:
        fail("device", device, f"a torch device this machine has ({e})")
    gen.manual_seed(seed)
    return gen


def sample_uniform(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits)`` using the given uniform numbers (inverse CDF).

    ``logits`` (B, V), ``uniforms`` (B,) in [0, 1): token i is chosen when the probability mass of
    tokens 0..i-1 is <= ``u`` < the mass of tokens 0..i. A token of probability 0 (logit -inf) is
    never chosen. Returns (B,) long.
    """
    _check_logits(logits)
    if not isinstance(uniforms, torch.Tensor) or uniforms.shape != logits.shape[:-1]:
        fail("uniforms", uniforms if not isinstance(uniforms, torch.Tensor) else _ShapeOf(uniforms),
             f"a tensor of shape {tuple(logits.shape[:-1])}: one number in [0, 1) per row")
    work = logits if logits.dtype == torch.float64 else logits.float()
    cum = torch.cumsum(torch.softmax(work, dim=-1), dim=-1)                    # (B, V)
    # Scaled by the total mass, which rounding leaves a hair away from 1.
    target = (uniforms.to(cum.dtype) * cum[..., -1]).unsqueeze(-1)             # (B, 1)
    return torch.searchsorted(cum, target, right=True).squeeze(-1).clamp_max(logits.shape[-1] - 1)


def _select_rows(state: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of every tensor in a (nested tuple/list of) state, batch on dim 0."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, (tuple, list)):
        return type(state)(_select_rows(s, index) for s in state)
    if state is None:
        return None
    fail("state", type(state).__name__, "a tensor or nested tuples/lists of tensors (batch on dim 0)")


def beam_search(step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]], state: Any,
                logits: torch.Tensor, beam_size: int, length: int,
                processors: Callable | None = None, end_token: int | None = None,
                num_return: int = 1, prefix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``num_return`` most likely continuations of length ``length`` (or ending at ``end_token``).

    ``step(tokens (K,), state) -> (logits (K, V), state)`` advances a stateful model by one token for
    K rows; ``state`` (batch 1, tensors with batch on dim 0) and ``logits`` (1, V) are the model's
    state and next-token scores after the prefix. Scores are sums of
    ``log_softmax(processors(tokens, logits))``; a beam that emits ``end_token`` is finished and keeps
    its score (no length normalisation, so with an end token shorter endings are favoured when
    their probability is higher). ``prefix`` (1, T0), the tokens the state was built from (a seed),
    comes before the chosen tokens in what the processors see; it is not part of the result. Returns
    tokens (num_return, length), padded with 0 after an end, best first, and their scores (num_return,).
    """
    beam_size = check_int("beam_size", beam_size, min=1)
    length = check_int("length", length, min=0)
    num_return = check_int("num_return", num_return, min=1, max=beam_size)
    _check_logits(logits)
    if logits.dim() != 2 or logits.shape[0] != 1:
        fail("logits", _ShapeOf(logits), "a tensor (1, V): the scores after one prefix")
    process = processors if processors is not None else (lambda tokens, x: x)
    V = logits.shape[-1]
    if prefix is None:
        prefix = torch.zeros(1, 0, dtype=torch.long)
    if not isinstance(prefix, torch.Tensor) or prefix.dim() != 2 or prefix.shape[0] != 1:
        fail("prefix", prefix if not isinstance(prefix, torch.Tensor) else _ShapeOf(prefix),
             "a tensor (1, T0) of token ids, or None")
    tokens = prefix.long()                                                      # (K, T0 + t): the history
    scores = torch.zeros(1, dtype=torch.float64)                                # (K,) summed log-probs
    finished = torch.zeros(1, dtype=torch.bool)                                 # (K,)
    for t in range(length):
        logp = torch.log_softmax(process(tokens, logits).double(), dim=-1)       # (K, V)
        # A finished beam has one continuation, padding, at no cost: it stays in the race unchanged.
        logp = torch.where(finished.unsqueeze(1), torch.full_like(logp, -math.inf), logp)
        logp[finished, 0] = 0.0
        cand = (scores.unsqueeze(1) + logp).flatten()                           # (K * V,)
        k = min(beam_size, int(torch.isfinite(cand).sum()))
        top = torch.topk(cand, k)                                               # best first, ties by index
        rows, cols = top.indices // V, top.indices % V
        tokens = torch.cat([tokens[rows], cols.unsqueeze(1)], dim=1)
        scores = top.values
        finished = finished[rows]
        if end_token is not None:
            finished = finished | (cols == end_token)
        if bool(finished.all()) or t == length - 1:
            break
        state = _select_rows(state, rows)
        logits, state = step(cols, state)
    tokens = tokens[:, prefix.shape[1]:]                                        # (K, t): the chosen ones
    if tokens.shape[1] < length:
        tokens = torch.cat([tokens, tokens.new_zeros(tokens.shape[0], length - tokens.shape[1])], dim=1)
    n = min(num_return, tokens.shape[0])
    return tokens[:n], scores[:n]
