"""Series preparation (rnnkit.datasets.series) and the vectorised window generator (rnnkit.datasets.windows)."""

import numpy as np
import pytest

from rnnkit.datasets import series as S
from rnnkit.datasets import windows as W


@pytest.mark.parametrize("shuffle", [False, True])
def test_generator_gives_the_lecture_batches(shuffle):
    data = np.random.default_rng(0).normal(size=(300, 3))
    args = dict(lookback=24, delay=6, min_index=10, max_index=200, shuffle=shuffle, batch_size=32, step=3)
    np.random.seed(5)
    ref = W.lecture_generator(data, **args)
    ref_batches = [next(ref) for _ in range(9)]        # 9 ordered batches wrap around the 166 rows
    np.random.seed(5)
    fast = W.generator(data, **args)
    for x_ref, y_ref in ref_batches:
        x, y = next(fast)
        assert x.shape == x_ref.shape and y.shape == y_ref.shape
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)


def test_generator_default_max_index_and_copy():
    data = np.arange(40.0).reshape(20, 2)
    x, y = next(W.generator(data, lookback=4, delay=2, step=2, batch_size=3, copy=True))
    # rows 4, 5, 6: inputs rows r-4, r-2; target column 1 of row r+2
    np.testing.assert_array_equal(x[:, :, 0], [[0, 4], [2, 6], [4, 8]])
    np.testing.assert_array_equal(y, [13, 15, 17])
    assert x.flags.writeable                                          # a copy of its own
    view, _ = next(W.generator(data, lookback=4, delay=2, step=2, batch_size=3))
    assert not view.flags.writeable and np.shares_memory(view, data)   # ordered batches are views


def test_window_batch_by_hand_with_horizon_and_several_targets():
    data = np.arange(30.0).reshape(10, 3)              # row r holds 3r, 3r+1, 3r+2
    x, y = W.window_batch(data, np.array([3, 5]), lookback=3, step=1, delay=1, target_data=data[:, [2, 0]],
                          horizon=2)
    assert x.shape == (2, 3, 3) and y.shape == (2, 2, 2)
    np.testing.assert_array_equal(x[0, :, 0], [0, 3, 6])           # rows 0, 1, 2
    np.testing.assert_array_equal(y[0], [[14, 12], [17, 15]])      # rows 4 and 5, columns 2 and 0
    np.testing.assert_array_equal(y[1, 1], [23, 21])               # row 7


def test_generator_multi_target_horizon_matches_window_batch():
    data = np.random.default_rng(1).normal(size=(60, 4))
    x, y = next(W.generator(data, lookback=6, delay=2, step=2, targets=[0, 3], horizon=3, batch_size=5))
    xb, yb = W.window_batch(data, np.arange(6, 11), 6, 2, 2, data[:, [0, 3]], 3)
    np.testing.assert_array_equal(x, xb)
    np.testing.assert_array_equal(y, yb)
    assert y.shape == (5, 3, 2)


def test_generator_rejects_bad_arguments():
    data = np.zeros((50, 2))
    with pytest.raises(ValueError, match=r"lookback=10: expected a multiple of step=3"):
        next(W.generator(data, lookback=10, delay=1, step=3))
    with pytest.raises(ValueError, match=r"max_index=60: expected an index in"):
        next(W.generator(data, lookback=10, delay=1, step=1, max_index=60))


def test_interpolate_fills_short_inner_runs_only():
    col = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, 7.0, np.nan])
    filled, counts = S.interpolate_nans(col[:, None], limit=2)
    # the single gap is filled (2.0); the run of 3 is longer than the limit; the trailing NaN has no right side
    np.testing.assert_array_equal(filled[:3, 0], [1.0, 2.0, 3.0])
    assert np.isnan(filled[3:6, 0]).all() and np.isnan(filled[7, 0])
    assert counts.tolist() == [1]
    filled, counts = S.interpolate_nans(col[:, None], limit=3)
    np.testing.assert_allclose(filled[:7, 0], [1, 2, 3, 4, 5, 6, 7])
    assert counts.tolist() == [4]


def test_resample_reports_gaps_duplicates_and_order():
    t = np.array(["2020-01-01T02", "2020-01-01T00", "2020-01-01T01", "2020-01-01T01", "2020-01-01T05"],
                 dtype="datetime64[h]")
    v = np.array([[2.0], [0.0], [1.0], [3.0], [5.0]])
    grid, out, counts = S.resample(t, v)
    assert len(grid) == 6 and grid[-1] == np.datetime64("2020-01-01T05")
    np.testing.assert_array_equal(out[:3, 0], [0.0, 2.0, 2.0])       # the two 01:00 rows are averaged
    assert np.isnan(out[3:5, 0]).all() and out[5, 0] == 5.0
    assert counts == {"missing": 2, "merged": 1, "off_grid": 0, "unsorted": True}


