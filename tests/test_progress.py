"""Progress a user can follow in a log: periodic training lines, evaluation passes, and a time budget that
holds with the final validation pass in it."""

import io
import re
import time
from types import SimpleNamespace

import pytest
import torch

from rnnkit.training import TrainConfig, Trainer
from rnnkit.training import progress
from rnnkit.training.progress import LineSchedule, TrainingProgress, duration, planned_steps, timed_pass, track

from test_train import mlp, regression_problem

LINE = re.compile(r"step (\d+)(?:/(\d+) \((\d+)%\))?, epoch (\d+)(?:/(\d+))?, loss ([\d.]+|nan), ([\d.]+) (\w+)/s, "
                  r"elapsed (\S+?)(?:/(\S+) \((\d+)%\))?, ETA (\S+)")


@pytest.fixture
def no_gap(monkeypatch):
    """Lines as soon as they are due (a real run waits MIN_GAP_S = 2 s before its first)."""
    monkeypatch.setattr(progress, "MIN_GAP_S", 0.0)


def recording(compute_loss):
    """compute_loss that also keeps each step's loss, to check the lines' figures by hand."""
    losses = []

    def wrapped(model, batch, state):
        loss, state, n = compute_loss(model, batch, state)
        losses.append(loss.item())
        return loss, state, n
    return wrapped, losses


def test_a_log_gets_a_line_at_each_tenth_with_step_loss_rate_elapsed_and_eta(no_gap, capsys):
    train_batches, compute_loss, evaluate = regression_problem()       # 8 batches per epoch
    compute_loss, losses = recording(compute_loss)
    Trainer(mlp(), TrainConfig(epochs=5, lr=1e-2), items_name="rows").fit(train_batches, compute_loss, evaluate)
    err = capsys.readouterr().err                                       # captured: not a terminal
    lines = [LINE.fullmatch(line) for line in err.splitlines() if line.startswith("step ")]
    assert all(lines) and len(lines) == 10
    steps = [int(m[1]) for m in lines]
    assert steps == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]              # 40 steps: one line per tenth
    previous = 0
    for m, step in zip(lines, steps):
        assert m[2] == "40" and int(m[3]) == round(100 * step / 40)
        assert int(m[4]) == (step - 1) // 8 + 1 and m[5] == "5"
        # the loss is the mean over the steps since the previous line, as printed to 4 decimals
        assert float(m[6]) == pytest.approx(sum(losses[previous:step]) / (step - previous), abs=6e-5)
        assert float(m[7]) > 0 and m[8] == "rows"
        previous = step
    assert lines[-1][12] == "0s" and lines[-1][10] is None               # nothing left at the last step
    # the per-epoch summary lines are still there, after the progress lines of their epoch
    assert err.index("step 8/40") < err.index("epoch 1/5, step 8: train_loss") < err.index("step 12/40")


def test_without_a_known_total_lines_come_by_the_clock(no_gap, monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.05)
    train_batches, compute_loss, _ = regression_problem()

    def slow(model, batch, state):
        time.sleep(0.02)
        return compute_loss(model, batch, state)
    batches = iter(train_batches(0))                                    # no len(): the total is unknown
    Trainer(mlp(), TrainConfig(epochs=1)).fit(batches, slow)
    lines = [LINE.fullmatch(line) for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert len(lines) >= 2 and all(lines)
    assert all(m[2] is None and m[12] == "?" and m[5] == "1" for m in lines)   # no total, no ETA; the epochs end it


def test_a_terminal_gets_the_bar_and_show_false_prints_nothing(no_gap, capsys):
    train_batches, compute_loss, evaluate = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=2), progress=True).fit(train_batches, compute_loss, evaluate)
    err = capsys.readouterr().err
    # one bar per epoch, filled to the share of the whole run: the first epoch ends at half of it
    assert "epoch 1/2:  50%|" in err and "step 8/16 (50%)" in err and "epoch 2/2: 100%|" in err
    assert "step 16/16 (100%)" in err and not re.search(r"^step \d+", err, re.M)
    Trainer(mlp(), TrainConfig(epochs=2), progress=False).fit(train_batches, compute_loss, evaluate)
    assert capsys.readouterr().err == ""


def test_the_final_validation_pass_is_counted_in_the_time_budget(capsys):
    """Validation takes 0.8 s; the budget is 3 s. Training stops early enough for the last pass to end
    within the budget (without that, the run would end about 0.8 s late)."""
    train_batches, compute_loss, evaluate = regression_problem()

    def slow_step(model, batch, state):
        time.sleep(0.01)
        return compute_loss(model, batch, state)

    def slow_evaluate(model):
        time.sleep(0.8)
        return evaluate(model)
    budget = 3.0
    trainer = Trainer(mlp(), TrainConfig(epochs=1000, max_minutes=budget / 60))
    began = time.monotonic()
    trainer.fit(train_batches, slow_step, slow_evaluate)
    took = time.monotonic() - began
    assert trainer.stop_reason == "max_minutes" and trainer.epoch >= 1
    assert budget - 1.3 < took <= budget + 0.5
    err = capsys.readouterr().err
    stop = re.search(r"time budget: training stops at step (\d+) after (\S+) of 3s; the final validation pass and "
                     r"checkpoint follow \(about (\S+), as the last epoch's end took; counted in the budget\)", err)
    if stop is None:       # the budget ran out between two epochs: no further pass at all
        stop = re.search(r"time budget: training stops at step (\d+) after \S+ of 3s; what is left is less than "
                         r"an epoch's end takes \(about 1s: validation and checkpoint\)", err)
    assert stop and int(stop[1]) == trainer.step


