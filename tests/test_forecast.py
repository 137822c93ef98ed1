"""Forecaster: baselines by hand, learning a daily cycle, run-directory round trips, the CLI and its errors."""

import json
import re

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.forecast.task import Forecaster, compare, default_season
from rnnkit.tasks.forecast.model import MODELS, ForecastNet, Naive, SeasonalNaive, seasonal_positions


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
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, model="gru",
                    hidden_size=16, epochs=8, lr=1e-2, batch_size=32, optimizer="adam").fit(verbose=False)
    assert fc.metrics_["val_mae"] < 0.5 * fc.metrics_["naive_val_mae"]
    # the kept weights are those of the epoch with the lowest validation MAE
    best = min(r["val_loss"] for r in fc.history_)
    assert fc.metrics_["val_mae_norm"] == pytest.approx(best, rel=1e-5)


def test_save_load_round_trip_and_predict_timestamps(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    fc = Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6, horizon=2,
                    model="mlp", epochs=2, time_features=True).fit(verbose=False, run_dir=str(tmp_path / "run"))
    again = Forecaster.load(str(tmp_path / "run"))
    assert again.columns_ == fc.columns_ == ["y", "day_sin", "day_cos", "year_sin", "year_cos"]
    rows = fc.predict()
    assert rows == again.predict()
    # the file ends at 2022-05-20T23:00 (480 hours); forecasts are 6 and 7 hours after that
    assert [r["time"] for r in rows] == ["2022-05-21T05:00:00", "2022-05-21T06:00:00"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "forecast" and config["model"] == "mlp"


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
                 "--out", str(out_dir)]) == 0
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
            "--model", "gru", "--hidden-size", "8", "--batch-size", "32"]
    assert main(["forecast", "train", *data, "--epochs", "2", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["forecast", "train", "--resume", str(run), "--epochs", "4"]) == 0
    assert "gru: MAE of y 3 steps ahead" in capsys.readouterr().out
    doc = json.loads((run / "config.json").read_text())
    assert doc["forecast"]["epochs"] == 4
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3]
    best = min(epochs, key=lambda r: r["val_loss"])
    assert doc["best_epoch"] == best["epoch"]
    # the saved model is the best epoch's: its validation MAE (normalised) is the best one logged
    assert doc["metrics"]["val_mae_norm"] == pytest.approx(best["val_loss"], rel=1e-5)
    assert main(["forecast", "train", "--resume", str(run), "--model", "lstm"]) == 2
    err = capsys.readouterr().err
    assert "model='lstm': expected no --model with --resume: the run keeps its own ('gru')" in err


def test_dataset_defaults_and_how_to_turn_them_off():
    from rnnkit.tasks.forecast.task import ForecastConfig, resolved
    nyc = resolved(ForecastConfig(dataset="nyc-weather"))
    assert nyc["filter"] == ["origin=JFK"] and nyc["angles"] == ["wind_dir"] and "pressure" in nyc["features"]
    assert resolved(ForecastConfig(dataset="nyc-weather", filter=["none"]))["filter"] == []
    assert resolved(ForecastConfig(dataset="nyc-weather", filter=["origin=LGA"]))["filter"] == ["origin=LGA"]
    # the preset's angle column applies only when it is an input
    assert resolved(ForecastConfig(dataset="nyc-weather", features=["dewp"]))["angles"] == []


def test_compare_naive_row_is_zero_improvement(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    from rnnkit.tasks.forecast.task import ForecastConfig
    rows = compare(ForecastConfig(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=6),
                   ["naive"])
    assert rows[0]["val_vs_naive_pct"] == 0.0 and rows[0]["best_epoch"] is None


def test_gaps_and_nans_are_filled_and_reported(tmp_path, capsys):
    csv = write_csv(tmp_path / "g.csv", gap=(100, 103), nan_at={200})
    assert main(["forecast", "train", "--csv", str(csv), "--time-col", "time", "--target", "y",
                 "--lookback", "24", "--delay", "6", "--model", "naive"]) == 0
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
    argv = ["forecast", "train", "--csv", str(csv), "--time-col", "time", "--model", "naive"]
    for key, value in kwargs.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ")
    assert re.search(message, err), err


def test_cli_refuses_a_missing_file_and_no_source(tmp_path, capsys):
    assert main(["forecast", "train", "--csv", str(tmp_path / "none.csv"), "--time-col", "t", "--target", "y"]) == 2
    assert "none.csv': no such file" in capsys.readouterr().err
    assert main(["forecast", "train", "--target", "y"]) == 2
    assert "dataset=None: expected either a dataset name or --csv FILE" in capsys.readouterr().err
