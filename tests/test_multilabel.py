"""Multilabel mode: the synthetic generator's known structure, resampling/imputation, target replication,
metrics, learning, round trip and the command line."""

import json
import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.report.metrics import multilabel_metrics
from rnnkit.datasets.long_format import Stay, impute, resample
from rnnkit.tasks.multilabel import MultilabelClassifier, MultilabelConfig
from rnnkit.tasks.multilabel.data import AUX_NAMES, LABEL_NAMES, SyntheticConfig, make_clinical, synthetic_splits
from rnnkit.tasks.multilabel.model import MultilabelNet, last_step, replicated_loss


def test_generator_labels_have_the_planted_structure():
    stays, Y, aux = make_clinical(400, seed=3)
    assert Y.shape == (400, len(LABEL_NAMES)) and aux.shape == (400, len(AUX_NAMES))
    col = {name: j for j, name in enumerate(LABEL_NAMES)}
    # conjunctions are exactly the AND of their parts
    np.testing.assert_array_equal(Y[:, col["sepsis_like"]],
                                  Y[:, col["heart_rate_episode"]] * Y[:, col["temperature_episode"]])
    np.testing.assert_array_equal(Y[:, col["respiratory_failure"]],
                                  Y[:, col["resp_rate_trend"]] * Y[:, col["spo2_trend"]])
    # a late episode is an episode
    episodes = Y[:, [col[f"{c.removesuffix('_episode_late')}_episode"] for c in AUX_NAMES]]
    assert (aux <= episodes).all()
    # irregular: observation times differ between stays and stay within each stay
    assert all(((s.times >= 0) & (s.times <= s.hours)).all() for s in stays)
    assert len({len(s.times) for s in stays}) > 50
    again, Y2, _ = make_clinical(400, seed=3)
    np.testing.assert_array_equal(Y, Y2)
    np.testing.assert_array_equal(stays[7].values, again[7].values)


def test_a_planted_heart_rate_episode_shows_in_the_signal():
    stays, Y, _ = make_clinical(600, seed=1)
    peak = np.array([s.values[s.channels == 0].max() if (s.channels == 0).any() else np.nan for s in stays])
    ep = Y[:, LABEL_NAMES.index("heart_rate_episode")] == 1
    assert np.nanmean(peak[ep]) > np.nanmean(peak[~ep]) + 15


def test_resample_means_per_hour_and_nan_where_unobserved():
    stay = Stay(times=np.array([0.2, 0.7, 1.5, 2.99]), channels=np.array([0, 0, 1, 0]),
                values=np.array([1.0, 3.0, 5.0, 7.0]), hours=3.0)
    grid = resample(stay, 2)
    assert grid.shape == (3, 2)
    assert grid[0, 0] == 2.0 and grid[1, 1] == 5.0 and grid[2, 0] == 7.0
    assert np.isnan(grid[0, 1]) and np.isnan(grid[1, 0]) and np.isnan(grid[2, 1])


def test_impute_forward_fills_and_uses_the_mean_before_the_first_value():
    grid = np.array([[np.nan, 1.0], [4.0, np.nan], [np.nan, np.nan]])
    values, missing = impute(grid, fill=np.array([10.0, 20.0]))
    np.testing.assert_array_equal(values, [[10.0, 1.0], [4.0, 1.0], [4.0, 1.0]])
    np.testing.assert_array_equal(missing, [[1, 0], [0, 1], [1, 1]])


def test_replicated_loss_mixes_every_step_and_final_step():
    # one stay, 3 valid steps of 4, 1 label = 1; logits 0 at steps 0-1 and 2.0 at step 2 (the last valid)
    logits = torch.tensor([[[0.0], [0.0], [2.0], [-50.0]]])
    y = torch.tensor([[1.0]])
    lengths = torch.tensor([3])
    bce0, bce2 = math.log(2), math.log(1 + math.exp(-2.0))
    assert replicated_loss(logits, y, lengths, 0.0).item() == pytest.approx(bce2)
    every = (2 * bce0 + bce2) / 3                                  # the padded step does not count
    assert replicated_loss(logits, y, lengths, 1.0).item() == pytest.approx(every)
    assert replicated_loss(logits, y, lengths, 0.25).item() == pytest.approx(0.25 * every + 0.75 * bce2)