def test_a_budget_that_ends_in_the_first_epoch_announces_the_pass_of_unknown_length(capsys):
    train_batches, compute_loss, evaluate = regression_problem(n=4000)  # 500 batches: the budget ends first

    def slow_step(model, batch, state):
        time.sleep(0.01)
        return compute_loss(model, batch, state)
    trainer = Trainer(mlp(), TrainConfig(epochs=1, max_minutes=0.5 / 60))
    trainer.fit(train_batches, slow_step, evaluate)
    assert trainer.stop_reason == "max_minutes" and trainer.epoch == 0 and trainer.step < 500
    assert ("the final validation pass and checkpoint follow (their length is not known yet: no epoch has ended in "
            "this run, so they may run past the budget)") in capsys.readouterr().err


# -- the total and the ETA are those of the budget that stops the run ----------------------------------------

def fake_run(monkeypatch, steps: int, seconds_per_step: float, per_epoch: int = 100, **budgets) -> list:
    """TrainingProgress's lines over ``steps`` steps of a run on a fake clock (what it reads of a Trainer:
    its step, epoch, config and elapsed time); each step adds 100 items."""
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    config = SimpleNamespace(**{"epochs": 20, "max_steps": None, "max_minutes": None, "min_steps": 0, **budgets})
    run = SimpleNamespace(config=config, step=0, epoch=0, elapsed=lambda: clock[0] - 1000.0)
    out = io.StringIO()                                                 # not a terminal: lines
    shown = TrainingProgress(None, "chars", stream=out)
    shown.start_epoch(run, per_epoch)
    for _ in range(steps):
        clock[0] += seconds_per_step
        run.step += 1
        shown.step(run, torch.tensor(1.5), 100)
        if run.step % per_epoch == 0:
            shown.end_epoch()
            run.epoch += 1
            shown.start_epoch(run, per_epoch)
    return out.getvalue().splitlines()


def test_when_the_time_budget_ends_the_run_first_lines_count_time_not_steps(no_gap, monkeypatch):
    """20 epochs of 100 steps at 1 s a step would take 2000 s; the 5-minute budget ends the run first."""
    lines = fake_run(monkeypatch, 150, 1.0, max_minutes=5)
    assert lines == [f"step {s}, epoch {(s - 1) // 100 + 1}, loss 1.5000, 100 chars/s, elapsed {duration(s)}/5m00s "
                     f"({s // 3}%), ETA {duration(300 - s)}" for s in (30, 60, 90, 120, 150)]   # each tenth of 5 min


def test_when_the_steps_end_the_run_first_lines_count_steps(no_gap, monkeypatch):
    """The same 2000 steps at 1/64 s a step take 31 s: the epochs end the run before the 5-minute budget."""
    lines = fake_run(monkeypatch, 1000, 1 / 64, max_minutes=5)
    assert lines[4] == "step 1000/2000 (50%), epoch 10/20, loss 1.5000, 6400 chars/s, elapsed 16s, ETA 16s"
    assert [int(LINE.fullmatch(line)[1]) for line in lines] == [200, 400, 600, 800, 1000]


def test_min_steps_and_max_steps_set_the_step_total(no_gap, monkeypatch):
    # min_steps: training goes on past the 2 epochs (200 steps) to 500 steps, 5 epochs of 100
    lines = fake_run(monkeypatch, 250, 0.5, epochs=2, min_steps=500)
    assert lines[-1] == "step 250/500 (50%), epoch 3/5, loss 1.5000, 200 chars/s, elapsed 2m05s, ETA 2m05s"
    lines = fake_run(monkeypatch, 150, 0.5, epochs=20, max_steps=300)
    assert lines[-1] == "step 150/300 (50%), epoch 2/3, loss 1.5000, 200 chars/s, elapsed 1m15s, ETA 1m15s"
    budgets = SimpleNamespace(epochs=3, max_steps=None, min_steps=0)
    assert planned_steps(budgets, 40) == 120 and planned_steps(budgets, None) is None
    assert planned_steps(SimpleNamespace(epochs=3, max_steps=None, min_steps=500), 40) == 520   # 13 whole epochs
    assert planned_steps(SimpleNamespace(epochs=3, max_steps=200, min_steps=500), 40) == 200   # max_steps is a limit
    assert planned_steps(SimpleNamespace(epochs=3, max_steps=200, min_steps=0), None) == 200
    assert planned_steps(TrainConfig(epochs=3), 40) == 120              # the real config
    assert planned_steps(TrainConfig(epochs=3, min_steps=130), 40) == 160


