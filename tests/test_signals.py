"""Ctrl-C and SIGTERM at every phase boundary of the long commands (rnnkit.training.phases): each command ends
with exit 130 (SIGINT) or 143 (SIGTERM) within seconds, one ``rnnkit:`` line about it and no traceback, a
checkpoint when it had trained a step, and a run that ``--resume`` finishes.

The signals are real: ``RNNKIT_SIGNAL_AT=PHASE:SIGNAL`` makes the process signal itself at that boundary. As in
test_kills.py, one driver process (this file run as a script) imports torch and rnnkit once and forks one child
per command, two at a time; the start-up window (before torch is imported) is tested on real ``python -m
rnnkit`` processes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_fit import train_command  # noqa: E402  (tiny data and train flags of each task)

SIGNALS = {"SIGINT": 130, "SIGTERM": 143}
LINES = {"SIGINT": "rnnkit: interrupted", "SIGTERM": "rnnkit: terminated (SIGTERM)"}
TRAINED = ("first_step", "validation", "sampling", "save")   # phases after which a checkpoint exists


def cases(folder: Path, runs: dict[str, Path]) -> list[dict]:
    """The matrix: every phase of textgen and classify train with both signals; the main phases of the other
    train verbs and of compare with one signal each; the apply verbs after their run is loaded."""
    out = []

    def add(name, argv, phase, sig, run=None, resume=None):
        out.append({"id": f"{name}@{phase}:{sig}", "argv": argv, "phase": phase, "signal": sig,
                    "run": run and str(run), "resume": resume})

    for task, phases in (("textgen", ("data", "probe", "model", "config", "first_step", "validation", "sampling",
                                      "save")),
                         ("classify", ("data", "model", "config", "first_step", "validation", "save")),
                         ("multilabel", ("data", "first_step", "save")),
                         ("forecast", ("data", "first_step", "save")),
                         ("seq2seq", ("data", "first_step", "save"))):
        base = train_command(task, folder / "data")
        for phase in phases:
            for sig in (SIGNALS if task in ("textgen", "classify") else
                        (("SIGINT", "SIGTERM")[phases.index(phase) % 2],)):
                run = folder / "runs" / f"{task}-{phase}-{sig}"
                argv = base + ["--run-dir", str(run), "--epochs", "1"]
                if task == "textgen":
                    argv += ["--sample-max-tokens", "5"]
                    if phase == "probe":                     # the width probe runs for --hidden-size auto
                        i = argv.index("--hidden-size")
                        argv[i + 1] = "auto"
                        argv += ["--max-minutes", "1"]
                resume = (argv[:argv.index("train") + 1] + ["--run-dir", str(run), "--resume"]
                          if phase in TRAINED + ("config",) else None)
                add(task + " train", argv, phase, sig, run, resume)
    compare = train_command("forecast", folder / "data")
    compare = ["forecast", "compare"] + compare[2:compare.index("--model")] + ["--models", "naive", "gru",
                                                                                "--epochs", "1", "--seeds", "1"]
    for phase, sig in (("data", "SIGINT"), ("first_step", "SIGTERM"), ("save", "SIGINT")):
        run = folder / "runs" / f"compare-{phase}"
        add("forecast compare", compare + ["--run-dir", str(run)], phase, sig,
            resume=(compare[:2] + ["--models", "naive", "gru", "--run-dir", str(run), "--resume"]
                    if phase != "data" else None))
    apply = {
        "textgen sample": ["textgen", "sample", str(runs["textgen"]), "--max-tokens", "20"],
        "textgen eval": ["textgen", "eval", str(runs["textgen"])],
        "seq2seq translate": ["seq2seq", "translate", str(runs["seq2seq"]), "3 plus 4"],
        "classify eval": ["classify", "eval", str(runs["classify"]), "--csv", str(folder / "data" / "reviews.csv")],
        "export": ["export", str(runs["forecast"]), "-o", str(folder / "f.h")],
    }
    for name, argv in apply.items():
        for sig in SIGNALS:
            add(name, argv, "loaded", sig)
    for sig in SIGNALS:
        add("models register", ["models", "register", str(runs["textgen"]), f"m{sig.lower()}"], "save", sig)
    return out


# -- the driver (this file run as a script) -------------------------------------------------------------------

def run_case(case: dict, log: Path) -> dict:
    """Fork a child that runs the case's command with its signal armed; how it ended, and how fast."""
    from rnnkit.cli import main
    from rnnkit.training import phases
    mark = log.with_suffix(".sent")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.environ[phases.SIGNAL_VARIABLE] = f"{case['phase']}:{case['signal']}"
            real = phases._signal_at

            def noted(name, at):          # the instant the signal is sent, for the parent's clock
                if not phases._fired and at.partition(":")[0] == name:
                    mark.write_text(repr(time.monotonic()))
                real(name, at)
            phases._signal_at = noted
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = main(case["argv"])
        except BaseException as err:                 # noqa: BLE001 - the child must never return
            print(f"child failed: {err!r}", flush=True)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ended = time.monotonic()
    sent = float(mark.read_text()) if mark.is_file() else None
    result = {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status),
              "seconds": None if sent is None else ended - sent, "log": log.read_text()}
    run = Path(case["run"]) if case.get("run") else None
    result["checkpoint"] = bool(run and (run / "checkpoint.json").is_file())
    if case.get("resume"):
        os.environ.pop(phases.SIGNAL_VARIABLE, None)
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                fd = os.open(log.with_suffix(".resume"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                code = main(case["resume"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        result["resume_rc"] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        result["resume_log"] = log.with_suffix(".resume").read_text()[-2000:]
        done = [run] if run else sorted(p.parent for p in Path(case["resume"][-2]).glob("*/config.json"))
        result["finished"] = all(json.loads((r / "config.json").read_text())["finished"] for r in done) and bool(done)
    return result


def drive(folder: Path) -> list[dict]:
    import torch
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])    # (what each child would import on its own)
    from rnnkit.cli import build_parser, main
    build_parser()
    os.environ["RNNKIT_MODELS"] = str(folder / "models")
    (folder / "data").mkdir(parents=True)
    runs = {}
    for task in ("textgen", "classify", "forecast", "seq2seq"):
        runs[task] = folder / "finished" / task
        with open(os.devnull, "w") as null:
            stderr, sys.stderr = sys.stderr, null
            try:
                assert main(train_command(task, folder / "data") + ["--run-dir", str(runs[task])]) == 0, task
            finally:
                sys.stderr = stderr
    todo = cases(folder, runs)
    logs = folder / "logs"
    logs.mkdir()
    # Two cases at a time (two CPUs), each in its own forked driver.
    running: dict[int, int] = {}
    for i, case in enumerate(todo):
        if len(running) == 2:
            pid, _ = os.wait()
            running.pop(pid)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                result = run_case(case, logs / f"{i}.log")
                (logs / f"{i}.json").write_text(json.dumps({**case, **result}))
                code = 0
            finally:
                os._exit(code)
        running[pid] = i
    while running:
        pid, _ = os.wait()
        running.pop(pid)
    return [json.loads((logs / f"{i}.json").read_text()) for i in range(len(todo))]


if __name__ == "__main__":
    print(json.dumps(drive(Path(sys.argv[1]))))


# -- the tests -------------------------------------------------------------------------------------------------

def check_stop(case: dict, result: dict, limit: float = 3.0) -> list[str]:
    """What is wrong with how a signalled command ended (empty: nothing)."""
    problems = []
    sig = case["signal"]
    log = result["log"]
    if result["rc"] != SIGNALS[sig]:
        problems.append(f"exit {result['rc']}, expected {SIGNALS[sig]}")
    if result.get("seconds") is None:
        problems.append("the phase was never reached")
    elif result["seconds"] > limit:
        problems.append(f"took {result['seconds']:.1f} s after the signal")
    ours = [line for line in log.splitlines() if line.startswith("rnnkit:") and "CPU thread" not in line]
    if ours != [LINES[sig]]:
        problems.append(f"rnnkit lines {ours}, expected [{LINES[sig]!r}]")
    if "Traceback" in log or "Exception ignored" in log:
        problems.append("a traceback")
    return problems


def test_a_signal_at_every_phase_stops_the_command_with_one_line_and_a_run_that_resumes(tmp_path):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    failures = []
    for r in report:
        problems = check_stop(r, r)
        if r["phase"] in TRAINED and r.get("run") and not r["checkpoint"]:
            problems.append("no checkpoint after a trained step")
        if r["phase"] in ("data", "model", "probe") and r.get("run") and Path(r["run"], "checkpoints").exists():
            problems.append("a checkpoint before training")
        if r.get("resume"):
            if r["resume_rc"] != 0 or not r["finished"]:
                problems.append(f"resume: exit {r['resume_rc']}, finished {r.get('finished')}: "
                                f"{r['resume_log'][-600:]}")
        if problems:
            failures.append(f"{r['id']}: {'; '.join(problems)}\n{r['log'][-1500:]}")
    assert not failures, "\n\n".join(failures)
    worst = max(r["seconds"] for r in report)
    print(f"\n{len(report)} signalled commands, {sum(bool(r.get('resume')) for r in report)} resumed; slowest "
          f"stop {worst:.2f} s; {time.monotonic() - started:.1f} s")


def test_a_signal_while_starting_up_is_one_line(tmp_path):
    """Real processes: before anything is imported (start) and right after torch is (imports)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat.\n" * 40)
    argv = [sys.executable, "-m", "rnnkit", "textgen", "train", "--corpus", str(corpus), "--dry-run",
            "--run-dir", str(tmp_path / "run")]
    for phase, sig in (("start", "SIGINT"), ("start", "SIGTERM"), ("imports", "SIGTERM")):
        env = {**os.environ, "RNNKIT_SIGNAL_AT": f"{phase}:{sig}"}
        began = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        case = {"signal": sig}
        result = {"rc": proc.returncode, "seconds": 0.0, "log": proc.stdout + proc.stderr}
        assert check_stop(case, result) == [], (phase, sig, result["log"][-2000:])
        assert not (tmp_path / "run").exists()
        assert time.monotonic() - began < 60


def test_a_sigterm_that_some_code_swallowed_still_stops_training(tmp_path, capsys, monkeypatch):
    """A signal handler's exception raised inside a finalizer or a library's broad ``except`` is lost; the
    CLI keeps the SIGTERM and raises it again at the next training step (before: the run went on to its end)."""
    from rnnkit.cli import main
    from rnnkit.training import Trainer
    fit = Trainer.fit

    def fit_swallowing(self, *args, **kwargs):
        def swallow(trainer):
            if trainer.step == 2:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.01)            # (the handler runs here, and its exception is swallowed)
                except BaseException:           # noqa: BLE001 - what a careless library does
                    pass
        self.add_callback("on_step_end", swallow)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit_swallowing)
    run = tmp_path / "run"
    assert main(train_command("textgen", tmp_path) + ["--run-dir", str(run)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == LINES["SIGTERM"]
    # Stopped right after the step it came in, with that step in the checkpoint.
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 2