def test_balanced_class_weight_weighs_each_labels_positives():
    logits = torch.tensor([[[0.0, 2.0]]])                          # (1, 1, 2)
    y = torch.tensor([[1.0, 0.0]])
    # label 0 is positive: its term is scaled by pos_weight 3; label 1 is negative: unchanged
    expected = (3 * math.log(2) + math.log(1 + math.exp(2.0))) / 2
    got = replicated_loss(logits, y, torch.tensor([1]), 0.5, torch.tensor([3.0, 5.0]))
    assert got.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"class_weight='even': expected one of"):
        MultilabelConfig(class_weight="even")


def test_loss_is_averaged_over_labels():
    logits = torch.tensor([[[0.0, 2.0]]])                          # (1, 1, 2)
    y = torch.tensor([[1.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2.0))) / 2
    assert replicated_loss(logits, y, torch.tensor([1]), 0.5).item() == pytest.approx(expected)


def test_net_ignores_padding():
    torch.manual_seed(0)
    net = MultilabelNet(4, 3, 2, hidden_size=8, num_layers=2).eval()
    x = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 3])
    a = last_step(net(x, lengths)[0], lengths)
    x2 = torch.cat([x, torch.randn(2, 5, 4)], 1)                   # more (garbage) padding
    b = last_step(net(x2, lengths)[0], lengths)
    torch.testing.assert_close(a, b)


def test_metrics_hand_computed():
    y = np.array([[1, 0, 0], [0, 1, 1]])
    p = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.3]])
    m = multilabel_metrics(y, p, threshold=0.5, k=2)
    # top-2 of row 0: labels 0, 2 -> 1 hit; row 1: labels 1, 2 -> 2 hits
    assert m["precision_at_2"] == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert m["precision_at_2_ceiling"] == pytest.approx((1 / 2 + 2 / 2) / 2)
    # predictions at 0.5: [1,0,1], [0,1,0] -> tp 2, fp 1, fn 1 -> micro F1 = 2*2/(2*2+1+1)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    # every positive outranks every negative within each label except label 2 (0.3 < 0.6): macro AUC (1+1+0)/3
    assert m["macro_auc"] == pytest.approx(2 / 3)
    assert multilabel_metrics(y, p, k=10)["precision_at_3"] == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_learns_the_planted_patterns_and_round_trips(tmp_path):
    stays, Y, aux = make_clinical(500, seed=0)
    clf = MultilabelClassifier(hidden_size=32, num_layers=1, epochs=8, min_steps=0, lr=1e-2, batch_size=50, alpha=0.5,
                               aux_weight=0.3, early_stop_patience=None)
    clf.fit(stays[:400], Y[:400], aux[:400], (stays[400:450], Y[400:450]))
    m = clf.evaluate(stays[450:], Y[450:])
    assert m["micro_auc"] > 0.75, m
    clf.save(tmp_path / "run")
    loaded = MultilabelClassifier.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict_proba(stays[450:460]), clf.predict_proba(stays[450:460]), rtol=1e-6)


def test_aux_weight_needs_aux_targets():
    stays, Y, _ = make_clinical(10)
    with pytest.raises(ValueError, match=r"aux_weight=0.5: expected 0 when no auxiliary targets are given"):
        MultilabelClassifier(aux_weight=0.5).fit(stays, Y)


def test_bad_alpha():
    with pytest.raises(ValueError, match=r"alpha=1.5: expected a number in \[0, 1\]"):
        MultilabelConfig(alpha=1.5)


