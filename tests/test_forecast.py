"""Forecaster: baselines by hand, learning a daily cycle, run-directory round trips, the CLI and its errors."""

import json
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks.base import NotFittedError
from rnnkit.tasks.forecast.data import default_season, resolved
from rnnkit.tasks.forecast.model import MODELS, ForecastNet, Naive, SeasonalNaive, seasonal_positions
from rnnkit.tasks.forecast.compare import compare
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster


def write_csv(path, n=480, gap=None, nan_at=(), text_target=False, start="2022-05-01T00"):
    """An hourly daily cycle (period 24) with a slow trend; optional gap (rows left out) and NaNs."""
    t = np.arange(n)
    y = 10 + 5 * np.sin(2 * np.pi * t / 24) + 0.01 * t
    times = np.datetime64(start) + t.astype("timedelta64[h]")
    lines = ["time,y,other,site"]
    for i in range(n):
        if gap is not None and gap[0] <= i < gap[1]:
            continue
        value = "NA" if i in nan_at else f"{y[i]:.6f}"
        lines.append(f"{times[i]}:00:00Z,{value},{np.cos(i):.4f},{'x' if text_target else 'S1'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_naive_and_seasonal_naive_by_hand():
    x = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)      # (B=2, L=6, F=2)
    out = Naive(n_targets=1, horizon=3)(x)
    assert out.shape == (2, 3, 1)
    assert out[0, :, 0].tolist() == [10.0, 10.0, 10.0] and out[1, 0, 0] == 22.0
    # window times -5..0, season 4, targets 2 and 3 ahead: the values at -2 and -1, indices 3 and 4
    positions = seasonal_positions(season=4, lookback=6, step=1, delay=2, horizon=2)
    assert positions == [3, 4]
    assert SeasonalNaive(1, positions)(x)[0, :, 0].tolist() == [6.0, 8.0]
    with pytest.raises(ValueError, match=r"season=8: expected a period whose earlier value lies in the window"):
        seasonal_positions(season=8, lookback=6, step=1, delay=1, horizon=1)


def test_residual_model_with_a_zero_head_is_the_naive_forecast():
    net = ForecastNet("gru", n_features=2, steps=5, n_targets=1, horizon=2, residual=True)
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.randn(3, 5, 2)
    torch.testing.assert_close(net(x), Naive(1, 2)(x))


def test_every_learned_model_gives_the_output_shape():
    x = torch.randn(4, 12, 3)
    for kind in MODELS[2:]:
        net = ForecastNet(kind, n_features=3, steps=12, n_targets=2, horizon=3, hidden_size=8)
        assert net(x).shape == (4, 3, 2), kind


def test_default_season():
    assert default_season(np.timedelta64(1, "h")) == 24
    assert default_season(np.timedelta64(1, "D")) == 7
    assert default_season(np.timedelta64(1, "M")) == 12
    assert default_season(5) is None


