"""The command line: version, help on every flag, and the demo learning a pattern end to end."""

import argparse

import pytest

import rnnkit
from rnnkit.cli import build_parser, main


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


def test_group_without_verb_prints_its_help(capsys):
    assert main(["data"]) == 2
    assert "fetch" in capsys.readouterr().out


def test_demo_learns_a_repeating_pattern(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 3000)
    rc = main(["demo", "--corpus", str(corpus), "--hidden-size", "32", "--num-layers", "1",
               "--embedding-size", "8", "--seq-len", "16", "--batch-size", "8", "--epochs", "2",
               "--max-minutes", "1", "--seed-text", "abcd", "--length", "12", "--run-dir", str(tmp_path / "run")])
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
            "--seq-len", "8", "--batch-size", "4", "--epochs", "1", "--seed-text", "ab", "--length", "4",
            "--run-dir", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"rnnkit: error: {run}: holds an earlier textgen run, which training "
                                              f"again would overwrite; expected a new folder")
    assert main(argv + ["--overwrite"]) == 0
