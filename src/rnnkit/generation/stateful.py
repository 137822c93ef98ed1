"""The plain generation loop: one call of a step function per token, the recurrent state carried.

Every recurrent decoder gives generation the same thing, a *step function*::

    step(tokens (N,), state) -> (logits (N, V), state)

A language model embeds the token, runs one recurrent step and its head; a sequence-to-sequence or
captioning decoder does the same with its encoder's output inside the state. :func:`decode` runs any
such function: logits processors on the scores, the choice of a token (the argmax, or the inverse CDF
of a pre-drawn uniform number, :func:`~rnnkit.generation.search.sample_uniform`), then one step.

It is the reference the compiled samplers (``fast.py``, ``native.py``) are tested against, token for
token, and the path that runs processors written in Python (a user's own, see ``processors.py``).
Beam search over the same step functions is :func:`~rnnkit.generation.search.beam_search`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from rnnkit._checks import check_int, fail
from rnnkit.generation.processors import _ShapeOf, _check_logits
from rnnkit.generation.search import sample_uniform

__all__ = ["decode"]


def decode(step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]], logits: torch.Tensor, state: Any,
           length: int, *, processors: Callable | None = None, greedy: bool = False,
           uniforms: torch.Tensor | None = None, end_token: int | None = None,
           prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Continue N rows by up to ``length`` tokens; returns tokens (N, length).

    ``logits`` (N, V): the scores for the first token; ``state``: the step function's state for those
    N rows (after reading the prefix). ``processors``: a callable ``(tokens, logits) -> logits`` (a
    :class:`~rnnkit.generation.processors.LogitsProcessorList`) applied before every choice, where
    ``tokens`` (N, T0 + t) is ``prefix`` (N, T0; default: none) followed by the tokens chosen so far.
    ``greedy`` takes the argmax of the processed scores; otherwise ``uniforms`` (length, N), numbers in
    [0, 1) drawn beforehand, choose one token each. A row that emits ``end_token`` is finished: it emits
    padding (0) from then on, and the loop stops when every row has finished.
    """
    _check_logits(logits)
    length = check_int("length", length, min=0)
    N = logits.shape[0]
    if not greedy and (not isinstance(uniforms, torch.Tensor) or tuple(uniforms.shape) != (length, N)):
        fail("uniforms", uniforms if not isinstance(uniforms, torch.Tensor) else _ShapeOf(uniforms),
             f"a tensor of shape ({length}, {N}): one number in [0, 1) per token and row (or greedy=True)")
    if prefix is None:
        prefix = torch.zeros(N, 0, dtype=torch.long)
    T0 = prefix.shape[1]
    # The prefix and the tokens to come in one buffer: processors see a view of it, no copy per step.
    tokens = torch.cat([prefix.long(), torch.zeros(N, length, dtype=torch.long)], dim=1)   # (N, T0 + L)
    done = torch.zeros(N, dtype=torch.bool)
    for t in range(length):
        scores = processors(tokens[:, :T0 + t], logits) if processors is not None else logits    # (N, V)
        token = torch.argmax(scores, dim=-1) if greedy else sample_uniform(scores, uniforms[t])  # (N,)
        if end_token is not None:
            token = torch.where(done, torch.zeros_like(token), token)   # finished rows emit padding
            done |= token == end_token
        tokens[:, T0 + t] = token
        if t == length - 1 or bool(done.all()):
            break
        logits, state = step(token, state)
    return tokens[:, T0:]
