"""Forecasting on data as users bring it (issue 16): their own test period, no validation part, series of any
frequency (defaults in time units, calendar features), --features all / --exclude, seasonal naive as the bar,
and early stopping on by default."""

import json
import re

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.datasets import series as S
from rnnkit.runs.checkpoint import RunDir
from rnnkit.tasks.forecast.data import resolved, window_defaults
from rnnkit.tasks.forecast.compare import compare, results_markdown
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster


def cycle(t):
    """A daily cycle (period 24 steps) with a slow trend: seasonal naive is off by the trend, 0.24 a day."""
    return 10 + 5 * np.sin(2 * np.pi * t / 24) + 0.01 * t


def write_hourly(path, first=0, n=300, extra=""):
    """Hours first .. first+n-1 from 2022-05-01T00 of the cycle (``extra``: more columns, given per row)."""
    t = np.arange(first, first + n)
    times = np.datetime64("2022-05-01T00") + t.astype("timedelta64[h]")
    head = "time,y" + (",a,b,site,blank" if extra else "")
    rows = [f"{s}:00:00Z,{v:.6f}" + (f",{np.cos(i):.4f},{i % 7},S1," if extra else "")
            for i, s, v in zip(t, times, cycle(t))]
    path.write_text(head + "\n" + "\n".join(rows) + "\n")
    return path


def write_daily(path, n=400, start="2021-01-04"):
    """A daily series with a weekly pattern (weekends high)."""
    days = np.datetime64(start) + np.arange(n).astype("timedelta64[D]")
    weekday = (days.astype(np.int64) + 3) % 7                             # Monday = 0
    y = 20 + 3 * (weekday >= 5) + np.sin(np.arange(n) / 40)
    path.write_text("date,y\n" + "".join(f"{d},{v:.5f}\n" for d, v in zip(days, y)))
    return path


HOURLY = dict(time_col="time", target=["y"], lookback=24, delay=6)


# -- 1. splits the user already has: --test-csv, --val-frac 0 ------------------------------------------------

def test_a_held_out_file_is_the_test_part_and_its_windows_see_the_training_history(tmp_path):
    train = write_hourly(tmp_path / "train.csv", 0, 300)
    test = write_hourly(tmp_path / "test.csv", 300, 120)
    fc = Forecaster(csv=str(train), test_csv=str(test), model="naive", **HOURLY).fit(
        verbose=False, run_dir=str(tmp_path / "run"))
    # validation: the last val_frac=0.25 of the 300 training rows; test: the held-out file's 120 rows
    assert fc.splits_ == (225, 300)
    # test windows have their inputs and targets in the held-out file: rows 300+24 .. 420-6
    assert len(fc.rows_["test"]) == (420 - 6 + 1) - (300 + 24)
    t = np.arange(300 + 24 - 1, 420 - 6)                               # last input hours of those windows
    by_hand = np.abs(cycle(t + 6) - cycle(t)).mean()
    assert fc.metrics_["test_mae"] == pytest.approx(by_hand, rel=1e-4)
    # the run remembers the file: loaded, its test part is read again from both files
    again = Forecaster.load(str(tmp_path / "run"))
    assert again.evaluate()["mae"] == pytest.approx(fc.metrics_["test_mae"], rel=1e-6)
    # predict: after the end of the held-out file (hour 419 is 2022-05-18T11:00)
    assert again.predict()[0]["time"] == "2022-05-18T17:00:00"


def test_a_held_out_file_after_a_gap_and_the_refusals(tmp_path, capsys):
    train = write_hourly(tmp_path / "train.csv", 0, 300)
    later = write_hourly(tmp_path / "later.csv", 310, 120)
    fc = Forecaster(csv=str(train), test_csv=str(later), model="naive", **HOURLY).fit(verbose=False)
    assert fc.splits_[1] == 310 and len(fc.series_) == 430
    assert "test part: " + str(later) + " (120 steps from 2022-05-13T22:00:00), 10 missing steps after" in \
        " ".join(fc.series_.report)
    overlap = write_hourly(tmp_path / "overlap.csv", 250, 100)
    with pytest.raises(ValueError, match=r"test_csv='.*overlap.csv': expected a held-out period after the end of "
                                         r".*train.csv \(2022-05-13T11:00:00\); it begins at 2022-05-11T10:00:00"):
        Forecaster(csv=str(train), test_csv=str(overlap), model="naive", **HOURLY).fit(verbose=False)
    with pytest.raises(ValueError, match=r"val_end='2022-05-10': expected no val_end with test_csv"):
        Forecaster(csv=str(train), test_csv=str(later), val_end="2022-05-10", model="naive", **HOURLY).fit(
            verbose=False)
    # the CLI flag, and a missing file named by its flag
    argv = ["forecast", "train", "--csv", str(train), "--time-col", "time", "--target", "y", "--lookback", "24",
            "--delay", "6", "--model", "naive"]
    assert main([*argv, "--test-csv", str(later), "--run-dir", str(tmp_path / "r1")]) == 0
    assert "naive: MAE of y 6 steps ahead (6 hours)" in capsys.readouterr().out
    assert main([*argv, "--test-csv", str(tmp_path / "none.csv"), "--run-dir", str(tmp_path / "r2")]) == 2
    assert "rnnkit: error: test_csv=" in capsys.readouterr().err


