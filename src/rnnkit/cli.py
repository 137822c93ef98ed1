"""The ``rnnkit`` command line: ``rnnkit <group> <verb> [flags]``.

The CLI is a thin layer: each command group lives next to the code it drives and registers
itself through an ``add_commands(subparsers)`` function; a verb sets ``func`` on its parser,
which receives the parsed arguments and returns an exit code. A new group is one line in ``COMMANDS``
(its module and its one line of help).

Every failure is one line on stderr, ``rnnkit: error: ...`` (``RNNKIT_DEBUG=1`` adds the traceback), and
a warning is one line too. SIGTERM is treated like Ctrl-C: training saves its checkpoint, then the process
exits with 143 (130 for Ctrl-C); both are handled from the first thing ``main`` does, so a signal during
the seconds that importing torch takes also ends in one line.

Building the parser imports no torch: each command module imports only configs at the top and its task when
a verb runs, and a run builds only the group it names, so every ``--help`` is instant (tests/test_cli.py
checks it with ``python -X importtime``; bench/cli_help.py times it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
import warnings
from typing import Iterable

from rnnkit import __version__
from rnnkit.training import phases
from rnnkit.training.phases import phase

# Each command group: the module that defines ``add_commands(subparsers)`` for it, and the line that
# ``rnnkit --help`` shows for it (the module's own help= says the same: tests/test_cli.py checks they agree).
# A run imports only the module of the group it names, so ``rnnkit --help`` imports none of them.
COMMANDS = {
    "data": ("rnnkit.datasets.commands", "list, describe and fetch the named datasets"),
    "demo": ("rnnkit.demo", "train a small Shakespeare character model and print samples"),
    "embed": ("rnnkit.tasks.embeddings.cli", "pretrained word vectors: neighbours, analogies, evaluation, plots"),
    "textgen": ("rnnkit.tasks.textgen.cli", "character/word language models: train, sample, eval"),
    "classify": ("rnnkit.tasks.classify.cli", "sequence classification: train, predict, eval; multilabel"),
    "forecast": ("rnnkit.tasks.forecast.cli", "time-series forecasting: windows, baselines, GRU/LSTM/Conv1D"),
    "seq2seq": ("rnnkit.tasks.seq2seq.cli", "sequence to sequence with attention and beam search: train, "
                                            "translate, eval"),
    "tag": ("rnnkit.tasks.tag.cli", "sequence labelling (a tag per token or step): train, tag, eval"),
    "vqa": ("rnnkit.tasks.vqa.cli", "visual question answering (image + question -> answer): train, ask, eval"),
    "caption": ("rnnkit.tasks.caption.cli", "image captioning (CNN encoder, RNN decoder with attention): train, "
                                            "describe, eval"),
    "models": ("rnnkit.runs.commands", "register finished runs as named model versions"),
    "runs": ("rnnkit.runs.rehash", "check and re-record the digests of a run directory's files"),
    "serve": ("rnnkit.serve.cli", "serve trained runs over HTTP, with a playground page"),
    "export": ("rnnkit.export.cli", "write a trained run as an ONNX model or one C header (microcontrollers)"),
    "diagnose": ("rnnkit.diagnose.cli", "see vanishing gradients: how far back the error of the last step reaches"),
}

# Set RNNKIT_DEBUG=1 to see the traceback behind an error line.
DEBUG_VARIABLE = "RNNKIT_DEBUG"


def build_parser(groups: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command (``groups``: only these groups' verbs and flags; the others are listed
    with their one line of help, so that ``rnnkit --help`` and ``rnnkit textgen ...`` import one module or
    none)."""
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent sequence models on real data: train, sample, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    wanted = set(COMMANDS) if groups is None else set(groups)
    for name, (module, help_line) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(module).add_commands(sub)
        else:
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The command group that ``argv`` names: its first argument that is not an option (the top-level parser
    has no option that takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler (``timeout``, systemd, docker stop): the Trainer saves a checkpoint
    as for Ctrl-C, then raises it again so the process ends (exit status 143). Defined here, not beside the
    Trainer, so that the handler is in place before torch is imported."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status. Every failure ends in one line on stderr,
    ``rnnkit: error: ...``: 2 for an error, 130 for Ctrl-C, 143 for SIGTERM (after the checkpoint is saved)."""
    # First, before any import that takes time: from here on Ctrl-C and SIGTERM end in one line, never in a
    # traceback or a silent exit -15; warnings (an old flag's spelling, too) are one line each.
    restore_sigterm = _handle_sigterm(Terminated)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        phase("start")   # (a signal here, for the tests: rnnkit.training.phases)
        argv = sys.argv[1:] if argv is None else list(argv)
        command = command_of(argv)
        parser = build_parser([command] if command in COMMANDS else [])
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            # A group without a verb (``rnnkit data``) prints that group's help.
            (getattr(args, "group_parser", None) or parser).print_help()
            return 2
        from rnnkit.training import threads

        # CPU threads: --threads, OMP_NUM_THREADS, else one per CPU that other processes leave free; the
        # verbs that take --threads (training, sampling) say so when that is fewer than the CPUs.
        threads.apply(threads.choose(getattr(args, "threads", None)), say=hasattr(args, "threads"))
        phase("imports")
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
        phases.pending = terminated("SIGTERM")    # raised again at the next boundary if swallowed
        raise terminated("SIGTERM")
    phases.pending = None
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return lambda: None

    def restore():
        # The command is over: a SIGTERM it took must not stop what the process does next (a Python caller
        # of main(), a test suite).
        phases.pending = None
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return restore


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"rnnkit: warning: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
