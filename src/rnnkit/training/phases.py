"""Phase boundaries of a command, where a test can put a signal exactly (tests/test_signals.py).

The long commands call ``phase(name)`` at each boundary between the parts of their work. In a normal run
it does nothing (one dictionary lookup). The test-only environment variable ``RNNKIT_SIGNAL_AT`` arms it::

    RNNKIT_SIGNAL_AT=first_step:SIGTERM rnnkit textgen train ...     # SIGTERM right after the first step
    RNNKIT_SIGNAL_AT=data:SIGINT rnnkit classify train ...          # Ctrl-C right after the data is read

When the named phase is reached the first time, the process sends that signal (SIGINT, SIGTERM, or a
number) to itself: its handler runs before the next line, as when a user presses Ctrl-C or ``timeout``
stops the command at that instant. Each process signals itself once.

The phases, in the order a training command meets them (PHASES), and where each is called:

* ``start``       rnnkit.cli.main, right after the signal handlers are installed (nothing imported yet)
* ``imports``     rnnkit.cli.main, after torch is imported (thread set-up), before the verb runs
* ``data``        Task.fit, after the data is read (before it is encoded)
* ``probe``       textgen's width probe (``--hidden-size auto``), after the probe's first step
* ``model``       Task.fit, after the model is built
* ``config``      Task.fit, after config.json and the encoder's files are written
* ``first_step``  the Trainer, after the first optimizer step of a fit call
* ``validation``  the Trainer, after a validation pass (before its record and checkpoint)
* ``sampling``    textgen's epoch samples, after they are written
* ``save``        Task.fit, before the finished model is written; the apply verbs (export, models
                  register), before they write their output
* ``loaded``      the apply verbs (sample, translate, eval, predict, export, register), after the run is
                  loaded
"""

from __future__ import annotations

import os
import signal

SIGNAL_VARIABLE = "RNNKIT_SIGNAL_AT"

PHASES = ("start", "imports", "data", "probe", "model", "config", "first_step", "validation", "sampling", "save",
          "loaded")

_fired = False   # this process has sent its signal

# The exception of a SIGTERM that the CLI's handler raised (rnnkit.cli.Terminated), kept so that it is raised
# again at the next phase boundary or training step should some code have swallowed it: an exception raised
# by a signal handler inside a finalizer or a library's broad ``except`` is lost ("Exception ignored"), and
# the command would run on. A process ends after SIGTERM, so the mark is never cleared.
pending: BaseException | None = None


def check_pending() -> None:
    """Raise again a SIGTERM whose exception was swallowed (see ``pending``); else nothing."""
    if pending is not None:
        raise type(pending)(*pending.args)


def phase(name: str) -> None:
    """A phase boundary: sends the signal that RNNKIT_SIGNAL_AT names for ``name`` (else nothing)."""
    check_pending()
    at = os.environ.get(SIGNAL_VARIABLE)
    if not at:
        return
    _signal_at(name, at)


def _signal_at(name: str, at: str) -> None:
    global _fired
    where, _, which = at.partition(":")
    if _fired or where != name:
        return
    if where not in PHASES:
        raise ValueError(f"{SIGNAL_VARIABLE}={at!r}: expected PHASE:SIGNAL with PHASE one of {', '.join(PHASES)}")
    signum = int(which) if which.isdigit() else getattr(signal, which.upper() or "SIGINT", None)
    if signum is None:
        raise ValueError(f"{SIGNAL_VARIABLE}={at!r}: expected a signal name (SIGINT, SIGTERM) or number after ':'")
    _fired = True
    os.kill(os.getpid(), int(signum))
