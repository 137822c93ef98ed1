"""Progress a user can follow, on a terminal and in a log file.

On a terminal, long work shows a tqdm bar. Written to a file or a pipe (``> train.log``, CI, nohup) a bar
is no use: it never ends its line, so the log shows nothing until the work is done. There the same work
prints whole lines instead, one every ``EVERY_S`` seconds and one each time another tenth of the work is
done (never two within ``MIN_GAP_S``, so that runs of a few seconds stay quiet). The total and the ETA are
those of the budget that will stop the run: the steps (epochs, ``min_steps``, ``max_steps``), or the clock
when ``max_minutes`` ends it first::

    step 1200/5000 (24%), epoch 1/3, loss 1.4321, 20113 chars/s, elapsed 1m52s, ETA 5m56s
    step 1200, epoch 2, loss 1.4321, 20113 chars/s, elapsed 1m52s/5m00s (37%), ETA 3m08s

Three pieces, for three kinds of work:

* ``TrainingProgress``: the Trainer's steps (on a terminal a bar per epoch, filled to the share of the whole
  run done; in a log, lines over the whole run).
* ``track(iterable, desc)``: any loop over batches a caller owns (a task's evaluation), wrapped.
* ``timed_pass(desc, expected_s)``: work the caller cannot see inside (the Trainer calling a task's
  ``evaluate``): the time it has taken, against what the previous pass took.

``show``: ``None`` decides by the stream (a bar on a terminal, lines elsewhere), ``True`` forces the bar,
``False`` shows nothing.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TextIO

from tqdm.auto import tqdm

EVERY_S = 30.0       # seconds between progress lines when not on a terminal
MIN_GAP_S = 2.0      # ... and never two lines closer than this (a short run prints none)
TENTHS = 10          # a line each time another 1/TENTHS of the known total is done
BAR_STEPS = 1000     # the bar's resolution: it shows the share of the run done, in thousandths
BAR_EVERY_S = 0.5    # seconds between redraws of the bar's text (a step is often much shorter)

# Loops inside track() now: a timed_pass around one (the Trainer's validation calling a task's evaluation
# that uses track) stays quiet, so the user sees one report of the pass, the more detailed one.
_tracking = 0


def show_mode(show: bool | None, stream: TextIO) -> str:
    """``"bar"`` on a terminal (or when forced), ``"lines"`` elsewhere, ``"off"`` when ``show`` is False."""
    if show is False:
        return "off"
    if show:
        return "bar"
    isatty = getattr(stream, "isatty", None)
    try:
        return "bar" if isatty is not None and isatty() else "lines"
    except ValueError:       # a closed stream
        return "lines"


def duration(seconds: float | None) -> str:
    """``45s``, ``3m07s``, ``2h05m``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _rate(count: float, seconds: float) -> str:
    value = count / max(seconds, 1e-9)
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


class LineSchedule:
    """When the next progress line is due: every ``EVERY_S`` seconds, and each time the done fraction
    passes another tenth; never within ``MIN_GAP_S`` of the previous line (or of the start)."""

    def __init__(self, fraction: float | None = None):
        self.last_time = time.monotonic()
        self.last_tenth = math.floor(fraction * TENTHS) if fraction is not None else 0

    def due(self, fraction: float | None = None) -> bool:
        now = time.monotonic()
        if now - self.last_time < MIN_GAP_S:
            return False
        tenth = math.floor(min(fraction, 1.0) * TENTHS) if fraction is not None else self.last_tenth
        if now - self.last_time >= EVERY_S or tenth > self.last_tenth:
            self.last_time, self.last_tenth = now, tenth
            return True
        return False


def _say(text: str, stream: TextIO) -> None:
    # tqdm.write keeps a line clear of an active bar; flushed at once, so a log file shows it now.
    tqdm.write(text, file=stream)
    stream.flush()


# ---------------------------------------------------------------------------------------------------------
# The Trainer's steps
# ---------------------------------------------------------------------------------------------------------

