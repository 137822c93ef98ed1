"""Kills, signals and faults, tested the way they happen: real training processes of each task's CLI are
killed (SIGKILL) at every point inside a checkpoint save and resumed; SIGTERM ends a run with a checkpoint;
every failure of the CLI is one line.

The kills run in one driver process (this file run as a script): it imports torch and rnnkit once, then
forks one child per training run, so that dozens of real processes start in milliseconds, not seconds each.
A child sets ``RNNKIT_FAULT_AT=N``: the N-th fault point of its checkpoint saves (see
``rnnkit.runs.io.fault_point``: in the middle of each file, after each file, around the commit,
the clean-up and the top-level copies) SIGKILLs it. The next child resumes the run it left.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

KILL_POINTS = range(1, 19)      # every fault point of a save with new best weights (fewer without them)


# -- the tiny runs: one per task, through the CLI ------------------------------------------------------------

def write_data(folder: Path) -> dict[str, list[str]]:
    """Tiny data for each task, and the flags of its fresh train command (the run directory is added)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog ate the hat.\n" * 40)
    rng = np.random.default_rng(0)
    filler = ["the", "film", "was", "a", "story", "with", "music", "plot"]
    lines = ["text,label"]
    for i in range(48):
        words = list(rng.choice(filler, size=5)) + ["great" if i % 2 else "awful"]
        lines.append(f"{' '.join(words)},{'pos' if i % 2 else 'neg'}")
    reviews = folder / "reviews.csv"
    reviews.write_text("\n".join(lines) + "\n")
    t = np.arange(200)
    series = folder / "series.csv"
    series.write_text("time,y\n" + "".join(
        f"{np.datetime64('2022-05-01T00') + np.timedelta64(int(i), 'h')}:00:00Z,{10 + 5 * np.sin(i / 4):.4f}\n"
        for i in t))
    tiny = ["--lr", "0.01", "--early-stop-patience", "None", "--min-steps", "0"]
    return {
        "textgen": ["textgen", "train", "--corpus", str(corpus), "--hidden-size", "16", "--num-layers", "1",
                    "--embedding-size", "8", "--seq-len", "16", "--batch-size", "8", "--sample-max-tokens", "0", *tiny],
        "classify": ["classify", "train", "--csv", str(reviews), "--model", "lstm", "--hidden-size", "4",
                     "--embedding-size", "4", "--batch-size", "16", *tiny],
        "forecast": ["forecast", "train", "--csv", str(series), "--time-col", "time", "--target", "y",
                     "--lookback", "12", "--delay", "2", "--model", "gru", "--hidden-size", "8",
                     "--batch-size", "32", *tiny],
    }


def use_command(task: str, run: str, data: dict[str, list[str]]) -> list[str]:
    """A command that loads the finished run and applies it."""
    if task == "textgen":
        return ["textgen", "sample", run, "--prompt", "the ", "--max-tokens", "10"]
    if task == "classify":
        return ["classify", "predict", run, "a great film"]
    return ["forecast", "predict", run]


def checkpoint_step(run: Path):
    """The step of the run's current checkpoint (None when it has none)."""
    pointer = run / "checkpoint.json"
    return json.loads(pointer.read_text())["step"] if pointer.is_file() else None


# -- the driver (this file run as a script) -------------------------------------------------------------------

def run_child(argv: list[str], log: Path, fault_at: int | None = None, term_when=None) -> dict:
    """Fork a child that runs ``rnnkit <argv>``; returns how it ended. ``term_when()``: poll it and send
    SIGTERM once it is true."""
    from rnnkit.cli import main
    pid = os.fork()
    if pid == 0:                                     # the child: one training process
        try:
            if fault_at is None:
                os.environ.pop("RNNKIT_FAULT_AT", None)
            else:
                os.environ["RNNKIT_FAULT_AT"] = str(fault_at)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            print(f"$ rnnkit {' '.join(argv)}  (RNNKIT_FAULT_AT={fault_at})", flush=True)
            rc = main(argv)
        except BaseException as err:                 # noqa: BLE001 - the child must never return
            print(f"child failed: {err!r}", flush=True)
            rc = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    if term_when is not None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:                                  # it ended by itself, before it was to be stopped
                return ended(argv, fault_at, status)
            if term_when():
                break
            time.sleep(0.01)
        os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return ended(argv, fault_at, status)