def test_resample_long_format_float_hours_mean_per_slot():
    # irregular measurements (hours since the start, channel, value), as a clinical stay holds them
    hours = np.array([0.2, 0.7, 2.5, 1.1, 2.9, 3.4, -0.5])
    channel = np.array([0, 0, 0, 2, 2, 0, 1])
    value = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0])
    grid, out, counts = S.resample(hours, value, 1.0, 0.0, 2.0, channels=channel, num_channels=3)
    np.testing.assert_array_equal(grid, [0.0, 1.0, 2.0])
    expected = np.array([[2.0, np.nan, np.nan],          # hour 0: the mean of 1 and 3
                         [np.nan, np.nan, 7.0],
                         [5.0, np.nan, 9.0]])            # 3.4 lies past the last slot, -0.5 before the first
    np.testing.assert_array_equal(out, expected)
    assert counts["missing"] == 0 and counts["merged"] == 2 and counts["unsorted"]
    _, empty, _ = S.resample(np.zeros(0), np.zeros(0), 1.0, 0.0, 1.0, channels=np.zeros(0, int), num_channels=2)
    assert empty.shape == (2, 2) and np.isnan(empty).all()


def hourly_table(n=30, temp=None):
    times = np.datetime64("2021-03-01T00") + np.arange(n).astype("timedelta64[h]")
    temp = np.arange(n, dtype=float) if temp is None else temp
    return {"time": np.array([str(t) + ":00:00Z" for t in times], dtype=object), "temp": temp,
            "site": np.array(["A"] * n, dtype=object)}


def test_prepare_series_reports_gap_and_fill():
    table = hourly_table()
    keep = np.ones(30, dtype=bool)
    keep[[10, 11]] = False                                           # a 2-hour gap
    table = {k: v[keep] for k, v in table.items()}
    table["temp"][3] = np.nan
    s = S.prepare_series(table, "time", ["temp"], interpolate_limit=3)
    assert len(s) == 30 and s.freq == np.timedelta64(3600, "s")
    np.testing.assert_allclose(s.values[:, 0], np.arange(30.0))      # gap and NaN filled on the line
    text = "\n".join(s.report)
    assert "2 missing steps (gaps)" in text
    assert "filled 3 missing values" in text and "temp 3" in text


def test_prepare_series_refuses_bad_targets():
    table = hourly_table()
    with pytest.raises(ValueError, match=r"target='site': expected a numeric column, but column 'site' of "
                                         r"t.csv holds text such as 'A'"):
        S.prepare_series(table, "time", ["site"], source="t.csv")
    table["temp"] = np.full(30, np.nan)
    with pytest.raises(ValueError, match=r"target='temp': expected a column with numbers, but all 30 values"):
        S.prepare_series(table, "time", ["temp"], source="t.csv")
    with pytest.raises(ValueError, match=r"target='tmp': expected a column of t.csv; its columns are: time, temp"):
        S.prepare_series(table, "time", ["tmp"], source="t.csv")
    with pytest.raises(ValueError, match=r"filter='site=B': expected a value that occurs in column 'site'"):
        S.prepare_series(hourly_table(), "time", ["temp"], filters=["site=B"], source="t.csv")
    bad = hourly_table()
    bad["time"][4] = "yesterday"
    with pytest.raises(ValueError, match=r"time_col='time': 1 row\(s\) with a timestamp numpy cannot read: "
                                         r"table: row 5: 'yesterday'; expected timestamps in ISO 8601"):
        S.prepare_series(bad, "time", ["temp"])


def test_check_length_message():
    with pytest.raises(ValueError, match=r"s.csv: 30 rows \(after resampling\) is shorter than lookback \+ "
                                         r"delay = 24 \+ 12 = 36"):
        W.check_length(30, 24, 12, name="s.csv")


def test_carry_forward_uses_only_the_past_except_at_the_start():
    col = np.array([np.nan, np.nan, 2.0, np.nan, np.nan, 5.0, np.nan])
    filled, counts = S.carry_forward_nans(col[:, None])
    np.testing.assert_array_equal(filled[:, 0], [2.0, 2.0, 2.0, 2.0, 2.0, 5.0, 5.0])
    assert counts.tolist() == [5]
    assert np.isnan(S.carry_forward_nans(np.full((3, 1), np.nan))[0]).all()   # nothing to carry


def test_forward_fill_with_initial_values_for_the_leading_gaps():
    values = np.array([[np.nan, 1.0, np.nan],
                       [2.0, np.nan, np.nan],
                       [np.nan, np.nan, np.nan],
                       [3.0, 4.0, np.nan]], dtype=np.float32)
    out = S.forward_fill(values, np.array([-1.0, -2.0, np.nan]))
    np.testing.assert_array_equal(out, [[-1, 1, np.nan], [2, 1, np.nan], [2, 1, np.nan], [3, 4, np.nan]])
    assert out.dtype == np.float32 and np.isnan(values[0, 0])                     # a new array
    np.testing.assert_array_equal(S.forward_fill(values)[:, 0], [2, 2, 2, 3])    # no initial: the first value


