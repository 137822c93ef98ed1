"""Data as users bring it to the classifiers: their own splits, tiny sets, honest reports, clinical-style
long-format files (column choice, one-hot text columns, the time column as an input, class weights) and
prediction files."""

import csv
import json
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.datasets.long_format import impute, read_long_file, resample, time_inputs, to_stays
from rnnkit.tasks.classify.data import load_data, ts_test_file
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.multilabel import MultilabelClassifier
from rnnkit.training.trainer import seed_everything


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def reviews(n, seed=0):
    """Two classes told apart by one word among filler words; each text distinct."""
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "story", "with", "some", "actors", "and", "music", "plot"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = list(rng.choice(filler, size=6)) + [("great" if label == "pos" else "awful"), f"w{i}"]
        rows.append((" ".join(words), label))
    return rows


def rising_series(n_ids, steps=6, seed=0):
    """Long-format rows: class 'up' rises on channel u, 'flat' does not."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        label = "up" if i % 2 else "flat"
        for t in range(steps):
            rows.append((f"s{i}", t, float(t * (i % 2) + rng.normal(0, 0.1)), float(rng.normal()), label))
    return rows


def msg(text):
    return re.escape(text)


# ----------------------------------------------------------------------------- splits the user already has

def test_a_split_column_is_used_as_it_is(tmp_path):
    rows = reviews(30)
    split = ["train"] * 20 + ["dev"] * 4 + ["test"] * 6
    path = write_csv(tmp_path / "r.csv", ["text", "label", "part"], [(t, y, s) for (t, y), s in zip(rows, split)])
    data = load_data(csv_path=str(path), split_col="part", split_names="train,dev,test")
    assert data.train.X == [t for t, _ in rows[:20]]
    assert data.val.X == [t for t, _ in rows[20:24]]
    assert data.test.X == [t for t, _ in rows[24:]] and data.test.y.tolist() == [y for _, y in rows[24:]]
    assert data.stats["split"] == "given by column 'part'"
    # A value that is none of the names is refused with its line.
    with pytest.raises(ValueError, match=msg(f"{path}: line 2: split 'train' in column 'part' is not one of "
                                             f"training, dev, test; fix the row, or name the values with "
                                             f"--split-names TRAIN,VAL,TEST (now training,dev,test)")):
        load_data(csv_path=str(path), split_col="part", split_names="training,dev,test")


def test_a_split_column_without_validation_rows_takes_them_from_training(tmp_path):
    rows = reviews(40)
    split = ["train"] * 30 + ["test"] * 10
    path = write_csv(tmp_path / "r.csv", ["text", "label", "split"], [(t, y, s) for (t, y), s in zip(rows, split)])
    data = load_data(csv_path=str(path), split_col="split", val_frac=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 10)
    assert data.test.X == [t for t, _ in rows[30:]]
    assert set(data.train.X + data.val.X) == {t for t, _ in rows[:30]}
    assert sorted(data.val.y.tolist()) == ["neg"] * 3 + ["pos"] * 3            # stratified
    # A text in both parts keeps its first copy only: never the same review in train and test.
    dup = write_csv(tmp_path / "d.csv", ["text", "label", "split"],
                    [(t, y, s) for (t, y), s in zip(rows, split)] + [(rows[0][0], rows[0][1], "test")])
    again = load_data(csv_path=str(dup), split_col="split", val_frac=0.2)
    assert len(again.test) == 10 and again.stats["duplicates_removed"] == 1


def test_series_split_column_is_per_sequence(tmp_path, capsys):
    rows = [(*r[:4], r[4], "test" if r[0] in ("s0", "s1") else "train") for r in rising_series(10)]
    path = write_csv(tmp_path / "s.csv", ["id", "step", "u", "v", "label", "split"], rows)
    data = load_data(series=str(path), split_col="split", val_frac=0)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 0, 2)
    assert data.test.y.tolist() == ["flat", "up"]
    assert data.encoding["channel_names"] == ["u", "v"]                # the split column is no input
    # A run predicts on the same file (its label and split columns are not inputs either).
    run = tmp_path / "run"
    assert main(["classify", "train", "--series", str(path), "--split-col", "split", "--val-frac", "0.25",
                 "--model", "conv1d", "--hidden-size", "4", "--dry-run", "--run-dir", str(run)]) == 0
    assert "conv1d: test accuracy" in capsys.readouterr().out
    assert main(["classify", "predict", str(run), "--file", str(path), "-o", str(tmp_path / "p.csv")]) == 0
    table = list(csv.reader((tmp_path / "p.csv").open()))
    assert table[0] == ["id", "predicted", "p_flat", "p_up"]
    assert [r[0] for r in table[1:]] == [f"s{i}" for i in range(10)]
    rows[3] = (*rows[3][:5], "train")                                  # s0 now has two splits
    write_csv(path, ["id", "step", "u", "v", "label", "split"], rows)
    with pytest.raises(ValueError, match=msg(f"{path}: line 5: sequence 's0' has split 'train' here but 'test' "
                                             f"on line 2; expected one split per sequence")):
        load_data(series=str(path), split_col="split")


def test_a_test_file_is_the_test_set(tmp_path):
    rows = reviews(40)
    train = write_csv(tmp_path / "train.csv", ["text", "label"], rows[:30])
    test = write_csv(tmp_path / "test.csv", ["text", "label"], rows[30:] + [rows[0]])   # one leaked copy
    data = load_data(csv_path=str(train), test_csv=str(test), val_frac=0.1)
    assert (len(data.train), len(data.val), len(data.test)) == (27, 3, 10)
    assert data.test.X == [t for t, _ in rows[30:]]
    assert data.stats["test_texts_also_in_training_removed"] == 1
    # series: --test-series
    s_train = write_csv(tmp_path / "s_train.csv", ["id", "step", "u", "v", "label"], rising_series(12))
    s_test = write_csv(tmp_path / "s_test.csv", ["id", "step", "u", "v", "label"], rising_series(4, seed=5))
    data = load_data(series=str(s_train), test_series=str(s_test), val_frac=0)
    assert (len(data.train), len(data.val), len(data.test)) == (12, 0, 4)
    np.testing.assert_allclose(data.test.X[1][:, 0], [r[2] for r in rising_series(4, seed=5)[6:12]], rtol=1e-6)
    with pytest.raises(ValueError, match=msg("test_csv='x.csv': expected a test file of texts, given with --csv")):
        load_data(series=str(s_train), test_csv="x.csv")


TS = "@problemName t\n@classLabel true a b\n@data\n{}"


def test_a_ts_pair_is_its_own_split(tmp_path):
    train_rows = "".join(f"{i},{i + 1},{i + 2}:{'a' if i % 2 else 'b'}\n" for i in range(10))
    (tmp_path / "Gun_TRAIN.ts").write_text(TS.format(train_rows))
    (tmp_path / "Gun_TEST.ts").write_text(TS.format("9,9,9:a\n0,0,0:b\n1,1,1:a\n"))
    assert ts_test_file(tmp_path / "Gun_TRAIN.ts") == tmp_path / "Gun_TEST.ts"
    assert ts_test_file(tmp_path / "Gun_TEST.ts") is None
    data = load_data(series=str(tmp_path / "Gun_TRAIN.ts"), val_frac=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 3)
    assert data.test.y.tolist() == ["a", "b", "a"] and data.test.X[0][:, 0].tolist() == [9, 9, 9]


def test_val_frac_zero_trains_and_reports_test_only(tmp_path, capsys):
    path = write_csv(tmp_path / "r.csv", ["text", "label"], reviews(40))
    run = tmp_path / "run"
    args = ["classify", "train", "--csv", str(path), "--model", "gru", "--hidden-size", "4", "--embedding-size",
            "4", "--epochs", "3", "--min-steps", "0", "--batch-size", "16", "--early-stop-patience", "1",
            "--val-frac", "0"]
    assert main(args + ["--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "gru: test accuracy" in out and "(8 held-out test rows)" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1, 2]   # every epoch, no early stop
    m = json.loads((run / "test_metrics.json").read_text())
    assert m["rows"] == "8 held-out test rows" and m["n"] == 8
    # No held-out rows at all: no metrics, and no crash.
    run2 = tmp_path / "run2"
    assert main(args + ["--test-frac", "0", "--run-dir", str(run2)]) == 0
    captured = capsys.readouterr()
    assert "no held-out rows" in captured.err and "accuracy" not in captured.out
    assert not list(run2.glob("*_metrics.json")) and (run2 / "final.safetensors").is_file()
    # Without validation rows the training loss neither picks an epoch nor stops training: the last weights stay.
    X = [np.zeros((3, 1), np.float32) + i % 2 for i in range(8)]
    clf = SequenceClassifier(model="gru", hidden_size=2, epochs=1, min_steps=0, early_stop_patience=1).fit(
        X, ["a", "b"] * 4)
    assert clf.trainer_.config.restore_best is False and clf.trainer_.config.early_stop_patience is None
    assert clf.config.train.restore_best is True                       # the run's own config is unchanged


def test_more_classes_than_validation_rows_warns_and_names_val_frac(tmp_path):
    # 10 rows of 5 classes: a validation cut of 1-2 rows cannot hold every class.
    path = write_csv(tmp_path / "five.csv", ["text", "label"], [(f"text {i}", f"c{i % 5}") for i in range(10)])
    with pytest.warns(UserWarning, match=r"too few rows to split by class \(5 classes, the rarest with 2 "
                                         r"example\(s\)\); the held-out rows of val_frac=0.1 \(1 rows\) were "
                                         r"drawn at random"):
        data = load_data(csv_path=str(path), val_frac=0.1, test_frac=0.0)
    assert (len(data.train), len(data.val)) == (9, 1)
    # When the random split leaves a class out of training: an error that says what to change.
    one = write_csv(tmp_path / "one.csv", ["text", "label"],
                    [(f"text {i}", f"c{i % 5}") for i in range(10)] + [("lonely", "rare")])
    messages = []
    for seed in range(40):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_data(csv_path=str(one), val_frac=0.3, test_frac=0.0, seed=seed)
        except ValueError as err:
            messages.append(str(err))
    assert messages, "some seed puts the only 'rare' row into validation"
    assert all("test_size" not in m for m in messages)
    assert messages[0].startswith(f"val_frac=0.3, test_frac=0: {one} is too small to split by class")
    assert re.search(r"the random split leaves class\(es\) [\w, ]+ out of training; expected more examples of "
                     r"them, a smaller --val-frac/--test-frac \(0 for none\), or a split of your own "
                     r"\(--split-col\)$", messages[0])


# ----------------------------------------------------------------------------- honest reports

def test_bow_never_reports_on_rows_it_was_fit_on(tmp_path, capsys):
    rows = reviews(60)
    split = ["train"] * 40 + ["val"] * 20
    path = write_csv(tmp_path / "r.csv", ["text", "label", "split"], [(t, y, s) for (t, y), s in zip(rows, split)])
    run = tmp_path / "run"
    assert main(["classify", "train", "--csv", str(path), "--split-col", "split", "--model", "bow",
                 "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "bow: validation accuracy" in out and "20 validation rows (held out from training); no test rows" in out
    clf = SequenceClassifier.load(run)
    assert clf.data_["train_size"] == 40                      # fit on the training rows only
    m = json.loads((run / "val_metrics.json").read_text())
    assert m["n"] == 20 and m["rows"].startswith("20 validation rows")
    val_texts, val_y = [t for t, _ in rows[40:]], np.array([y for _, y in rows[40:]])
    assert m["accuracy"] == pytest.approx(float((clf.predict(val_texts) == val_y).mean()))
    # With test rows, bow fits on train + validation and reports the test rows only.
    split = ["train"] * 30 + ["val"] * 10 + ["test"] * 20
    write_csv(path, ["text", "label", "split"], [(t, y, s) for (t, y), s in zip(rows, split)])
    run2 = tmp_path / "run2"
    assert main(["classify", "train", "--csv", str(path), "--split-col", "split", "--model", "bow",
                 "--run-dir", str(run2)]) == 0
    assert "bow: test accuracy" in capsys.readouterr().out
    assert SequenceClassifier.load(run2).data_["train_size"] == 40
    assert json.loads((run2 / "test_metrics.json").read_text())["rows"] == "20 held-out test rows"
    assert not (run2 / "val_metrics.json").exists()


# ----------------------------------------------------------------------------- clinical-style long files

CLINICAL = ["id", "time", "hr", "ward", "outcome_code", "label"]


def clinical_rows():
    # s1: two visits 1.5 h apart then 0.5 h; s2: one ward value missing; outcome_code leaks the label
    return [("s1", "2024-01-01T00:00", 80, "ICU", 1, "sick"), ("s1", "2024-01-01T01:30", "", "ward", 1, "sick"),
            ("s1", "2024-01-01T02:00", 90, "ICU", 1, "sick"), ("s2", "2024-01-02T10:00", 70, "", 0, "well"),
            ("s2", "2024-01-02T11:00", 72, "ward", 0, "well")]


def test_choose_drop_and_one_hot_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", CLINICAL, clinical_rows())
    data = read_long_file(path, step_col="time", exclude=["outcome_code"])
    assert data.channels == ["hr", "ward=ICU", "ward=ward"]
    assert data.categories == {"ward": ["ICU", "ward"]}
    assert "one-hot encoded: ward (2 values: ICU, ward)" in data.report
    assert "excluded columns: outcome_code" in data.report
    np.testing.assert_array_equal(data.values[0], [[80, 1, 0], [np.nan, 0, 1], [90, 1, 0]])
    assert np.isnan(data.values[1][0, 1:]).all()              # a blank category cell: not measured
    np.testing.assert_allclose(data.times[0] - data.times[0][0], [0, 1.5, 2.0])   # timestamps as hours
    picked = read_long_file(path, step_col="time", channels=["hr"])
    assert picked.channels == ["hr"]
    # Trained categories fix the columns: an unseen value is all zeros, and counted.
    rows = clinical_rows()
    rows[0] = (*rows[0][:3], "recovery", *rows[0][4:])
    write_csv(tmp_path / "new.csv", CLINICAL, rows)
    later = read_long_file(tmp_path / "new.csv", step_col="time", exclude=["outcome_code"],
                           categories=data.categories)
    assert later.values[0][0].tolist() == [80, 0, 0]
    assert "1 value(s) of one-hot encoded columns not seen in training: encoded as all zeros" in later.report
    with pytest.raises(ValueError, match=msg(f"exclude='nope': {path} has no such column")):
        read_long_file(path, step_col="time", exclude=["nope"])


def test_time_as_an_input_elapsed_and_grid(tmp_path):
    path = write_csv(tmp_path / "c.csv", CLINICAL, clinical_rows())
    data = read_long_file(path, step_col="time", channels=["hr"])
    X, names = time_inputs(data, "elapsed", step_col="time")
    assert names == ["hr", "elapsed_time"]
    np.testing.assert_allclose(X[0][:, 1], [0.0, 1.5, 0.5])
    np.testing.assert_allclose(X[1][:, 1], [0.0, 1.0])
    # grid: hourly slots [0,1) [1,2) [2,3) -> hr 80, (nothing), 90; forward filled, indicator where empty
    X, names = time_inputs(data, "grid", grid_step=1.0)
    assert names == ["hr", "missing:hr"]
    np.testing.assert_array_equal(X[0], [[80, 0], [80, 1], [90, 0]])
    # the same resample + impute as the multilabel mode
    stay = to_stays(data.times, data.values, 1.0)[0]
    grid, missing = impute(resample(stay, 1, 1.0), np.full(1, np.nan))
    np.testing.assert_array_equal(np.concatenate([grid, missing], 1), X[0])
    assert stay.hours == 3.0 and stay.times.tolist() == [0.0, 2.0]


def test_series_classifier_on_a_clinical_file_predicts_to_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        sick = i % 3 == 0                                          # imbalanced: 8 sick, 16 well
        t = np.cumsum(rng.uniform(0.5, 3.0, size=5))               # irregular visits, hours
        for k in range(5):
            rows.append((f"p{i}", f"{t[k]:.2f}", f"{100 + 20 * sick + rng.normal():.2f}",
                         rng.choice(["ICU", "ward"]), int(sick), "sick" if sick else "well"))
    path = write_csv(tmp_path / "visits.csv", ["id", "time", "hr", "unit", "leak", "label"], rows)
    run = tmp_path / "run"
    assert main(["classify", "train", "--series", str(path), "--step-col", "time", "--exclude", "leak",
                 "--time-input", "elapsed", "--class-weight", "balanced", "--model", "gru", "--hidden-size", "8",
                 "--epochs", "3", "--min-steps", "0", "--batch-size", "8", "--run-dir", str(run)]) == 0
    captured = capsys.readouterr()
    assert "one-hot encoded: unit (2 values: ICU, ward)" in captured.err
    assert re.search(r"per-class recall \(test rows\): sick \d\.\d\d \(n=2\), well \d\.\d\d \(n=3\)", captured.out)
    clf = SequenceClassifier.load(run)
    assert clf.data_["encoding"]["channel_names"] == ["hr", "unit=ICU", "unit=ward", "elapsed_time"]
    # predict -o: one row per id with the class probabilities the model gives
    out = tmp_path / "pred" / "p.csv"
    assert main(["classify", "predict", str(run), "--file", str(path), "-o", str(out)]) == 0
    table = list(csv.reader(out.open()))
    assert table[0] == ["id", "predicted", "p_sick", "p_well"]
    assert [r[0] for r in table[1:]] == [f"p{i}" for i in range(24)]
    data = read_long_file(path, step_col="time", exclude=["leak"])
    X, _ = time_inputs(data, "elapsed", step_col="time")
    probs = clf.predict_proba(X)
    np.testing.assert_allclose(np.array([[float(v) for v in r[2:]] for r in table[1:]]), probs, atol=1e-6)
    assert [r[1] for r in table[1:]] == np.array(clf.classes_)[probs.argmax(1)].tolist()
    # eval on the file says whose rows it reports on
    assert main(["classify", "eval", str(run), "--series", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == f"24 rows of {path}" and set(result["recall"]) == {"sick", "well"}


def test_balanced_class_weights_weight_the_loss(tmp_path):
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(4, 2)).astype(np.float32) for _ in range(12)]
    y = np.array(["a"] * 9 + ["b"] * 3)
    clf = SequenceClassifier(model="gru", hidden_size=4, dropout=0.0, class_weight="balanced", epochs=1,
                             min_steps=0, batch_size=64, auto_batch=False, seed=3).fit(X, y, run_dir=tmp_path / "run")
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["train_loss"]
    # The one step's loss, recomputed from the initial weights: weights n / (K * count) = 12/18, 12/6.
    seed_everything(3)
    net = clf._build_net()                                   # the same initial weights as fit drew
    Xe, le = clf._encode(X)
    y_idx = torch.tensor([0] * 9 + [1] * 3)
    with torch.no_grad():
        expected = F.cross_entropy(net(torch.from_numpy(Xe), torch.from_numpy(le)), y_idx,
                                   weight=torch.tensor([12 / 18, 12 / 6]))
        plain = F.cross_entropy(net(torch.from_numpy(Xe), torch.from_numpy(le)), y_idx)
    assert logged == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(expected) - float(plain)) > 1e-4


# ----------------------------------------------------------------------------- multilabel on a user's file

def clinical_stays(n=30, seed=0):
    """Long rows (id, time, hr, temp, unit) and per-id 0/1 labels: fever <=> a high temperature."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        fever, tachy = int(i % 2), int(i % 3 == 0)
        for k, t in enumerate(np.sort(rng.uniform(0, 6, size=6))):
            temp = f"{37 + 2 * fever + rng.normal(0, 0.1):.2f}" if k % 2 == 0 else ""     # every other visit
            rows.append((f"p{i}", f"{t:.2f}", f"{80 + 30 * tachy + rng.normal():.1f}", temp,
                         rng.choice(["a", "b"]), fever, tachy))
        labels.append((f"p{i}", fever, tachy))
    return rows, labels


