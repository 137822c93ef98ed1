"""``Task.fit``, the one sequence every task runs (tasks/base.py), checked through each task's train command:
a budget that allows no update is refused before any work; a completed fit leaves a finished run (config.json
marked finished, final.safetensors); a fit stopped by Ctrl-C leaves an unfinished one."""

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.tasks.base import FINAL_WEIGHTS

TASKS = ("textgen", "classify", "multilabel", "forecast", "seq2seq")
TINY = ["--lr", "0.01", "--early-stop-patience", "None", "--epochs", "2", "--min-steps", "0"]


def train_command(task: str, folder: Path) -> list[str]:
    """A train command of ``task`` on tiny data written into ``folder`` (the run directory is added)."""
    if task == "textgen":
        corpus = folder / "corpus.txt"
        corpus.write_text("the cat sat on the mat.\nthe dog ate the hat.\n" * 40)
        return ["textgen", "train", "--corpus", str(corpus), "--hidden-size", "16", "--num-layers", "1",
                "--embedding-size", "8", "--seq-len", "16", "--batch-size", "8", "--sample-max-tokens", "0", *TINY]
    if task == "classify":
        rng = np.random.default_rng(0)
        words = ["the", "film", "was", "a", "story", "with", "music", "plot"]
        rows = [f"{' '.join(rng.choice(words, size=5))} {'great' if i % 2 else 'awful'},{'pos' if i % 2 else 'neg'}"
                for i in range(48)]
        reviews = folder / "reviews.csv"
        reviews.write_text("text,label\n" + "\n".join(rows) + "\n")
        return ["classify", "train", "--csv", str(reviews), "--model", "lstm", "--hidden-size", "4",
                "--embedding-size", "4", "--batch-size", "16", *TINY]
    if task == "multilabel":
        return ["classify", "multilabel", "train", "--num-stays", "40", "--hidden-size", "4", "--num-layers", "1",
                "--batch-size", "8", *TINY]
    if task == "forecast":
        series = folder / "series.csv"
        series.write_text("time,y\n" + "".join(
            f"{np.datetime64('2022-05-01T00') + np.timedelta64(i, 'h')}:00:00Z,{10 + 5 * np.sin(i / 4):.4f}\n"
            for i in range(200)))
        return ["forecast", "train", "--csv", str(series), "--time-col", "time", "--target", "y", "--lookback", "12",
                "--delay", "2", "--model", "gru", "--hidden-size", "8", "--batch-size", "32", *TINY]
    pairs = folder / "pairs.tsv"
    pairs.write_text("".join(f"{a} plus {b}\t{a + b}\n" for a in range(12) for b in range(12)))
    return ["seq2seq", "train", "--tsv", str(pairs), "--hidden-size", "8", "--embedding-size", "8",
            "--encoder-layers", "1", "--decoder-layers", "1", "--batch-size", "16", "--val-decode", "4", *TINY]


def finished(run: Path) -> bool:
    return json.loads((run / "config.json").read_text())["finished"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("flag, value, expected", [
    ("--epochs", "0", "epochs=0: expected at least 1 (a fit that makes no update trains nothing)"),
    ("--max-steps", "0", "max_steps=0: expected at least 1, or None for no limit (a fit that makes no update "
                         "trains nothing)"),
    ("--max-minutes", "0", "max_minutes=0.0: expected more than 0, or None for no limit (a fit that makes no "
                           "update trains nothing)"),
])
def test_a_budget_that_allows_no_update_is_refused_before_any_work(task, flag, value, expected, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_command(task, tmp_path) + [flag, value, "--run-dir", str(run)]) == 2
    # One line (besides the CPU-threads note a busy machine gets), and no run directory left behind.
    lines = [line for line in capsys.readouterr().err.splitlines() if "CPU thread" not in line]
    assert lines == [f"rnnkit: error: {expected}"]
    assert not run.exists()


@pytest.mark.parametrize("task", TASKS)
def test_a_completed_fit_is_a_finished_run_and_an_interrupted_one_is_not(task, tmp_path, capsys, ctrl_c_at_step):
    done, stopped = tmp_path / "done", tmp_path / "stopped"
    command = train_command(task, tmp_path)
    assert main(command + ["--run-dir", str(done)]) == 0
    assert finished(done) and (done / FINAL_WEIGHTS).is_file()

    ctrl_c_at_step(1)
    assert main(command + ["--run-dir", str(stopped)]) == 130
    assert not finished(stopped) and not (stopped / FINAL_WEIGHTS).exists()
    assert "resume with: " in capsys.readouterr().err


def test_a_dry_run_is_not_resumed(tmp_path, capsys):
    # A dry run builds its vocabulary from a sample of the data: resuming it would fail on mismatched weights.
    from rnnkit.cli import main
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd efgh " * 400)
    run = tmp_path / "run"
    flags = ["--corpus", str(corpus), "--hidden-size", "8", "--num-layers", "1", "--seq-len", "8",
             "--batch-size", "4", "--sample-max-tokens", "0"]
    assert main(["textgen", "train", *flags, "--run-dir", str(run), "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["textgen", "train", "--run-dir", str(run), "--resume"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"rnnkit: error: {run}: a dry run (--dry-run), which cannot be resumed: it was built from a sample of "
        f"the data; expected a run trained without --dry-run: train it again (--overwrite)")


def test_sigterm_says_how_to_resume(tmp_path, capsys, monkeypatch):
    # SIGTERM saves a checkpoint and ends the command with 143, saying (as Ctrl-C does) the command that goes on.
    from rnnkit.cli import Terminated, main
    from rnnkit.training import Trainer

    fit = Trainer.fit

    def fit_with_sigterm(self, *args, **kwargs):
        def term(trainer):
            if trainer.step >= 1:
                raise Terminated("SIGTERM")
        self.add_callback("on_step_end", term)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit_with_sigterm)
    corpus, run = tmp_path / "abc.txt", tmp_path / "run"
    corpus.write_text("abcd efgh " * 400)
    assert main(["textgen", "train", "--corpus", str(corpus), "--hidden-size", "8", "--num-layers", "1",
                 "--seq-len", "8", "--batch-size", "4", "--sample-max-tokens", "0", "--run-dir", str(run)]) == 143
    err = capsys.readouterr().err
    assert f"resume with: rnnkit textgen train --run-dir {run} --resume\n" in err
    assert err.endswith("rnnkit: terminated (SIGTERM)\n") and (run / "checkpoint.json").is_file()
