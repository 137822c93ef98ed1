"""Every numeric flag has an upper bound, checked before any work starts (issue 24, "Bounds").

``--threads 100000`` crashed libgomp; ``--max-tokens 1e8``, ``--num-results 100000`` and ``--beam 100000`` ran
for minutes and grew past 1.5 GB. Each flag of every parser (as tests/test_cli.py walks them) is given a value
past any bound: the command must end at once with exit 2 and one line that names the option, the value and the
range, before a run, a corpus or a dataset is read (the paths given here do not exist).
"""

from __future__ import annotations

import argparse
import time

import pytest

from rnnkit import _checks
from rnnkit.cli import build_parser, main

# Every command group is walked, serve too (its request limits and timeouts are bounded in ServeConfig).
SKIP_GROUPS: set[str] = set()
MISSING = "/nonexistent/rnnkit-bounds"       # a path that fails fast if a bound is not checked first


def parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, path + (name,))


def numeric_flags():
    for path, p in parsers(build_parser()):
        if not path or path[0] in SKIP_GROUPS or not getattr(p, "_defaults", {}).get("func"):
            continue
        positionals = [a for a in p._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        for a in p._actions:
            kind = getattr(a.type, "__name__", "")
            if a.option_strings and a.help != argparse.SUPPRESS and kind in ("int", "float", "int_or_auto", "value"):
                yield pytest.param(path, positionals, a, id=" ".join(path) + " " + a.option_strings[0])


def argv_for(path, positionals, action, value):
    argv = list(path)
    for pos in positionals:
        argv += [MISSING] * (1 if pos.nargs in (None, "?", "+") else 3 if pos.nargs == 3 else 1)
    return argv + [action.option_strings[0], value]


@pytest.mark.parametrize("path, positionals, action", list(numeric_flags()))
def test_a_value_past_the_bound_is_refused_at_once_in_one_line(path, positionals, action, capsys):
    huge = "1e30" if getattr(action.type, "__name__", "") == "float" else str(10**30)
    start = time.perf_counter()
    code = main(argv_for(path, positionals, action, huge))
    took = time.perf_counter() - start
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("rnnkit: using ")]
    assert code == 2, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(f"rnnkit: error: {action.dest}=") or action.dest + "=" in line, line
    assert huge in line or str(float(huge)) in line or f"{float(huge):g}" in line, line
    assert MISSING not in line, line                          # refused before any path was looked at
    assert any(word in line for word in ("<=", "at most", ", ", "between")), line
    assert took < 5, took


@pytest.mark.parametrize("argv, text", [
    (["textgen", "sample", MISSING, "--threads", "100000"], "threads=100000: expected an integer >= 1 and <= 1,024"),
    (["textgen", "sample", MISSING, "--max-tokens", "100000000"],
     "max_tokens=100000000: expected an integer >= 0 and <= 1,000,000"),
    (["textgen", "sample", MISSING, "--num-results", "100000"],
     "num_results=100000: expected an integer >= 1 and <= 1,024"),
    (["textgen", "sample", MISSING, "--beam", "100000"], "beam=100000: expected an integer >= 1 and <= 256"),
    (["seq2seq", "translate", MISSING, "x", "--beam", "100000"], "beam=100000: expected an integer >= 1 and <= 256"),
    (["textgen", "train", "--corpus", MISSING, "--hidden-size", "100000"],
     "hidden_size=100000: expected an integer >= 1 and <= 8,192, or 'auto'"),
    (["textgen", "train", "--corpus", MISSING, "--hidden-size", "8192", "--num-layers", "8"],
     "hidden_size=8192, num_layers=8: about 4.0 G parameters (15 GiB in float32); expected at most 1 G"),
])
def test_the_bounds_of_the_issue(argv, text, capsys):
    assert main(argv) == 2
    assert text in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--threads", "--max-tokens", "--num-results", "--beam"])
def test_the_help_says_the_bound(flag):
    sample = next(p for path, p in parsers(build_parser()) if path == ("textgen", "sample"))
    action = next(a for a in sample._actions if flag in a.option_strings)
    assert "at most" in action.help


def test_python_callers_get_the_same_bounds():
    from rnnkit.tasks.textgen.config import SampleConfig, TextGenConfig
    from rnnkit.training.config import TrainConfig

    with pytest.raises(ValueError, match="threads=100000: expected an integer >= 1 and <= 1,024"):
        TrainConfig(threads=100000)
    with pytest.raises(ValueError, match="beam=100000"):
        SampleConfig(beam=100000)
    with pytest.raises(ValueError, match="hidden_size=100000"):
        TextGenConfig(hidden_size=100000)
    assert _checks.MAX_THREADS == 1024
