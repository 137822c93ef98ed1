"""Logits processors: small callables that reshape the next-token scores before a token is chosen.

A *logits processor* is a small callable ``(tokens, logits) -> logits``:

* ``tokens``: LongTensor ``(B, t)``, the tokens so far (the seed, then what was chosen; may be ``None``
  for processors that do not look at the history, which is all of the ones here);
* ``logits``: ``(B, V)`` unnormalised scores for the next token.

Processors return a *new* tensor and never write into ``logits``: the caller may still need the raw
scores (for a loss, a log-probability, another beam). ``compose`` / ``LogitsProcessorList`` chain them
in exactly the order given; ``make_processors`` builds the conventional chain
temperature -> top-k -> top-p, followed by a user's own processors. The order matters: top-p measures
probability mass *after* whatever ran before it, so a temperature applied first changes which tokens
make the nucleus.

Choosing a token from the processed scores (greedy, sampling, beam search) is ``search.py``; the
plain loop that runs a model one token at a time is ``stateful.py``.

Temperature 0 is refused by ``Temperature`` (dividing by 0 is not a distribution). Its limit is the
argmax, so callers map ``temperature == 0`` to ``greedy`` themselves (the text-generation task does).

``reweight`` is the NumPy form of the temperature trick on a probability vector,
``softmax(log(p) / T)`` in float64, for code that works with probabilities rather than logits.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

from rnnkit._checks import check_float, check_int, fail

__all__ = [
    "reweight",
    "LogitsProcessor",
    "Temperature",
    "TopK",
    "TopP",
    "LogitsProcessorList",
    "compose",
    "make_processors",
]

_INF = float("inf")


def _check_temperature(value: Any, name: str = "temperature") -> float:
    # Temperature 0 is a common request with a well-defined meaning, so say what to do instead.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        fail(name, value, "a number in (0, inf); temperature 0 means greedy decoding: use greedy()")
    return check_float(name, value, min=0, min_open=True, max=_INF, max_open=True)


def reweight(preds: Any, temperature: float = 1.0) -> np.ndarray:
    """Sharpen (``T < 1``) or flatten (``T > 1``) probability vectors: ``softmax(log(p) / T)``.

    ``preds``: probabilities along the last axis (each row non-negative with a positive sum; rows
    need not be normalised). Returns float64 of the same shape; ``T = 1`` gives ``p / sum(p)``.
    Zero probabilities stay zero.
    """
    temperature = _check_temperature(temperature)
    try:
        p = np.asarray(preds, dtype=np.float64)
    except (TypeError, ValueError):
        fail("preds", preds, "an array of probabilities")
    if p.ndim == 0 or p.shape[-1] == 0:
        fail("preds", preds, "a non-empty array of probabilities (last axis = classes)")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p.sum(axis=-1) <= 0):
        fail("preds", preds, "finite probabilities >= 0 with a positive sum along the last axis")
    with np.errstate(divide="ignore"):  # log(0) = -inf is intended: exp(-inf) = 0
        z = np.log(p) / temperature
    # Subtracting the row maximum changes nothing mathematically and keeps exp from overflowing.
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class LogitsProcessor:
    """Base class: ``__call__(tokens, logits) -> logits`` returning a new tensor, same shape."""

    def __call__(self, tokens: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract: subclasses define the processing


class _ShapeOf:
    """Shows a tensor as its shape in error messages (its values would flood the message)."""

    def __init__(self, t: torch.Tensor):
        self.t = t

    def __repr__(self) -> str:
        return f"<tensor of shape {tuple(self.t.shape)}>"


def _check_logits(logits: Any, name: str = "logits") -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        fail(name, logits, "a torch.Tensor (B, V) of scores")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        fail(name, _ShapeOf(logits), "a tensor (B, V) of scores with V >= 1")
    return logits


class Temperature(LogitsProcessor):
    """Divide logits by ``temperature`` (> 0): below 1 sharpens the distribution, above 1 flattens it."""

    def __init__(self, temperature: float):
        self.temperature = _check_temperature(temperature)

    def __repr__(self) -> str:
        return f"Temperature({self.temperature!r})"

    def __call__(self, tokens, logits):
        _check_logits(logits)
        return logits / self.temperature  # (B, V), a new tensor


class TopK(LogitsProcessor):
    """Keep the ``k`` highest logits of each row, set the others to ``filter_value`` (-inf).

    Ties: every logit equal to the k-th largest is kept, so a row may keep more than ``k`` tokens
    when values tie at the boundary (deterministic, unlike picking some of the tied tokens).
    ``k`` larger than the vocabulary keeps everything.
    """

    def __init__(self, k: int, filter_value: float = -_INF):
        self.k = check_int("k", k, min=1)
        self.filter_value = filter_value

    def __repr__(self) -> str:
        return f"TopK({self.k!r})"

    def __call__(self, tokens, logits):
        _check_logits(logits)
        k = min(self.k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest per row
        return logits.masked_fill(logits < kth, self.filter_value)


class TopP(LogitsProcessor):
    """Nucleus filtering: keep the smallest set of most probable tokens whose probability sum >= ``p``.

    Probabilities are ``softmax(logits)`` of the input as given (so after any earlier processor).
    The most probable token is always kept. Ties in probability are ranked by token index (lower
    first), so at the boundary the lower index is kept. ``p = 1`` keeps every token.
    """

    def __init__(self, p: float, filter_value: float = -_INF):
        self.p = check_float("p", p, min=0, max=1, min_open=True)
        self.filter_value = filter_value

    def __repr__(self) -> str:
        return f"TopP({self.p!r})"

    def __call__(self, tokens, logits):
        _check_logits(logits)
        if self.p >= 1.0:
            # Rounding can make a cumulative sum reach 1 before the last token; p = 1 means keep all.
            return logits.clone()
        work = logits if logits.dtype == torch.float64 else logits.float()
        probs = torch.softmax(work, dim=-1)                                       # (B, V)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        # Mass of the tokens ranked strictly before each one; a token is needed while that is < p.
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs                # (B, V)
        drop_sorted = before >= self.p
        drop_sorted[..., 0] = False                                              # keep at least one
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)     # back to vocab order
        return logits.masked_fill(drop, self.filter_value)


class LogitsProcessorList(list):
    """A list of processors that is itself a processor: applies them in list order."""

    def __init__(self, processors: Iterable[Callable] = ()):
        processors = list(processors)
        for i, proc in enumerate(processors):
            if not callable(proc):
                fail(f"processors[{i}]", proc, "a callable (tokens, logits) -> logits")
        super().__init__(processors)

    def __call__(self, tokens, logits):
        for proc in self:
            logits = proc(tokens, logits)
        return logits

    def __repr__(self) -> str:
        return f"LogitsProcessorList({list.__repr__(self)})"


def compose(*processors: Callable) -> LogitsProcessorList:
    """Chain processors; ``compose(a, b)(tokens, x) == b(tokens, a(tokens, x))``."""
    return LogitsProcessorList(processors)


def make_processors(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    processors: list[Callable] | tuple[Callable, ...] = ()) -> LogitsProcessorList:
    """The usual chain temperature -> top-k -> top-p, leaving out the steps that change nothing, then
    ``processors`` (a user's own callables ``(tokens, logits) -> logits``) in the order given.

    ``top_k=None`` and ``top_p=None`` (or 1.0) switch those steps off. Temperature 0 is refused:
    the caller decodes greedily instead.
    """
    temperature = _check_temperature(temperature)
    top_k = check_int("top_k", top_k, min=1, allow_none=True)
    top_p = check_float("top_p", top_p, min=0, max=1, min_open=True, allow_none=True)
    chain: list[Callable] = []
    if temperature != 1.0:
        chain.append(Temperature(temperature))
    if top_k is not None:
        chain.append(TopK(top_k))
    if top_p is not None and top_p < 1.0:
        chain.append(TopP(top_p))
    if not isinstance(processors, (list, tuple)):
        # One callable instead of a list is a common slip: say what is expected.
        fail("processors", processors, "a list of callables (tokens, logits) -> logits")
    return LogitsProcessorList([*chain, *processors])
