"""Windows of a series for forecasting: (input window, target) pairs, gathered a batch at a time.

The windows take the lecture's parameters: ``lookback``, ``step``, ``delay``, ``min_index``/``max_index``,
``shuffle``, ``batch_size``; but a batch is one vectorised gather (or a view, no copy) instead of a Python
loop per row. :func:`lecture_generator` is the loop as the lecture writes it, kept as the reference.

The window convention is the lecture's: for a row ``r`` the inputs are rows ``r - lookback, r - lookback
+ step, ..., r - step`` and the target is row ``r + delay``. So the target lies ``delay + step`` rows after
the last input row. :class:`~rnnkit.tasks.forecast.task.Forecaster` counts its own ``delay`` from the last input
row instead (``24`` means 24 steps after the last observation) and converts.

The series itself (read, repaired, resampled) comes from :mod:`rnnkit.datasets.series`.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from rnnkit._checks import check_int, fail


def check_length(n: int, lookback: int, delay: int, name: str = "series") -> None:
    """Refuse a series with no room for one window and its target."""
    if n < lookback + delay:
        raise ValueError(f"{name}: {n} rows (after resampling) is shorter than lookback + delay = "
                         f"{lookback} + {delay} = {lookback + delay}; use a longer series or a shorter "
                         f"lookback/delay")


def check_window_args(lookback: int, step: int, delay: int, horizon: int = 1) -> None:
    """Refuse window parameters no window can have, naming the argument."""
    check_int("lookback", lookback, min=1)
    check_int("step", step, min=1)
    check_int("horizon", horizon, min=1)
    if lookback % step:
        fail("lookback", lookback, f"a multiple of step={step} (every window holds lookback // step rows)")
    check_int("delay", delay, min=-step + 1)


def window_offsets(lookback: int, step: int) -> np.ndarray:
    """Row offsets of a window's inputs relative to its row r: -lookback, -lookback + step, ..., -step."""
    return np.arange(-lookback, 0, step)