def test_val_frac_zero_trains_every_epoch_and_keeps_the_last_weights(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 240)
    run = tmp_path / "run"
    fc = Forecaster(csv=str(csv), model="gru", hidden_size=8, batch_size=32, epochs=2, min_steps=0,
                    early_stop_patience=1, val_frac=0, test_frac=0.25, **HOURLY).fit(run_dir=str(run), progress=False)
    assert "no validation part (val_frac=0): trains all 2 epochs" in capsys.readouterr().err
    assert len(fc.rows_["val"]) == 0 and fc.splits_[0] == fc.splits_[1] == 180
    assert [r["epoch"] for r in fc.history_] == [0, 1] and "val_loss" not in fc.history_[0]
    assert fc.metrics_["val_mae"] is None and fc.metrics_["test_mae"] > 0
    # the model kept is the last epoch's: the same weights as the run's last checkpoint
    last = RunDir(run).load_weights(best=False)
    for name, value in fc.model_.state_dict().items():
        torch.testing.assert_close(value, last[name])
    # ridge has no windows to choose its penalty on: alpha 1 unless given
    assert Forecaster(csv=str(csv), model="ridge", val_frac=0, **HOURLY).fit(verbose=False).alpha_ == 1.0
    # the CLI: train and compare work and say what is missing
    argv = ["--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24", "--delay", "6",
            "--val-frac", "0"]
    assert main(["forecast", "train", *argv, "--model", "ridge", "--run-dir", str(tmp_path / "r")]) == 0
    assert "validation none (val_frac=0), test " in capsys.readouterr().out
    assert main(["forecast", "compare", *argv, "--models", "naive", "gru", "--epochs", "1", "--min-steps", "0",
                 "--hidden-size", "4", "--run-dir", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| gru \| - \| \d+\.\d{3} ± \d+\.\d{3} \| - \|", out), out       # 3 seeds: mean ± sd
    assert "no validation part (val_frac=0): no model is picked" in out


# -- 2. seasonal naive is the bar -----------------------------------------------------------------------------

def test_compare_shows_the_gain_over_naive_and_over_seasonal_naive(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 480)
    cfg = ForecastConfig(csv=str(csv), time_col="time", target=["y"], lookback=48, delay=6)
    rows = {r["model"]: r for r in compare(cfg, ["naive", "seasonal_naive", "ridge"])}
    # the seasonal naive forecast is off by the trend over one season: 0.01 x 24 hours
    snaive = rows["seasonal_naive"]["test_mae"]
    assert snaive == pytest.approx(0.24, abs=1e-3)
    assert rows["seasonal_naive"]["test_vs_seasonal_naive_pct"] == pytest.approx(0, abs=1e-9)
    naive = rows["naive"]["test_mae"]
    assert rows["naive"]["test_vs_seasonal_naive_pct"] == pytest.approx(100 * (1 - naive / snaive))
    assert rows["naive"]["test_vs_seasonal_naive_pct"] < -500       # the cycle's change over 6 hours is large
    assert rows["ridge"]["test_vs_seasonal_naive_pct"] > 50 and rows["ridge"]["season"] == 24
    table = results_markdown(list(rows.values()))
    assert "| val vs seasonal naive | test vs seasonal naive |" in table.splitlines()[0]
    # the CLI: the table, the summary line against both, the CSV columns and both plots
    out_dir = tmp_path / "cmp"
    assert main(["forecast", "compare", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "48",
                 "--delay", "6", "--models", "naive", "gru", "--dry-run", "--run-dir", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"best recurrent model by validation: gru \([+-]\d+\.\d% val, [+-]\d+\.\d% test against naive; "
                     r"[+-]\d+\.\d% val, [+-]\d+\.\d% test against seasonal naive, season 24 steps\)", captured.out)
    assert ("baselines: naive = the last value; seasonal naive = the value 24 steps (24 hours) before"
            in captured.err)
    header = (out_dir / "compare.csv").read_text().splitlines()[0].split(",")
    assert {"val_vs_seasonal_naive_pct", "test_vs_seasonal_naive_pct", "season"} <= set(header)
    assert (out_dir / "predictions.png").stat().st_size > 0 and (out_dir / "losses.png").stat().st_size > 0


def test_eval_reports_both_baselines_and_a_series_without_season_shows_a_dash(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 300)
    run = tmp_path / "run"
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "6", "--model", "ridge", "--run-dir", str(run)]) == 0
    assert "; seasonal naive (season 24): validation " in capsys.readouterr().out
    assert main(["forecast", "eval", str(run)]) == 0
    assert re.search(r"naive \d+\.\d+ \(\d+\.\d% better than naive\); seasonal naive 0\.2400 \(\d+\.\d% better "
                     r"than seasonal naive\)", capsys.readouterr().out)
    steps = tmp_path / "steps.csv"
    steps.write_text("step,y\n" + "".join(f"{i},{np.sin(i / 3):.5f}\n" for i in range(200)))
    rows = compare(ForecastConfig(csv=str(steps), time_col="step", target=["y"], lookback=12, delay=2), ["naive"])
    assert rows[0]["test_vs_seasonal_naive_pct"] is None and rows[0]["season"] is None
    assert "| +0.0% | +0.0% | - | - |" in results_markdown(rows)


# -- 3. series of any frequency ---------------------------------------------------------------------------------

@pytest.mark.parametrize("freq,expected", [
    (np.timedelta64(10, "m"), (144, 6)),        # 1 day back, 1 hour ahead
    (np.timedelta64(3600, "s"), (120, 24)),     # 5 days back, 1 day ahead
    (np.timedelta64(1, "D"), (56, 1)),          # 8 weeks back, the next day
    (np.timedelta64(7, "D"), (52, 1)),          # a year back
    (np.timedelta64(1, "M"), (24, 1)),          # 2 years back
    (np.timedelta64(3, "M"), (8, 1)),
    (np.timedelta64(1, "Y"), (10, 1)),
    (5, None),                                  # step numbers: no unit, no default
])
def test_window_defaults_are_chosen_in_time_units(freq, expected):
    assert window_defaults(freq) == expected


@pytest.mark.parametrize("n,freq,words", [
    (24, np.timedelta64(3600, "s"), "24 hours"),
    (120, np.timedelta64(3600, "s"), "120 hours (5 days)"),
    (1, np.timedelta64(1, "D"), "1 day"),
    (56, np.timedelta64(1, "D"), "56 days (8 weeks)"),
    (6, np.timedelta64(10, "m"), "60 minutes"),
    (24, np.timedelta64(1, "M"), "24 months (2 years)"),
    (3, 1, "3 steps"),
])
def test_steps_in_words(n, freq, words):
    assert S.describe_steps(n, freq) == words


def test_daily_series_get_daily_defaults_and_say_what_they_mean(tmp_path, capsys):
    csv = write_daily(tmp_path / "d.csv")
    run = tmp_path / "run"
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "date", "--target", "y", "--model",
                 "seasonal_naive", "--run-dir", str(run)]) == 0
    captured = capsys.readouterr()
    assert ("lookback 56 steps = 56 days (8 weeks), delay 1 step = 1 day ahead (lookback and delay: the default "
            "for steps of 1 day)") in captured.err
    assert "seasonal_naive: MAE of y 1 step ahead (1 day)" in captured.out
    doc = json.loads((run / "config.json").read_text())
    assert doc["config"]["lookback"] is None and (doc["fitted"]["lookback"], doc["fitted"]["delay"]) == (56, 1)
    again = Forecaster.load(str(run))
    assert (again.window_config_.lookback, again.window_config_.delay) == (56, 1)
    assert again.predict()[0]["time"] == "2022-02-08"                  # the day after the last one
    # with a step of 5 the default lookback is rounded up to a multiple of it; a given delay is kept
    fc = Forecaster(csv=str(csv), time_col="date", target=["y"], step=5, delay=3, model="naive").fit(verbose=False)
    assert (fc.window_config_.lookback, fc.window_config_.delay) == (60, 3)