def ended(argv: list[str], fault_at: int | None, status: int) -> dict:
    return {"argv": argv, "fault_at": fault_at,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


def drive(folder: Path, tasks: list[str]) -> dict:
    """Warm up once, then run each task's chain (``run_task``) in its own forked process, side by side."""
    import torch
    torch.set_num_threads(1)                 # before any fork: children inherit one thread, no idle pool
    # What every child would otherwise spend seconds on, done once: torch's optimizers import
    # torch._dynamo on first use; the first figure loads matplotlib's fonts; the parser imports every task.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    from rnnkit.report.plots import plot_history
    plot_history([{"event": "train", "epoch": 0, "step": 1, "loss": 1.0},
                  {"event": "epoch", "epoch": 0, "step": 1, "train_loss": 1.0, "val_loss": 1.0}],
                 folder / "warm-up.png")
    from rnnkit.cli import build_parser
    build_parser()
    data = write_data(folder / "data")
    pids = {}
    for task in tasks:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                (folder / f"{task}.json").write_text(json.dumps(run_task(task, folder, data)))
                code = 0
            finally:
                os._exit(code)
        pids[task] = pid
    for task, pid in pids.items():
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (task, status)
    return {task: json.loads((folder / f"{task}.json").read_text()) for task in tasks}


def run_task(task: str, folder: Path, data: dict[str, list[str]]) -> dict:
    """A fresh run of one epoch; then one resumed child per kill point, each SIGKILLed inside a save; then
    a child stopped by SIGTERM; then a resume that finishes, and a command that uses the run."""
    run = folder / task
    log = folder / f"{task}.log"
    steps = [run_child(data[task] + ["--epochs", "1", "--run-dir", str(run)], log)]
    resume = [task, "train", "--run-dir", str(run), "--resume"]
    for n in KILL_POINTS:
        before = checkpoint_step(run)
        result = run_child(resume + ["--epochs", "1000"], log, fault_at=n)
        steps.append({**result, "before": before, "after": checkpoint_step(run)})
    before = checkpoint_step(run)
    result = run_child(resume + ["--epochs", "1000"], log,
                       term_when=lambda: (checkpoint_step(run) or 0) > (before or 0))
    steps.append({**result, "before": before, "after": checkpoint_step(run)})
    # Finish: one more epoch than the checkpoint holds.
    pointer = json.loads((run / "checkpoint.json").read_text())
    epoch = json.loads((run / pointer["folder"] / "trainer_state.json").read_text())["tree"]["trainer"]["epoch"]
    steps.append(run_child(resume + ["--epochs", str(epoch + 1)], log))
    steps.append(run_child(use_command(task, str(run), data), log))
    leftovers = [p.name for p in run.rglob("*.tmp")] + sorted(p.name for p in (run / "checkpoints").iterdir())[1:]
    return {"steps": steps, "final_epochs": epoch + 1, "leftovers": leftovers}


if __name__ == "__main__":
    out = drive(Path(sys.argv[1]), sys.argv[2].split(","))
    print(json.dumps(out))


# -- the tests -------------------------------------------------------------------------------------------------

def test_every_kill_inside_a_save_leaves_a_run_that_resumes_and_finishes(tmp_path):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), "textgen,classify,forecast"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    logs = {task: (tmp_path / f"{task}.log").read_text()[-3000:] for task in report}
    killed = resumed = 0
    for task, result in report.items():
        steps = result["steps"]
        fresh, *kills, term, finish, use = steps
        assert fresh["rc"] == 0, logs[task]
        for k in kills:
            # Every child got through --resume (from the last complete checkpoint) and was killed in a save.
            assert k["signal"] == signal.SIGKILL, (task, k, logs[task])
            assert k["after"] >= k["before"], (task, k)
        killed += len(kills)
        # A killed run was resumed when the next process trained on from it: killed in a save of its own,
        # stopped by SIGTERM after saving, or finished.
        resumed += sum(after["signal"] == signal.SIGKILL or after["rc"] in (0, 143)
                       for after in steps[2:2 + len(kills)])
        assert term["rc"] == 143 and term["after"] > term["before"], (task, term, logs[task])
        assert finish["rc"] == 0, (task, finish, logs[task])
        assert use["rc"] == 0, (task, use, logs[task])
        assert result["leftovers"] == [], task
        # Some kills came before the commit point (the checkpoint stayed), some after (it moved on).
        assert {k["after"] == k["before"] for k in kills} == {True, False}, (task, kills)
    seconds = time.monotonic() - started
    print(f"\nkills: {killed} tried, {resumed} resumed; {len(report)} SIGTERMs saved; all {len(report)} runs "
          f"finished and load; {seconds:.1f} s")
    assert killed == resumed == 3 * len(KILL_POINTS)