def test_multilabel_trains_on_a_users_file_and_its_runs_predict_and_eval(tmp_path, capsys):
    rows, labels = clinical_stays()
    path = write_csv(tmp_path / "stays.csv", ["id", "time", "hr", "temp", "unit", "fever", "tachy"], rows)
    run = tmp_path / "run"
    args = ["classify", "multilabel", "train", "--series", str(path), "--step-col", "time", "--label-cols",
            "fever", "tachy", "--hidden-size", "8", "--num-layers", "1", "--epochs", "2", "--min-steps", "0",
            "--batch-size", "8", "--grid-step", "2", "--class-weight", "balanced"]
    assert main(args + ["--run-dir", str(run)]) == 0
    captured = capsys.readouterr()
    assert "4 input channels (hr, temp, unit=a, unit=b), 2 labels (fever, tachy)" in captured.err
    assert captured.out.startswith("test (6 held-out stays): micro_auc ")
    assert re.search(r"per-label recall \(test stays\): fever \d\.\d\d, tachy ", captured.out)
    clf = MultilabelClassifier.load(run)
    assert clf.labels_ == ["fever", "tachy"] and clf.channels_ == ["hr", "temp", "unit=a", "unit=b"]
    assert clf.model_.rnn.input_size == 8                           # 4 values + 4 missing indicators
    test_metrics = json.loads((run / "test_metrics.json").read_text())
    # eval with no file: the run's own held-out test stays, the same figures
    assert main(["classify", "multilabel", "eval", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 6 and result["micro_auc"] == pytest.approx(test_metrics["micro_auc"])
    # labels in a second file give the same labels
    label_file = write_csv(tmp_path / "labels.csv", ["id", "fever", "tachy"], labels)
    no_labels = write_csv(tmp_path / "x.csv", ["id", "time", "hr", "temp", "unit"], [r[:5] for r in rows])
    assert main(["classify", "multilabel", "eval", str(run), "--series", str(no_labels), "--labels",
                 str(label_file)]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["classify", "multilabel", "eval", str(run), "--series", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["micro_auc"] == pytest.approx(from_file["micro_auc"])
    # predict -o: an id and a probability per label for each stay
    out = tmp_path / "p.csv"
    assert main(["classify", "multilabel", "predict", str(run), "--series", str(no_labels), "-o", str(out)]) == 0
    table = list(csv.reader(out.open()))
    assert table[0] == ["id", "p_fever", "p_tachy"] and len(table) == 31 and table[5][0] == "p4"
    # training with labels from the file too, and an auxiliary output
    run2 = tmp_path / "run2"
    assert main(["classify", "multilabel", "train", "--series", str(path), "--step-col", "time", "--labels",
                 str(label_file), "--label-cols", "fever", "--aux-cols", "tachy", "--aux-weight", "0.5",
                 "--exclude", "fever", "tachy", "--hidden-size", "4", "--num-layers", "1", "--dry-run",
                 "--run-dir", str(run2)]) == 0
    clf2 = MultilabelClassifier.load(run2)
    assert clf2.labels_ == ["fever"] and clf2.num_aux_ == 1 and "fever" not in clf2.channels_


def test_multilabel_file_errors_name_the_fix(tmp_path, capsys):
    rows, _ = clinical_stays(6)
    path = write_csv(tmp_path / "stays.csv", ["id", "time", "hr", "temp", "unit", "fever", "tachy"], rows)
    assert main(["classify", "multilabel", "train", "--series", str(path), "--step-col", "time",
                 "--run-dir", str(tmp_path / "r")]) == 2
    assert "label_cols=[]: expected the names of the 0/1 label columns of --series, or --labels FILE" in \
        capsys.readouterr().err
    bad = [r[:5] + ("yes",) + r[6:] if r[0] == "p1" else r for r in rows]
    write_csv(path, ["id", "time", "hr", "temp", "unit", "fever", "tachy"], bad)
    assert main(["classify", "multilabel", "train", "--series", str(path), "--step-col", "time", "--label-cols",
                 "fever", "--run-dir", str(tmp_path / "r")]) == 2
    assert f"{path}: stay 'p1' has 'yes' in label column 'fever'; expected 0 or 1" in capsys.readouterr().err