def test_step_numbered_series_need_lookback_and_delay(tmp_path, capsys):
    csv = tmp_path / "steps.csv"
    csv.write_text("step,y\n" + "".join(f"{i},{np.sin(i / 3):.5f}\n" for i in range(200)))
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "step", "--target", "y", "--delay", "2",
                 "--model", "naive", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ("rnnkit: error: lookback=None: expected a number of steps (--lookback N): the "
                                       "time column holds step numbers, not timestamps, so no default can be "
                                       "inferred from its frequency\n")


def test_calendar_features_fit_the_step():
    # 2024-01-01 is a Monday: phase 0 of the week; Thursday 12:00 is 3.5 days into it
    hours = np.array(["2024-01-01T00", "2024-01-04T12"], dtype="datetime64[h]")
    values, names = S.calendar_features(hours, np.timedelta64(1, "h"))
    assert names == ["day_sin", "day_cos", "week_sin", "week_cos", "year_sin", "year_cos"]
    np.testing.assert_allclose(values[:, 2:4], [[0.0, 1.0], [np.sin(np.pi), np.cos(np.pi)]], atol=1e-12)
    np.testing.assert_allclose(values[:, :2], [[0.0, 1.0], [0.0, -1.0]], atol=1e-12)     # midnight, noon
    days = np.array(["2024-01-01", "2024-07-01"], dtype="datetime64[D]")
    assert S.calendar_features(days, np.timedelta64(1, "D"))[1] == ["week_sin", "week_cos", "year_sin", "year_cos"]
    months = np.array(["2024-01", "2024-07"], dtype="datetime64[M]")
    values, names = S.calendar_features(months, np.timedelta64(1, "M"))
    assert names == ["year_sin", "year_cos"] and values[1, 1] == pytest.approx(-1.0, abs=0.02)   # half a year on
    assert S.calendar_features(np.arange(3), 1)[1] == []