def test_cli_dry_run_says_the_data_is_synthetic(tmp_path, capsys):
    assert main(["classify", "multilabel", "train", "--num-stays", "80", "--dry-run", "--hidden-size", "8",
                 "--aux-weight", "0.2", "--run-dir", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "SYNTHETIC data" in captured.err and "micro_auc" in captured.out
    assert (tmp_path / "run" / "final.safetensors").is_file()
    assert main(["classify", "predict", str(tmp_path / "run"), "x"]) == 2
    assert "task='classify-multilabel'" in capsys.readouterr().err


def test_resample_puts_an_observation_at_the_end_of_the_stay_in_the_last_hour():
    stay = Stay(times=np.array([0.5, 2.5, 3.0]), channels=np.array([0, 0, 0]), values=np.array([1.0, 2.0, 4.0]),
                hours=3.0)
    grid = resample(stay, 1)
    assert grid.shape == (3, 1) and grid[2, 0] == 3.0 and np.isnan(grid[1, 0])
    empty = resample(Stay(np.zeros(0), np.zeros(0, np.int64), np.zeros(0), 2.5), 2)
    assert empty.shape == (3, 2) and np.isnan(empty).all()


def test_synthetic_splits_cut_70_10_20():
    parts = synthetic_splits(SyntheticConfig(num_stays=50, data_seed=2))
    assert [len(parts[k][0]) for k in ("train", "val", "test")] == [35, 5, 10]
    _, Y, _ = make_clinical(50, seed=2)
    np.testing.assert_array_equal(parts["test"][1], Y[40:])
    with pytest.raises(ValueError, match=r"val_frac \+ test_frac=1.0: expected less than 1"):
        SyntheticConfig(val_frac=0.5, test_frac=0.5)


def test_training_options_are_one_nested_train_config_and_every_help_renders(capsys):
    cfg = MultilabelConfig()
    t = cfg.train
    assert (t.lr, t.epochs, t.early_stop_patience, t.clip_grad_norm, t.min_steps, t.auto_batch, t.max_minutes) == (
        3e-3, 200, 5, 5.0, 300, True, 5.0)
    assert MultilabelClassifier(lr=0.01).config.train.lr == 0.01
    for verb in ([], ["train"], ["eval"], ["predict"]):
        with pytest.raises(SystemExit) as e:
            main(["classify", "multilabel", *verb, "--help"])
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "70%" not in out and "SYNTHETIC" in out and "--num-stays" in out and "--early-stop-patience" in out


def test_cli_train_eval_predict_on_a_run_directory(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["classify", "multilabel", "train", "--num-stays", "60", "--hidden-size", "8", "--num-layers", "1",
                 "--epochs", "2", "--min-steps", "0", "--batch-size", "16", "--run-dir", run]) == 0
    test_line = capsys.readouterr().out
    clf = rnnkit.load(run)
    assert type(clf) is MultilabelClassifier and clf.labels_ == list(LABEL_NAMES)
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["task"] == "classify-multilabel" and doc["data"]["synthetic"] and doc["data"]["num_stays"] == 60
    # eval without data flags scores the run's own held-out test stays: the numbers train printed
    assert main(["classify", "multilabel", "eval", run]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "SYNTHETIC" in captured.err and out["n"] == 12 and "SYNTHETIC" in out["source"]
    assert f"micro_auc {out['micro_auc']:.4f}" in test_line
    assert (tmp_path / "run" / "eval" / "eval_metrics.json").is_file()
    assert main(["classify", "multilabel", "eval", run, "--num-stays", "20", "--data-seed", "5",
                 "-o", str(tmp_path / "report")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 20
    assert (tmp_path / "report" / "eval_metrics.json").is_file()
    assert main(["classify", "multilabel", "predict", run, "--num-stays", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"stay {i + 1} (") and "\ttrue: " in line
                                   for i, line in enumerate(lines))


def test_resume_continues_a_multilabel_run(tmp_path, capsys):
    run = ["--run-dir", str(tmp_path / "run")]
    assert main(["classify", "multilabel", "train", "--num-stays", "40", "--hidden-size", "4", "--num-layers", "1",
                 "--epochs", "1", "--min-steps", "0", "--early-stop-patience", "None"] + run) == 0
    assert main(["classify", "multilabel", "train", "--resume", "--epochs", "2"] + run) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1]
    capsys.readouterr()
    assert main(["classify", "multilabel", "train", "--resume", "--hidden-size", "8"] + run) == 2
    assert "--hidden-size=8: expected no --hidden-size with --resume" in capsys.readouterr().err


def test_a_multilabel_run_of_rnnkit_0_1_still_loads(tmp_path):
    stays, Y, aux = make_clinical(40, seed=0)
    clf = MultilabelClassifier(hidden_size=4, num_layers=1, epochs=1, min_steps=0, aux_weight=0.2).fit(stays, Y, aux)
    clf.save(tmp_path / "run")
    cfg = clf.config
    flat = {"hidden_size": 4, "num_layers": 1, "dropout": cfg.dropout, "alpha": cfg.alpha, "aux_weight": 0.2,
            "threshold": cfg.threshold, "batch_size": 64, "lr": 3e-3, "epochs": 1, "max_minutes": None,
            "early_stop_patience": 4, "seed": 0}
    (tmp_path / "run" / "config.json").write_text(json.dumps(
        {"rnnkit_version": "0.1.0", "task": "classify-multilabel", "model": "lstm", "config": flat,
         "labels": list(LABEL_NAMES), "channels": list(clf.channel_names), "num_aux": 6, "synthetic": True}))
    (tmp_path / "run" / "standardize.json").write_text(json.dumps(
        {"mean": clf.mean_.tolist(), "std": clf.std_.tolist(), "num_labels": len(LABEL_NAMES)}))
    loaded = rnnkit.load(tmp_path / "run")
    assert type(loaded) is MultilabelClassifier and loaded.config.train.epochs == 1 and loaded.num_aux_ == 6
    np.testing.assert_allclose(loaded.predict_proba(stays[:5]), clf.predict_proba(stays[:5]), rtol=1e-6)


def test_ctrl_c_stops_before_the_test_metrics_and_the_resume_command_works(tmp_path, capsys, monkeypatch):
    from rnnkit.training import Trainer

    fit, fired = Trainer.fit, []

    def fit_with_ctrl_c(self, *args, **kwargs):
        def press(trainer):
            if not fired and trainer.step >= 1:
                fired.append(1)
                raise KeyboardInterrupt
        self.add_callback("on_step_end", press)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit_with_ctrl_c)
    run = tmp_path / "run"
    assert main(["classify", "multilabel", "train", "--num-stays", "40", "--hidden-size", "4", "--num-layers", "1",
                 "--batch-size", "8", "--epochs", "1", "--min-steps", "0", "--run-dir", str(run)]) == 130
    captured = capsys.readouterr()
    command = f"rnnkit classify multilabel train --run-dir {run} --resume"
    assert f"resume with: {command}\n" in captured.err and "micro_auc" not in captured.out
    assert not (run / "test_metrics.json").exists()
    assert main(command.split()[1:]) == 0
    assert (run / "test_metrics.json").is_file() and (run / "final.safetensors").is_file()
    doc = json.loads((run / "config.json").read_text())
    assert doc["data"]["digest"].startswith("sha256:") and doc["data"]["num_stays"] == 40


def test_a_small_set_gets_small_batches_and_enough_updates(capsys):
    # The shared policy's defaults: 40 stays at --batch-size 64 would be one update an epoch.
    stays, Y, _ = make_clinical(48, seed=0)
    clf = MultilabelClassifier(hidden_size=4, num_layers=1, early_stop_patience=1, max_minutes=None)
    clf.fit(stays[:40], Y[:40], None, (stays[40:], Y[40:]))
    t = clf.trainer_
    epochs = [r for r in t.history if r["event"] == "epoch"]
    assert epochs[0]["step"] == 5 and t.step >= 300               # batch 8: 5 updates an epoch, 60 epochs at least
    assert "data: batch 8 instead of --batch-size 64: 40 training stays would make 1 update(s) an epoch" in \
        capsys.readouterr().err
