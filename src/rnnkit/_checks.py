"""Argument checks shared by every public function.

Each helper raises ``ValueError`` (or ``TypeError``) with one message shape:
``<name>=<value!r>: <what was expected>``, so a user sees which argument was wrong,
what they passed and what would have been accepted. Tests match on these texts.
"""

from __future__ import annotations

from typing import Any, Iterable

# Upper bounds of the numeric options (issue 24, "Bounds"). No real use comes near them; each keeps a typo
# (an extra zero, ``1e8``) from running for minutes, growing past the machine's memory or crashing a library
# (``--threads 100000`` segfaulted in libgomp). They are checked in the configs' ``__post_init__``, so a
# Python caller gets the same one-line refusal as the CLI, before any data is read. ``--help`` says them.
MAX_THREADS = 1024              # torch's OpenMP pool: libgomp crashed at 100,000
MAX_SEED = 2**32 - 1            # numpy's legacy seeding takes no more (training seeds python, numpy and torch)
MAX_TOKENS = 1_000_000          # tokens generated per result: ~10 minutes of sampling at batch 1
MAX_RESULTS = 1024              # results generated together as one batch
MAX_BEAM = 256                  # beams per input: each is a row of the batch
MAX_TOP_K = 1_000_000
MAX_WIDTH = 8192                # units of a layer (hidden, embedding): a 2x8192 LSTM is 0.8 G parameters
MAX_LAYERS = 64
MAX_PARAMETERS = 1_000_000_000  # recurrent weights of a model: 4 GB in float32, ~16 GB to train with Adam
MAX_BATCH = 65_536              # examples per step
MAX_SEQ_LEN = 100_000           # steps per sequence or window
MAX_BATCH_TOKENS = 10_000_000   # batch x steps: the activations of one step of training
MAX_VOCAB = 1_000_000           # vocabulary entries (num_words)
MAX_STEPS = 10**9               # optimizer steps, epochs, warmup, logging intervals, patience
MAX_MINUTES = 525_600           # a year
MAX_LR = 100.0
MAX_PENALTY = 1e6               # weight decay, gradient-norm clip, regularisation strengths
MAX_TEMPERATURE = 5.0           # beyond this every token is about equally likely: nothing left to see
MAX_ROCKET_KERNELS = 100_000    # 2 features each, per series
MAX_COUNT = 1_000_000           # counts of things read or made (stays, decoded sources, n-gram document counts)


def fail(name: str, value: Any, expected: str) -> None:
    """Raise the standard ``ValueError`` for argument ``name``."""
    raise ValueError(f"{name}={value!r}: expected {expected}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None,
              cap: int | None = None, allow_none: bool = False) -> Any:
    """An integer (not a bool) within [min, max]; ``None`` passes if ``allow_none``. ``cap``: an upper bound
    (one of the ``MAX_*`` above) said as ``>= min and <= cap``, so the text of a value below ``min`` stays
    what it was before the caps came."""
    if value is None and allow_none:
        return value
    text = "an integer" + (_range_text(min, max) if cap is None else _cap_text(min, cap))
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = int(value)
        else:
            fail(name, value, text)
    hi = max if cap is None else cap
    if (min is not None and value < min) or (hi is not None and value > hi):
        fail(name, value, text)
    return value


def _cap_text(lo: int | None, cap: int) -> str:
    return (f" >= {lo} and" if lo is not None else "") + f" <= {cap:,}"


def check_float(name: str, value: Any, *, min: float | None = None, max: float | None = None,
                min_open: bool = False, max_open: bool = False, allow_none: bool = False) -> Any:
    """A real number in the given interval; ``*_open`` excludes that end."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool):
        fail(name, value, "a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        fail(name, value, "a number")
    bad = x != x  # NaN
    if min is not None:
        bad |= x <= min if min_open else x < min
    if max is not None:
        bad |= x >= max if max_open else x > max
    if bad:
        lo = "-inf" if min is None else f"{min}"
        hi = "inf" if max is None else f"{max}"
        interval = ("(" if min_open or min is None else "[") + f"{lo}, {hi}" + (")" if max_open or max is None else "]")
        fail(name, value, f"a number in {interval}")
    return x


def require_file(name: str, path: Any) -> None:
    """``path`` (the value of option ``name``) is a file: else ``FileNotFoundError`` saying whether it is
    missing or a folder (a folder was once reported as "no such file")."""
    import os

    if os.path.isdir(path):
        raise FileNotFoundError(f"{name}={str(path)!r}: is a directory; expected a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}={str(path)!r}: no such file")


def check_run_dir(path: Any) -> None:
    """``--run-dir`` names a folder or nothing yet: refused at once when it is a file (before, the command loaded
    its data and probed the machine for 16 s, then failed on creating the folder)."""
    import os

    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--run-dir={str(path)}: is a file; expected a folder (new or holding a run)")


def check_size(names: str, values: tuple, parameters: float, *, limit: float = MAX_PARAMETERS) -> None:
    """Refuse a model whose estimated ``parameters`` pass ``limit``, naming the options that set its size
    (``names``, e.g. "hidden_size, num_layers") and their ``values``: checked before torch allocates, whose
    out-of-memory text names no option."""
    if parameters > limit:
        shown = ", ".join(f"{n.strip()}={v!r}" for n, v in zip(names.split(","), values))
        raise ValueError(f"{shown}: about {parameters / 1e9:.1f} G parameters ({parameters * 4 / 2**30:.0f} GiB "
                         f"in float32); expected at most {limit / 1e9:g} G: a smaller hidden_size or num_layers")


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