def test_calendar_flag_and_its_earlier_name(tmp_path, capsys):
    csv = write_daily(tmp_path / "d.csv")
    fc = Forecaster(csv=str(csv), time_col="date", target=["y"], lookback=14, model="naive",
                    calendar=True).fit(verbose=False)
    assert fc.columns_ == ["y", "week_sin", "week_cos", "year_sin", "year_cos"]
    # --exclude leaves calendar columns out too (weather has no weekly cycle)
    fc = Forecaster(csv=str(csv), time_col="date", target=["y"], lookback=14, model="naive", calendar=True,
                    exclude=["week_sin", "week_cos"]).fit(verbose=False)
    assert fc.columns_ == ["y", "year_sin", "year_cos"]
    # without the calendar a calendar column is not there to leave out (with auto, it may be)
    with pytest.raises(ValueError, match=r"^exclude='week_sin': expected a column of the data; its columns are: "
                                         r"date, y$"):
        Forecaster(csv=str(csv), time_col="date", target=["y"], lookback=14, model="naive", calendar=False,
                   exclude=["week_sin"]).fit(verbose=False)
    # the earlier option (kept for run directories and scripts that used it): time of day and year only
    old = Forecaster(csv=str(csv), time_col="date", target=["y"], lookback=14, model="naive",
                     time_features=True).fit(verbose=False)
    assert old.columns_ == ["y", "year_sin", "year_cos"]
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "date", "--target", "y", "--lookback", "14",
                 "--model", "naive", "--calendar", "--run-dir", str(tmp_path / "run")]) == 0
    assert "5 input columns (y, week_sin, week_cos, year_sin, year_cos)" in capsys.readouterr().err


def test_features_all_and_exclude(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 300, extra=True)
    common = dict(csv=str(csv), model="naive", **HOURLY)
    # every numeric column but the time and the target; the text column and the empty one are not inputs
    assert Forecaster(features=["all"], **common).fit(verbose=False).columns_ == ["y", "a", "b"]
    assert Forecaster(features=["all"], exclude=["b"], **common).fit(verbose=False).columns_ == ["y", "a"]
    with pytest.raises(ValueError, match=r"^exclude='y': expected input columns only, not a target \(y\)$"):
        Forecaster(features=["all"], exclude=["y"], **common).fit(verbose=False)
    with pytest.raises(ValueError, match=r"^exclude='zz': expected a column of the data or a calendar column; its "
                                         r"columns are: time, y, a, b, site, blank, day_sin, day_cos, week_sin, "
                                         r"week_cos, year_sin, year_cos$"):
        Forecaster(features=["all"], exclude=["zz"], **common).fit(verbose=False)
    with pytest.raises(ValueError, match=r"features=\['all', 'a'\]: expected either 'all' alone"):
        ForecastConfig(features=["all", "a"])
    # a dataset's own features: exclude one (its angle columns follow)
    nyc = resolved(ForecastConfig(dataset="nyc-weather", exclude=["wind_dir", "visib"]))
    assert "wind_dir" not in nyc["features"] and "visib" not in nyc["features"] and nyc["angles"] == []
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "6", "--model", "naive", "--features", "all", "--exclude", "a",
                 "--run-dir", str(tmp_path / "run")]) == 0
    assert "2 input columns (y, b)" in capsys.readouterr().err


# -- 4. early stopping on by default -----------------------------------------------------------------------------

def test_early_stopping_is_on_by_default_and_a_stopped_run_resumes_with_more_patience(tmp_path, capsys):
    assert ForecastConfig().train.epochs == 100 and ForecastConfig().train.early_stop_patience == 5
    noise = np.random.default_rng(0).normal(size=240)                  # nothing to learn: validation stalls
    times = np.datetime64("2022-05-01T00") + np.arange(240).astype("timedelta64[h]")
    csv = tmp_path / "noise.csv"
    csv.write_text("time,y\n" + "".join(f"{t}:00:00Z,{v:.5f}\n" for t, v in zip(times, noise)))
    run = tmp_path / "run"
    argv = ["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "12",
            "--delay", "1", "--model", "gru", "--hidden-size", "4", "--batch-size", "32", "--lr", "0.3",
            "--min-steps", "0"]
    assert main([*argv, "--run-dir", str(run)]) == 0
    err = capsys.readouterr().err
    doc = json.loads((run / "config.json").read_text())
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["event"] == "epoch"]
    best = doc["fitted"]["best_epoch"]
    assert len(epochs) == best + 1 + 5 < 100                           # stopped 5 epochs after the best one
    # ... and says so, and which weights it kept (issue 23: "epoch 7/100", epoch-2 weights, no reason given)
    assert (f"stopped early after epoch {len(epochs)}: val_loss had not improved for 5 epochs "
            f"(--early-stop-patience 5)") in err
    best_loss = epochs[best]["val_loss"]
    assert f"kept the weights of epoch {best + 1} (val_loss {best_loss:.4g}), the best" in err
    # resumed: more epochs alone do not help (it stopped early); more patience goes on
    assert main(["forecast", "train", "--resume", "--run-dir", str(run), "--epochs", "200"]) == 2
    assert "it stopped early after 5 epochs without improvement" in capsys.readouterr().err
    assert main(["forecast", "train", "--resume", "--run-dir", str(run), "--early-stop-patience", "6"]) == 0
    more = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in more if r["event"] == "epoch"]) > len(epochs)


