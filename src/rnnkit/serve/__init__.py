"""``rnnkit serve``: an HTTP API for trained runs, and a playground page served by the same process.

    rnnkit serve runs/shakespeare runs/imdb --embeddings glove-50d      # then open http://127.0.0.1:8000/

The pieces: :mod:`rnnkit.serve.app` (the FastAPI application, assembled from :mod:`~rnnkit.serve.routes`:
the model list, one generic handler for every task's endpoint, word vectors), :mod:`rnnkit.serve.schemas`
(request bodies built from each task's ``request_class`` and the limits below), :mod:`rnnkit.serve.errors`
(one JSON shape for every error), :mod:`rnnkit.serve.batching` (continuous batching: the requests for one
generating model stepped together), :mod:`rnnkit.serve.cli` (the command) and ``static/`` (the playground:
plain HTML, JS and CSS, nothing fetched from elsewhere). The server asks the Task protocol
(:mod:`rnnkit.tasks.base`) what a model takes and how to apply it: it names no task.

FastAPI and uvicorn are an optional extra, ``pip install "rnnkit[serve]"``; this package imports them
only when a server is built, so ``rnnkit --help`` works without them. :class:`ServeConfig` (the limits
every request is held to) lives here for the same reason: the CLI reads it without importing FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field

INSTALL_HINT = 'pip install "rnnkit[serve]"'


@dataclass
class ServeConfig:
    """What ``rnnkit serve`` takes besides the models: where it listens, and the limits of a request."""

    RENAMED = {"max_top": "max_results"}     # rnnkit 0.1's --max-top: still parsed, with a warning

    host: str = field("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = field(8000, "TCP port to listen on")
    max_tokens: int = field(1000, "most tokens one generate or translate request may ask for")
    max_prompt_chars: int = field(2000, "most characters of a generation prompt")
    max_texts: int = field(64, "most texts (or series) in one classify or translate request")
    max_text_chars: int = field(5000, "most characters of one text to classify or translate")
    max_beam: int = field(16, "largest beam a translate request may ask for")
    max_results: int = field(100, "most neighbours an embeddings request may ask for")
    max_body_bytes: int = field(1_000_000, "largest request body in bytes; larger ones get 413")
    timeout: float = field(30.0, "seconds one request may take; slower ones get 504")
    max_batch: int = field(64, "most generation requests of one text model stepped together")
    batching: bool = field(True, "step the generation requests of one model together (--no-batching: one at a "
                                 "time, for comparison)")
    body_timeout: float = field(10.0, "seconds a request's headers, and then its body, may take to arrive whole; "
                                      "slow headers close the connection, a slow body gets 408")
    keep_alive_timeout: float = field(5.0, "seconds an idle keep-alive connection is held open")
    api_key: Optional[str] = field(None, "the key every /v1 request must send as 'Authorization: Bearer KEY' "
                                         "(default: the environment variable RNNKIT_API_KEY; required when --host "
                                         "is not a loopback address)")
    allowed_hosts: Optional[str] = field(None, "comma-separated host names the Host header may carry (DNS-rebinding "
                                               "defence; '*': any); default: localhost, 127.0.0.1, ::1 and --host")
    access_log: bool = field(True, "log one line per request: method, path, status, seconds, model "
                                   "(--no-access-log: none)")
    session_ttl: float = field(600.0, "seconds a generation session's state is kept after its last request")
    max_sessions: int = field(1000, "most generation sessions kept per model; a new one beyond gets 429")
    checkpoint: Optional[str] = field(None, "serve the run directories' Trainer checkpoint instead of their "
                                            "finished model: best or last; also runs whose training did not "
                                            "finish (default: finished runs only)", choices=("best", "last"))

    def __post_init__(self) -> None:
        _checks.check_int("port", self.port, min=0, max=65535)
        # Upper bounds no real use reaches, checked before a model loads: each keeps one request (or the server's
        # state) from growing without end.
        caps = {"max_tokens": _checks.MAX_TOKENS, "max_prompt_chars": 10_000_000, "max_texts": 100_000,
                "max_text_chars": 10_000_000, "max_beam": _checks.MAX_BEAM, "max_results": _checks.MAX_RESULTS,
                "max_body_bytes": 1_000_000_000, "max_batch": _checks.MAX_BATCH, "max_sessions": 1_000_000}
        for name, cap in caps.items():
            _checks.check_int(name, getattr(self, name), min=1, cap=cap)
        for name in ("timeout", "body_timeout", "keep_alive_timeout", "session_ttl"):
            _checks.check_float(name, getattr(self, name), min=0, min_open=True, max=7 * 24 * 3600.0)   # a week
        if self.api_key is not None and not self.api_key.strip():
            _checks.fail("api_key", self.api_key, "a non-empty key")
        _checks.check_choice("checkpoint", self.checkpoint, (None, "best", "last"))


def require_fastapi() -> None:
    """Raise a one-line error with the install command when the ``serve`` extra is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise RuntimeError(f"rnnkit serve needs FastAPI and uvicorn ({err.name} is not installed): "
                           f"{INSTALL_HINT}") from None


def create_app(models, embeddings=(), config: ServeConfig | None = None):
    """The FastAPI application serving ``models`` (run directories or registry names) and ``embeddings``
    (a dataset name such as glove-50d, or a GloVe text file); see :func:`rnnkit.serve.app.create_app`."""
    require_fastapi()
    from rnnkit.serve.app import create_app as create
    return create(models, embeddings, config)