def window_batch(data: np.ndarray, rows: np.ndarray, lookback: int, step: int, delay: int,
                 target_data: np.ndarray, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (B, lookback // step, F) and targets (B, horizon, K) for the given rows, in two gathers.

    ``target_data`` (N, K) holds the target columns (a copy of ``data``'s columns, made once).
    """
    rows = np.asarray(rows)
    # np.take with a (B, L) index array copies whole rows of F values; a little faster than data[idx].
    x = np.take(data, rows[:, None] + window_offsets(lookback, step), axis=0)          # (B, L, F)
    y = np.take(target_data, rows[:, None] + delay + np.arange(horizon), axis=0)       # (B, H, K)
    return x, y


def all_windows(data: np.ndarray, lookback: int, step: int) -> np.ndarray:
    """Every window of ``data`` as one read-only strided view, no copy: ``view[k]`` is rows ``k, k + step,
    ..., k + lookback - step``, i.e. the window of the lecture's row ``k + lookback``. (N - lookback + 1, L, F)"""
    s_row, s_col = data.strides
    return np.lib.stride_tricks.as_strided(data, shape=(len(data) - lookback + 1, lookback // step, data.shape[1]),
                                           strides=(s_row, step * s_row, s_col), writeable=False)


class Windows:
    """Every (window, target) pair of a series, ready to be gathered a batch at a time.

    A window keeps every ``step``-th row, so it is not one block of memory in ``data``. Regrouping the rows by
    their phase (row mod step) once makes it one: ``phased[p]`` holds rows p, p + step, p + 2 step, ... and the
    window of the lecture's row r is the block ``phased[p, q:q + L]`` where r - lookback = q step + p.
    A batch of any rows is then B block copies (memcpy speed) instead of B x L small row copies, and
    consecutive rows (ordered batches) are a slice of a strided view, no copy at all.
    """

    def __init__(self, data: np.ndarray, lookback: int, step: int, delay: int, target_data: np.ndarray,
                 horizon: int = 1):
        self.lookback, self.step, self.delay, self.horizon = lookback, step, delay, horizon
        data = np.ascontiguousarray(data)
        n, f = data.shape
        length = lookback // step
        if step == 1:
            phased = data[None]                                           # (1, N, F): no copy needed
        else:
            m = -(-n // step)                                             # rows per phase (the last padded)
            padded = np.zeros((m * step, f), dtype=data.dtype)
            padded[:n] = data
            phased = np.ascontiguousarray(padded.reshape(m, step, f).transpose(1, 0, 2))   # (step, M, F)
        p_stride, r_stride, c_stride = phased.strides
        # (step, M - L + 1, L, F): [p, q] is the window of rows p + q step, ..., p + (q + L - 1) step
        self.phased = np.lib.stride_tricks.as_strided(
            phased, shape=(phased.shape[0], phased.shape[1] - length + 1, length, f),
            strides=(p_stride, r_stride, r_stride, c_stride), writeable=False)
        self.windows = all_windows(data, lookback, step)                 # [r - lookback]: a view of data
        self.target_runs = all_windows(np.ascontiguousarray(target_data), horizon, 1)   # [t]: rows t..t+H-1

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (B, L, F) and targets (B, H, K) of the lecture's rows ``rows`` (copies)."""
        rows = np.asarray(rows)
        q, p = np.divmod(rows - self.lookback, self.step)
        return self.phased[p, q], self.target_runs[rows + self.delay]

    def run(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The same for ``count`` consecutive rows from ``first``: read-only views, no copy."""
        start = first - self.lookback
        return self.windows[start:start + count], self.target_runs[first + self.delay:first + self.delay + count]


def generator(data: np.ndarray, lookback: int, delay: int, min_index: int = 0, max_index: int | None = None,
              shuffle: bool = False, batch_size: int = 128, step: int = 6, targets: int | Sequence[int] = 1,
              horizon: int = 1, rng: np.random.RandomState | np.random.Generator | None = None,
              copy: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The lecture's endless batch generator, vectorised; yields ``(samples, targets)``.

    Same parameters and the same batches as the lecture's per-row loop: rows are drawn at random from
    ``[min_index + lookback, max_index)`` when ``shuffle`` (with ``rng``, or numpy's global generator as in
    the lecture), else taken in order and wrapped around. ``targets`` is a column index (targets (B,), or
    (B, horizon) when ``horizon`` > 1) or a list of them ((B, K) or (B, horizon, K)).

    Ordered batches are strided views of ``data`` (no copy; ``copy=True`` gives arrays of their own);
    shuffled ones are B block copies each (see :class:`Windows`).
    """
    data = np.ascontiguousarray(data)
    if data.ndim != 2:
        fail("data", f"array of shape {data.shape}", "a 2-D array (rows, columns)")
    if max_index is None:
        max_index = len(data) - delay - horizon
    check_window_args(lookback, step, delay, horizon)
    check_int("batch_size", batch_size, min=1)
    if not (0 <= min_index and min_index + lookback < max_index <= len(data) - delay - horizon + 1):
        fail("max_index", max_index, f"an index in ({min_index + lookback}, {len(data) - delay - horizon + 1}] "
                                     f"(min_index + lookback < max_index, and the target of the last row "
                                     f"within the {len(data)} rows)")
    single = not isinstance(targets, (list, tuple, np.ndarray))
    cols = [targets] if single else list(targets)
    width = data.shape[1]
    for c in cols:   # numpy's own IndexError would name neither the argument nor the columns there are
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not -width <= c < width:
            fail("targets", targets, f"column indices of data's {width} columns (0 to {width - 1}, or "
                                     f"-{width} to -1 from the end)")
    windows = Windows(data, lookback, step, delay, data[:, cols], horizon)
    draw = rng.integers if isinstance(rng, np.random.Generator) else (rng or np.random).randint
    i = min_index + lookback
    while True:
        if shuffle:
            x, y = windows.batch(draw(min_index + lookback, max_index, size=batch_size))
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            count = min(batch_size, max_index - i)
            x, y = windows.run(i, count)                               # views of data, no copy
            if copy:
                x, y = x.copy(), y.copy()
            i += count
        if single:
            y = y[:, :, 0]                                               # (B, H)
        if horizon == 1:
            y = y[:, 0]                                                  # (B,) or (B, K)
        yield x, y


def lecture_generator(data, lookback, delay, min_index, max_index, shuffle=False, batch_size=128, step=6):
    """The lecture's generator as it is usually written: one Python iteration per row.

    Kept as the reference that :func:`generator` must equal batch for batch (tests) and beat on speed
    (``bench/windows.py``). For a row r the window is rows r - lookback ... r - 1 (every ``step``-th)
    and the target is column 1 of row r + delay.
    """
    if max_index is None:
        max_index = len(data) - delay - 1
    i = min_index + lookback
    while True:
        if shuffle:
            rows = np.random.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = np.zeros((len(rows), lookback // step, data.shape[-1]))
        targets = np.zeros((len(rows),))
        for j, row in enumerate(rows):
            indices = range(rows[j] - lookback, rows[j], step)
            samples[j] = data[indices]
            targets[j] = data[rows[j] + delay][1]
        yield samples, targets