# -- 5. issue 23: seeds as a measurement, resumable comparisons, features on evidence, defaults -----------------

def test_mean_sd_and_the_tie_rule():
    from rnnkit.tasks.forecast.seeds import mean_sd, tied

    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_sd([2.5]) == (2.5, None)
    assert mean_sd([1.0, None]) == (None, None)                           # no validation part
    # tied: |m1 - m2| < 2 sqrt(se1^2 + se2^2); here 2 sqrt(0.02) = 0.283
    assert tied((3.0, 0.1), (3.25, 0.1)) and not tied((3.0, 0.1), (3.3, 0.1))
    assert tied((3.0, 0.0), (3.1, 0.06)) and not tied((3.0, 0.0), (3.13, 0.06))   # a deterministic model: se 0
    assert not tied((3.0, None), (3.0, 0.1))                              # one seed: no spread, no tie


def test_the_budget_is_the_whole_command_s_and_shared_as_the_fits_go(monkeypatch):
    from rnnkit.tasks.forecast import seeds

    now = [100.0]
    monkeypatch.setattr(seeds.time, "monotonic", lambda: now[0])
    budget = seeds.Budget(2.0, 4, started=90.0, reserve=6.0)      # began 10 s ago; 6 s kept for the reports
    assert budget.share() * 60 == pytest.approx((120 - 10 - 6) / 4)
    now[0] += 30.0                                                 # 20 s of training, 10 s around it
    budget.done(train_seconds=20.0)
    assert budget.overhead == pytest.approx(10.0)
    # what is left (74 s), less the others' overhead (3 x 10 s), over the 3 fits to go
    assert budget.share() * 60 == pytest.approx((74 - 30) / 3)
    budget.skip()                                                  # a fit finished earlier: its share goes on
    assert budget.left == 2 and seeds.Budget(None, 3).share() is None


def write_with_columns(path, n=360):
    """The hourly cycle plus ``junk`` (noise that says nothing about y) and ``lead`` (y six hours later: the
    answer itself, so any model with it is near exact)."""
    t = np.arange(n)
    times = np.datetime64("2022-05-01T00") + t.astype("timedelta64[h]")
    junk = np.random.default_rng(1).normal(size=n) * 5
    y = cycle(t)
    lead = cycle(t + 6)
    path.write_text("time,y,junk,lead\n" + "".join(f"{s}:00:00Z,{a:.5f},{b:.5f},{c:.5f}\n"
                                                   for s, a, b, c in zip(times, y, junk, lead)))
    return path


def test_features_that_make_validation_worse_are_said_and_auto_keeps_the_better_inputs(tmp_path, capsys):
    csv = write_with_columns(tmp_path / "s.csv")
    # calendar=False: the other columns alone are in question here (the calendar's check is in section 5)
    common = dict(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, model="ridge", calendar=False)
    # noise as an input: one line with both figures, the target alone the lower
    Forecaster(**common, features=["junk"]).fit()
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("features: "))
    alone, both = map(float, re.search(r"([\d.]+) with the target alone, ([\d.]+) with the 1 other input column "
                                       r"too \(junk\): the other columns made it worse here", line).groups())
    assert alone < both
    # auto: the same check picks the inputs; the model and its run keep the target alone
    run = tmp_path / "auto"
    fc = Forecaster(**common, features=["auto"], exclude=["lead"]).fit(run_dir=str(run))
    assert "--features auto keeps the targets alone" in capsys.readouterr().err
    assert fc.columns_ == ["y"] and fc.metrics_["val_mae"] == pytest.approx(alone, rel=1e-3)   # the same ridge
    doc = json.loads((run / "config.json").read_text())
    assert doc["data"]["features_check"]["kept"] == "targets" and doc["fitted"]["columns"] == ["y"]
    again = Forecaster.load(str(run))
    assert again.predict() == fc.predict()                     # the table still has every column: only y is read
    # a column that helps (the answer itself, six hours ahead) is kept by auto, and nothing is said against it
    fc = Forecaster(**{**common, "csv": str(csv)}, features=["auto"], exclude=["junk"]).fit()
    err = capsys.readouterr().err
    assert "--features auto keeps every column" in err and fc.columns_ == ["y", "lead"]
    assert fc.metrics_["val_mae"] < 0.01 * fc.metrics_["naive_val_mae"]


