"""The ``rnnkit`` command line: ``rnnkit <group> <verb> [flags]``.

The CLI is a thin layer: each command group lives next to the code it drives and registers
itself through an ``add_commands(subparsers)`` function; a verb sets ``func`` on its parser,
which receives the parsed arguments and returns an exit code. Task issues add their groups
(``textgen``, ``classify``, ``forecast``, ...) to ``COMMAND_MODULES``.

Every failure is one line on stderr, ``rnnkit: error: ...`` (``RNNKIT_DEBUG=1`` adds the traceback), and
a warning is one line too. SIGTERM is treated like Ctrl-C: training saves its checkpoint, then the process
exits with 143 (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
import warnings

from rnnkit import __version__

# Modules that define ``add_commands(subparsers)``; imported when the parser is built.
COMMAND_MODULES = [
    "rnnkit.datasets.commands",   # rnnkit data list|info|fetch
    "rnnkit.demo",                # rnnkit demo (a small character model, trained and sampled)
    "rnnkit.tasks.embeddings.cli",  # rnnkit embed neighbors|analogy|eval|plot (pretrained word vectors)
    "rnnkit.tasks.textgen.cli",   # rnnkit textgen train|sample|eval
    "rnnkit.tasks.classify.cli",       # rnnkit classify train|predict|eval|multilabel
    "rnnkit.tasks.forecast.cli",       # rnnkit forecast train|eval|predict|compare
    "rnnkit.tasks.seq2seq.cli",        # rnnkit seq2seq train|translate|eval
    "rnnkit.runs.commands",            # rnnkit models list|register|promote|rm
    "rnnkit.serve.cli",                # rnnkit serve RUN_OR_NAME... (HTTP API + playground; the serve extra)
    "rnnkit.export.cli",               # rnnkit export RUN --format onnx|c -o FILE (ONNX; a C header for devices)
]

# Set RNNKIT_DEBUG=1 to see the traceback behind an error line.
DEBUG_VARIABLE = "RNNKIT_DEBUG"


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
    """Run one command; returns the exit status. Every failure ends in one line on stderr,
    ``rnnkit: error: ...``: 2 for an error, 130 for Ctrl-C, 143 for SIGTERM (after the checkpoint is saved)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without a verb (``rnnkit data``) prints that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    from rnnkit.training.trainer import Terminated   # (imports torch: only once a verb runs)
    from rnnkit.training import threads

    restore_sigterm = _handle_sigterm(Terminated)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        # CPU threads: --threads, OMP_NUM_THREADS, else one per CPU that other processes leave free; the
        # verbs that take --threads (training, sampling) say so when that is fewer than the CPUs.
        threads.apply(threads.choose(getattr(args, "threads", None)), say=hasattr(args, "threads"))
        return int(args.func(args) or 0)
    except Terminated:
        print("rnnkit: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``rnnkit ... | head``): stop quietly, as other tools do
        # (stdout to /dev/null, so that the flush at exit does not complain either).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except Exception as err:   # every other fault: one line, never a traceback (unless asked for)
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        print(f"rnnkit: error: {error_line(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format
        restore_sigterm()


def error_line(err: BaseException) -> str:
    """An exception as one line: an OSError that names a file as ``FILE: reason``; rnnkit's errors
    (ValueError, FileNotFoundError, RuntimeError, whose messages name the file or argument) as they are;
    anything else with its type, so that an unexpected failure still says what it was."""
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or err}"
        if err.filename2 is not None:
            text += f" ({err.filename2})"
    elif isinstance(err, (ValueError, FileNotFoundError, RuntimeError)) and str(err) or _is_rnnkit_error(err):
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return " ".join(text.split()) or type(err).__name__   # one line, whatever the message held


def _is_rnnkit_error(err: BaseException) -> bool:
    # rnnkit's own exception classes (CheckpointError, NotFittedError, ...) carry complete messages.
    return type(err).__module__.startswith("rnnkit.") and str(err) != ""


def _handle_sigterm(terminated: type):
    """Make SIGTERM raise ``terminated`` (a KeyboardInterrupt): training saves a checkpoint, as for Ctrl-C.
    Returns a function that puts the previous handler back (a no-op where signals cannot be set: a
    thread other than the main one)."""
    def handler(signum, frame):
        raise terminated("SIGTERM")
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"rnnkit: warning: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
