"""Generation sessions: the recurrent state kept between requests under an id the client picks.

A request with ``"session": "abc"`` starts from where the last completed request of session ``abc`` (to the
same model) stopped: its recurrent state, the token it chose last (not yet read by the model) and the place in
its seed's stream of uniform numbers. Its prompt is read on top of that state, not from scratch. What a
session keeps is replaced only when a request *completes* (its result ended at its length or at the end
token): a request that times out, is cancelled, fails or meets a shutting-down server leaves the session as it
was. One request runs in a session at a time (a second one meanwhile: :class:`SessionBusy`, a 409); sessions
idle for ``ttl`` seconds are dropped (the next request with that id starts fresh, and its answer says the
session had expired); at most ``limit`` sessions are kept (one more: :class:`SessionsFull`, a 429).

The store belongs to one model's worker (:class:`rnnkit.serve.batching.BatchedGenerator`): the state of one
model means nothing to another, so a model loaded anew starts with no sessions.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch


class SessionBusy(Exception):
    """A request for a session that is already running one (HTTP 409)."""


class SessionsFull(Exception):
    """A new session when ``limit`` sessions are kept already (HTTP 429)."""


@dataclass
class Saved:
    """What a session keeps after a completed request."""

    state: Any                      # the model's state (batch 1) before reading ``pending``
    pending: list[int]              # the last chosen token (or the end token), not yet read by the model
    seed: int                       # the seed of the session's stream of uniform numbers
    rng_state: torch.Tensor         # that stream's generator, past the numbers used so far


class Sessions:
    """The sessions of one model: ``acquire`` before a request, ``release`` when it is over."""

    def __init__(self, ttl: float = 600.0, limit: int = 1000, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._saved: dict[str, Saved] = {}
        self._used: dict[str, float] = {}               # when each kept session last finished a request
        self._busy: set[str] = set()
        self._expired: OrderedDict[str, None] = OrderedDict()   # ids dropped for idling (to say so once)
        self._lock = threading.Lock()

    def configure(self, ttl: float, limit: int) -> None:
        self.ttl, self.limit = ttl, limit

    def __len__(self) -> int:
        with self._lock:
            return len(self._saved.keys() | self._busy)

    def acquire(self, sid: str) -> tuple[Optional[Saved], str]:
        """Mark ``sid`` busy; returns what it keeps (None for a fresh start) and how it starts: "new",
        "continued" or "expired" (it had been idle longer than ``ttl`` and starts fresh)."""
        with self._lock:
            if sid in self._busy:
                raise SessionBusy(f"session {sid!r} is running another request; send the next one when that one "
                                  f"has answered")
            self._drop_idle()
            if sid not in self._saved and len(self._saved.keys() | self._busy) >= self.limit:
                raise SessionsFull(f"the server keeps at most max_sessions={self.limit} sessions; end one "
                                   f"(end_session) or wait for one to expire (session_ttl={self.ttl:g} s)")
            self._busy.add(sid)
            saved = self._saved.get(sid)
            if saved is not None:
                return saved, "continued"
            expired = sid in self._expired
            self._expired.pop(sid, None)
            return None, "expired" if expired else "new"

    def release(self, sid: str, saved: Optional[Saved] = None, *, end: bool = False) -> None:
        """The request of ``sid`` is over: keep ``saved`` (None: keep what was kept before), or with ``end`` drop
        the session."""
        with self._lock:
            self._busy.discard(sid)
            if end:
                self._saved.pop(sid, None)
                self._used.pop(sid, None)
                return
            if saved is not None:
                self._saved[sid] = saved
            if sid in self._saved:
                self._used[sid] = self.clock()

    def _drop_idle(self) -> None:
        now = self.clock()
        for sid in [s for s, t in self._used.items() if now - t > self.ttl and s not in self._busy]:
            del self._saved[sid], self._used[sid]
            self._expired[sid] = None
            if len(self._expired) > max(self.limit, 1):
                self._expired.popitem(last=False)
