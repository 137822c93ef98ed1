"""`rnnkit serve RUN_OR_NAME...`: the HTTP API and the playground page for trained runs.

    rnnkit serve runs/shakespeare runs/imdb                 # run directories, served by their folder names
    rnnkit serve shakespeare shakespeare@2                  # registered models: the promoted version, version 2
    rnnkit serve runs/shakespeare --embeddings glove-50d    # word vectors too (a dataset or a GloVe text file)

The flags are the fields of :class:`~rnnkit.serve.ServeConfig`. FastAPI and uvicorn are imported only
when the command runs, so the rest of the CLI works without the ``serve`` extra.

Beyond this machine (``--host`` not a loopback address) the server needs an API key (``--api-key`` or, kept
out of the process list, ``RNNKIT_API_KEY``) and refuses to start without one. SIGTERM stops it gracefully:
no new connections, the generation streams in flight end with an ``error`` event and ``done``, the other
requests in flight finish; then it exits 0 (a stop asked for is not a failure).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from rnnkit.config import add_config_arguments, config_from_args
from rnnkit.serve import INSTALL_HINT, ServeConfig, require_fastapi


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="serve trained runs over HTTP, with a playground page",
                       description="Serve trained runs over HTTP (an endpoint per task) with a playground page "
                                   f"at /. Needs the serve extra: {INSTALL_HINT}.")
    p.add_argument("models", nargs="*", metavar="RUN_OR_NAME",
                   help="run directories, registered NAMEs (the promoted version) or NAME@VERSION")
    p.add_argument("--embeddings", action="append", default=[], metavar="SOURCE",
                   help="also serve word vectors: glove-50d or a GloVe text file (may be given more than once)")
    add_config_arguments(p, ServeConfig)
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    require_fastapi()
    config = config_from_args(ServeConfig, args)
    if not args.models and not args.embeddings:
        raise ValueError("RUN_OR_NAME: none given; expected at least one run directory, NAME or NAME@VERSION "
                         "(or --embeddings SOURCE)")
    if config.api_key is None and os.environ.get("RNNKIT_API_KEY", "").strip():
        config.api_key = os.environ["RNNKIT_API_KEY"].strip()
    from rnnkit.serve.security import is_loopback, uvicorn_config
    if config.api_key is None and not is_loopback(config.host):
        raise ValueError(f"--host {config.host}: reachable beyond this machine, so the API needs a key; pass "
                         f"--api-key KEY or set RNNKIT_API_KEY (clients send 'Authorization: Bearer KEY')")
    check_port(config.host, config.port)          # before the models load: a busy port fails at once
    import uvicorn

    from rnnkit.serve.app import begin_shutdown, create_app

    app = create_app(args.models, args.embeddings, config)
    for m in app.state.models.values():
        version = "" if m.version is None else f" version {m.version}"
        print(f"serving {m.key}{version} ({m.task}) at /v1/models/{m.key}/{m.endpoint}", file=sys.stderr)
    print(f"playground: http://{config.host}:{config.port}/", file=sys.stderr)
    if config.allowed_hosts is None and config.host in ("0.0.0.0", "::"):
        print(f"note: only Host names localhost, 127.0.0.1, ::1 and {config.host} are answered; reach it by "
              f"another name with --allowed-hosts NAME,...", file=sys.stderr)
    if config.access_log:
        access = logging.getLogger("rnnkit.serve.access")
        if not any(getattr(h, "rnnkit_access", False) for h in access.handlers):   # once per process
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            handler.rnnkit_access = True
            access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if sig == signal.SIGTERM and not self.should_exit:
                begin_shutdown(app)
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:       # uvicorn would raise it again once stopped: exit 0 instead
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    Server(uvicorn_config(app, config)).run()
    print("stopped", file=sys.stderr)
    return 0


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address this machine cannot listen on (a port in use, a foreign host)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as err:
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); expected a "
                         f"free port on an address of this machine") from None
