"""Promoted versions picked up while serving: a model served by its registered ``NAME`` follows the registry.

``rnnkit models promote NAME@N`` (or the register that makes a name's first version) rewrites the name's
``model.json``. A request for a model served as ``NAME`` (or for ``GET /v1/models``) looks at that file: its
size, modification time and inode, at most once per ``interval`` seconds per model (one ``stat``). When it
changed and names another promoted version, the request loads that version (in a worker thread) and swaps it
into the served models in one step on the event loop: the requests that already picked the old object finish
on it, the following ones get the new one, whose ``"version"``, ``X-Rnnkit-Version`` and ``/v1/models`` entry
say so. A generation model's batching worker is started with the new version; the old one is closed when the
last request that entered while it was served has finished.

A version that fails to load (or a ``model.json`` that cannot be read) is one warning line in the log, once
per change of the file, and the old version keeps serving. ``NAME@N`` and run directories never change; their
``promoted`` flag in ``/v1/models`` is kept up to date.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from typing import Any, Callable, Optional

from rnnkit.runs.registry import MODEL_FILE, Registry

log = logging.getLogger("rnnkit.serve")

UNKNOWN = object()          # no look at model.json yet: the first check resolves the name once


class VersionFollower:
    """Keeps the models served as ``NAME`` at the registry's promoted version (see the module doc).

    ``served`` is the application's dict of served models (replaced entries, never mutated objects, so a
    request holding the old object is undisturbed); ``load(name, version)`` loads ``NAME@version`` as a
    ServedModel."""

    def __init__(self, served: dict[str, Any], registry: Registry, load: Callable[[str, int], Any],
                 interval: float = 1.0):
        self.served, self.registry, self.load, self.interval = served, registry, load, interval
        # Every registry name any served model comes from: the followed ones (served as NAME) and NAME@N.
        self.names = sorted({m.name for m in served.values() if m.version is not None})
        self.followed = {m.key for m in served.values() if m.version is not None and m.key == m.name}
        self._seen: dict[str, Any] = {n: UNKNOWN for n in self.names}        # model.json's (ino, size, mtime)
        self._next: dict[str, float] = {n: 0.0 for n in self.names}          # monotonic time of the next stat
        self._loading: set[str] = set()
        # A request entering at swap number k may pick the model of swap k or a later one, never an earlier
        # one: a model retired by swap r is closed once no request that entered before swap r is in flight.
        self._swaps: dict[str, int] = {k: 0 for k in self.followed}
        self._entered: dict[str, dict[int, int]] = {k: {} for k in self.followed}   # swap number -> requests
        self._retired: dict[str, list[tuple[int, Any]]] = {k: [] for k in self.followed}
        self.closed = False

    # -- what a request does -----------------------------------------------------------------------------

    async def refresh(self, name: str) -> None:
        """Pick up a newly promoted version of ``name`` (cheap when nothing changed). Runs on the event loop."""
        if name not in self._seen or name in self._loading or self.closed:
            return
        now = time.monotonic()
        if now < self._next[name]:
            return
        self._next[name] = now + self.interval
        signature = self._signature(name)
        if signature == self._seen[name]:
            return
        self._loading.add(name)
        try:
            loop = asyncio.get_running_loop()
            fresh = await loop.run_in_executor(None, self._load_promoted, name)
        finally:
            self._loading.discard(name)
        self._seen[name] = signature
        if fresh is not None:
            promoted, new = fresh
            self._mark_promoted(name, promoted)
            if new is not None:
                self._swap(name, new)

    async def refresh_all(self) -> None:
        for name in self.names:
            await self.refresh(name)

    def enter(self, key: str) -> Optional[tuple[str, int]]:
        """A request for ``key`` begins: what it may use stays open until :meth:`leave`."""
        if key not in self.followed:
            return None
        mark = self._swaps[key]
        self._entered[key][mark] = self._entered[key].get(mark, 0) + 1
        return key, mark

    def leave(self, entry: Optional[tuple[str, int]]) -> None:
        if entry is None:
            return
        key, mark = entry
        counts = self._entered[key]
        counts[mark] -= 1
        if not counts[mark]:
            del counts[mark]
        self._close_idle(key)

    def close(self, wait: bool = True) -> None:
        """The server stops: the swapped-out workers still open are closed (the served ones are the app's)."""
        self.closed = True
        for retired in self._retired.values():
            for _, m in retired:
                self._close(m, wait)
            retired.clear()

    # -- inside --------------------------------------------------------------------------------------------

    def _signature(self, name: str) -> Any:
        try:
            st = os.stat(self.registry.root / name / MODEL_FILE)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load_promoted(self, name: str) -> Optional[tuple[Optional[int], Any]]:
        """In a worker thread: (the promoted version, the newly loaded model of it or None when the one served
        is that version already); None when it could not be read or loaded (logged, one line)."""
        current = self.served.get(name) if name in self.followed else None
        try:
            version = self.registry.resolve(name).version
        except Exception as err:            # noqa: BLE001 - whatever went wrong, the old version keeps serving
            if current is not None:
                log.warning("%s: the registry's promoted version could not be read (%s); still serving %s",
                            name, _one_line(err), current.source)
            return None
        if current is None or current.version == version:
            return version, None
        try:
            new = self.load(name, version)
        except Exception as err:            # noqa: BLE001
            log.warning("%s@%s: promoted, but it failed to load (%s); still serving %s", name, version,
                        _one_line(err), current.source)
            return None
        return version, dataclasses.replace(new, key=name, promoted=True)

    def _mark_promoted(self, name: str, version: Optional[int]) -> None:
        for key, m in list(self.served.items()):
            if m.name == name and m.version is not None and key != name and m.promoted != (m.version == version):
                self.served[key] = dataclasses.replace(m, promoted=m.version == version)

    def _swap(self, name: str, new: Any) -> None:
        old = self.served.get(name)
        if self.closed:
            self._close(new)
            return
        self.served[name] = new
        log.info("%s: now serving %s (promoted), was %s", name, new.source, old.source if old else "none")
        self._swaps[name] += 1
        if old is not None:
            self._retired[name].append((self._swaps[name], old))
            self._close_idle(name)

    def _close_idle(self, key: str) -> None:
        """Close the retired models no request in flight can be using."""
        oldest = min(self._entered[key], default=self._swaps[key])
        keep = []
        for retired_at, m in self._retired[key]:
            if retired_at <= oldest:
                self._close(m)
            else:
                keep.append((retired_at, m))
        self._retired[key] = keep

    @staticmethod
    def _close(m: Any, wait: bool = False) -> None:
        if m.worker is not None:
            m.worker.close(wait=wait)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class FollowPromoted:
    """ASGI middleware: before a request for a model served as ``NAME`` (``/v1/models/NAME/...``) or for the
    model list, pick up a newly promoted version (:class:`VersionFollower`); the object served while the request
    runs stays open until it ends."""

    def __init__(self, app, follower: VersionFollower):
        self.app, self.follower = app, follower

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/models"):
            return await self.app(scope, receive, send)
        parts = path.split("/")          # "", "v1", "models", NAME, ENDPOINT
        if len(parts) <= 3 or not parts[3]:
            await self.follower.refresh_all()
            return await self.app(scope, receive, send)
        key = parts[3]
        if key in self.follower.followed:
            await self.follower.refresh(key)
        elif "@" in key:
            await self.follower.refresh(key.partition("@")[0])      # keeps NAME@N's promoted flag right
        entry = self.follower.enter(key)
        try:
            return await self.app(scope, receive, send)
        finally:
            self.follower.leave(entry)