def test_a_small_training_set_gets_a_smaller_batch_and_says_so(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 240)
    args = dict(csv=str(csv), model="gru", hidden_size=4, epochs=1, min_steps=0, **HOURLY)
    fc = Forecaster(**args).fit(progress=False)
    n = len(fc.rows_["train"])                       # 96 windows: one update an epoch at the default batch 128
    batch = max(8, -(-n // 8))
    assert f"data: batch {batch} instead of --batch-size 128: {n} training windows would make 1 update(s)" in \
        capsys.readouterr().err
    assert fc.trainer_.step == -(-n // batch) >= 8
    fc = Forecaster(**args, auto_batch=False).fit(progress=False)
    assert fc.trainer_.step == 1 and "instead of --batch-size" not in capsys.readouterr().err


def test_train_with_seeds_reports_mean_and_sd_and_keeps_each_seed_run(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 240)
    run = tmp_path / "run"
    argv = ["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
            "--delay", "6", "--model", "gru", "--hidden-size", "4", "--epochs", "1", "--min-steps", "0",
            "--seeds", "3", "--seed", "5"]
    assert main([*argv, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    own = json.loads((run / "config.json").read_text())["fitted"]["metrics"]
    others = [json.loads((run / f"seed-{s}" / "config.json").read_text()) for s in (6, 7)]
    assert all(d["finished"] and d["config"]["train"]["seed"] == s for d, s in zip(others, (6, 7)))
    vals = [own["val_mae"]] + [d["fitted"]["metrics"]["val_mae"] for d in others]
    mean, sd = float(np.mean(vals)), float(np.std(vals, ddof=1))
    assert own["seeds"] == [5, 6, 7] and own["val_mae_mean"] == pytest.approx(mean) and own["val_mae_sd"] == \
        pytest.approx(sd)
    assert f"gru over 3 seeds (5..7): MAE mean ± sd: validation {mean:.4f} ± {sd:.4f}, test " in out
    # The averaged forecast, recomputed here from the three runs' models on the same test windows.
    from rnnkit.report.metrics import mae_per_target
    fcs = [Forecaster.load(run)] + [Forecaster.load(run / f"seed-{s}") for s in (6, 7)]
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, model="gru", hidden_size=4,
                    epochs=1, min_steps=0, seed=5).fit(progress=False)      # the same windows as the run's
    preds = [fc.predict_rows(fc.rows_["test"], f.model_) for f in fcs]
    expected = float(mae_per_target(np.mean([p for p, _ in preds], axis=0), preds[0][1],
                                     fc.normalizer_.std[:1]).mean())
    assert own["test_mae_ensemble"] == pytest.approx(expected, rel=1e-5)
    assert f"the 3 seeds' forecasts averaged (an ensemble, not the run's model): MAE validation " \
           f"{own['val_mae_ensemble']:.4f}, test {expected:.4f}" in out
    # the seeds' runs go with the run: --overwrite deletes them too
    assert main([*argv, "--seeds", "1", "--run-dir", str(run), "--overwrite"]) == 0
    assert not (run / "seed-6").exists()


def test_model_auto_picks_by_validation_and_keeps_the_table(tmp_path, capsys):
    csv = write_hourly(tmp_path / "s.csv", 0, 300)
    run = tmp_path / "run"
    fc = Forecaster(csv=str(csv), hidden_size=4, epochs=1, min_steps=0, **HOURLY).fit(run_dir=str(run))
    assert ForecastConfig().model == "auto"
    rows = {r["model"]: r for r in fc.candidates_}
    assert set(rows) == {"naive", "seasonal_naive", "ridge", "gru", "conv1d"}
    best = min(rows.values(), key=lambda r: r["val_mae"])
    assert best["vs_best"] == "best" and fc.config.model == best["model"] == "ridge"     # a noise-free cycle
    assert fc.metrics_["val_mae"] == pytest.approx(best["val_mae"])
    loaded = Forecaster.load(str(run))
    assert loaded.config.model == "ridge" and loaded.candidates_[0]["model"] == "naive"
    assert (run / "candidates" / "compare.csv").read_text().count("\n") == 6
    # the CLI prints the table and what it kept
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "6", "--hidden-size", "4", "--epochs", "1", "--min-steps", "0",
                 "--run-dir", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "| conv1d |" in out and "model auto: best by mean validation MAE: ridge (" in out
    assert "the run keeps ridge" in out


def interrupt_in(monkeypatch, folder: str, exception):
    """Raise ``exception`` at the first training step of the run whose folder is named ``folder``."""
    from rnnkit.training import Trainer
    fit = Trainer.fit

    def fit_and_stop(self, *args, **kwargs):
        if self.run_dir is not None and self.run_dir.path.name == folder:
            def stop(trainer):
                raise exception
            self.add_callback("on_step_end", stop)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit_and_stop)


@pytest.mark.parametrize("signal", ["ctrl-c", "sigterm"])
def test_compare_resume_keeps_what_finished_and_trains_the_rest(tmp_path, capsys, monkeypatch, signal):
    from rnnkit.cli import Terminated

    csv = write_hourly(tmp_path / "s.csv", 0, 240)
    out_dir = tmp_path / "cmp"
    argv = ["forecast", "compare", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
            "--delay", "6", "--hidden-size", "4", "--epochs", "1", "--min-steps", "0", "--seeds", "2",
            "--models", "naive", "gru", "lstm", "--run-dir", str(out_dir)]
    interrupt_in(monkeypatch, "seed-1" if signal == "ctrl-c" else "lstm",
                 KeyboardInterrupt() if signal == "ctrl-c" else Terminated())
    # Ctrl-C in lstm's second seed; SIGTERM in lstm's first
    assert main(argv) == (130 if signal == "ctrl-c" else 143)
    err = capsys.readouterr().err
    command = f"rnnkit forecast compare --models naive gru lstm --run-dir {out_dir} --resume"
    assert err.splitlines()[-2] == f"resume the comparison with: {command}"      # (the last: rnnkit: ...)
    assert "fit(..., resume=True)" not in err
    if signal == "ctrl-c":
        # the interrupted seed is gru's second (the first folder named seed-1): gru is not in the table yet
        rows = (out_dir / "compare.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["naive"]
    else:
        # written after each model: naive and gru are there, lstm is not
        rows = (out_dir / "compare.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["naive", "gru"]
    gru_epochs = (out_dir / "gru" / "metrics.jsonl").read_text()
    monkeypatch.undo()
    assert main(command.split()[1:]) == 0
    captured = capsys.readouterr()
    assert f"naive: finished earlier in {out_dir / 'naive'}: kept" in captured.err
    assert f"gru seed 0: finished earlier in {out_dir / 'gru'}: kept" in captured.err
    if signal == "sigterm":
        assert f"gru seed 1: finished earlier in {out_dir / 'gru' / 'seed-1'}: kept" in captured.err
    assert (out_dir / "gru" / "metrics.jsonl").read_text() == gru_epochs          # not trained again
    rows = list(csv_rows(out_dir / "compare.csv"))
    assert [r["model"] for r in rows] == ["naive", "gru", "lstm"] and all(r["seeds"] == "2" or r["model"] == "naive"
                                                                          for r in rows)
    assert (out_dir / "lstm" / "seed-1" / "config.json").is_file() and "| lstm |" in captured.out


def csv_rows(path):
    import csv
    with open(path, newline="") as f:
        yield from csv.DictReader(f)


def test_compare_ranks_by_the_mean_and_marks_ties(tmp_path, capsys):
    from rnnkit.tasks.forecast.compare import rank, simplest_of_the_best

    def row(model, mean, sd, n, deterministic=False):
        return {"model": model, "val_mae": mean, "val_mae_sd": sd, "seeds": n, "deterministic": deterministic,
                "rank": None, "vs_best": None}
    rows = [row("naive", 4.0, 0.0, 1, True), row("gru", 3.0, 0.2, 4), row("lstm", 3.3, 0.2, 4),
            row("ridge", 3.2, 0.0, 1, True), row("bigru", 3.5, 0.2, 4)]
    rank(rows)
    # gru best (se 0.2 / sqrt(4) = 0.1); ridge: 0.2 is not < 2 * 0.1; lstm: 0.3 is not < 2 sqrt(0.1² + 0.1²) = 0.283
    assert [(r["model"], r["rank"], r["vs_best"]) for r in rows] == [
        ("naive", 5, "worse"), ("gru", 1, "best"), ("lstm", 3, "worse"), ("ridge", 2, "worse"),
        ("bigru", 4, "worse")]
    rows[2]["val_mae"] = 3.25                                          # 0.25 < 0.283: inside the noise
    rank(rows)
    assert rows[2]["vs_best"] == "tied" and simplest_of_the_best(rows)["model"] == "gru"
    rows[3]["val_mae"] = 3.15                                          # ridge: 0.15 < 2 * 0.1
    rank(rows)
    assert rows[3]["vs_best"] == "tied" and simplest_of_the_best(rows)["model"] == "ridge"   # the simpler one
    # the CLI's table shows mean ± sd and the marks, and the summary says which rule called the tie
    csv = write_hourly(tmp_path / "s.csv", 0, 240)
    assert main(["forecast", "compare", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "6", "--hidden-size", "4", "--epochs", "1", "--min-steps", "0", "--models", "naive",
                 "ridge", "gru", "--run-dir", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    mean_sd = r"\d+\.\d{3} ± \d+\.\d{3}"
    assert re.search(rf"\| gru \| {mean_sd} \| {mean_sd} \|.*\| 3 \| \d( \((best|tied)\))? \|", out), out
    assert "best by mean validation MAE: ridge (" in out
    header = next(csv_rows(tmp_path / "cmp" / "compare.csv"))
    assert {"val_mae_sd", "test_mae_sd", "seeds", "rank", "vs_best"} <= set(header)


# -- 5. the calendar on evidence: --calendar auto (the default) ------------------------------------------------

def write_noisy_cycle(path, cycle_size, days=40, seed=0):
    """Hourly ``y``: a daily cycle of amplitude ``cycle_size`` plus a random walk (which the calendar cannot
    explain) and noise; the last values show the phase of the day only through the noise."""
    t = np.arange(24 * days)
    rng = np.random.default_rng(seed)
    times = np.datetime64("2022-05-02T00") + t.astype("timedelta64[h]")
    y = cycle_size * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.3, len(t))) + rng.normal(0, 2, len(t))
    path.write_text("time,y\n" + "".join(f"{s}:00:00Z,{v:.5f}\n" for s, v in zip(times, y)))
    return path


CHECK_LINE = (r"^features: validation MAE of a ridge model on these windows: ([\d.]+) with the target alone, "
              r"([\d.]+) with the target and the calendar cycles \(day, week, year\): --calendar auto (adds the "
              r"calendar cycles|leaves the calendar cycles out) \(a linear model's verdict, standing in for the "
              r"model's own(?:; the calendar lowers it by (-?[\d.]+), (more than|within) the noise of the "
              r"windows, ±([\d.]+))?\)$")


def check_line(err):
    line = next(x for x in err.splitlines() if x.startswith("features: "))
    return re.match(CHECK_LINE, line).groups()


def fit_with_calendar_auto(tmp_path, capsys, cycle_size):
    """A ridge run on a noisy cycle (cycle_size 0: a random walk) with the default --calendar auto: the
    fitted task, its run directory and the check line's figures."""
    csv = write_noisy_cycle(tmp_path / "series.csv", cycle_size=cycle_size)
    run = tmp_path / "run"
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=6, delay=6, model="ridge").fit(
        run_dir=str(run))
    return fc, run, check_line(capsys.readouterr().err)


def test_calendar_auto_adds_a_cycle_the_calendar_explains_and_says_so(tmp_path, capsys):
    fc, run, (alone, with_calendar, verdict, gain, word, noise) = fit_with_calendar_auto(tmp_path, capsys, 6)
    assert verdict == "adds the calendar cycles" and word == "more than"
    assert float(with_calendar) < 0.8 * float(alone)
    assert float(gain) == pytest.approx(float(alone) - float(with_calendar), abs=0.01) and float(gain) > float(noise)
    assert fc.columns_ == ["y", "day_sin", "day_cos", "week_sin", "week_cos", "year_sin", "year_cos"]
    # the ridge trained is the check's on the same inputs: the same validation MAE
    assert fc.metrics_["val_mae"] == pytest.approx(float(with_calendar), rel=1e-3)
    # the run keeps the decision: its columns and the check's figures; loaded, it reads the same inputs
    doc = json.loads((run / "config.json").read_text())
    assert doc["config"]["calendar"] == "auto" and doc["fitted"]["columns"] == fc.columns_
    assert doc["data"]["features_check"]["kept"] == "targets+calendar"
    again = Forecaster.load(str(run))
    assert again.columns_ == fc.columns_ and again.predict() == fc.predict()
    assert again.evaluate()["mae"] == pytest.approx(fc.metrics_["test_mae"], rel=1e-6)


def test_calendar_auto_leaves_out_a_calendar_that_explains_nothing(tmp_path, capsys):
    fc, run, (alone, with_calendar, verdict, gain, word, noise) = fit_with_calendar_auto(tmp_path, capsys, 0)
    assert verdict == "leaves the calendar cycles out"
    # the calendar's MAE higher (no margin to state), or lower by less than the noise
    assert float(with_calendar) >= float(alone) and gain is None or word == "within" and float(gain) < float(noise)
    assert fc.columns_ == ["y"] and fc.metrics_["val_mae"] == pytest.approx(float(alone), rel=1e-3)
    doc = json.loads((run / "config.json").read_text())
    assert doc["data"]["features_check"]["kept"] == "targets" and doc["fitted"]["columns"] == ["y"]
    # loaded, the run reads only y from a table that prepares the calendar columns too
    again = Forecaster.load(str(run))
    assert again.columns_ == ["y"] and again.predict() == fc.predict()


def test_calendar_takes_auto_true_and_false_and_old_runs_keep_theirs(tmp_path, capsys):
    assert ForecastConfig().calendar == "auto"
    assert [ForecastConfig(calendar=v).calendar for v in ("true", "off", "AUTO", 1, False)] == [True, False, "auto",
                                                                                                 True, False]
    with pytest.raises(ValueError, match=r"^calendar='sometimes': expected true, false or auto$"):
        ForecastConfig(calendar="sometimes")
    # the earlier option (time_features) keeps its own inputs: no calendar check
    assert ForecastConfig(time_features=True).calendar is False
    csv = write_daily(tmp_path / "d.csv")
    data = ["--csv", str(csv), "--time-col", "date", "--target", "y", "--lookback", "14", "--model", "naive"]
    for flags, calendar, columns in ((["--calendar"], True, 5), (["--calendar", "false"], False, 1),
                                     (["--no-calendar"], False, 1), (["--calendar", "true"], True, 5)):
        run = tmp_path / f"run-{'-'.join(flags)}"
        assert main(["forecast", "train", *data, *flags, "--run-dir", str(run)]) == 0
        assert f"{columns} input column" in capsys.readouterr().err
        doc = json.loads((run / "config.json").read_text())
        assert doc["config"]["calendar"] is calendar
        # a run saved with calendar false (as every run before auto) loads with it, and its inputs
        loaded = Forecaster.load(str(run))
        assert loaded.config.calendar is calendar and len(loaded.columns_) == columns
    with pytest.raises(SystemExit):
        main(["forecast", "train", *data, "--calendar", "maybe", "--run-dir", str(tmp_path / "bad")])
    assert "--calendar: invalid" in capsys.readouterr().err
