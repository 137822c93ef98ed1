"""`rnnkit serve RUN_OR_NAME...`: the HTTP API and the playground page for trained runs.

    rnnkit serve runs/shakespeare runs/imdb                 # run directories, served by their folder names
    rnnkit serve shakespeare shakespeare@2                  # registered models: the promoted version, version 2
    rnnkit serve runs/shakespeare --embeddings glove-50d    # word vectors too (a dataset or a GloVe text file)

The flags are the fields of :class:`~rnnkit.serve.ServeConfig`. FastAPI and uvicorn are imported only
when the command runs, so the rest of the CLI works without the ``serve`` extra.
"""

from __future__ import annotations

import argparse
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
    check_port(config.host, config.port)          # before the models load: a busy port fails at once
    import uvicorn

    from rnnkit.serve.app import create_app

    app = create_app(args.models, args.embeddings, config)
    for m in app.state.models.values():
        version = "" if m.version is None else f" version {m.version}"
        print(f"serving {m.key}{version} ({m.task}) at /v1/models/{m.key}/{m.endpoint}", file=sys.stderr)
    print(f"playground: http://{config.host}:{config.port}/", file=sys.stderr)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    return 0


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address this machine cannot listen on (a port in use, a foreign host)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as err:
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); expected a "
                         f"free port on an address of this machine") from None