@pytest.mark.parametrize("long_gaps", ["fill", "drop", "skip"])
def test_long_gaps_in_an_input_column(long_gaps):
    table = hourly_table()
    table["wind"] = np.arange(30.0) + 100
    table["wind"][10:20] = np.nan                                    # 10 missing hours: longer than the limit
    table["temp"][25:29] = np.nan                                    # a long gap in the target stays
    s = S.prepare_series(table, "time", ["temp"], ["wind"], interpolate_limit=3, long_gaps=long_gaps)
    text = "\n".join(s.report)
    assert np.isnan(s.values[25:29, 0]).all()                        # targets are never invented
    if long_gaps == "fill":
        assert s.columns == ["temp", "wind"]
        np.testing.assert_array_equal(s.values[10:20, 1], np.full(10, 109.0))   # the value at 09:00 carried
        assert "filled 10 values still missing after interpolation" in text and "wind 10" in text
    elif long_gaps == "drop":
        assert s.columns == ["temp"]
        assert "wind: 10 values still missing after interpolation" in text and "column dropped" in text
    else:
        assert s.columns == ["temp", "wind"] and np.isnan(s.values[10:20, 1]).all()
        assert "wind: 10 values still missing; windows that need them are skipped" in text
    with pytest.raises(ValueError, match=r"long_gaps='zero': expected one of 'fill', 'drop', 'skip'"):
        S.prepare_series(table, "time", ["temp"], ["wind"], long_gaps="zero")


def test_angles_become_sine_and_cosine():
    table = hourly_table(n=4)
    table["dir"] = np.array([0.0, 90.0, np.nan, 350.0])
    s = S.prepare_series(table, "time", ["temp"], ["dir"], angles=["dir"], interpolate_limit=0, long_gaps="skip")
    assert s.columns == ["temp", "dir_sin", "dir_cos"]
    np.testing.assert_allclose(s.values[[0, 1, 3], 1], np.sin(np.deg2rad([0, 90, 350])), atol=1e-12)
    np.testing.assert_allclose(s.values[[0, 1, 3], 2], np.cos(np.deg2rad([0, 90, 350])), atol=1e-12)
    assert np.isnan(s.values[2, 1:]).all()
    with pytest.raises(ValueError, match=r"angles='temp': expected input columns only, not a target"):
        S.prepare_series(table, "time", ["temp"], ["dir"], angles=["temp"])
    with pytest.raises(ValueError, match=r"angles='wind': expected one of the input columns \(dir\)"):
        S.prepare_series(table, "time", ["temp"], ["dir"], angles=["wind"])


def test_wide_by_adds_the_other_stations():
    a, b = hourly_table(), hourly_table(temp=np.arange(30.0) * 2)
    b["site"][:] = "B"
    table = {k: np.concatenate([a[k], b[k]]) for k in a}
    s = S.prepare_series(table, "time", ["temp"], filters=["site=A"], wide_by="site")
    assert s.columns == ["temp", "temp@B"]
    np.testing.assert_array_equal(s.values[:, 1], np.arange(30.0) * 2)


def test_normalizer_and_time_features():
    norm = S.Normalizer.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_array_equal(norm.mean, [2.0, 5.0])
    np.testing.assert_array_equal(norm.std, [1.0, 1.0])             # the constant column keeps std 1
    np.testing.assert_array_equal(norm.inverse(norm.transform(np.array([[7.0, 2.0]]))), [[7.0, 2.0]])
    times = np.array(["2021-01-01T06", "2021-01-01T18"], dtype="datetime64[h]")
    f, names = S.time_features(times, np.timedelta64(1, "h"))
    assert names == ["day_sin", "day_cos", "year_sin", "year_cos"]
    np.testing.assert_allclose(f[:, :2], [[1.0, 0.0], [-1.0, 0.0]], atol=1e-12)   # 6:00 and 18:00


@pytest.mark.parametrize("step", [1, 3])
def test_windows_block_gather_equals_the_plain_gather(step):
    data = np.random.default_rng(2).normal(size=(100, 3))
    w = W.Windows(data, lookback=12, step=step, delay=4, target_data=data[:, [1]], horizon=2)
    rows = np.array([12, 13, 50, 94, 12])                 # every phase, the first and the last possible row
    x, y = w.batch(rows)
    xr, yr = W.window_batch(data, rows, 12, step, 4, data[:, [1]], 2)
    np.testing.assert_array_equal(x, xr)
    np.testing.assert_array_equal(y, yr)
    xv, yv = w.run(20, 5)
    np.testing.assert_array_equal(xv, W.window_batch(data, np.arange(20, 25), 12, step, 4, data[:, [1]], 2)[0])
