"""The command line: version, help on every flag, one vocabulary (train and apply side), a --help that never
imports torch, signals during start-up, and the demo learning a pattern end to end."""

import argparse
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import rnnkit
from rnnkit.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {rnnkit.__version__}"


def test_every_flag_has_help_text():
    parsers = list(all_parsers(build_parser()))
    assert len(parsers) > 3
    for p in parsers:
        for action in p._actions:
            if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                assert action.help and action.help.strip(), f"{p.prog} {action.option_strings} has no help"


# -- one CLI vocabulary (DESIGN.md): checked on every parser, so a new command cannot drift ---------------

TRAIN_FLAGS = {"--epochs", "--max-minutes", "--lr", "--batch-size", "--optimizer", "--schedule", "--clip-grad-norm",
               "--early-stop-patience", "--seed", "--device", "--threads", "--precision", "--run-dir", "--resume",
               "--overwrite", "--dry-run"}
APPLY_VERBS = {"sample", "predict", "translate", "describe", "ask"}
# Spellings that the one vocabulary replaced, and what replaced them.
RETIRED = {"--out": "--run-dir or -o/--output", "--report": "-o/--output", "--patience": "--early-stop-patience",
           "--val-fraction": "--val-frac", "--vocab-size": "--num-words", "--max-words": "--num-words"}
REST_MARKUP = ("``", ":class:", ":func:", ":mod:", ":meth:", ":attr:")