def test_a_run_the_clock_stops_shows_time_in_the_log_and_on_the_bar(no_gap, monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.2)
    monkeypatch.setattr(progress, "BAR_EVERY_S", 0.0)
    train_batches, compute_loss, _ = regression_problem()

    def slow(model, batch, state):
        time.sleep(0.01)
        return compute_loss(model, batch, state)
    config = TrainConfig(epochs=1000, max_minutes=1.5 / 60)              # 8000 steps would take 80 s
    trainer = Trainer(mlp(), config, items_name="rows").fit(train_batches, slow)
    assert trainer.stop_reason == "max_minutes"
    lines = [LINE.fullmatch(line) for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert len(lines) >= 3 and all(lines)
    for m in lines:
        assert m[2] is None and m[5] is None and m[10] == "2s"          # no step or epoch total: the time's
        elapsed = float(m[9][:-1])
        assert int(m[11]) == pytest.approx(100 * elapsed / 1.5, abs=35)  # elapsed is rounded to whole seconds
    assert [m[12] for m in lines][-1] in ("0s", "1s")
    Trainer(mlp(), config, progress=True).fit(train_batches, slow)       # a terminal: the bar counts time too
    err = capsys.readouterr().err
    assert re.search(r"epoch 1: +\d+%\|", err) and re.search(r"elapsed \ds/2s \(\d+%\)", err)
    assert not re.search(r"epoch \d+/1000: ", err) and not re.search(r"step \d+/", err)


def test_a_long_validation_pass_shows_lines_by_the_clock(monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.1)
    train_batches, compute_loss, evaluate = regression_problem()

    def slow_evaluate(model):
        time.sleep(0.35)
        return evaluate(model)
    Trainer(mlp(), TrainConfig(epochs=2)).fit(train_batches, compute_loss, slow_evaluate)
    err = capsys.readouterr().err
    first = re.findall(r"^validation after step 8: (\d+)s elapsed$", err, re.M)
    second = re.findall(r"^validation after step 16: (\d+)s elapsed, about (\d+)s expected$", err, re.M)
    assert len(first) >= 2 and len(second) >= 2                          # the second knows the first's length
    assert err.index("validation after step 8") < err.index("epoch 1/2, step 8")


def test_track_reports_a_loop_of_batches(no_gap, capsys):
    seen = list(track(range(20), "evaluation"))
    assert seen == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    pattern = re.compile(r"evaluation: (\d+)/20 batches \((\d+)%\), [\d.]+ batches/s, elapsed \S+, ETA \S+")
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches) and [int(m[1]) for m in matches] == list(range(2, 21, 2))
    assert list(track(iter("abc"), "x", show=False)) == ["a", "b", "c"] and capsys.readouterr().err == ""


def test_track_on_a_terminal_is_a_bar(capsys):
    assert list(track([1, 2, 3], "evaluation", show=True)) == [1, 2, 3]
    err = capsys.readouterr().err
    assert "\revaluation:   0%|" in err and "| 0/3 [" in err and "batches/s" not in err   # tqdm's bar, not lines


def test_timed_pass_is_quiet_when_short_and_off(capsys):
    with timed_pass("quick"):
        pass
    with timed_pass("off", 10.0, show=False):
        time.sleep(0.05)
    assert capsys.readouterr().err == ""


def test_a_tracked_loop_inside_a_timed_pass_is_reported_once(no_gap, monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.05)
    with timed_pass("validation"):                      # the Trainer's view: the pass from outside
        for _ in track(range(10), "evaluation"):        # the task's loop: batch by batch
            time.sleep(0.03)
    err = capsys.readouterr().err
    assert "evaluation: 10/10 batches (100%)" in err and "validation:" not in err
    assert progress._tracking == 0


def test_timed_pass_on_a_terminal_is_a_bar_of_seconds(capsys):
    with timed_pass("validation", 2.0, show=True):
        time.sleep(1.7)
    err = capsys.readouterr().err
    assert "\rvalidation: " in err and re.search(r"[01]/2 s", err)


def test_line_schedule_waits_for_the_clock_or_the_next_tenth(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    s = LineSchedule(0.0)
    clock[0] = 101.0
    assert not s.due(0.5)                 # half done, but within MIN_GAP_S (2 s) of the start: quiet
    clock[0] = 102.5
    assert s.due(0.5) and not s.due(0.55)  # once due, the next tenth (0.6) is needed
    clock[0] = 105.0
    assert s.due(0.61)
    clock[0] = 134.0
    assert not s.due(0.65)
    clock[0] = 135.1
    assert s.due(0.65)                    # 30 s since the last line


def test_duration():
    assert [duration(s) for s in (0, 44.6, 187, 7500, None, float("nan"))] == ["0s", "45s", "3m07s", "2h05m",
                                                                               "?", "?"]