# -- every fault of the CLI is one line --------------------------------------------------------------------------

@pytest.mark.parametrize("exc, line", [
    (KeyError("textgen"), "rnnkit: error: KeyError: 'textgen'"),
    (TypeError("'NoneType' object is not subscriptable"),
     "rnnkit: error: TypeError: 'NoneType' object is not subscriptable"),
    (AttributeError("'CDLL' object has no attribute 'sample'"),
     "rnnkit: error: AttributeError: 'CDLL' object has no attribute 'sample'"),
    (PermissionError(13, "Permission denied", "runs/x/config.json"),
     "rnnkit: error: runs/x/config.json: Permission denied"),
    (ValueError("corpus: the text is empty;\n  expected text"),
     "rnnkit: error: corpus: the text is empty; expected text"),
    (MemoryError(), "rnnkit: error: MemoryError"),
], ids=["KeyError", "TypeError", "AttributeError", "OSError", "ValueError", "MemoryError"])
def test_every_exception_is_one_line_and_the_traceback_is_opt_in(monkeypatch, capsys, exc, line):
    from rnnkit.cli import main

    def failing(args):
        raise exc

    monkeypatch.setattr("rnnkit.tasks.textgen.cli.cmd_sample", failing)
    monkeypatch.delenv("RNNKIT_DEBUG", raising=False)
    assert main(["textgen", "sample", "run"]) == 2
    # (a busy machine adds a note on the CPU threads before it: not an error line)
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == line and [e for e in err if e.startswith("rnnkit: error")] == [line]
    monkeypatch.setenv("RNNKIT_DEBUG", "1")
    assert main(["textgen", "sample", "run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err and err.endswith("\n" + line + "\n")


def test_interrupts_exit_130_and_sigterm_143(monkeypatch, capsys):
    from rnnkit.cli import main
    from rnnkit.training.trainer import Terminated
    handler = signal.getsignal(signal.SIGTERM)
    for exc, code, text in ((KeyboardInterrupt(), 130, "rnnkit: interrupted\n"),
                            (Terminated("SIGTERM"), 143, "rnnkit: terminated (SIGTERM)\n")):
        def failing(args):
            raise exc
        monkeypatch.setattr("rnnkit.tasks.textgen.cli.cmd_sample", failing)
        assert main(["textgen", "sample", "run"]) == code
        assert capsys.readouterr().err == text
    assert signal.getsignal(signal.SIGTERM) == handler     # main puts the handler it replaced back


@pytest.fixture(scope="module")
def textgen_run(tmp_path_factory):
    """A tiny finished textgen run (two epochs), trained through the CLI."""
    from rnnkit.cli import main
    folder = tmp_path_factory.mktemp("textgen")
    data = write_data(folder / "data")
    run = folder / "run"
    assert main(data["textgen"] + ["--epochs", "2", "--run-dir", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(textgen_run, tmp_path):
    import shutil
    return Path(shutil.copytree(textgen_run, tmp_path / "run"))


def _edit_trainer_state(run: Path, edit) -> Path:
    """Edit trainer_state.json by hand and update its digest in checkpoint.json (a consistent edit)."""
    import hashlib
    pointer = json.loads((run / "checkpoint.json").read_text())
    path = run / pointer["folder"] / "trainer_state.json"
    doc = json.loads(path.read_text())
    edit(doc["tree"])
    path.write_text(json.dumps(doc))
    pointer["files"]["trainer_state.json"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (run / "checkpoint.json").write_text(json.dumps(pointer))
    return path


def _first_scalar(tree):
    state = tree["optimizer"]["state"]["__items__"][0][1]
    return state["step"]


@pytest.mark.parametrize("edit, field", [
    (lambda t: t["trainer"].update(step="abc"), "trainer.step='abc': expected an integer >= 0"),
    (lambda t: t["trainer"].pop("epoch"), "trainer.epoch is missing: expected an integer >= 0"),
    (lambda t: _first_scalar(t).update(dtype="os.system"),
     "/optimizer/state/0/step/dtype='os.system': expected a torch dtype name such as 'float32' or 'int64'"),
], ids=["step", "epoch", "dtype"])
def test_a_bad_training_state_is_one_line_naming_file_and_field(run_copy, capsys, edit, field):
    from rnnkit.cli import main
    path = _edit_trainer_state(run_copy, edit)
    capsys.readouterr()
    assert main(["textgen", "train", "--run-dir", str(run_copy), "--resume", "--epochs", "3"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"rnnkit: error: {path}: {field}"


def test_damaged_weights_are_one_line_naming_the_file(run_copy, capsys):
    from rnnkit.cli import main
    best = run_copy / "best.safetensors"
    data = bytearray(best.read_bytes())
    for i in range(len(data) - 2000, len(data) - 1000):       # 1,000 flipped bytes in the tensor data
        data[i] ^= 0xFF
    best.write_bytes(bytes(data))
    assert main(["textgen", "sample", str(run_copy), "--max-tokens", "5", "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"rnnkit: error: {best}: damaged: the sha256 of its tensor data")


def test_a_bad_metrics_line_never_blocks_a_model(run_copy):
    from rnnkit.cli import _format_warning, main
    lines = (run_copy / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, '{"event": "train", "loss": 1.0,, garbage')
    (run_copy / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    message = f"{run_copy / 'metrics.jsonl'}: line 2 skipped: not a JSON record"
    with pytest.warns(UserWarning, match=re.escape(message)) as caught:
        assert main(["textgen", "sample", str(run_copy), "--prompt", "the ", "--max-tokens", "5"]) == 0
    # The CLI shows a warning as one line.
    w = caught[0]
    assert _format_warning(w.message, w.category, w.filename, w.lineno) == f"rnnkit: warning: {w.message}\n"


def test_a_diverging_run_stops_with_one_line_naming_the_step(tmp_path, capsys, monkeypatch):
    # The loss blows up at the third step (as with a far too large learning rate; --lr is capped at 100, where
    # this small model does not diverge, so the loss is made to).
    from rnnkit.cli import main
    from rnnkit.tasks.textgen.task import TextGenerator
    loss, calls = TextGenerator._loss, []

    def exploding(self, *args):
        value, state, count = loss(self, *args)
        calls.append(1)
        return (value * float("inf") if len(calls) >= 3 else value), state, count
    monkeypatch.setattr(TextGenerator, "_loss", exploding)
    data = write_data(tmp_path / "data")
    assert main(data["textgen"] + ["--epochs", "3", "--run-dir", str(tmp_path / "run")]) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("rnnkit: error: the training loss became ")
    assert " step " in line and "training diverged; try a lower --lr (now 0.01) or set --clip-grad-norm" in line
