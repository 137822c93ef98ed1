"""Series preparation for forecasting: from a table to one regular multivariate series.

Preparation turns a table (``{column: array}``, as ``rnnkit.datasets.load_table`` returns) into one regular
multivariate series: keep the rows of one station (``filters=["origin=JFK"]``), parse the time column, sort,
detect irregular timestamps and resample onto the regular grid (the most common spacing), fill short runs of
NaN by linear interpolation (up to ``interpolate_limit`` steps), fill longer gaps in input columns with the
last value before them (``long_gaps``), turn compass angles into sine and cosine (``angles``), and report
every change in plain words. Bad input is refused with a message naming the argument and the value, and the
file and line of a bad row when the table came from a file: a text or all-NaN target, an infinite value, a
missing or unreadable timestamp, a series too short, and a grid absurdly larger than the table (a typo year
2200 among hourly rows of 2013 would make 1.6 M empty steps; see :data:`MAX_STEPS_PER_ROW`). All of them are
found before resampling allocates anything.

Then the features a model reads beside the values (time of day, week and year as sine and cosine) and the
normalisation fitted on the training rows. The (input window, target) pairs cut from the series are in
:mod:`rnnkit.datasets.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rnnkit._checks import check_choice, check_int, fail
from rnnkit.datasets.files import MISSING, Table, row_place

# The regular grid may have at most this many steps per row of the table, or MIN_MAX_STEPS, whichever is
# larger. Real gaps (missing hours, weekends) stay far below; a timestamp with a wrong year goes far above.
MAX_STEPS_PER_ROW = 10
MIN_MAX_STEPS = 100_000
# At most this many bad rows are listed in one message.
SHOWN_ROWS = 5

# ---------------------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Series:
    """A regular multivariate series.

    ``times`` (N,) datetime64 (or int64 step numbers), one per row, ``freq`` apart; ``values`` (N, F)
    float64, NaN where a value is still missing; ``columns`` names the F columns, the ``targets`` first;
    ``report`` lists what preparation found and changed, one line each.
    """

    times: np.ndarray
    values: np.ndarray
    columns: list[str]
    targets: list[str]
    freq: np.timedelta64 | int
    report: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)


_ISO = "timestamps in ISO 8601 form such as '2013-01-01T06:00:00' or '1949-01' (or integer step numbers)"


def parse_times(values: np.ndarray, name: str = "time_col", place: Callable[[int], str] | None = None,
                column: str | None = None) -> np.ndarray:
    """Timestamps as numpy datetime64 (ISO 8601 text; a trailing ``Z`` for UTC is accepted).

    Integer columns are kept as int64 step numbers (a series indexed by step, not by date). A missing
    (blank, NA, NaT) or unreadable timestamp is refused, naming the rows: ``place(i)`` says where row
    ``i`` came from (``t.csv: line 7``), ``column`` the time column.
    """
    place = place or (lambda i: f"row {i + 1}")
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "M":
        _refuse_rows(np.flatnonzero(np.isnat(values)), values, place, name, column, "no timestamp")
        return values
    if values.dtype.kind == "f":
        # Step numbers with a blank cell come as floats with NaN (load_table): the NaN rows are the bad ones.
        _refuse_rows(np.flatnonzero(~np.isfinite(values)), values, place, name, column, "no step number")
        _refuse_rows(np.flatnonzero(values != np.round(values)), values, place, name, column,
                     "a step number that is not an integer")
        return values.astype(np.int64)
    texts = [str(v).strip() for v in values]
    # numpy reads "" and "NaT" as NaT (not a time): a missing timestamp, whatever its spelling.
    _refuse_rows(np.array([i for i, t in enumerate(texts) if t in MISSING or t.lower() == "nat"], dtype=np.int64),
                 values, place, name, column, "no timestamp")
    # numpy parses ISO 8601 but refuses time zone designators; "Z" (UTC) is the common one.
    texts = [t[:-1] if t.endswith("Z") else t for t in texts]
    try:
        return np.array(texts, dtype="datetime64")
    except ValueError:
        bad = np.array([i for i, t in enumerate(texts) if not _parses(t)], dtype=np.int64)
        _refuse_rows(bad, values, place, name, column, "a timestamp numpy cannot read")
        fail(name, texts[0] if texts else "", _ISO)   # mixed forms that parse one by one but not together
    raise AssertionError  # unreachable: both branches raise


def _refuse_rows(rows: np.ndarray, values: np.ndarray, place: Callable[[int], str], name: str,
                 column: str | None, what: str) -> None:
    """Raise one message naming the first few bad rows (file and line, value), if there are any."""
    if len(rows) == 0:
        return
    col = f"{name}={column!r}" if column else name
    shown = "; ".join(f"{place(int(i))}: {str(values[i])!r}" for i in rows[:SHOWN_ROWS])
    more = f" (and {len(rows) - SHOWN_ROWS} more)" if len(rows) > SHOWN_ROWS else ""
    raise ValueError(f"{col}: {len(rows)} row(s) with {what}: {shown}{more}; expected {_ISO}. Fix or "
                     f"remove these rows")


def _parses(text: str) -> bool:
    try:
        np.datetime64(text)
        return True
    except ValueError:
        return False


def select_rows(table: dict[str, np.ndarray], filters: Sequence[str], source: str = "table") -> dict[str, np.ndarray]:
    """Keep the rows where every ``COLUMN=VALUE`` filter holds (text comparison); a :class:`Table` keeps the
    file lines of its rows."""
    n = len(next(iter(table.values()))) if table else 0
    keep = np.ones(n, dtype=bool)
    for item in filters:
        if not isinstance(item, str) or "=" not in item:
            fail("filter", item, "COLUMN=VALUE, e.g. origin=JFK")
        column, value = item.split("=", 1)
        if column not in table:
            fail("filter", item, f"a column of {source}; its columns are: {', '.join(table)}")
        col = np.asarray([str(v) for v in table[column]], dtype=object)
        hit = col == value
        if not hit.any():
            seen = sorted(set(col.tolist()))
            fail("filter", item, f"a value that occurs in column {column!r} of {source}, such as "
                                 + ", ".join(repr(s) for s in seen[:8]))
        keep &= hit
    return table.take(keep) if isinstance(table, Table) else {k: v[keep] for k, v in table.items()}


def numeric_column(table: dict[str, np.ndarray], name: str, role: str, source: str) -> np.ndarray:
    """Column ``name`` as float64; a missing or text column, or an infinite value (a number too large for
    a float64, or 'inf' written out), is refused, naming ``role`` (target/features)."""
    if name not in table:
        fail(role, name, f"a column of {source}; its columns are: {', '.join(table)}")
    col = table[name]
    if col.dtype.kind not in "iuf":
        example = next((str(v) for v in col if str(v).strip()), "")
        fail(role, name, f"a numeric column, but column {name!r} of {source} holds text such as {example!r}")
    col = col.astype(np.float64)
    if len(col) and np.isnan(col).all():
        fail(role, name, f"a column with numbers, but all {len(col)} values of {name!r} in {source} "
                         f"are missing")
    inf = np.flatnonzero(np.isinf(col))
    if len(inf):
        shown = "; ".join(f"{row_place(table, int(i), source)}: {col[i]}" for i in inf[:SHOWN_ROWS])
        fail(role, name, f"finite numbers, but {len(inf)} value(s) of column {name!r} are infinite: {shown}. "
                         f"Fix these values, or leave them blank to mark them missing")
    return col


def numeric_columns(table: dict[str, np.ndarray], skip: Sequence[str] = ()) -> list[str]:
    """The columns of ``table`` that hold numbers (at least one), in file order, leaving out ``skip`` (e.g.
    the time column and the targets): what ``--features all`` means."""
    out = []
    for name, col in table.items():
        if name in skip or np.asarray(col).dtype.kind not in "iuf":
            continue
        if np.asarray(col).dtype.kind == "f" and np.isnan(col).all():
            continue                                               # all missing: nothing to learn from
        out.append(name)
    return out


def check_grid_size(times: np.ndarray, freq, place: Callable[[int], str], texts: np.ndarray,
                    time_col: str, source: str, max_steps: int | None = None) -> None:
    """Refuse a regular grid absurdly larger than the table (see :data:`MAX_STEPS_PER_ROW`), naming the
    widest jump between consecutive timestamps, which is almost always a typo (a year 2200) or a stray
    row. ``texts`` holds the timestamps as written, for the message."""
    order = np.argsort(times, kind="stable")
    first, last = times[order[0]], times[order[-1]]
    steps = int((last - first) // freq) + 1
    limit = max(MIN_MAX_STEPS, MAX_STEPS_PER_ROW * len(times)) if max_steps is None else max_steps
    if steps <= limit:
        return
    gaps = np.diff(times[order])
    k = int(np.argmax(gaps))
    a, b = int(order[k]), int(order[k + 1])
    jump = int(gaps[k] // freq)
    rule = (f"at most max({MIN_MAX_STEPS:,}, {MAX_STEPS_PER_ROW} x rows) = {limit:,}" if max_steps is None
            else f"at most max_steps={max_steps:,}")
    raise ValueError(
        f"{source}: the timestamps in {time_col!r} run from {str(texts[order[0]])!r} to "
        f"{str(texts[order[-1]])!r}: a regular series of one step every {describe_freq(freq)} would have "
        f"{steps:,} steps for {len(times):,} rows ({rule} are allowed). The widest jump, {jump:,} steps, is "
        f"from {place(a)}: {str(texts[a])!r} to {place(b)}: {str(texts[b])!r}: a typo in a date or a stray row? "
        f"Fix or remove the rows beyond it; if the gap is real, cut the file at it or aggregate the rows to "
        f"a coarser step first")


def infer_freq(times: np.ndarray, where: str = "the time column") -> np.timedelta64 | int:
    """The most common spacing between consecutive (sorted, distinct) timestamps."""
    diffs = np.diff(times)
    diffs = diffs[diffs > diffs.dtype.type(0)]
    if len(diffs) == 0:
        raise ValueError(f"{where}: {len(np.unique(times))} distinct timestamp(s); expected at least two "
                         "(to infer the series' step): a file with more rows")
    uniq, counts = np.unique(diffs, return_counts=True)
    return uniq[np.argmax(counts)]


def resample(times: np.ndarray, values: np.ndarray, freq=None, start=None, stop=None, *,
             channels: np.ndarray | None = None, num_channels: int | None = None):
    """Put rows onto the regular grid ``start, start + freq, ..., stop``: each row goes to the grid point at
    or before it, rows sharing a point are averaged (NaNs ignored), points without rows get NaN. Rows
    before ``start`` or after the last point's slot (``stop + freq``) are left out.

    ``times`` (N,): datetime64, integer step numbers, or floats (e.g. hours since admission); ``freq``,
    ``start`` and ``stop`` in the same units (defaults: the most common spacing, the first and the last
    time). ``values`` (N, F), NaN where a row lacks a value. Long-format observations, one value per row
    with its column index in ``channels`` (N,) out of ``num_channels``, give a (M, num_channels) grid too:
    a mean per time slot and channel of irregular measurements is
    ``resample(hours, value, 1.0, 0.0, last_slot_start, channels=channel, num_channels=C)[1]``.

    Returns ``(grid (M,), values (M, F), counts)`` where counts says how many grid points were missing,
    how many rows shared a point with another row, how many rows were off the grid, and whether the rows
    came unsorted.
    """
    if channels is not None:
        wide = np.full((len(values), num_channels), np.nan)
        wide[np.arange(len(values)), channels] = values
        values = wide
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    freq = infer_freq(times) if freq is None else freq
    start = times[0] if start is None else start
    stop = times[-1] if stop is None else stop
    m = int((stop - start) // freq) + 1
    slot = (times - start) // freq                                     # grid point of each row
    inside = (slot >= 0) & (slot < m)
    slot, values, times = slot[inside].astype(np.int64), values[inside], times[inside]
    grid = start + np.arange(m) * freq
    # Mean of the non-NaN values per grid point, per column, in two scatter-adds.
    finite = np.isfinite(values)
    sums = np.zeros((m, values.shape[1]))
    hits = np.zeros((m, values.shape[1]))
    np.add.at(sums, slot, np.where(finite, values, 0.0))
    np.add.at(hits, slot, finite)
    out = np.where(hits > 0, sums / np.maximum(hits, 1), np.nan)
    rows_per_slot = np.bincount(slot, minlength=m)
    counts = {"missing": int((rows_per_slot == 0).sum()),
              "merged": int((rows_per_slot[rows_per_slot > 1] - 1).sum()),
              "off_grid": int((times != start + slot * freq).sum()),
              "unsorted": bool((order != np.arange(len(order))).any())}
    return grid, out, counts


def interpolate_nans(values: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill runs of at most ``limit`` NaNs that have a number on both sides by linear interpolation.

    Longer runs, and runs at the start or end, stay NaN. Returns ``(filled (N, F), filled_per_column (F,))``.
    """
    values = values.copy()
    filled = np.zeros(values.shape[1], dtype=np.int64)
    idx = np.arange(len(values))
    for j in range(values.shape[1]):
        col = values[:, j]
        nan = np.isnan(col)
        if not nan.any() or nan.all():
            continue
        # Run boundaries: where nan switches on and off (padded so that edge runs close).
        edges = np.diff(np.concatenate([[0], nan.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)   # run = [start, end)
        ok = (ends - starts <= limit) & (starts > 0) & (ends < len(col))
        fill = np.zeros(len(col), dtype=bool)
        for s, e in zip(starts[ok], ends[ok]):
            fill[s:e] = True
        if fill.any():
            col[fill] = np.interp(idx[fill], idx[~nan], col[~nan])
            filled[j] = int(fill.sum())
    return values, filled


def forward_fill(values: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
    """Fill every NaN of ``values`` (N, F) with the last value before it in its column.

    NaNs before a column's first value take ``initial[j]`` (F,) when given (NaN there leaves them NaN), else
    the column's first value. Only the past is used (except for that leading run), so a filled value never
    leaks the future into a window. Returns a new (N, F) array of ``values``' dtype; an all-NaN column stays
    NaN unless ``initial`` fills it.
    """
    values = np.asarray(values)
    if not len(values):
        return values.copy()
    if initial is None:
        first = np.argmax(~np.isnan(values), axis=0)                          # (F,): 0 for an all-NaN column
        initial = values[first, np.arange(values.shape[1])]
    rows = np.concatenate([np.asarray(initial, dtype=np.result_type(values, np.float32))[None], values])   # (N+1, F)
    # Index of the last non-NaN row at or before each row; row 0 (the initial values) when there is none.
    last = np.maximum.accumulate(np.where(np.isnan(rows), 0, np.arange(len(rows))[:, None]), axis=0)
    return np.take_along_axis(rows, last, axis=0)[1:].astype(values.dtype, copy=False)


def carry_forward_nans(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward_fill` (the first value for NaNs at the start), and how many values it filled.

    Returns ``(filled (N, F), filled_per_column (F,))``; an all-NaN column stays NaN.
    """
    filled = forward_fill(values)
    return filled, (np.isnan(values) & ~np.isnan(filled)).sum(axis=0).astype(np.int64)


def angles_to_sin_cos(values: np.ndarray, columns: list[str], angles: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Replace each column in degrees (a compass direction: 350 and 10 are close) by its sine and cosine.

    A column ``c`` named in ``angles`` (or ``c@station`` for a column of another station) becomes
    ``c_sin`` and ``c_cos``; NaN stays NaN. Other columns are unchanged.
    """
    out, names = [], []
    for j, c in enumerate(columns):
        if c.split("@", 1)[0] in angles:
            rad = np.deg2rad(values[:, j])
            base, _, station = c.partition("@")
            out += [np.sin(rad), np.cos(rad)]
            names += [f"{base}_sin" + (f"@{station}" if station else ""), f"{base}_cos" + (f"@{station}" if station else "")]
        else:
            out.append(values[:, j])
            names.append(c)
    return np.stack(out, axis=1), names


LONG_GAPS = ("fill", "drop", "skip")


def describe_freq(freq) -> str:
    """A series step in words for messages: ``3600 s``, ``1 months``, or a step count."""
    return str(freq) if not isinstance(freq, np.timedelta64) else str(freq).replace("seconds", "s")


def describe_steps(n: int, freq) -> str:
    """``n`` steps of ``freq`` as a duration in words, in the step's own unit (and a larger one when it is a
    whole number of at least two of them): ``24 hours``, ``120 hours (5 days)``, ``1 day``, ``24 months (2
    years)``; ``n steps`` for a step-numbered series."""
    def words(count: int, name: str) -> str:
        return f"{count} {name}{'s' if count != 1 else ''}"

    if not isinstance(freq, np.timedelta64):
        return words(n, "step")
    unit = np.datetime_data(np.asarray(freq).dtype)[0]
    if unit in ("M", "Y"):                                         # calendar units: no fixed length in seconds
        months = n * int(np.asarray(freq).astype(np.int64)) * (12 if unit == "Y" else 1)
        return words(months, "month") + (f" ({words(months // 12, 'year')})" if months % 12 == 0 and months >= 24
                                         else "")
    sizes = ((7 * 86400, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
    step = int(np.asarray(freq).astype("timedelta64[s]").astype(np.int64))
    total = n * step
    size, name = next((size, name) for size, name in sizes[1:] if step % size == 0)   # the step's unit
    text = words(total // size, name)
    larger = next(((s, m) for s, m in sizes if s > size and total % s == 0 and total // s >= 2), None)
    return text + (f" ({words(total // larger[0], larger[1])})" if larger else "")


def prepare_series(table: dict[str, np.ndarray], time_col: str, targets: Sequence[str],
                   features: Sequence[str] = (), filters: Sequence[str] = (), wide_by: str | None = None,
                   interpolate_limit: int = 3, source: str = "table", angles: Sequence[str] = (),
                   long_gaps: str = "fill", max_steps: int | None = None) -> Series:
    """The whole preparation; see the module docstring. ``features`` lists extra input columns (the targets
    are always inputs too); ``wide_by`` adds the targets and features of the other values of that column
    (the other stations) as extra columns named ``column@value``; ``angles`` names input columns in degrees,
    replaced by their sine and cosine.

    ``long_gaps`` says what happens to an input column with values still missing after interpolation
    (runs longer than ``interpolate_limit``): ``fill`` carries the last value forward (reported), ``drop``
    drops the column, ``skip`` keeps the NaNs and the windows that touch them are skipped. Target values
    are never invented: windows whose targets are missing are always skipped.

    Bad rows (missing or unreadable timestamps, infinite values) are refused before resampling, named by
    file and line when ``table`` is a :class:`~rnnkit.datasets.files.Table`; so is a grid of more than
    ``max_steps`` steps (default: ``max(MIN_MAX_STEPS, MAX_STEPS_PER_ROW x rows)``).
    """
    check_int("interpolate_limit", interpolate_limit, min=0)
    check_int("max_steps", max_steps, min=2, allow_none=True)
    check_choice("long_gaps", long_gaps, LONG_GAPS)
    for a in angles:
        if a in targets:
            fail("angles", a, "input columns only, not a target")
        if a not in features:
            fail("angles", a, f"one of the input columns ({', '.join(features) or 'none given'})")
    if not targets:
        fail("target", list(targets), "at least one column name")
    if time_col not in table:
        fail("time_col", time_col, f"a column of {source}; its columns are: {', '.join(table)}")
    report: list[str] = []
    others: dict[str, dict[str, np.ndarray]] = {}
    if wide_by is not None:
        if wide_by not in table:
            fail("wide_by", wide_by, f"a column of {source}; its columns are: {', '.join(table)}")
        own = {f.split("=", 1)[1] for f in filters if isinstance(f, str) and f.startswith(wide_by + "=")}
        for value in sorted(set(map(str, table[wide_by]))):
            if value not in own:
                rest = [f for f in filters if not (isinstance(f, str) and f.startswith(wide_by + "="))]
                others[value] = select_rows(table, [*rest, f"{wide_by}={value}"], source)
    if filters:
        before = len(table[time_col])
        table = select_rows(table, filters, source)
        report.append(f"filter {' '.join(filters)}: kept {len(table[time_col])} of {before} rows")
    columns = list(dict.fromkeys([*targets, *features]))
    raw = np.stack([numeric_column(table, c, "target" if c in targets else "features", source)
                    for c in columns], axis=1)                          # (N, F)

    def place(i: int) -> str:
        return row_place(table, i, source)

    times = parse_times(table[time_col], "time_col", place, time_col)
    if len(np.unique(times)) < 2:      # an empty or one-row file: said here, with the file's name
        infer_freq(times, f"{source}: time_col={time_col!r}")
    if len(times) > 1:
        check_grid_size(times, infer_freq(np.sort(times), f"{source}: time_col={time_col!r}"), place,
                        table[time_col], time_col, source, max_steps)
    grid, values, counts = resample(times, raw)
    freq = grid[1] - grid[0] if len(grid) > 1 else infer_freq(times, f"{source}: time_col={time_col!r}")
    if counts["unsorted"]:
        report.append("timestamps were not in order: sorted them")
    if counts["missing"] or counts["merged"] or counts["off_grid"]:
        report.append(f"irregular timestamps at frequency {describe_freq(freq)}: {counts['missing']} missing "
                      f"steps (gaps), {counts['merged']} rows sharing a step (averaged), {counts['off_grid']} "
                      f"off the grid; resampled to {len(grid)} regular steps")
    base = list(columns)
    for value, sub in others.items():
        sub_raw = np.stack([numeric_column(sub, c, "features", f"{source} ({wide_by}={value})")
                            for c in base], axis=1)
        sub_times = parse_times(sub[time_col], "time_col", lambda i: row_place(sub, i, source), time_col)
        _, sub_values, _ = resample(sub_times, sub_raw, freq, grid[0], grid[-1])
        values = np.concatenate([values, sub_values], axis=1)
        columns += [f"{c}@{value}" for c in base]
    if angles:
        values, columns = angles_to_sin_cos(values, columns, angles)
    values, filled = interpolate_nans(values, interpolate_limit)
    if filled.any():
        report.append(f"filled {int(filled.sum())} missing values by linear interpolation (runs of at most "
                      f"interpolate_limit={interpolate_limit} steps): "
                      + ", ".join(f"{c} {n}" for c, n in zip(columns, filled) if n))
    # An input column with values still missing would void every window touching them: fill (carry the
    # last value forward), drop the column, or skip those windows, as long_gaps says.
    left = np.isnan(values).sum(axis=0)
    is_input = np.array([c not in targets for c in columns]) & (left > 0) & (left < len(values))
    if long_gaps == "fill" and is_input.any():
        carried, n = carry_forward_nans(values[:, is_input])
        values[:, is_input] = carried
        report.append(f"filled {int(n.sum())} values still missing after interpolation (runs longer than "
                      f"interpolate_limit={interpolate_limit}) with the last value before them (long_gaps=fill): "
                      + ", ".join(f"{c} {k}" for c, k in zip(np.array(columns)[is_input], n)))
        left = np.isnan(values).sum(axis=0)
    keep = [j for j, c in enumerate(columns) if c in targets or left[j] == 0 or
            (long_gaps == "skip" and left[j] < len(values))]
    for j, c in enumerate(columns):
        if j not in keep:
            why = "all values missing" if left[j] == len(values) else (
                f"{left[j]} values still missing after interpolation (runs longer than "
                f"interpolate_limit={interpolate_limit})")
            report.append(f"{c}: {why}; column dropped from the inputs")
        elif left[j]:
            report.append(f"{c}: {left[j]} values still missing; windows that need them are skipped")
    return Series(grid, values[:, keep], [columns[j] for j in keep], list(targets), freq, report)


# ---------------------------------------------------------------------------------------------------------
# Time features and normalisation
# ---------------------------------------------------------------------------------------------------------

def freq_seconds(freq) -> float:
    """A step's length in seconds (months and years have no fixed length: their mean is used)."""
    unit, count = np.datetime_data(np.asarray(freq).dtype)
    if unit in ("M", "Y"):
        return int(freq.astype(np.int64)) * (365.2425 / 12 if unit == "M" else 365.2425) * 86400
    return float(np.asarray(freq).astype("timedelta64[s]").astype(np.int64))


def time_features(times: np.ndarray, freq) -> tuple[np.ndarray, list[str]]:
    """sin/cos of the time of day (when steps are shorter than a day) and of the time of year (when steps are
    shorter than a year); (N, 2 or 4) and their names. Step-numbered series get none."""
    if times.dtype.kind != "M":
        return np.zeros((len(times), 0)), []
    cols, names = [], []
    seconds = times.astype("datetime64[s]").astype(np.int64)
    step_s = freq_seconds(freq)
    if step_s < 86400:
        phase = 2 * np.pi * (seconds % 86400) / 86400
        cols += [np.sin(phase), np.cos(phase)]
        names += ["day_sin", "day_cos"]
    if step_s < 365 * 86400:
        year = 365.2425 * 86400
        phase = 2 * np.pi * (seconds % year) / year
        cols += [np.sin(phase), np.cos(phase)]
        names += ["year_sin", "year_cos"]
    return np.stack(cols, axis=1), names


def calendar_features(times: np.ndarray, freq) -> tuple[np.ndarray, list[str]]:
    """The calendar cycles that fit the step, as sin/cos pairs: :func:`time_features` (time of day for steps
    shorter than a day, time of year for steps shorter than a year) plus the day of the week (``week_sin``,
    ``week_cos``; Monday 00:00 is phase 0) for steps shorter than a week. (N, 2 x pairs) and their names."""
    values, names = time_features(times, freq)
    if times.dtype.kind != "M" or freq_seconds(freq) >= 7 * 86400:
        return values, names
    week = 7 * 86400
    seconds = times.astype("datetime64[s]").astype(np.int64)
    phase = 2 * np.pi * ((seconds + 3 * 86400) % week) / week      # 1970-01-01 was a Thursday
    at = 2 if names[:1] == ["day_sin"] else 0                      # after the time of day, before the year
    values = np.concatenate([values[:, :at], np.stack([np.sin(phase), np.cos(phase)], axis=1), values[:, at:]],
                            axis=1)
    return values, names[:at] + ["week_sin", "week_cos"] + names[at:]


@dataclass
class Normalizer:
    """Per-column mean and standard deviation, fitted on the training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> "Normalizer":
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        return cls(mean, np.where(std > 0, std, 1.0))   # a constant column stays constant, not NaN

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray, columns: slice | Sequence[int] = slice(None)) -> np.ndarray:
        return values * self.std[columns] + self.mean[columns]
