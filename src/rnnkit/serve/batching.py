"""Continuous batching for generation: many requests of one model, one forward pass per step.

Generating one token costs a step of the recurrent model, and at batch 1 that step is bound by Python
and dispatch overhead, not by arithmetic (see DESIGN.md: 64 samples in one batch give several times the
total characters/s of one). A server that answers requests one at a time wastes that. So a task whose
requests generate token by token gives the server a :class:`BatchedGenerator` (its ``serving_worker``): a
background thread that keeps the *active* streams (one per result of a request) and, at every step,

1. lets the requests that arrived since the last step join: each stream reads its prompt once (the task's
   ``start``, batch 1) and adds its row to the batch's logits and state;
2. chooses one token per row from the batch's logits (N, V): the rows that share their settings go through
   the library's logits processors together (:func:`~rnnkit.generation.processors.make_processors`:
   temperature, top-k, top-p), then each row takes the argmax (greedy) or the token where its own pre-drawn
   uniform number falls (:func:`~rnnkit.generation.search.sample_uniform`);
3. drops the rows that are finished (end token, their length, their deadline, a client that went
   away) and runs one batched ``step`` over the rest.

It works over what the task gives it and knows no task: ``start(ids, state) -> (logits (1, V), state)``
reads a prompt (from the model's initial state when ``state`` is None), ``step(tokens (N,), state) ->
(logits (N, V), state)`` advances every row one token (state: tensors, or tuples of them, batch on dim 0),
``encode(request)`` gives a request's prompt ids (refusing, by a
ValueError naming the field, a prompt the model cannot read) and ``decode(ids)`` the text of token ids. A
request has the fields of the one vocabulary: ``max_tokens``, ``temperature``, ``top_k``, ``top_p``,
``greedy``, ``seed``, ``num_results``.

A request's uniform numbers are drawn from its seed exactly as the task's own ``generate`` draws them
(``torch.rand(max_tokens, num_results)`` from ``make_generator(seed)``), so a request gets the tokens
``generate`` gives for the same seed, whichever other requests shared its steps (up to float rounding of a
batched matmul).

A request with a ``session`` id (see :mod:`rnnkit.serve.sessions`) starts from the state that session's last
completed request left, and continues that session's stream of uniform numbers when it gives no seed of its
own: 20 tokens and then 20 more in one session are the 40 tokens of one request (exactly with greedy decoding;
for the same seed when sampling, up to float rounding). ``end_session`` drops the session after answering.

``max_batch=1`` is the one-request-at-a-time server the load test compares against.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any, Callable

import torch

from rnnkit import _checks
from rnnkit.generation.processors import make_processors
from rnnkit.generation.search import make_generator, sample_uniform, select_rows
from rnnkit.serve.metrics import BATCH_BUCKETS, QUEUE_BUCKETS, Histogram
from rnnkit.serve.sessions import Saved, Sessions

# Reasons a stream ends, as the API reports them.
FINISH_REASONS = ("end", "length", "timeout", "cancelled", "error", "closed")
FAILURES = ("timeout", "closed", "error")      # the reasons that are not an answer


class Stream:
    """One row in flight (one result of a request): its prompt, its settings, its uniform numbers, the
    tokens chosen so far, and how it ended."""

    def __init__(self, job: "Job", index: int, prompt_ids: list[int], uniforms: torch.Tensor, state: Any = None):
        request = job.request
        self.job, self.index, self.prompt_ids = job, index, prompt_ids
        self.state = state                        # where a session's request starts (None: the initial state)
        self.last: tuple[Any, int] | None = None  # a session's row when it ends: (state, the token it chose last)
        self.max_tokens = request.max_tokens
        greedy = bool(request.greedy) or request.temperature == 0
        # Rows with the same settings go through the processors together (see BatchedGenerator._choose).
        self.settings = (greedy, 1.0 if greedy else float(request.temperature), request.top_k, request.top_p)
        self.processors = make_processors(*self.settings[1:])     # temperature, top-k, top-p (built once)
        self.uniforms = uniforms.tolist()         # max_tokens numbers in [0, 1), one per token
        self.tokens: list[int] = []
        self.queued_at = time.monotonic()         # for the queue-time metric
        self.finish_reason: str | None = None
        self.error: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.job.cancelled

    def emit(self, token: int) -> None:
        self.tokens.append(token)
        self.job.emit_token(self, token)

    def finish(self, reason: str, error: str | None = None, last: tuple[Any, int] | None = None) -> None:
        self.finish_reason, self.error, self.last = reason, error, last
        self.job.stream_done()


class Job:
    """One request: its streams (``num_results`` of them), the seed of their draws, and who listens.

    ``listener(kind, data)`` is called from the worker's thread: when the request streams (``stream``),
    ``("token", {"text": piece})`` for each token (with ``"index"`` when it asks for several results); then
    ``("done", None)`` once every stream has ended. ``wait()`` blocks until then (for callers without an event
    loop: tests, the benchmark)."""

    def __init__(self, request: Any, seed: int, deadline: float, timeout: float,
                 decode: Callable[[list[int]], str], joiner: str, listener: Callable | None):
        self.request, self.seed, self.deadline, self.timeout = request, seed, deadline, timeout
        self.decode, self.joiner, self.listener = decode, joiner, listener
        # Only a streamed answer needs each token's text: decoding it for every row at every step would cost
        # the worker's thread (and so every request) its time.
        self.streamed = bool(getattr(request, "stream", False))
        self.streams: list[Stream] = []
        self.cancelled = False
        # A session's request: its id, how it started ("new", "continued", "expired"), the store to give it back
        # to, and the generator state its uniform numbers were drawn from.
        self.session: str | None = None
        self.session_start = "new"
        self.sessions: Sessions | None = None
        self.rng_state: torch.Tensor | None = None
        self._left = request.num_results
        self._lock = threading.Lock()
        self._done = threading.Event()

    @property
    def start(self) -> dict[str, Any]:
        """What the answer (and a stream's first event) starts with: the seed of the draws."""
        if self.session is None:
            return {"seed": self.seed}
        info = {"id": self.session, "start": self.session_start,
                "ended": bool(getattr(self.request, "end_session", False))}
        if self.session_start == "expired":
            info["note"] = (f"session {self.session!r} had been idle longer than session_ttl and expired: this "
                            f"request started fresh")
        return {"seed": self.seed, "session": info}

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> dict[str, Any]:
        """The answer: the first result's ``text``, ``tokens`` and ``finish_reason``, and every result."""
        results = [{"text": self.decode(s.tokens), "tokens": len(s.tokens), "finish_reason": s.finish_reason}
                    for s in self.streams]
        return {**self.start, **results[0], "results": results}

    @property
    def failure(self) -> tuple[str, str, str | None] | None:
        """None, or (reason, message, field) when a stream did not complete: "timeout", "closed" or "error"."""
        for s in self.streams:
            if s.finish_reason == "timeout":
                return ("timeout", f"generation took longer than timeout={self.timeout:g} s ({len(s.tokens)} tokens "
                                   f"generated); ask for fewer max_tokens", "max_tokens")
        for s in self.streams:
            if s.finish_reason in FAILURES:
                return s.finish_reason, s.error or f"generation stopped: {s.finish_reason}", None
        return None

    def emit_token(self, stream: Stream, token: int) -> None:
        if not self.streamed or self.listener is None:
            return
        word = self.decode([token])
        piece = word if len(stream.tokens) == 1 or not word else self.joiner + word
        item = {"text": piece} if self.request.num_results == 1 else {"text": piece, "index": stream.index}
        self._emit("token", item)

    def stream_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            if self.sessions is not None:
                self._close_session()
            self._done.set()
            self._emit("done", None)

    def _close_session(self) -> None:
        """Keep what a completed request leaves (the session's next request starts there), else what was kept
        before; drop it all with ``end_session``."""
        s = self.streams[0]
        saved = None
        if s.last is not None and not self.cancelled and s.finish_reason in ("length", "end"):
            state, token = s.last
            rng = torch.Generator()
            rng.set_state(self.rng_state)
            torch.rand(len(s.tokens) + (s.finish_reason == "end"), 1, generator=rng)     # the numbers used
            saved = Saved(state, [token], self.seed, rng.get_state())
        self.sessions.release(self.session, saved, end=bool(getattr(self.request, "end_session", False)))

    def _emit(self, kind: str, data: Any) -> None:
        if self.listener is None:
            return
        try:
            self.listener(kind, data)
        except Exception:       # the listener is gone (its event loop has closed): stop this request alone
            self.cancelled = True


class BatchedGenerator:
    """A background thread that steps every active stream of one model together (see the module doc).

    ``max_batch``: most rows stepped together; more requests wait their turn in arrival order. ``joiner``:
    what goes between two streamed tokens' texts (a space for words; nothing for characters)."""

    def __init__(self, start: Callable, step: Callable, *, encode: Callable[[Any], list[int]],
                 decode: Callable[[list[int]], str], joiner: str = "", end_token: int | None = None,
                 max_batch: int = 64, takes: Callable[[Any], bool] | None = None, sessions: Sessions | None = None):
        self.max_batch = _checks.check_int("max_batch", max_batch, min=1)
        # Which requests the batcher steps (others, e.g. beam search, the server runs through the task's apply).
        self.takes = takes or (lambda request: True)
        self.start, self.step, self.encode, self.decode, self.joiner = start, step, encode, decode, joiner
        self.end = -1 if end_token is None else end_token
        self.sessions = sessions if sessions is not None else Sessions()
        self._pending: deque[Stream] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Counters for the benchmark and /v1/models: steps run and rows stepped (mean batch = rows / steps);
        # for /metrics: tokens generated, rows per step, and how long a stream waited to join.
        self.steps = 0
        self.rows = 0
        self.tokens = 0
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.queue_seconds = Histogram(QUEUE_BUCKETS)
        self._thread = threading.Thread(target=self._run, name="rnnkit-batcher", daemon=True)
        self._thread.start()

    # -- the side the server calls ----------------------------------------------------------------------

    def submit(self, request: Any, listener: Callable | None = None, timeout: float = 30.0) -> Job:
        """Queue one request (its ``num_results`` streams join the batch at the next step). A prompt the model
        cannot read is refused here, at once (a ValueError naming the field); so is a request for a session that
        is running one already (:class:`~rnnkit.serve.sessions.SessionBusy`) or a new session over the limit
        (:class:`~rnnkit.serve.sessions.SessionsFull`)."""
        _checks.check_int("max_tokens", request.max_tokens, min=1)
        _checks.check_int("num_results", request.num_results, min=1)
        sid = getattr(request, "session", None)
        saved, how = self.sessions.acquire(sid) if sid is not None else (None, "new")
        try:
            job = self._job(request, listener, timeout, saved)
        except BaseException:
            if sid is not None:
                self.sessions.release(sid)        # refused: the session is as it was
            raise
        if sid is not None:
            job.session, job.session_start, job.sessions = sid, how, self.sessions
        with self._cond:
            if self._closed:
                for s in job.streams:
                    s.finish("closed", "the server is shutting down")
                return job
            self._pending.extend(job.streams)
            self._cond.notify()
        return job

    def _job(self, request: Any, listener: Callable | None, timeout: float, saved: Saved | None) -> Job:
        """A request's job and streams. A continued session reads its last token and the prompt (if any) on top
        of its state, and without a seed of its own takes the session's next uniform numbers."""
        if getattr(request, "session", None) is not None and request.num_results != 1:
            _checks.fail("num_results", request.num_results, "1 in a session (a session keeps one state)")
        if saved is None or request.prompt:
            ids = list(self.encode(request))
        else:
            ids = []                                   # continue where the session stopped
        if saved is not None:
            ids = saved.pending + ids
        if not ids:
            _checks.fail("prompt", getattr(request, "prompt", None), "at least one token to start from")
        if request.seed is not None or saved is None:
            seed = request.seed if request.seed is not None else random.randrange(2**31)
            rng = make_generator(seed)
        else:
            seed, rng = saved.seed, torch.Generator()
            rng.set_state(saved.rng_state)
        job = Job(request, seed, time.monotonic() + timeout, timeout, self.decode, self.joiner, listener)
        job.rng_state = rng.get_state()
        # (max_tokens, num_results) numbers, as the task's generate draws them; stream j takes column j.
        uniforms = torch.rand(request.max_tokens, request.num_results, generator=rng)
        state = saved.state if saved is not None else None
        job.streams = [Stream(job, j, ids, uniforms[:, j], state) for j in range(request.num_results)]
        return job

    def cancel(self, job: Job) -> None:
        """Stop a request's streams at the next step (its client went away); a finished one is left as it is."""
        job.cancelled = True

    def close(self, wait: bool = True) -> None:
        """Finish every stream ("closed": "the server is shutting down") and stop the thread; ``wait=False``
        returns at once (from a signal handler: the streams end at the thread's next step)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        """Whether requests are being taken: the thread runs and the batcher is not closed."""
        return self._thread.is_alive() and not self._closed

    def details(self) -> dict[str, Any]:
        """What the model list shows: the most rows stepped together and the mean so far."""
        return {"max_batch": self.max_batch, "mean_batch": round(self.mean_batch, 2)}

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
                            s.finish("closed", "the server is shutting down")
                        self._pending.clear()
                        return
                    joining = [self._pending.popleft()
                               for _ in range(min(len(self._pending), self.max_batch - len(active)))]
                try:
                    for s in joining:
                        if s.cancelled or time.monotonic() > s.job.deadline:
                            s.finish("cancelled" if s.cancelled else "timeout")
                            continue
                        self.queue_seconds.observe(time.monotonic() - s.queued_at)
                        row_logits, row_state = self.start(s.prompt_ids, s.state)            # (1, V)
                        logits = row_logits if logits is None else torch.cat([logits, row_logits])
                        state = row_state if state is None else _cat_rows(state, row_state)
                        active.append(s)
                    if not active:
                        continue
                    tokens = self._choose(active, logits)                                    # (N,)
                    # Counted before the streams hear of their tokens: a request that is done has its steps counted.
                    self.steps += 1
                    self.rows += len(active)
                    self.batch_sizes.observe(len(active))
                    keep = self._record(active, tokens.tolist(), state)
                    if len(keep) < len(active):
                        active = [active[i] for i in keep]
                        if not active:
                            logits, state = None, None
                            continue
                        index = torch.tensor(keep)
                        tokens, state = tokens.index_select(0, index), select_rows(state, index)
                    logits, state = self.step(tokens, state)                                  # (N, V)
                except Exception as err:     # a fault must not stop the thread: end these streams, go on
                    for s in active:
                        s.finish("error", f"{type(err).__name__}: {err}")
                    active, logits, state = [], None, None

    @staticmethod
    def _choose(active: list[Stream], logits: torch.Tensor) -> torch.Tensor:
        """One token per row (N,): the rows that share settings through the same processors, then each row's
        argmax (greedy) or its own uniform number."""
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(active):
            groups.setdefault(s.settings, []).append(i)
        if len(groups) == 1:               # the usual case (every row the same settings): no gathering
            return BatchedGenerator._pick(active, list(range(len(active))), logits)
        tokens = torch.empty(len(active), dtype=torch.long)
        for rows in groups.values():
            index = torch.tensor(rows)
            tokens[index] = BatchedGenerator._pick(active, rows, logits.index_select(0, index))
        return tokens

    @staticmethod
    def _pick(active: list[Stream], rows: list[int], logits: torch.Tensor) -> torch.Tensor:
        """Tokens (n,) of ``rows`` (streams of the same settings) from their logits (n, V)."""
        first = active[rows[0]]
        scores = first.processors(None, logits)                                                 # (n, V)
        if first.settings[0]:                                                                   # greedy
            return torch.argmax(scores, dim=-1)
        uniforms = torch.tensor([active[i].uniforms[len(active[i].tokens)] for i in rows])      # (n,)
        return sample_uniform(scores, uniforms)

    def _record(self, active: list[Stream], tokens: list[int], state: Any) -> list[int]:
        """Give each stream its token; finish the streams that are done. Returns the rows still going. A
        session's row that completes keeps its state (before its last token) and that token."""
        keep, now = [], time.monotonic()

        def last(i: int, s: Stream, token: int) -> tuple[Any, int] | None:
            return (select_rows(state, torch.tensor([i])), token) if s.job.session is not None else None

        for i, (s, token) in enumerate(zip(active, tokens)):
            if s.cancelled:
                s.finish("cancelled")
                continue
            if token == self.end:
                s.finish("end", last=last(i, s, token))   # the end token ends the text; it is not part of it
                continue
            s.emit(token)
            self.tokens += 1
            if len(s.tokens) >= s.max_tokens:
                s.finish("length", last=last(i, s, token))
            elif now > s.job.deadline:
                s.finish("timeout")
            else:
                keep.append(i)
        return keep


def _cat_rows(a, b):
    """Two model states (tensors, or tuples of them, batch on dim 0) as one, the rows of ``b`` after ``a``'s."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    return type(a)(_cat_rows(x, y) for x, y in zip(a, b))
