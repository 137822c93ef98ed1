"""Continuous batching for text generation: many requests of one model, one forward pass per step.

Generating one token costs a step of the recurrent model, and at batch 1 that step is bound by Python
and dispatch overhead, not by arithmetic (see DESIGN.md: 64 samples in one batch give several times the
total characters/s of one). A server that answers requests one at a time wastes that. So every text model
served gets one :class:`BatchedGenerator`: a background thread that keeps the *active* streams (one per
request) and, at every step,

1. lets the requests that arrived since the last step join: each reads its prompt once (a forward pass
   over the prompt, batch 1) and adds its row to the batch's logits and state;
2. chooses one token per row from the batch's logits (N, V): each row's own temperature, top-k and
   top-p, then the inverse CDF of that request's own pre-drawn uniform number (the task's sampler,
   :func:`~rnnkit.generation.search.sample_uniform`), or the argmax for temperature 0;
3. drops the rows that are finished (end token, their length, their deadline, a client that went
   away) and runs one batched ``model.step`` over the rest.

A request's uniform numbers are drawn from its own seed exactly as :meth:`TextGenerator.generate` draws
them, so a request gives the tokens ``generate(prompt, max_tokens, temperature, random_seed=seed)``
gives, whichever other requests shared its steps (up to float rounding of a batched matmul).

``max_batch=1`` is the one-request-at-a-time server the load test compares against.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import torch

from rnnkit import _checks
from rnnkit.generation.processors import make_processors
from rnnkit.generation.search import _select_rows, make_generator, sample_uniform
from rnnkit.tasks.textgen.model import no_padding

# Reasons a stream ends, as the API reports them.
FINISH_REASONS = ("end", "length", "timeout", "cancelled", "error", "closed")


class Stream:
    """One request in flight: what it asked for, the tokens chosen so far, and how it ended.

    The worker thread appends to ``tokens`` and calls ``listener(kind, value)`` for every event:
    ``("token", id)`` for each token, then one ``("done", finish_reason)``. ``wait()`` blocks until the
    stream is done (for callers without an event loop: tests, the benchmark)."""

    def __init__(self, prompt_ids: list[int], max_tokens: int, temperature: float, top_k: int | None,
                 top_p: float | None, seed: int, deadline: float, listener: Callable | None = None):
        self.prompt_ids = prompt_ids
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        # One number in [0, 1) per token, drawn as TextGenerator.generate draws them for one sample.
        self.uniforms = torch.rand(max_tokens, generator=make_generator(seed))          # (max_tokens,)
        self.deadline = deadline                 # time.monotonic() after which the stream is cut short
        self.listener = listener
        self.tokens: list[int] = []
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.cancelled = False
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _emit(self, kind: str, value) -> None:
        if self.listener is None:
            return
        try:
            self.listener(kind, value)
        except Exception:       # the listener is gone (its event loop has closed): stop this stream alone
            self.cancelled = True

    def _finish(self, reason: str, error: str | None = None) -> None:
        self.finish_reason, self.error = reason, error
        self._done.set()
        self._emit("done", reason)


class BatchedGenerator:
    """A background thread that steps every active stream of one text model together (see module doc).

    ``gen``: a fitted :class:`~rnnkit.tasks.textgen.task.TextGenerator`. ``max_batch``: most rows stepped
    together; more requests wait their turn in arrival order.
    """

    def __init__(self, gen, max_batch: int = 64):
        self.max_batch = _checks.check_int("max_batch", max_batch, min=1)
        self.model = gen._sampling_model()
        self.end = gen.tokenizer_.word_index[gen.end_token_] if gen.end_token_ is not None else -1
        self._pending: deque[Stream] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Counters for the benchmark and /v1/models: steps run and rows stepped (mean batch = rows / steps).
        self.steps = 0
        self.rows = 0
        self._thread = threading.Thread(target=self._run, name="rnnkit-batcher", daemon=True)
        self._thread.start()

    # -- the side the server calls ----------------------------------------------------------------------

    def submit(self, prompt_ids: list[int], max_tokens: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int = 0, timeout: float = 30.0,
               listener: Callable | None = None) -> Stream:
        """Queue one request; it joins the batch at the next step. ``prompt_ids``: at least one token id."""
        if not prompt_ids:
            _checks.fail("prompt_ids", prompt_ids, "at least one token id")
        _checks.check_int("max_tokens", max_tokens, min=1)
        stream = Stream(list(prompt_ids), max_tokens, float(temperature), top_k, top_p, seed,
                        time.monotonic() + timeout, listener)
        with self._cond:
            if self._closed:
                stream._finish("closed", "the server is shutting down")
                return stream
            self._pending.append(stream)
            self._cond.notify()
        return stream

    def cancel(self, stream: Stream) -> None:
        """Stop a stream at the next step (its client went away); a finished stream is left as it is."""
        stream.cancelled = True

    def close(self) -> None:
        """Finish every stream ("closed") and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    @property
    def mean_batch(self) -> float:
        return self.rows / self.steps if self.steps else 0.0

    # -- the worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        active: list[Stream] = []
        logits, state = None, None          # (N, V) scores of each active row's next token; the model's state
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._pending and not active and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        for s in [*active, *self._pending]:
                            s._finish("closed", "the server is shutting down")
                        self._pending.clear()
                        return
                    joining = [self._pending.popleft()
                               for _ in range(min(len(self._pending), self.max_batch - len(active)))]
                try:
                    for s in joining:
                        if s.cancelled or time.monotonic() > s.deadline:
                            s._finish("cancelled" if s.cancelled else "timeout")
                            continue
                        row_logits, row_state = self._read_prompt(s.prompt_ids)
                        logits = row_logits if logits is None else torch.cat([logits, row_logits])
                        state = row_state if state is None else _cat_rows(state, row_state)
                        active.append(s)
                    if not active:
                        continue
                    tokens = self._choose(active, logits)                                    # (N,)
                    keep = self._record(active, tokens.tolist())
                    self.steps += 1
                    self.rows += len(active)
                    if len(keep) < len(active):
                        active = [active[i] for i in keep]
                        if not active:
                            logits, state = None, None
                            continue
                        index = torch.tensor(keep)
                        tokens, state = tokens.index_select(0, index), _select_rows(state, index)
                    logits, state = self.model.step(tokens, state)                            # (N, V)
                except Exception as err:     # a fault must not stop the thread: end these streams, go on
                    for s in active:
                        s._finish("error", f"{type(err).__name__}: {err}")
                    active, logits, state = [], None, None

    def _read_prompt(self, ids: list[int]):
        """(1, V) scores of the first new token and the state after reading the prompt once."""
        logits, state = self.model(torch.tensor([ids]))                                     # (1, T0, V)
        return no_padding(logits[:, -1]), state

    @staticmethod
    def _choose(active: list[Stream], logits: torch.Tensor) -> torch.Tensor:
        """One token per row: each row's temperature, top-k and top-p, its own uniform number (N,)."""
        temperature = torch.tensor([s.temperature for s in active])                          # (N,)
        greedy = temperature == 0
        scores = logits / torch.where(greedy, 1.0, temperature).unsqueeze(1)                 # (N, V)
        # Top-k and top-p are the task's processors, run on the rows that share the same settings.
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(active):
            if s.top_k is not None or (s.top_p is not None and s.top_p < 1):
                groups.setdefault((s.top_k, s.top_p), []).append(i)
        for (k, p), rows in groups.items():
            index = torch.tensor(rows)
            scores[index] = make_processors(1.0, k, p)(None, scores[index])
        uniforms = torch.stack([s.uniforms[len(s.tokens)] for s in active])                 # (N,)
        sampled = sample_uniform(scores, uniforms)
        return torch.where(greedy, torch.argmax(scores, dim=-1), sampled)

    def _record(self, active: list[Stream], tokens: list[int]) -> list[int]:
        """Give each stream its token; finish the streams that are done. Returns the rows still going."""
        keep, now = [], time.monotonic()
        for i, (s, token) in enumerate(zip(active, tokens)):
            if s.cancelled:
                s._finish("cancelled")
                continue
            if token == self.end:
                s._finish("end")             # the end token ends the text; it is not part of it
                continue
            s.tokens.append(token)
            s._emit("token", token)
            if len(s.tokens) >= s.max_tokens:
                s._finish("length")
            elif now > s.deadline:
                s._finish("timeout")
            else:
                keep.append(i)
        return keep


def _cat_rows(a, b):
    """Two model states (per layer, a tuple of (N, H) tensors) as one, the rows of ``b`` after ``a``'s."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    return type(a)(_cat_rows(x, y) for x, y in zip(a, b))