def test_ridge_learns_the_daily_cycle_and_seasonal_naive_is_near_exact(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    common = dict(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6)
    ridge = Forecaster(model="ridge", **common).fit(verbose=False)
    m = ridge.metrics_
    # the naive forecast is off by the cycle's change over 6 hours; a linear model on the window is exact
    assert m["naive_test_mae"] > 2.0
    assert m["test_mae"] < 0.05 * m["naive_test_mae"]
    assert ridge.alpha_ == 0.1            # noise-free and linear: validation picks the weakest penalty
    seasonal = Forecaster(model="seasonal_naive", **common).fit(verbose=False)
    assert seasonal.metrics_["test_mae"] == pytest.approx(0.24, abs=0.01)   # the trend: 0.01 per hour x 24


def test_gru_beats_naive_on_the_cycle(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    # (the value itself: 8 epochs of a pure cycle, the set-up this test was written for)
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, model="gru", residual=False,
                    hidden_size=16, epochs=8, min_steps=0, lr=1e-2, batch_size=32, optimizer="adam").fit(verbose=False)
    assert fc.metrics_["val_mae"] < 0.5 * fc.metrics_["naive_val_mae"]
    # the kept weights are those of the epoch with the lowest validation MAE
    best = min(r["val_loss"] for r in fc.history_)
    assert fc.metrics_["val_mae_norm"] == pytest.approx(best, rel=1e-5)


def test_save_load_round_trip_and_predict_timestamps(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, horizon=2,
                    model="mlp", epochs=2, min_steps=0, calendar=True).fit(verbose=False, run_dir=str(tmp_path / "run"))
    again = Forecaster.load(str(tmp_path / "run"))
    assert again.columns_ == fc.columns_ == ["y", "day_sin", "day_cos", "week_sin", "week_cos", "year_sin",
                                             "year_cos"]
    rows = fc.predict()
    assert rows == again.predict()
    # the file ends at 2022-05-20T23:00 (480 hours); forecasts are 6 and 7 hours after that
    assert [r["time"] for r in rows] == ["2022-05-21T05:00:00", "2022-05-21T06:00:00"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "forecast" and config["config"]["model"] == "mlp"


def test_cli_train_predict_and_compare(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv")
    run = tmp_path / "run"
    data = ["--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24", "--delay", "3"]
    assert main(["forecast", "train", *data, "--model", "conv1d_gru", "--dry-run", "--run-dir", str(run)]) == 0
    assert "conv1d_gru: MAE of y 3 steps ahead" in capsys.readouterr().out
    recent = write_csv(tmp_path / "recent.csv", n=48, start="2022-07-01T00")
    assert main(["forecast", "predict", str(run), "--csv", str(recent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "time,y" and out[1].startswith("2022-07-03T02:00:00,")
    out_dir = tmp_path / "cmp"
    assert main(["forecast", "compare", *data, "--dry-run", "--models", "naive", "ridge", "gru",
                 "--run-dir", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert "| naive |" in text and "| gru |" in text and "best recurrent model by validation: gru" in text
    for name in ("compare.csv", "compare.md", "predictions.png", "losses.png"):
        assert (out_dir / name).stat().st_size > 0
    lines = (out_dir / "compare.csv").read_text().splitlines()
    assert lines[0].startswith("model,val_mae,test_mae") and len(lines) == 4


def test_cli_resume_trains_on_and_keeps_the_best_epoch(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=240)
    run = tmp_path / "run"
    data = ["--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24", "--delay", "3",
            "--model", "gru", "--hidden-size", "8", "--batch-size", "32", "--min-steps", "0"]
    assert main(["forecast", "train", *data, "--epochs", "2", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["forecast", "train", "--resume", "--run-dir", str(run), "--epochs", "4"]) == 0
    assert "gru: MAE of y 3 steps ahead" in capsys.readouterr().out
    doc = json.loads((run / "config.json").read_text())
    assert doc["config"]["train"]["epochs"] == 4
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3]
    best = min(epochs, key=lambda r: r["val_loss"])
    assert doc["fitted"]["best_epoch"] == best["epoch"]
    # the saved model is the best epoch's: its validation MAE (normalised) is the best one logged
    assert doc["fitted"]["metrics"]["val_mae_norm"] == pytest.approx(best["val_loss"], rel=1e-5)
    assert main(["forecast", "train", "--resume", "--run-dir", str(run), "--model", "lstm"]) == 2
    err = capsys.readouterr().err
    assert "--model='lstm': expected no --model with --resume: the run keeps its own config" in err


def test_dataset_defaults_and_how_to_turn_them_off():
    nyc = resolved(ForecastConfig(dataset="nyc-weather"))
    assert nyc["filter"] == ["origin=JFK"] and nyc["angles"] == ["wind_dir"] and "pressure" in nyc["features"]
    assert resolved(ForecastConfig(dataset="nyc-weather", filter=["none"]))["filter"] == []
    assert resolved(ForecastConfig(dataset="nyc-weather", filter=["origin=LGA"]))["filter"] == ["origin=LGA"]
    # the preset's angle column applies only when it is an input
    assert resolved(ForecastConfig(dataset="nyc-weather", features=["dewp"]))["angles"] == []


def test_compare_naive_row_is_zero_improvement(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    rows = compare(ForecastConfig(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6),
                   ["naive"])
    assert rows[0]["val_vs_naive_pct"] == 0.0 and rows[0]["best_epoch"] is None


def test_gaps_and_nans_are_filled_and_reported(tmp_path, capsys):
    csv = write_csv(tmp_path / "g.csv", gap=(100, 103), nan_at={200})
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y",
                 "--lookback", "24", "--delay", "6", "--model", "naive", "--run-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "3 missing steps (gaps)" in err
    assert "filled 4 missing values by linear interpolation" in err


@pytest.mark.parametrize("kwargs,make,message", [
    (dict(target="site"), {}, r"target='site': expected a numeric column, but column 'site' of .*holds text"),
    (dict(target="y"), {"nan_at": set(range(480))}, r"target='y': expected a column with numbers, but all 480"),
    (dict(target="y", lookback=400, delay=100), {}, r"480 rows \(after resampling\) is shorter than lookback "
                                                    r"\+ delay = 400 \+ 100 = 500"),
    (dict(target="temp"), {}, r"target='temp': expected a column of .*its columns are: time, y, other, site"),
])
def test_cli_refuses_bad_input_with_a_clear_message(tmp_path, capsys, kwargs, make, message):
    csv = write_csv(tmp_path / "bad.csv", **make)
    argv = ["forecast", "train", "--csv", str(csv), "--time-col", "time", "--model", "naive",
            "--run-dir", str(tmp_path / "run")]
    for key, value in kwargs.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ")
    assert re.search(message, err), err


def test_cli_refuses_a_missing_file_and_no_source(tmp_path, capsys):
    run = ["--run-dir", str(tmp_path / "run")]
    assert main(["forecast", "train", "--csv", str(tmp_path / "none.csv"), "--time-col", "t", "--target", "y",
                 *run]) == 2
    assert "none.csv': no such file" in capsys.readouterr().err
    assert main(["forecast", "train", "--target", "y", *run]) == 2
    assert "dataset=None: expected either a dataset name or --csv FILE" in capsys.readouterr().err


# -- the Task shape: estimator protocol, evaluate(data), the eval verb, old run directories ---------------

def test_clone_not_fitted_error_and_flat_training_options():
    from sklearn.base import clone

    fc = Forecaster(model="gru", lr=0.01)
    assert fc.config.train.lr == 0.01 and fc.config.model == "gru"
    assert fc.config.train.clip_grad_norm == 1.0 and fc.config.train.device == "auto"   # forecast's defaults
    again = clone(fc)
    assert again is not fc and again.get_params() == fc.get_params()
    with pytest.raises(NotFittedError, match=r"^this Forecaster is not fitted \(it has no trained model\): call "
                                             r"fit\(\.\.\.\) first, or Forecaster\.load\(run_dir\)$"):
        fc.predict()
    with pytest.raises(NotFittedError, match=r"metrics_ is learned by fit\(\)"):
        fc.metrics_
    with pytest.raises(ValueError, match=r"patience=3: expected a field of ForecastConfig"):
        Forecaster(patience=3)


def test_evaluate_on_a_table_gives_the_naive_mae_by_hand(tmp_path):
    fc = Forecaster(csv=str(write_csv(tmp_path / "s.csv")), time_col="time", target=["y"], lookback=24,
                    delay=6, model="naive").fit(verbose=False)
    # another table, 100 hours of a new cycle: every window of it, the naive forecast is the last input value
    n, lookback, delay = 100, 24, 6
    t = np.arange(n)
    y = 3 + 2 * np.cos(2 * np.pi * t / 12)
    times = np.datetime64("2023-01-01T00") + t.astype("timedelta64[h]")
    table = {"time": np.array([f"{s}:00:00" for s in times], dtype=object), "y": y}
    m = fc.evaluate(table)
    by_hand = np.abs(y[lookback - 1 + delay:] - y[lookback - 1:n - delay]).mean()   # |y[i+6] - y[i]|
    assert m["windows"] == n - lookback - delay + 1
    assert m["mae"] == pytest.approx(by_hand, rel=1e-5)
    assert m["naive_mae"] == pytest.approx(by_hand, rel=1e-5) and m["vs_naive_pct"] == pytest.approx(0, abs=1e-6)
    assert m["mae[y]"] == pytest.approx(m["mae"])
    assert m["mae_norm"] == pytest.approx(by_hand / fc.normalizer_.std[0], rel=1e-5)
    # None: the test part of the fit data, the figure fit reported
    assert fc.evaluate()["mae"] == pytest.approx(fc.metrics_["test_mae"])


def test_run_directory_loads_with_rnnkit_load_and_evaluates_the_test_part(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    run = tmp_path / "run"
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, model="ridge").fit(
        run_dir=str(run), verbose=False)
    again = rnnkit.load(str(run))
    assert isinstance(again, Forecaster) and again.get_params() == fc.get_params()
    assert again.alpha_ == fc.alpha_ and again.predict() == fc.predict()
    # read back from the run's own file: the test windows give the test MAE that fit measured
    assert again.evaluate()["mae"] == pytest.approx(fc.metrics_["test_mae"], rel=1e-6)
    doc = json.loads((run / "config.json").read_text())
    assert doc["format_version"] == 2 and doc["data"]["source"] == str(csv)
    assert doc["data"]["windows"] == {k: len(v) for k, v in fc.rows_.items()}


def test_an_old_run_directory_still_loads(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    run = tmp_path / "old"
    # residual=False: what runs of that version learned (the value itself)
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, horizon=2, model="mlp",
                    epochs=2, min_steps=0, early_stop_patience=5, val_frac=0.2, test_frac=0.3, residual=False).fit(
                        run_dir=str(run), verbose=False)
    new = json.loads((run / "config.json").read_text())
    fitted = new["fitted"]
    # config.json as the version before the one schema wrote it
    old_fields = dict(dataset=None, csv=str(csv), time_col="time", target=["y"], features=[], filter=[],
                      wide_by=None, interpolate_limit=6, long_gaps="fill", angles=[], time_features=False,
                      lookback=24, step=1, delay=6, horizon=2, train_end=None, val_end=None, train_frac=0.5,
                      val_frac=0.2, model="mlp", hidden_size=32, dropout=0.1, recurrent_dropout=0.5,
                      residual=False, season=None, alpha=None, epochs=2, batch_size=128, lr=1e-3,
                      optimizer="rmsprop", patience=5, max_minutes=None, seed=0, dry_run=False)
    (run / "config.json").write_text(json.dumps({
        "rnnkit_version": "0.1.0", "task": "forecast", "model": "mlp", "forecast": old_fields,
        "prep": {"columns": fitted["columns"], "targets": fitted["targets"], "mean": fitted["mean"],
                 "std": fitted["std"], "freq": fitted["freq"], "report": ["a line of the old report"]},
        "metrics": fitted["metrics"], "best_epoch": fitted["best_epoch"], "train_seconds": 1.5}))
    old = Forecaster.load(str(run))
    assert old.predict() == fc.predict()
    assert old.metrics_ == fc.metrics_ and old.train_seconds_ == 1.5
    cfg = old.config
    assert cfg.train.early_stop_patience == 5 and cfg.train.epochs == 2 and cfg.train.optimizer == "rmsprop"
    assert cfg.train.device == "cpu" and cfg.train.clip_grad_norm == 1.0
    assert (cfg.val_frac, cfg.test_frac) == (0.2, 0.3)
    assert cfg.calendar is False                     # no calendar then: not the calendar check of today
    assert old.series_.report == ["a line of the old report"]
    assert isinstance(rnnkit.load(str(run)), Forecaster)
    assert old.evaluate()["mae"] == pytest.approx(fc.metrics_["test_mae"], rel=1e-6)


def test_cli_eval_on_a_file_and_on_the_test_part(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv")
    run = tmp_path / "run"
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "6", "--model", "naive", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["forecast", "eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"naive on the test part of {csv}: MAE of y 6 steps ahead")
    saved = json.loads((run / "config.json").read_text())["fitted"]["metrics"]
    m = json.loads((run / "eval.json").read_text())
    assert m["mae"] == pytest.approx(saved["test_mae"]) and m["source"] == f"the test part of {csv}"
    recent = write_csv(tmp_path / "recent.csv", n=96, start="2022-07-01T00")
    assert main(["forecast", "eval", str(run), "--csv", str(recent), "-o", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["windows"] == 96 - 24 - 6 + 1 and m["vs_naive_pct"] == 0.0 and m["source"] == str(recent)
    assert main(["forecast", "eval", str(run), "--csv", str(tmp_path / "none.csv")]) == 2
    assert "none.csv': no such file" in capsys.readouterr().err


def test_cli_resume_refuses_a_changed_window_in_one_line(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=240)
    run = tmp_path / "run"
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "3", "--model", "gru", "--hidden-size", "8", "--dry-run", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["forecast", "train", "--resume", "--run-dir", str(run), "--lookback", "48"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: --lookback=48: expected no --lookback with "
                                                   "--resume: the run keeps its own config")
    assert "--early-stop-patience" in err and "--epochs" in err          # what may change


def test_cli_compare_resume_goes_on_with_each_model(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=240)
    out_dir = tmp_path / "cmp"
    data = ["--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24", "--delay", "3",
            "--hidden-size", "8", "--batch-size", "32"]
    assert main(["forecast", "compare", *data, "--models", "naive", "gru", "--epochs", "1", "--min-steps", "0",
                 "--seeds", "1", "--run-dir", str(out_dir)]) == 0
    capsys.readouterr()
    assert main(["forecast", "compare", "--models", "naive", "gru", "--epochs", "2", "--resume",
                 "--run-dir", str(out_dir)]) == 0
    assert "| gru |" in capsys.readouterr().out
    epochs = [json.loads(line) for line in (out_dir / "gru" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["event"] == "epoch"] == [0, 1]
    assert main(["forecast", "compare", "--models", "gru", "--delay", "4", "--resume", "--run-dir",
                 str(out_dir)]) == 2
    assert "--delay=4: expected no --delay with --resume" in capsys.readouterr().err


# --- nothing lost: Ctrl-C, unfinished runs, changed data, comparisons (issue 14) ----------------------------


def test_ctrl_c_exits_130_without_the_test_evaluation_and_resumes(tmp_path, capsys, ctrl_c_at_step):
    csv = write_csv(tmp_path / "s.csv", n=240)
    run = tmp_path / "run"
    ctrl_c_at_step(2)
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "3", "--model", "gru", "--hidden-size", "8", "--batch-size", "16", "--epochs", "2",
                 "--min-steps", "0", "--run-dir", str(run)]) == 130
    captured = capsys.readouterr()
    command = f"rnnkit forecast train --run-dir {run} --resume"
    assert f"resume with: {command}\n" in captured.err and "MAE" not in captured.out
    # The stopped run is not a model yet: it says so, and the two ways on.
    assert main(["forecast", "predict", str(run)]) == 2
    assert capsys.readouterr().err == (f"rnnkit: error: {run}: its training has not finished (config.json is not "
                                       f"marked finished); expected a finished run: finish it with {command}, or use "
                                       f"its last checkpoint explicitly (--checkpoint best|last; load(..., "
                                       f"checkpoint=\"best\"))\n")
    assert main(["forecast", "predict", str(run), "--checkpoint", "last"]) == 0     # asked for explicitly
    capsys.readouterr()
    assert main(command.split()[1:]) == 0
    assert "gru: MAE of y 3 steps ahead" in capsys.readouterr().out
    assert main(["forecast", "predict", str(run)]) == 0


def test_resume_refuses_a_changed_file(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=240)
    run = tmp_path / "run"
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y", "--lookback", "24",
                 "--delay", "3", "--model", "gru", "--hidden-size", "8", "--epochs", "1", "--min-steps", "0",
                 "--run-dir", str(run)]) == 0
    write_csv(csv, n=240, nan_at={100})
    capsys.readouterr()
    assert main(["forecast", "train", "--resume", "--epochs", "2", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"rnnkit: error: {csv}: the training data changed since the "
                                                   f"run in {run} began (digest sha256:")


def write_int_steps(path, n=200):
    """A series whose time column is a step number (no calendar, so no season to guess)."""
    path.write_text("step,y\n" + "".join(f"{i},{10 + 5 * np.sin(2 * np.pi * i / 12):.5f}\n" for i in range(n)))
    return path


def test_compare_runs_every_model_it_can_and_says_seasonal_naive_needs_a_season(tmp_path, capsys):
    csv = write_int_steps(tmp_path / "steps.csv")
    out_dir = tmp_path / "cmp"
    data = ["--csv", str(csv), "--time-col", "step", "--target", "y", "--lookback", "24", "--delay", "3"]
    assert main(["forecast", "compare", *data, "--models", "naive", "seasonal_naive", "ridge",
                 "--run-dir", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "| naive |" in captured.out and "| ridge |" in captured.out and "| seasonal_naive |" not in captured.out
    assert "skipped: seasonal_naive (seasonal_naive needs a period: give --season N)" in captured.out
    assert "seasonal_naive  skipped: season=None: expected a period in steps" in captured.err
    # With --season it runs; an earlier comparison in the folder is replaced only with --overwrite.
    assert main(["forecast", "compare", *data, "--models", "naive", "seasonal_naive", "--season", "12",
                 "--run-dir", str(out_dir)]) == 2
    assert capsys.readouterr().err == (
        f"rnnkit: error: {out_dir}: holds an earlier comparison, which comparing again would overwrite; expected a "
        f"new folder: go on with it with --resume (rnnkit forecast compare --models naive seasonal_naive --run-dir "
        f"{out_dir} --resume), choose another --run-dir, or replace it with --overwrite\n")
    assert main(["forecast", "compare", *data, "--models", "naive", "seasonal_naive", "--season", "12",
                 "--run-dir", str(out_dir), "--overwrite"]) == 0
    assert "| seasonal_naive |" in capsys.readouterr().out
    assert not (out_dir / "ridge").exists()
    # Asked for alone, seasonal naive without a season is an error.
    assert main(["forecast", "compare", *data, "--models", "seasonal_naive", "--run-dir", str(tmp_path / "c2")]) == 2
    assert "season=None: expected a period in steps" in capsys.readouterr().err
