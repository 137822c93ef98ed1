"""The ``rnnkit`` command line: ``rnnkit <group> <verb> [flags]``.

The CLI is a thin layer: each command group lives next to the code it drives and registers
itself through an ``add_commands(subparsers)`` function; a verb sets ``func`` on its parser,
which receives the parsed arguments and returns an exit code. Task issues add their groups
(``textgen``, ``classify``, ``forecast``, ...) to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rnnkit import __version__

# Modules that define ``add_commands(subparsers)``; imported when the parser is built.
COMMAND_MODULES = [
    "rnnkit.datasets.commands",   # rnnkit data list|info|fetch
    "rnnkit.demo",                # rnnkit demo (a small character model, trained and sampled)
    "rnnkit.tasks.embeddings.cli",  # rnnkit embed neighbors|analogy|eval|plot (pretrained word vectors)
    "rnnkit.tasks.textgen.cli",   # rnnkit textgen train|sample|eval
    "rnnkit.tasks.classify.cli",       # rnnkit classify train|predict|eval|multilabel
    "rnnkit.tasks.forecast.cli",       # rnnkit forecast train|eval|predict|compare
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent sequence models on real data: train, sample, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without a verb (``rnnkit data``) prints that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # User errors get one clear line, not a traceback.
        print(f"rnnkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