def verbs_of(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def option_strings(parser):
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("parser", list(all_parsers(build_parser())), ids=lambda p: p.prog)
def test_every_help_renders_plainly_with_each_default_once(parser):
    text = parser.format_help()                       # raised for a '%' in a help text before
    assert not [m for m in REST_MARKUP if m in text], f"{parser.prog}: reST markup in --help"
    # a help text written without its f prefix shows the placeholder itself ("at most {_checks.MAX_BEAM}")
    assert not re.search(r"\{[A-Za-z_][\w.]*(:[^}]*)?\}", text), f"{parser.prog}: an unfilled {{...}} in --help"
    for action in parser._actions:
        if action.help:
            shown = (action.help % {**vars(action), "prog": parser.prog}) if "%(" in action.help else action.help
            assert shown.count("default:") <= 1, f"{parser.prog} {action.option_strings}: two defaults: {shown}"


def test_one_vocabulary_across_every_command():
    parsers = list(all_parsers(build_parser()))
    trainers = [p for p in parsers if p.prog.split()[-1] in ("train", "compare")]
    assert {p.prog for p in trainers} >= {"rnnkit textgen train", "rnnkit classify train",
                                          "rnnkit classify multilabel train", "rnnkit forecast train",
                                          "rnnkit forecast compare"}
    for p in trainers:
        missing = TRAIN_FLAGS - option_strings(p)
        assert not missing, f"{p.prog} lacks {sorted(missing)}"
        resume = next(a for a in p._actions if "--resume" in a.option_strings)
        assert resume.nargs == 0, f"{p.prog}: --resume is a flag that uses --run-dir"
    for p in parsers:
        for old, new in RETIRED.items():
            assert old not in option_strings(p), f"{p.prog}: {old} is spelled {new}"
        for a in p._actions:
            assert a.metavar != "BOOL", f"{p.prog} {a.option_strings}: booleans are --x / --no-x"
    # every group that trains has train, eval and one verb that applies the model
    for p in parsers:
        verbs = set(verbs_of(p))
        if "train" in verbs:
            assert "eval" in verbs and verbs & APPLY_VERBS, f"{p.prog}: has {sorted(verbs)}"


# -- the apply side: one name per idea, in flags and keyword arguments alike -----------------------------------

# Spellings the apply side retired (rnnkit 0.1), and what replaced them. They still parse for one release, hidden
# from --help, with a warning.
RETIRED_APPLY = {"--seed-text": "--prompt", "--sample-seed-text": "--sample-prompt", "--length": "--max-tokens",
                 "--sample-length": "--sample-max-tokens", "--max-length": "--max-tokens", "--random-seed": "--seed",
                 "--num-samples": "--num-results", "--n-best": "--num-results", "--top": "--num-results",
                 "--sample": "--no-greedy", "--weights": "--checkpoint (which weights) or --precision (export)"}
# What the verbs that apply a model offer, idea by idea.
APPLY_FLAGS = {
    "rnnkit textgen sample": {"--prompt", "--max-tokens", "--seed", "--greedy", "--no-greedy", "--num-results",
                              "--checkpoint", "--top-k"},
    "rnnkit seq2seq translate": {"--max-tokens", "--seed", "--greedy", "--no-greedy", "--num-results", "--top-k"},
    "rnnkit seq2seq eval": {"--max-tokens"},
    "rnnkit caption describe": {"--max-tokens", "--seed", "--greedy", "--no-greedy", "--checkpoint"},
    "rnnkit textgen eval": {"--checkpoint"},
    "rnnkit embed neighbors": {"--num-results"},
    "rnnkit embed analogy": {"--num-results"},
    "rnnkit export": {"--precision"},
    "rnnkit demo": {"--prompt", "--max-tokens", "--seed"},
    "rnnkit textgen train": {"--sample-prompt", "--sample-max-tokens", "--seed"},
}


def visible_options(parser):
    """The flags ``--help`` shows (an old spelling is parsed but hidden: help=SUPPRESS)."""
    return {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def test_apply_verbs_speak_the_one_vocabulary():
    parsers = {p.prog: p for p in all_parsers(build_parser())}
    for prog, flags in APPLY_FLAGS.items():
        missing = flags - visible_options(parsers[prog])
        assert not missing, f"{prog} lacks {sorted(missing)}"
    for p in parsers.values():
        for old, new in RETIRED_APPLY.items():
            assert old not in visible_options(p), f"{p.prog}: {old} is spelled {new}"
            # nor in any text of its help (--length-penalty and --top-k are other flags)
            assert not re.search(rf"(?<![\w-]){old}(?![\w-])", p.format_help()), f"{p.prog}: --help mentions {old}"


def test_help_groups_are_titled_by_role_never_by_class_name():
    for p in all_parsers(build_parser()):
        for group in p._action_groups:
            title = group.title or ""
            assert not re.search(r"[A-Z][a-z]+[A-Z]\w*|Config|config fields", title), f"{p.prog}: group {title!r}"


@pytest.mark.parametrize("argv, field, value, old, new", [
    (["textgen", "sample", "RUN", "--seed-text", "ab"], "prompt", "ab", "--seed-text", "--prompt"),
    (["textgen", "sample", "RUN", "--length", "5"], "max_tokens", 5, "--length", "--max-tokens"),
    (["textgen", "sample", "RUN", "--random-seed", "3"], "seed", 3, "--random-seed", "--seed"),
    (["textgen", "sample", "RUN", "--num-samples", "2"], "num_results", 2, "--num-samples", "--num-results"),
    (["textgen", "sample", "RUN", "--weights", "last"], "checkpoint", "last", "--weights", "--checkpoint"),
    (["textgen", "eval", "RUN", "--weights", "last"], "checkpoint", "last", "--weights", "--checkpoint"),
    (["textgen", "train", "--sample-seed-text", "ab"], "sample_prompt", "ab", "--sample-seed-text",
     "--sample-prompt"),
    (["textgen", "train", "--sample-length", "0"], "sample_max_tokens", 0, "--sample-length", "--sample-max-tokens"),
    (["seq2seq", "translate", "RUN", "x", "--sample"], "greedy", False, "--sample", "--no-greedy"),
    (["seq2seq", "translate", "RUN", "x", "--n-best", "2"], "num_results", 2, "--n-best", "--num-results"),
    (["seq2seq", "translate", "RUN", "x", "--random-seed", "2"], "seed", 2, "--random-seed", "--seed"),
    (["seq2seq", "translate", "RUN", "x", "--max-length", "7"], "max_tokens", 7, "--max-length", "--max-tokens"),
    (["seq2seq", "eval", "RUN", "--max-length", "7"], "max_tokens", 7, "--max-length", "--max-tokens"),
    (["embed", "neighbors", "w", "--top", "3"], "num_results", 3, "--top", "--num-results"),
    (["embed", "analogy", "a", "b", "c", "--top", "3"], "num_results", 3, "--top", "--num-results"),
    (["export", "RUN", "-o", "x.h", "--weights", "int8"], "precision", "int8", "--weights", "--precision"),
    (["demo", "--seed-text", "ab"], "prompt", "ab", "--seed-text", "--prompt"),
    (["demo", "--length", "4"], "max_tokens", 4, "--length", "--max-tokens"),
])
def test_an_old_spelling_still_parses_with_a_warning_naming_the_new_one(argv, field, value, old, new):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = build_parser().parse_args(argv)
    assert getattr(args, field) == value
    assert [str(w.message) for w in caught] == [f"{old} is renamed {new}; the old name goes in the next release"]
    assert all(w.category is FutureWarning for w in caught)


def test_the_old_spelling_warning_is_one_line_before_the_command_runs(tmp_path):
    # A process of its own: pytest records warnings instead of letting rnnkit print them.
    done = subprocess.run([sys.executable, "-m", "rnnkit", "export", str(tmp_path / "none"), "-o",
                           str(tmp_path / "x.h"), "--weights", "int8"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "rnnkit: warning: --weights is renamed --precision; the old name goes in the next release",
        f"rnnkit: error: run={str(tmp_path / 'none')!r}: no such run directory"]


def test_bench_scripts_use_no_retired_spelling():
    flags = "|".join(re.escape(old) for old in RETIRED_APPLY if old != "--sample")
    retired_flag = re.compile(rf"(?<![\w-])({flags})(?![\w-])|[\"']--sample[\"']")
    # keyword arguments of the apply methods (generate, translate, neighbors, export, the task configs)
    retired_kwarg = re.compile(r"[(,]\s*(seed_text|sample_seed_text|length|sample_length|max_length|random_seed|"
                               r"num_samples|n_best|top|weights|sample)=(?!=)")
    scripts = sorted((ROOT / "bench").glob("*.py"))
    assert scripts
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        for pattern in (retired_flag, retired_kwarg):
            found = pattern.search(text)
            assert not found, f"{path.name}: {found.group(0)!r} is a retired spelling (see RETIRED_APPLY)"


# -- --help never imports torch; rnnkit --help imports no command module ---------------------------------------

def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output (``import time: self | cumulative | name``)."""
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("prog", sorted(p.prog for p in all_parsers(build_parser())))
def test_help_prints_without_importing_torch(prog):
    argv = prog.split()[1:] + ["--help"]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "rnnkit", *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {prog}")
    modules = imported_modules(done.stderr)
    assert "rnnkit.cli" in modules                    # the importtime output was read
    torch = sorted(m for m in modules if m == "torch" or m.startswith("torch."))
    assert not torch, f"rnnkit {' '.join(argv)} imported {torch[:3]}"
    if prog == "rnnkit":
        # The top level lists the groups without importing any of them.
        groups = sorted(m for m in modules if m in {module for module, _ in COMMANDS.values()})
        assert not groups, f"rnnkit --help imported {groups}"


def test_the_top_level_lists_each_group_with_its_own_help_line():
    full = {a.dest: a.help for action in build_parser()._actions
            if isinstance(action, argparse._SubParsersAction) for a in action._choices_actions}
    assert full == {name: help_line for name, (_, help_line) in COMMANDS.items()}


def test_models_help_names_the_registry_variable():
    from rnnkit.runs import commands, registry
    assert commands.MODELS_VARIABLE == registry.MODELS_VARIABLE


def test_forecast_long_gaps_choices_are_the_series_ones():
    from rnnkit.datasets import series
    from rnnkit.tasks.forecast import config
    assert config.LONG_GAPS == series.LONG_GAPS


# -- Ctrl-C and SIGTERM in the first seconds: one line, never a traceback ------------------------------------

def handler_installed(pid: int, signum: int) -> bool:
    """Whether process ``pid`` catches ``signum`` (its SigCgt mask in /proc): rnnkit's main() has begun."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


# The child: rnnkit's main() on a command that stands for a slow start (a busy machine can take 15 s to import
# torch): it imports torch, then waits. A signal sent once main() has begun lands in one or the other.
SLOW_START = """
import sys, time
import rnnkit.tasks.forecast.cli as forecast_cli

def slow_eval(args):
    import torch  # noqa: F401
    time.sleep(120)

forecast_cli._eval_cmd = slow_eval
from rnnkit.cli import main
sys.exit(main(["forecast", "eval", "RUN"]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="watches /proc/PID/status for the handler")
@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "rnnkit: interrupted"),
                                                (signal.SIGTERM, 143, "rnnkit: terminated (SIGTERM)")])
def test_a_signal_during_start_up_ends_in_one_line(signum, code, line):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_START], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        # Python catches SIGINT from its start; SIGTERM is caught once main() has put rnnkit's handler in place.
        while not handler_installed(proc.pid, signal.SIGTERM):
            assert proc.poll() is None, f"rnnkit ended before its handler was seen: {proc.communicate()}"
            assert time.monotonic() < deadline, "rnnkit's SIGTERM handler was not installed within 60 s"
            time.sleep(0.001)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert (proc.returncode, err, out) == (code, line + "\n", "")


def test_group_without_verb_prints_its_help(capsys):
    assert main(["data"]) == 2
    assert "fetch" in capsys.readouterr().out


def test_demo_learns_a_repeating_pattern(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 3000)
    rc = main(["demo", "--corpus", str(corpus), "--hidden-size", "32", "--num-layers", "1",
               "--embedding-size", "8", "--seq-len", "16", "--batch-size", "8", "--epochs", "2",
               "--max-minutes", "1", "--prompt", "abcd", "--max-tokens", "12", "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    out = capsys.readouterr().out
    # a model that learned the stream continues it exactly at low temperature
    assert "abcd" + "abcdabcdabcd" in out
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_demo_rejects_a_corpus_too_small(tmp_path, capsys):
    corpus = tmp_path / "small.txt"
    corpus.write_text("hello world")
    assert main(["demo", "--corpus", str(corpus), "--run-dir", "none"]) == 2
    err = capsys.readouterr().err
    assert ("11 characters (9 for training after holding out val_frac=0.1) is too short for one batch of "
            "batch_size=64 x seq_len=100 (6401 training characters needed)") in err


def test_demo_refuses_to_replace_an_earlier_run_unless_told(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    argv = ["demo", "--corpus", str(corpus), "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4",
            "--seq-len", "8", "--batch-size", "4", "--epochs", "1", "--prompt", "ab", "--max-tokens", "4",
            "--run-dir", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"rnnkit: error: {run}: holds an earlier textgen run, which training "
                                              f"again would overwrite; expected a new folder")
    assert main(argv + ["--overwrite"]) == 0
