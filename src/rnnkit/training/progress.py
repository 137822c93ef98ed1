"""Progress a user can follow, on a terminal and in a log file.

On a terminal, long work shows a tqdm bar. Written to a file or a pipe (``> train.log``, CI, nohup) a bar
is no use: it never ends its line, so the log shows nothing until the work is done. There the same work
prints whole lines instead, one every ``EVERY_S`` seconds and one each time another tenth of the work is
done (never two within ``MIN_GAP_S``, so that runs of a few seconds stay quiet)::

    step 1200/5000 (24%), epoch 1/3, loss 1.4321, 20113 chars/s, elapsed 1m52s, ETA 5m56s

Three pieces, for three kinds of work:

* ``TrainingProgress``: the Trainer's steps (a bar per epoch on a terminal, lines over the whole run).
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
    """

    def __init__(self, show: bool | None, items_name: str = "items", stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.show = show
        self.mode = show_mode(show, self.stream)
        self.items_name = items_name
        self.bar: Any = None
        self.total_steps: int | None = None
        self.schedule: LineSchedule | None = None
        self._fit_start = time.monotonic()
        self._fit_start_step: int | None = None
        self._paused_at: float | None = None    # when the last epoch's batches ended
        self._reset_window()

    def _reset_window(self) -> None:
        # What the next line reports: the steps since the previous line.
        self._loss: Any = 0.0
        self._steps = 0
        self._items: Any = 0
        self._window_start = time.monotonic()

    def start_epoch(self, trainer: Any, per_epoch: int | None, total_steps: int | None) -> None:
        self.total_steps = total_steps
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
        cfg = trainer.config
        if self.mode == "bar":
            self.bar = tqdm(total=per_epoch, initial=trainer.batch_in_epoch, desc=f"epoch {trainer.epoch + 1}/"
                            f"{cfg.epochs}", unit="batch", dynamic_ncols=True, file=self.stream)
        elif self.mode == "lines" and self.schedule is None:
            self.schedule = LineSchedule(self.fraction(trainer))

    def step(self, trainer: Any, loss: Any, n_items: Any) -> None:
        """After an optimizer step: ``loss`` a detached scalar tensor, ``n_items`` a number or a tensor."""
        if self.mode == "bar":
            self.bar.update(1)
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
        if self.bar is not None:
            rate_key = "items_s" if self.items_name == "items" else f"{self.items_name}/s"
            self.bar.set_postfix({"loss": f"{loss:.4f}", rate_key: f"{items_per_s:.0f}"}, refresh=False)

    def end_epoch(self) -> None:
        self._paused_at = time.monotonic()
        if self.bar is not None:
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

    # -- one line --------------------------------------------------------------------------------------

    def fraction(self, trainer: Any) -> float | None:
        """The share of the run done: by steps or by the time budget, whichever is further on."""
        shares = []
        if self.total_steps:
            shares.append(trainer.step / self.total_steps)
        if trainer.config.max_minutes:
            shares.append(trainer.elapsed() / (60 * trainer.config.max_minutes))
        return max(shares) if shares else None

    def eta(self, trainer: Any) -> float | None:
        """Seconds of training left: by the steps still to take at this call's rate, or by the time budget."""
        etas = []
        done = trainer.step - (self._fit_start_step or 0)
        if self.total_steps and done > 0:
            per_step = (time.monotonic() - self._fit_start) / done
            etas.append(max(self.total_steps - trainer.step, 0) * per_step)
        if trainer.config.max_minutes:
            etas.append(max(60 * trainer.config.max_minutes - trainer.elapsed(), 0.0))
        return min(etas) if etas else None

    def line(self, trainer: Any) -> str:
        total = f"/{self.total_steps} ({100 * trainer.step / self.total_steps:.0f}%)" if self.total_steps else ""
        loss = float(self._loss) / self._steps if self._steps else math.nan
        seconds = time.monotonic() - self._window_start
        return (f"step {trainer.step}{total}, epoch {trainer.epoch + 1}/{trainer.config.epochs}, loss {loss:.4f}, "
                f"{_rate(float(self._items), seconds)} {self.items_name}/s, elapsed {duration(trainer.elapsed())}, "
                f"ETA {duration(self.eta(trainer))}")


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