class TrainingProgress:
    """What the Trainer shows while it trains (see the module docstring).

    The Trainer calls ``start_epoch`` before an epoch's batches, ``step`` after every optimizer step,
    ``logged`` when it reads the loss back (every ``log_every`` steps), ``end_epoch`` after the batches,
    and ``budget_stop`` when ``max_minutes`` ends training. Per step nothing is read back from the device:
    the losses are summed as a tensor and read only when a line is printed.

    The total and the ETA are those of the budget that will stop the run (``limit``): the steps (the epochs
    times the batches per epoch, at least ``min_steps``, at most ``max_steps``) or ``max_minutes``, whichever
    the rate so far says ends first. By steps a line reads ``step 1200/5000 (24%), epoch 1/3, ...``; by the
    clock ``step 1200, epoch 2, ..., elapsed 1m52s/5m00s (37%), ETA 3m08s``, with no step total the run will
    never reach. (Early stopping may end a run sooner still; it cannot be foreseen.)
    """

    def __init__(self, show: bool | None, items_name: str = "items", stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.show = show
        self.mode = show_mode(show, self.stream)
        self.items_name = items_name
        self.bar: Any = None
        self._trainer: Any = None
        self.per_epoch: int | None = None
        self.total_steps: int | None = None
        self.schedule: LineSchedule | None = None
        self._fit_start = time.monotonic()
        self._fit_start_step: int | None = None
        self._paused_at: float | None = None    # when the last epoch's batches ended
        self._bound: str | None = None          # the last answer of limit(): "steps", "time" or None
        self._bar_figures: dict[str, str] = {}  # the loss and rate last read back, for the bar
        self._bar_shown = 0.0                   # when the bar's text was last redrawn
        self._reset_window()

    def _reset_window(self) -> None:
        # What the next line reports: the steps since the previous line.
        self._loss: Any = 0.0
        self._steps = 0
        self._items: Any = 0
        self._window_start = time.monotonic()

    def start_epoch(self, trainer: Any, per_epoch: int | None, total_steps: int | None = None) -> None:
        """Before an epoch's batches. ``total_steps`` (the Trainer's count for its schedule) is not used: the
        total shown is :func:`planned_steps`, which counts ``min_steps`` too."""
        self._trainer = trainer
        self.per_epoch = per_epoch
        self.total_steps = planned_steps(trainer.config, per_epoch)
        if self._fit_start_step is None:
            self._fit_start_step = trainer.step
        if self._paused_at is not None:
            # The epoch's end (validation, checkpoint) is not training: it counts in neither the rate nor
            # the time until the next line.
            pause = time.monotonic() - self._paused_at
            self._window_start += pause
            if self.schedule is not None:
                self.schedule.last_time += pause
            self._paused_at = None
        if self.mode == "bar":
            # One bar per epoch (each epoch leaves its line), filled to the share of the whole run that is done.
            self.bar = tqdm(total=BAR_STEPS, desc=self._epoch_text(trainer, self.limit(trainer)),
                            bar_format="{desc}", dynamic_ncols=True, file=self.stream)
            self._draw_bar(trainer)
        elif self.mode == "lines" and self.schedule is None:
            self.schedule = LineSchedule(self.fraction(trainer))

    def step(self, trainer: Any, loss: Any, n_items: Any) -> None:
        """After an optimizer step: ``loss`` a detached scalar tensor, ``n_items`` a number or a tensor."""
        if self.mode == "bar":
            if time.monotonic() - self._bar_shown >= BAR_EVERY_S:
                self._draw_bar(trainer)
            return
        if self.mode == "off":
            return
        self._loss = self._loss + loss        # stays on the device until a line is due
        self._steps += 1
        self._items = self._items + n_items
        if self.schedule.due(self.fraction(trainer)):
            _say(self.line(trainer), self.stream)
            self._reset_window()

    def logged(self, loss: float, items_per_s: float) -> None:
        """The loss read back every ``log_every`` steps: the bar's figures."""
        self._bar_figures = {"loss": f"loss {loss:.4f}", "rate": f"{items_per_s:.0f} {self.items_name}/s"}

    def end_epoch(self) -> None:
        self._paused_at = time.monotonic()
        if self.bar is not None:
            self._draw_bar(self._trainer)     # the epoch's last figures stay on its line
            self.bar.close()
            self.bar = None

    def budget_stop(self, trainer: Any, reserve_s: float | None, *, final_pass: bool = True) -> None:
        """Say that ``max_minutes`` ends training now, and what the final evaluation will take
        (``final_pass`` False: training stops between epochs, as another epoch's end would not fit)."""
        if self.mode == "off":
            return
        budget = 60 * trainer.config.max_minutes
        text = (f"time budget: training stops at step {trainer.step} after {duration(trainer.elapsed())} of "
                f"{duration(budget)}; ")
        if not final_pass:
            text += (f"what is left is less than an epoch's end takes (about {duration(reserve_s)}: validation "
                     f"and checkpoint), so the last epoch's figures and checkpoint stand")
        elif reserve_s:
            text += (f"the final validation pass and checkpoint follow (about {duration(reserve_s)}, as the last "
                     f"epoch's end took; counted in the budget)")
        else:
            text += ("the final validation pass and checkpoint follow (their length is not known yet: no epoch "
                     "has ended in this run, so they may run past the budget)")
        _say(text, self.stream)

    # -- which budget ends the run, and when -------------------------------------------------------------

    def _seconds_per_step(self, trainer: Any) -> float | None:
        """Wall seconds per step in this fit call so far (epoch ends included: they take the run's time too)."""
        done = trainer.step - (self._fit_start_step or 0)
        return (time.monotonic() - self._fit_start) / done if done > 0 else None

    def limit(self, trainer: Any) -> str | None:
        """The budget that will stop the run: ``"steps"`` (the epochs, min_steps or max_steps), ``"time"``
        (max_minutes), or None when neither is known (an epoch of unknown length and no other budget)."""
        budget = trainer.config.max_minutes
        if not budget:
            self._bound = "steps" if self.total_steps else None
        elif not self.total_steps:
            self._bound = "time"
        else:
            per_step = self._seconds_per_step(trainer)
            if per_step is not None:
                steps_left_s = max(self.total_steps - trainer.step, 0) * per_step
                self._bound = "time" if 60 * budget - trainer.elapsed() < steps_left_s else "steps"
            elif self._bound is None:
                self._bound = "time"      # no step taken yet: a time budget usually ends a run that has one
        return self._bound

    def fraction(self, trainer: Any) -> float | None:
        """The share of the run done: by steps or by the time budget, whichever is further on."""
        shares = []
        if self.total_steps:
            shares.append(trainer.step / self.total_steps)
        if trainer.config.max_minutes:
            shares.append(trainer.elapsed() / (60 * trainer.config.max_minutes))
        return max(shares) if shares else None

    def eta(self, trainer: Any, limit: str | None = None) -> float | None:
        """Seconds until the run ends: by the clock when the time budget stops it, else by the steps still to
        take at this call's rate (None when unknown)."""
        limit = limit if limit is not None else self.limit(trainer)
        if limit == "time":
            return max(60 * trainer.config.max_minutes - trainer.elapsed(), 0.0)
        per_step = self._seconds_per_step(trainer)
        if limit == "steps" and per_step is not None:
            return max(self.total_steps - trainer.step, 0) * per_step
        return None

    # -- what is shown -----------------------------------------------------------------------------------

    def _epoch_text(self, trainer: Any, limit: str | None) -> str:
        """``epoch 2/5`` when the steps end the run (the epochs they take), ``epoch 2`` when the clock does."""
        epoch = f"epoch {trainer.epoch + 1}"
        if limit == "steps" and self.per_epoch:
            return f"{epoch}/{math.ceil(self.total_steps / self.per_epoch)}"
        cfg = trainer.config
        if limit is None and cfg.max_steps is None and not getattr(cfg, "min_steps", 0):
            return f"{epoch}/{cfg.epochs}"        # batches of unknown number: the epochs end the run
        return epoch

    def _progress_texts(self, trainer: Any) -> tuple[str, str, str]:
        """(the step, the epoch, the time) parts of a line, by the budget that will stop the run."""
        limit = self.limit(trainer)
        step, elapsed = f"step {trainer.step}", f"elapsed {duration(trainer.elapsed())}"
        if limit == "steps":
            step += f"/{self.total_steps} ({100 * trainer.step / self.total_steps:.0f}%)"
        elif limit == "time":
            budget = 60 * trainer.config.max_minutes
            elapsed += f"/{duration(budget)} ({100 * min(trainer.elapsed() / budget, 1.0):.0f}%)"
        return step, self._epoch_text(trainer, limit), f"{elapsed}, ETA {duration(self.eta(trainer, limit))}"

    def line(self, trainer: Any) -> str:
        step, epoch, clock = self._progress_texts(trainer)
        loss = float(self._loss) / self._steps if self._steps else math.nan
        seconds = time.monotonic() - self._window_start
        return (f"{step}, {epoch}, loss {loss:.4f}, {_rate(float(self._items), seconds)} {self.items_name}/s, "
                f"{clock}")

    def _draw_bar(self, trainer: Any) -> None:
        """Fill the bar to the share done (by the budget that stops the run) and redraw its text."""
        step, epoch, clock = self._progress_texts(trainer)
        if self._bound == "time":
            share = trainer.elapsed() / (60 * trainer.config.max_minutes)
        else:
            share = trainer.step / self.total_steps if self.total_steps else 0.0
        text = ", ".join([step, *self._bar_figures.values(), clock]).replace("{", "{{").replace("}", "}}")
        self.bar.n = round(BAR_STEPS * min(share, 1.0))
        self.bar.set_description_str(epoch, refresh=False)
        # No budget known (batches of unknown number, no other limit): the figures without a bar.
        self.bar.bar_format = ("{desc}: {percentage:3.0f}%|{bar}| " if self._bound else "{desc}: ") + text
        self.bar.refresh()
        self._bar_shown = time.monotonic()


def planned_steps(config: Any, per_epoch: int | None) -> int | None:
    """The steps the run takes when no time budget or early stop ends it first: ``epochs`` x ``per_epoch``,
    or more epochs until ``min_steps`` (training goes on past ``epochs`` in whole epochs until then), at most
    ``max_steps``; None when it cannot be known (batches of unknown number and no ``max_steps``)."""
    steps = None
    if per_epoch:
        min_steps = getattr(config, "min_steps", 0) or 0
        steps = max(config.epochs, -(-min_steps // per_epoch)) * per_epoch       # ceil(min_steps / per_epoch)
    if config.max_steps is not None:
        steps = config.max_steps if steps is None else min(steps, config.max_steps)
    return steps


# ---------------------------------------------------------------------------------------------------------
# Loops and passes
# ---------------------------------------------------------------------------------------------------------

def track(iterable: Iterable, desc: str, *, total: int | None = None, unit: str = "batch",
          show: bool | None = None, stream: TextIO | None = None) -> Iterator:
    """Iterate over ``iterable`` with progress: ``for batch in track(batches, "evaluation"): ...``.

    A bar on a terminal; elsewhere a line every ``EVERY_S`` seconds and at each tenth (when the total is
    known), e.g. ``evaluation: 120/400 batches (30%), 12.3 batches/s, elapsed 10s, ETA 23s``.
    """
    global _tracking
    stream = stream or sys.stderr
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    mode = show_mode(show, stream)
    if mode == "off":
        yield from iterable
        return
    _tracking += 1
    try:
        if mode == "bar":
            yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True,
                            file=stream)
        else:
            yield from _track_lines(iterable, desc, total, unit, stream)
    finally:
        _tracking -= 1


def _track_lines(iterable: Iterable, desc: str, total: int | None, unit: str, stream: TextIO) -> Iterator:
    schedule, start, done = LineSchedule(0.0 if total else None), time.monotonic(), 0
    for item in iterable:
        yield item
        done += 1
        if schedule.due(done / total if total else None):
            elapsed = time.monotonic() - start
            units = _plural(unit)
            count = f"{done}/{total} {units} ({100 * done / total:.0f}%)" if total else f"{done} {units}"
            eta = f", ETA {duration(elapsed / done * (total - done))}" if total else ""
            _say(f"{desc}: {count}, {_rate(done, elapsed)} {units}/s, elapsed {duration(elapsed)}{eta}", stream)


@contextmanager
def timed_pass(desc: str, expected_s: float | None = None, *, show: bool | None = None,
               stream: TextIO | None = None) -> Iterator[None]:
    """``with timed_pass("validation", expected_s=96): evaluate(model)``: progress of work whose inside the
    caller cannot see, by the clock. A bar of seconds on a terminal; elsewhere a line every ``EVERY_S``
    seconds (``validation: 1m00s elapsed, about 1m36s expected``). A pass shorter than that shows nothing
    in a log. A background thread does the showing; it ends with the pass."""
    stream = stream or sys.stderr
    mode = show_mode(show, stream)
    if mode == "off":
        yield
        return
    start, done = time.monotonic(), threading.Event()
    expected = f", about {duration(expected_s)} expected" if expected_s else ""

    def lines() -> None:
        while not done.wait(EVERY_S):
            if not _tracking:
                _say(f"{desc}: {duration(time.monotonic() - start)} elapsed{expected}", stream)

    def bar() -> None:
        # The bar appears after a second, so that quick passes leave no trace on the terminal.
        if done.wait(1.0) or _tracking:
            return
        with tqdm(total=round(expected_s, 1) if expected_s else None, desc=desc, unit="s", leave=False,
                  bar_format="{desc}: {bar}{n:.0f}/{total:.0f} s" if expected_s else "{desc}: {n:.0f} s",
                  dynamic_ncols=True, file=stream) as b:
            while not done.wait(0.5):
                b.n = round(time.monotonic() - start, 1)
                b.refresh()

    thread = threading.Thread(target=bar if mode == "bar" else lines, name=f"progress: {desc}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
