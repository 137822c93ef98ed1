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
    assert ("11 characters (9 for training after holding out val_fraction=0.1) is too short for one batch of "
            "batch_size=64 x seq_len=100 (6401 training characters needed)") in err
