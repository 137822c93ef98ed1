"""Who may talk to the server: the Host header check (DNS-rebinding defence) and the API key.

Both are ASGI middleware in front of every request. The probes ``/healthz`` and ``/readyz`` pass both: a load
balancer or an orchestrator asks them with the machine's address as Host and no key, and they tell nothing
about the models.

- **Host**: a web page on another site can make the browser resolve its own name to 127.0.0.1 (DNS
  rebinding) and then read a localhost API as "same origin". The browser still sends the page's host name in
  ``Host``, so only the names this server is reached by are accepted: localhost, 127.0.0.1, ::1 and
  ``--host``, or ``--allowed-hosts``. Others get 400.
- **API key**: with ``--api-key`` (or ``RNNKIT_API_KEY``), every ``/v1`` request and ``/metrics`` must send
  ``Authorization: Bearer KEY``, else 401. The page, its static files and the schema stay open (the page asks
  for the key). The key is compared in constant time (``hmac.compare_digest``): the time of a refusal does not
  tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Iterable, Optional

from rnnkit.serve.errors import error_response

OPEN_PATHS = ("/healthz", "/readyz")               # probes: no Host check, no key
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bound: str, configured: Optional[str]) -> Optional[frozenset[str]]:
    """The host names a request's Host header may carry; None: any (``--allowed-hosts '*'``)."""
    if configured is not None:
        names = {h.strip().lower().strip("[]") for h in configured.split(",") if h.strip()}
        return None if "*" in names else frozenset(names | set(LOOPBACK_NAMES))
    return frozenset({*LOOPBACK_NAMES, bound.lower().strip("[]")})


def host_name(header: str) -> str:
    """``Host`` without its port: ``example.com:8000`` -> ``example.com``, ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """400 for a request whose Host header names none of ``allowed`` (see the module doc)."""

    def __init__(self, app, allowed: Iterable[str]):
        self.app, self.allowed = app, frozenset(allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if host_name(header) not in self.allowed:
            shown = ", ".join(sorted(self.allowed))
            refusal = error_response(400, f"Host: {header!r} is not a name this server answers to (one of: {shown}); "
                                          f"a server reached by another name is started with --allowed-hosts NAME",
                                     "Host", f"one of: {shown}")
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)


class ApiKeyCheck:
    """401 for a ``/v1`` or ``/metrics`` request without ``Authorization: Bearer KEY`` (see the module doc)."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v1/") or path in ("/v1", "/metrics")):
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            why = "no Authorization header" if not given else "the key sent is not this server's"
            refusal = error_response(401, f"Authorization: {why}; send the header 'Authorization: Bearer KEY' with "
                                          f"the key the server was started with (--api-key or RNNKIT_API_KEY)",
                                     "Authorization", "Bearer KEY")
            refusal.headers["WWW-Authenticate"] = "Bearer"
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------------------
# Slow headers (slowloris): uvicorn times out idle keep-alive connections and, through BodyCheck, slow bodies,
# but a client that connects and sends its request line and headers a byte at a time is never cut off.
# ---------------------------------------------------------------------------------------------------------

def uvicorn_config(app, config) -> "uvicorn.Config":
    """The uvicorn settings ``rnnkit serve`` runs ``app`` with (``config``: its ServeConfig): its address, its
    keep-alive timeout, and an HTTP protocol that gives each request's headers ``body_timeout`` seconds."""
    import uvicorn

    return uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                          timeout_keep_alive=config.keep_alive_timeout,
                          http=header_deadline_protocol(config.body_timeout))


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol with a deadline on each request's headers: a connection whose request has not
    begun (its headers not all read) ``seconds`` after the connection opened, or after the previous answer, is
    closed."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._waiting() is False:          # a request's headers are in: the body has its own timeout
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()                           # the next request's headers get their own deadline

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting(self) -> bool:
            """No request in progress: waiting for the next one's request line and headers."""
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._waiting() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline
