"""Sequence classification: masking, pooling, learning small patterns, bow, round trips, data and bad input."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.nn.layers import RNN
from rnnkit.report.metrics import classification_metrics
from rnnkit.runs.weights import load_weights, save_weights
from rnnkit.tasks.base import NotFittedError
from rnnkit.datasets.long_format import read_long_csv
from rnnkit.datasets.ts import read_ts
from rnnkit.tasks.classify.data import load_data, read_text_csv, remove_duplicates, stratified_split
from rnnkit.tasks.classify.model import BOW_TOKEN_PATTERN, BowModel, SequenceNet, final_states, masked_pool
from rnnkit.tasks.base import FINAL_WEIGHTS
from rnnkit.tasks.classify.task import ClassifyConfig, SequenceClassifier

NEURAL = ("rnn", "gru", "lstm", "bilstm", "bigru", "conv1d", "cnn-lstm")


def sentiment_texts(n, seed=0):
    """Two classes told apart by one word among filler words."""
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "story", "with", "some", "actors", "and", "music", "plot"]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(3, 12)))
        label = "pos" if i % 2 else "neg"
        words.insert(int(rng.integers(0, len(words) + 1)), "great" if label == "pos" else "awful")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


def write_csv(path, rows, header=("text", "label")):
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# ----------------------------------------------------------------------------- masking and pooling

def test_masked_pool_hand_computed():
    out = torch.tensor([[[1.0, -2.0], [3.0, 5.0], [100.0, 100.0]]])     # (1, 3, 2); step 3 is padding
    mask = torch.tensor([[True, True, False]])
    assert masked_pool(out, mask, "max").tolist() == [[3.0, 5.0]]
    assert masked_pool(out, mask, "mean").tolist() == [[2.0, 1.5]]
    assert masked_pool(out, mask, "maxmean").tolist() == [[3.0, 5.0, 2.0, 1.5]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_body_equals_torch_packed_bidirectional_layers(cell):
    """The classifier's recurrent body (RNN with lengths=, no packing on the CPU) computes what torch's packed
    bidirectional layers compute, with the same weights; its final states are RNN(return_sequences=False)'s."""
    torch.manual_seed(0)
    body = SequenceNet("bilstm" if cell == "lstm" else "bigru", num_classes=2, input_size=5, hidden_size=6,
                       num_layers=2).rnn.eval()
    packed = getattr(torch.nn, cell.upper())(5, 6, num_layers=2, bidirectional=True, batch_first=True).eval()
    for i, c in enumerate(body.cells):
        suffix = f"_l{i // 2}" + ("_reverse" if i % 2 else "")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(packed, name + suffix).data.copy_(getattr(c, name))
    x = torch.randn(3, 7, 5)
    lengths = torch.tensor([7, 4, 1])
    out, _ = packed(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=7)   # zeros past each length
    got = body(x, lengths=lengths)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    last = RNN(cell, 5, 6, num_layers=2, bidirectional=True, return_sequences=False).eval()
    last.load_state_dict(body.state_dict())
    torch.testing.assert_close(final_states(got, lengths, 2), last(x, lengths=lengths), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", NEURAL)
@pytest.mark.parametrize("pooling", ["maxmean", "last"])
def test_padding_never_changes_a_prediction(model, pooling):
    torch.manual_seed(0)
    net = SequenceNet(model, num_classes=3, vocab=20, hidden_size=8, embedding_size=6, num_layers=2, pooling=pooling,
                      kernel_size=3).eval()
    ids = torch.tensor([[5, 3, 9, 2, 7], [4, 8, 0, 0, 0]])                  # second sequence has 2 valid steps
    lengths = torch.tensor([5, 2])
    short = net(ids, lengths)
    padded = torch.cat([ids, torch.zeros(2, 20, dtype=torch.long)], 1)       # the same texts, 25 steps
    long = net(padded, lengths)
    torch.testing.assert_close(short, long, rtol=1e-5, atol=1e-6)
    alone = net(ids[1:, :2], lengths[1:])                                    # no padding at all
    torch.testing.assert_close(alone, short[1:], rtol=1e-5, atol=1e-6)
    # Garbage in the padded positions is ignored too (masking, not only zeros).
    noisy = padded.clone()
    noisy[1, 2:] = 11
    torch.testing.assert_close(net(noisy, lengths), short, rtol=1e-5, atol=1e-6)


def test_same_text_padded_to_two_lengths_gives_same_probabilities():
    texts, y = sentiment_texts(40)
    clf = SequenceClassifier(model="bilstm", hidden_size=8, embedding_size=8, epochs=1, min_steps=0,
                             batch_size=8).fit(texts, y)
    short = "the film was great"
    alone = clf.predict_proba([short])
    # In a batch with a much longer text, the short one is padded to that length.
    with_long = clf.predict_proba([short, " ".join(["plot music"] * 50)])
    np.testing.assert_allclose(alone[0], with_long[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alone.sum(1), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- learning

@pytest.mark.parametrize("model", ["lstm", "conv1d", "mingru"])
def test_learns_a_keyword_pattern(model):
    texts, y = sentiment_texts(200)
    test_x, test_y = sentiment_texts(60, seed=1)
    clf = SequenceClassifier(model=model, hidden_size=16, embedding_size=16, epochs=6, min_steps=0, batch_size=20,
                             lr=1e-2, early_stop_patience=None, dropout=0.0, seed=1)
    clf.fit(texts, y)
    assert clf.classes_ == ["neg", "pos"]
    assert clf.evaluate(test_x, test_y)["accuracy"] == 1.0
    if model == "mingru":
        assert clf.model_.rnn.cells[0].scan is not None      # the min cell trains through its parallel scan


def test_series_classifier_learns_which_channel_rises():
    rng = np.random.default_rng(0)

    def make(n):
        X, y = [], []
        for i in range(n):
            T = int(rng.integers(15, 30))     # variable lengths
            x = rng.normal(0, 0.3, (T, 3)).astype(np.float32)
            k = i % 3
            x[:, k] += np.linspace(0, 2, T)    # the class is the channel that rises
            X.append(x)
            y.append(f"c{k}")
        return X, np.array(y)

    X, y = make(120)
    Xt, yt = make(30)
    clf = SequenceClassifier(model="gru", hidden_size=16, epochs=15, min_steps=0, batch_size=16, lr=1e-2,
                             dropout=0.0, early_stop_patience=None).fit(X, y)
    assert clf.evaluate(Xt, yt)["accuracy"] >= 0.95


# ----------------------------------------------------------------------------- bow

def test_bow_saved_without_pickle_predicts_like_sklearn(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, y = sentiment_texts(80)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=BOW_TOKEN_PATTERN)
    ref = LogisticRegression(C=4.0, max_iter=2000, random_state=0).fit(vec.fit_transform(texts), y)
    clf = SequenceClassifier(model="bow", bow_min_df=1).fit(texts, y)
    clf.save(tmp_path / "run")
    loaded = SequenceClassifier.load(tmp_path / "run")
    probe = ["great plot", "awful music and actors", "unseen words only !"]
    expected = ref.predict_proba(vec.transform(probe))
    np.testing.assert_allclose(loaded.predict_proba(probe), expected, rtol=1e-9, atol=1e-12)
    assert not list((tmp_path / "run").glob("*.pkl"))


def test_bow_multiclass_softmax_matches_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = ["red apple", "green leaf", "blue sky", "red fire", "green grass", "blue sea"] * 3
    y = np.array(["r", "g", "b"] * 6)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=BOW_TOKEN_PATTERN)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(vec.fit_transform(texts), y)
    bow = BowModel.fit(texts, y, 1.0, 1, 0)
    np.testing.assert_allclose(bow.predict_proba(["red sky"]), ref.predict_proba(vec.transform(["red sky"])),
                               rtol=1e-9)


# ----------------------------------------------------------------------------- embeddings

def test_frozen_glove_vectors_stay_and_unknown_words_are_counted(tmp_path):
    glove = tmp_path / "tiny.glove.txt"
    glove.write_text("great 1 0 0 0\nawful -1 0 0 0\nthe 0 1 0 0\n")
    texts, y = sentiment_texts(40)
    clf = SequenceClassifier(model="gru", hidden_size=8, embedding_size=32, epochs=1, min_steps=0, batch_size=8,
                             embeddings=str(glove), freeze_embeddings=True).fit(texts, y)
    assert clf.config.embedding_size == 4                       # taken from the vectors
    stats = clf.embedding_stats_
    words = clf.tokenizer_.vocab_size - 1                       # <unk> and the 13 words of the texts
    assert stats["found"] == 3 and stats["unknown"] == words - 3
    w = clf.model_.embed.weight
    assert not w.requires_grad
    assert w[clf.tokenizer_.word_index["great"]].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert w[0].abs().sum() == 0                                # padding row


# ----------------------------------------------------------------------------- metrics

def test_classification_metrics_hand_computed():
    y = np.array(["a", "a", "b", "b"])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])     # predicts a, b, b, b
    m = classification_metrics(y, probs, ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    # a: precision 1, recall 0.5, F1 2/3; b: precision 2/3, recall 1, F1 0.8
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["roc_auc"] == pytest.approx(1.0)                              # every b scores above every a


# ----------------------------------------------------------------------------- data

def test_duplicates_removed_and_conflicts_counted():
    texts = ["good  film", "good film", "bad film", "bad film", "ok"]
    labels = np.array(["1", "1", "0", "1", "1"])
    kept, y, removed, conflicting = remove_duplicates(texts, labels)
    assert kept == ["good  film", "bad film", "ok"] and y.tolist() == ["1", "0", "1"]
    assert removed == 2 and conflicting == 1


def test_stratified_split_is_fixed_and_keeps_class_shares():
    y = np.array(["a"] * 80 + ["b"] * 20)
    tr, va, te = stratified_split(y, 0.1, 0.2, seed=3)
    assert len(te) == 20 and len(va) == 10 and len(tr) == 70
    assert (y[te] == "b").sum() == 4 and (y[va] == "b").sum() == 2
    assert not set(tr) & set(te) and not set(tr) & set(va)
    again = stratified_split(y, 0.1, 0.2, seed=3)
    assert all((a == b).all() for a, b in zip((tr, va, te), again))


def test_csv_empty_texts_skipped_and_counted(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("nice", "1"), ("", "0"), ("  ", "1"), ("bad", "0")])
    texts, labels, empty = read_text_csv(path, "text", "label")
    assert texts == ["nice", "bad"] and labels.tolist() == ["1", "0"] and empty == 2


def test_long_format_csv_groups_and_orders_steps(tmp_path):
    path = write_csv(tmp_path / "s.csv", [("b", 1, 5, 50, "x"), ("a", 0, 1, 10, "y"), ("b", 0, 4, 40, "x"),
                                          ("a", 1, "", 20, "y")], header=("id", "step", "u", "v", "label"))
    X, y, channels = read_long_csv(path)
    assert channels == ["u", "v"] and y.tolist() == ["x", "y"]
    assert X[0].tolist() == [[4, 40], [5, 50]]
    assert X[1][0].tolist() == [1, 10] and np.isnan(X[1][1, 0])


def test_ts_file_with_unequal_lengths(tmp_path):
    path = tmp_path / "d.ts"
    path.write_text("@problemName t\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,?:2,3:b\n")
    X, y = read_ts(path)
    assert [x.shape for x in X] == [(3, 2), (2, 2)] and y.tolist() == ["a", "b"]
    assert X[0][:, 1].tolist() == [4, 5, 6] and np.isnan(X[1][1, 0])


# ----------------------------------------------------------------------------- bad input

def test_csv_without_the_named_columns_lists_its_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("x", "1")], header=("review", "sentiment"))
    with pytest.raises(ValueError, match=r"text_col='text': .* has no such column; its columns are: review, sentiment"):
        read_text_csv(path, "text", "sentiment")


def test_label_column_with_one_class(tmp_path):
    path = write_csv(tmp_path / "r.csv", [(f"text {i}", "pos") for i in range(10)])
    with pytest.raises(ValueError, match=r"has only one class \('pos'\) among 10 examples"):
        load_data(csv_path=str(path))


def test_non_numeric_sensor_values_name_file_and_line(tmp_path):
    ts = tmp_path / "bad.ts"
    ts.write_text("@classLabel true a b\n@data\n1,2:3,4:a\n1,x:3,4:b\n")
    with pytest.raises(ValueError, match=r"bad.ts: line 4, column 'channel 1': 'x' is not a number"):
        read_ts(ts)
    csv_path = write_csv(tmp_path / "bad.csv", [("a", 0, "1.5", "x"), ("a", 1, "high", "x")],
                         header=("id", "step", "u", "label"))
    with pytest.raises(ValueError, match=r"bad.csv: line 3, column 'u': 'high' is not a number"):
        read_long_csv(csv_path)


def test_ragged_multichannel_rows(tmp_path):
    ts = tmp_path / "rag.ts"
    ts.write_text("@classLabel true a\n@data\n1,2,3:4,5:a\n")
    with pytest.raises(ValueError, match=r"rag.ts: line 3: ragged row: its channels have \[3, 2\] values"):
        read_ts(ts)
    path = tmp_path / "rag.csv"
    path.write_text("id,step,u,v,label\na,0,1,2,x\na,1,1,x\n")
    with pytest.raises(ValueError, match=r"rag.csv: line 3: ragged row with 4 fields; the header has 5"):
        read_long_csv(path)


def test_predict_on_a_run_that_is_not_a_classifier(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "demo", "model": "x"}))
    assert main(["classify", "predict", str(run), "hello"]) == 2
    assert "not a classifier run directory (its config says task='demo')" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["classify", "predict", str(tmp_path / "empty"), "hello"]) == 2
    assert "not a classifier run directory (no config.json)" in capsys.readouterr().err


def test_bow_refuses_series():
    with pytest.raises(ValueError, match=r"model='bow': expected a text model"):
        SequenceClassifier(model="bow").fit([np.zeros((3, 2))] * 4, ["a", "b"] * 2)


# ----------------------------------------------------------------------------- command line

@pytest.mark.parametrize("model", ["bilstm", "cnn-lstm", "bow"])
def test_cli_train_predict_eval_round_trip(tmp_path, capsys, model):
    texts, y = sentiment_texts(120)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    run = tmp_path / "run"
    rc = main(["classify", "train", "--csv", str(data), "--model", model, "--hidden-size", "8", "--embedding-size",
               "8", "--epochs", "2", "--min-steps", "0", "--batch-size", "16", "--run-dir", str(run)])
    assert rc == 0
    assert f"{model}: test accuracy" in capsys.readouterr().out
    m = json.loads((run / "test_metrics.json").read_text())
    assert m["n"] == 24 and set(m["per_class"]) == {"neg", "pos"} and "roc_auc" in m
    assert (run / "test_confusion.png").stat().st_size > 1000
    # The run loads in Python and predicts what the CLI prints.
    clf = SequenceClassifier.load(run)
    probs = clf.predict_proba(["the film was great", "awful music"])
    assert main(["classify", "predict", str(run), "the film was great", "awful music"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(clf.predict(["the film was great"])[0] + "\t")
    assert f"pos {probs[1, 1]:.3f}" in lines[1]
    assert main(["classify", "eval", str(run), "--csv", str(data)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 120 and 0.0 <= out["accuracy"] <= 1.0
    assert (run / "eval" / "eval_metrics.json").is_file()


def test_cli_series_dry_run_and_file_predict(tmp_path, capsys):
    rows = []
    for i in range(12):
        for t in range(5):
            rows.append((f"s{i}", t, np.sin(t + i), i % 2 * t, "up" if i % 2 else "flat"))
    data = write_csv(tmp_path / "series.csv", rows, header=("id", "step", "u", "v", "label"))
    run = tmp_path / "run"
    assert main(["classify", "train", "--series", str(data), "--model", "conv1d", "--dry-run",
                 "--run-dir", str(run), "--hidden-size", "4"]) == 0
    assert main(["classify", "predict", str(run), "--file", str(data)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len([line for line in lines if "\tseries " in line]) == 12


def test_cli_predict_from_a_file_skips_blank_lines(tmp_path, capsys):
    texts, y = sentiment_texts(60)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    run = tmp_path / "run"
    assert main(["classify", "train", "--csv", str(data), "--model", "gru", "--dry-run", "--hidden-size", "4",
                 "--embedding-size", "4", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    inputs = tmp_path / "in.txt"
    inputs.write_text("great film\n\n   \nawful plot\n")
    assert main(["classify", "predict", str(run), "--file", str(inputs)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[2] for line in lines] == ["great film", "awful plot"]


def test_cli_resume_continues_the_run(tmp_path):
    texts, y = sentiment_texts(60)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    run = ["--run-dir", str(tmp_path / "run")]
    args = ["classify", "train", "--csv", str(data), "--model", "lstm", "--hidden-size", "4", "--embedding-size", "4",
            "--batch-size", "16", "--early-stop-patience", "None", "--min-steps", "0"] + run
    assert main(args + ["--epochs", "1"]) == 0
    # The run keeps its own config and data; only budgets may change.
    assert main(["classify", "train", "--resume", "--epochs", "2"] + run) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1]


def test_embeddings_refused_for_series():
    with pytest.raises(ValueError, match=r"embeddings='glove-50d': expected None for numeric series"):
        SequenceClassifier(model="gru", embeddings="glove-50d").fit([np.zeros((3, 2))] * 4, ["a", "b"] * 2)


def test_cli_eval_writes_into_the_output_folder_and_resume_refuses_a_model_flag(tmp_path, capsys):
    texts, y = sentiment_texts(60)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    run = tmp_path / "run"
    assert main(["classify", "train", "--csv", str(data), "--model", "gru", "--dry-run", "--hidden-size", "4",
                 "--embedding-size", "4", "--run-dir", str(run)]) == 0
    assert main(["classify", "eval", str(run), "--csv", str(data), "-o", str(tmp_path / "report")]) == 0
    report = tmp_path / "report"
    assert (report / "eval_metrics.json").is_file() and (report / "eval_confusion.png").is_file()
    assert not (run / "eval").exists()
    capsys.readouterr()
    assert main(["classify", "train", "--resume", "--run-dir", str(run), "--model", "lstm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("rnnkit: error: --model='lstm': expected no --model with --resume")


# ----------------------------------------------------------------------------- the Task shape

def test_clone_keeps_the_params():
    from sklearn.base import clone

    clf = SequenceClassifier(model="gru", lr=0.01)
    assert clf.config.train.lr == 0.01 and clf.config.model == "gru"
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy is not clf


def test_predict_before_fit_says_what_to_call():
    with pytest.raises(NotFittedError, match=r"this SequenceClassifier is not fitted .*: call fit\(\.\.\.\) first, "
                                             r"or SequenceClassifier\.load\(run_dir\)"):
        SequenceClassifier().predict(["a text"])


def test_training_options_are_one_nested_train_config():
    cfg = ClassifyConfig()
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.clip_grad_norm, cfg.train.early_stop_patience,
            cfg.train.min_steps, cfg.train.auto_batch, cfg.train.max_minutes, cfg.train.device) == (
        2e-3, 64, 5.0, 5, 300, True, 5.0, "auto")
    clf = SequenceClassifier(cfg, epochs=3, num_words=50)
    assert clf.config.train.epochs == 3 and clf.config.num_words == 50 and cfg.train.epochs == 200


def test_rnnkit_load_returns_the_classifier(tmp_path):
    texts, y = sentiment_texts(40)
    clf = SequenceClassifier(model="gru", hidden_size=4, embedding_size=4, epochs=1, min_steps=0, batch_size=8)
    clf.fit(texts, y, (texts[:8], y[:8]), run_dir=tmp_path / "run")
    loaded = rnnkit.load(tmp_path / "run")
    assert type(loaded) is SequenceClassifier and loaded.get_params() == clf.get_params()
    np.testing.assert_allclose(loaded.predict_proba(texts[:5]), clf.predict_proba(texts[:5]), rtol=1e-6)
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["task"] == "classify" and doc["format_version"] == 2 and doc["config"]["train"]["lr"] == 2e-3
    assert doc["fitted"]["classes"] == ["neg", "pos"] and doc["data"]["kind"] == "text"


def _write_old_run(run, clf):
    """Rewrite a run directory the way rnnkit 0.1 wrote it: a flat config and one RNN object per layer and
    direction in the weight names."""
    cfg = clf.config
    flat = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("train", "num_words")}
    flat.update(vocab_size=cfg.num_words, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
                weight_decay=cfg.train.weight_decay, schedule="constant", epochs=cfg.train.epochs,
                max_minutes=None, early_stop_patience=cfg.train.early_stop_patience, seed=cfg.train.seed)
    (run / "config.json").write_text(json.dumps({"rnnkit_version": "0.1.0", "task": "classify", "model": cfg.model,
                                                 "config": flat, "classes": clf.classes_, "kind": clf.kind_}))
    if clf.kind_ == "series":
        (run / "standardize.json").write_text(json.dumps({"mean": clf.mean_.tolist(), "std": clf.std_.tolist()}))
    tensors = load_weights(run / FINAL_WEIGHTS)
    old = {re.sub(r"^rnn\.cells\.(\d+)\.", r"rnn.layers.\1.cells.0.", k): v for k, v in tensors.items()}
    assert any(k.startswith("rnn.layers.3.cells.0.") for k in old)
    (run / FINAL_WEIGHTS).unlink()
    save_weights(run / "classifier.safetensors", old)           # the finished model's name in rnnkit 0.1


@pytest.mark.parametrize("kind", ["text", "series"])
def test_a_run_directory_of_rnnkit_0_1_still_loads(tmp_path, kind):
    if kind == "text":
        X, y = sentiment_texts(40)
    else:
        rng = np.random.default_rng(0)
        X = [rng.normal(size=(int(rng.integers(4, 9)), 3)).astype(np.float32) for _ in range(30)]
        y = np.array(["a", "b", "c"] * 10)
    clf = SequenceClassifier(model="bilstm", hidden_size=4, embedding_size=4, num_layers=2, epochs=1, min_steps=0,
                             batch_size=8)
    clf.fit(X, y, run_dir=tmp_path / "run")
    _write_old_run(tmp_path / "run", clf)
    for loaded in (SequenceClassifier.load(tmp_path / "run"), rnnkit.load(tmp_path / "run")):
        assert loaded.config.num_words == clf.config.num_words and loaded.config.train.clip_grad_norm == 5.0
        assert loaded.config.train.device == "cpu" and loaded.classes_ == clf.classes_
        np.testing.assert_allclose(loaded.predict_proba(X[:6]), clf.predict_proba(X[:6]), rtol=1e-6)


# ----------------------------------------------------------------------------- nothing lost (issue 14)


def small_text_run(tmp_path, n=60):
    texts, y = sentiment_texts(n)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    return data, ["classify", "train", "--csv", str(data), "--model", "gru", "--hidden-size", "4",
                  "--embedding-size", "4", "--batch-size", "8", "--early-stop-patience", "None", "--min-steps", "0"]


def test_ctrl_c_stops_before_the_test_report_and_the_run_predicts_and_resumes(tmp_path, capsys, ctrl_c_at_step):
    data, train = small_text_run(tmp_path)
    run = tmp_path / "run"
    ctrl_c_at_step(2)
    assert main(train + ["--epochs", "2", "--run-dir", str(run)]) == 130
    captured = capsys.readouterr()
    command = f"rnnkit classify train --run-dir {run} --resume"
    assert f"resume with: {command}\n" in captured.err and "test accuracy" not in captured.out
    assert not (run / "test_metrics.json").exists() and not (run / FINAL_WEIGHTS).exists()
    assert json.loads((run / "config.json").read_text())["finished"] is False
    # A stopped (or killed) run is not a model: predicting refuses it and says both ways on ...
    assert main(["classify", "predict", str(run), "the film was great"]) == 2
    assert capsys.readouterr().err == (f"rnnkit: error: {run}: its training has not finished (config.json is not "
                                       f"marked finished); expected a finished run: finish it with {command}, or use "
                                       f"its last checkpoint explicitly (--checkpoint best|last; load(..., "
                                       f"checkpoint=\"best\"))\n")
    # ... and predicts from its checkpoint when asked to.
    assert main(["classify", "predict", str(run), "the film was great", "--checkpoint", "last"]) == 0
    assert capsys.readouterr().out.count("\t") == 2
    # The printed command goes on with the run and finishes it.
    assert main(command.split()[1:]) == 0
    assert (run / "test_metrics.json").is_file() and (run / FINAL_WEIGHTS).is_file()
    assert json.loads((run / "config.json").read_text())["finished"] is True
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1]


def test_resume_refuses_changed_data_and_a_spent_budget(tmp_path, capsys):
    data, train = small_text_run(tmp_path)
    run = tmp_path / "run"
    assert main(train + ["--epochs", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["classify", "train", "--resume", "--run-dir", str(run)]) == 2
    assert capsys.readouterr().err.endswith(f"\nrnnkit: error: {run}: the run is complete: all --epochs 1 epochs "
                                            f"are trained; expected a larger budget to train on, e.g. rnnkit classify "
                                            f"train --run-dir {run} --resume --epochs 2\n")
    texts, y = sentiment_texts(60, seed=1)
    write_csv(data, list(zip(texts, y)))
    assert main(["classify", "train", "--resume", "--epochs", "2", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]                  # after the data summary line
    assert err.startswith(f"rnnkit: error: {data}: the training data changed since the run in {run} began (digest "
                          f"sha256:")
    assert main(train + ["--epochs", "1", "--run-dir", str(run)]) == 2
    assert "holds an earlier classify run, which training again would overwrite" in capsys.readouterr().err
    assert main(train + ["--epochs", "1", "--run-dir", str(run), "--overwrite"]) == 0


def test_a_run_without_a_checkpoint_or_model_says_how_to_go_on(tmp_path, capsys):
    data, train = small_text_run(tmp_path)
    run = tmp_path / "run"
    assert main(train + ["--epochs", "1", "--run-dir", str(run)]) == 0
    for name in (FINAL_WEIGHTS, "model.safetensors", "best.safetensors"):
        (run / name).unlink()
    capsys.readouterr()
    assert main(["classify", "predict", str(run), "great"]) == 2
    assert capsys.readouterr().err.startswith(f"rnnkit: error: {run}: not a complete rnnkit run directory: missing "
                                              f"{FINAL_WEIGHTS} (it holds: ")
    assert main(["classify", "predict", str(run), "great", "--checkpoint", "last"]) == 2
    assert capsys.readouterr().err == (f"rnnkit: error: {run}: the run has no checkpoint (no model.safetensors); "
                                       f"expected a run whose training saved one: train it again\n")


# ----------------------------------------------------------------------------- --model auto, --seeds, class names

def waves(n, steps=30, seed=0):
    """Three classes of noisy sine waves (1, 2 or 3 periods): ROCKET tells them apart at once."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, steps)
    X = [(np.sin((i % 3 + 1) * t) + 0.3 * rng.standard_normal(steps)).astype(np.float32)[:, None] for i in range(n)]
    return X, np.array([f"w{i % 3}" for i in range(n)])


# Tiny networks and budgets: the tournament's machinery in seconds.
TINY = {"hidden_size": 4, "embedding_size": 4, "epochs": 2, "min_steps": 0, "rocket_kernels": 100,
        "max_minutes": None}


def test_pick_keeps_the_simpler_model_unless_beaten_by_more_than_the_noise():
    from rnnkit.tasks.classify.auto import Entry, pick

    bow = Entry("bow", 0.80, rows=100)                    # one standard error: sqrt(0.8 * 0.2 / 100) = 0.04
    assert pick([bow, Entry("bigru", 0.83, rows=100)]) is bow
    bigru = Entry("bigru", 0.85, rows=100)
    assert pick([bow, bigru]) is bigru
    # Cross-validated: the noise is the folds' sd / sqrt(k): 0.1 / 2 = 0.05 over 4 folds.
    rocket = Entry("rocket", 0.70, sd=0.1, folds=4, rows=40)
    assert pick([rocket, Entry("conv1d", 0.74, sd=0.0, folds=4, rows=40)]) is rocket
    assert pick([rocket, Entry("conv1d", 0.76, folds=4, rows=40)]).model == "conv1d"
    # A candidate that was not scored never wins over one that was.
    assert pick([Entry("bow", None), Entry("gru", 0.5, rows=10)]).model == "gru"


def test_auto_picks_on_cross_validation_and_the_run_is_the_winners(tmp_path, capsys):
    from sklearn.model_selection import StratifiedKFold

    from rnnkit.tasks.classify.rocket import cross_validate

    X, y = waves(30)
    run = tmp_path / "run"
    clf = SequenceClassifier(candidates=["rocket", "conv1d"], **TINY).fit(X[:24], y[:24], (X[24:], y[24:]),
                                                                       run_dir=run, progress=False)
    assert clf.config.model == "rocket" and clf.get_params()["candidates"] == ["rocket", "conv1d"]
    table = list(__import__("csv").DictReader((run / "tournament.csv").open()))
    assert [(r["model"], r["folds"], r["val_rows"], r["picked"]) for r in table] == [
        ("rocket", "5", "30", "yes"), ("conv1d", "5", "30", "")]
    # The rocket row is the mean of its folds: 5 stratified folds of the 30 training + validation rows.
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(30), y))
    accs = cross_validate(X, y, folds, 100, 0)
    assert float(table[0]["val_accuracy"]) == pytest.approx(np.mean(accs), abs=1e-6)
    assert float(table[0]["sd"]) == pytest.approx(np.std(accs), abs=1e-6)
    doc = json.loads((run / "config.json").read_text())
    assert doc["finished"] and doc["config"]["model"] == "rocket" and doc["fitted"]["tournament"]["picked"] == "rocket"
    assert doc["fitted"]["tournament"]["selection"].startswith("5-fold cross-validation on the 30 training")
    assert not (run / "tournament").exists()
    # A finished run like any other: it loads and answers as the fitted object does.
    loaded = rnnkit.load(run)
    assert loaded.config.model == "rocket" and loaded.tournament_["picked"] == "rocket"
    np.testing.assert_allclose(loaded.predict_proba(X[:5]), clf.predict_proba(X[:5]), rtol=1e-6)
    err = capsys.readouterr().err
    assert "auto: rocket, conv1d, picked on 5-fold cross-validation" in err and "auto: rocket is picked" in err


def test_auto_candidates_that_cannot_read_the_data_are_refused():
    texts, y = sentiment_texts(20)
    with pytest.raises(ValueError, match=r"^candidates=\['bow', 'rocket'\]: rocket reads numeric series only; "
                                         r"expected models that read text"):
        SequenceClassifier(candidates=["bow", "rocket"], **TINY).fit(texts, y, progress=False)
    with pytest.raises(ValueError, match=r"candidates='lstm2': expected one of"):
        SequenceClassifier(candidates=["lstm2"])


def test_auto_on_validation_rows_keeps_the_network_it_trained(tmp_path, monkeypatch):
    from rnnkit.tasks.classify import auto

    monkeypatch.setattr(auto, "CV_BELOW", 10)             # 48 rows: scored on the validation rows
    texts, y = sentiment_texts(48)
    fits = []
    original = SequenceClassifier.fit
    monkeypatch.setattr(SequenceClassifier, "fit", lambda self, *a, **k: fits.append(self.config.model) or
                        original(self, *a, **k))
    clf = SequenceClassifier(candidates=["gru", "lstm"], **TINY).fit(texts[:40], y[:40], (texts[40:], y[40:]),
                                                                     run_dir=tmp_path / "run", progress=False)
    # The tournament's network is the final model: each trained once (the first fit is the auto object's own).
    assert fits == ["auto", "gru", "lstm"] and clf.config.model in ("gru", "lstm")
    row = next(r for r in clf.tournament_["table"] if r["picked"])
    assert (row["folds"], row["val_rows"]) == (0, 8)
    assert float(row["val_accuracy"]) == pytest.approx(clf.evaluate(texts[40:], y[40:])["accuracy"], abs=1e-6)
    assert SequenceClassifier.load(tmp_path / "run").config.model == clf.config.model


def test_an_interrupted_auto_run_resumes_with_the_printed_command(tmp_path, capsys, ctrl_c_at_step):
    X, y = waves(30)
    data = tmp_path / "w_TRAIN.ts"
    data.write_text("@problemName w\n@univariate true\n@classLabel true w0 w1 w2\n@data\n" + "".join(
        ",".join(f"{v:.4f}" for v in x[:, 0]) + f":{label}\n" for x, label in zip(X, y)))
    run = tmp_path / "run"
    args = ["classify", "train", "--series", str(data), "--candidates", "rocket", "conv1d", "--hidden-size", "4",
            "--epochs", "2", "--min-steps", "0", "--rocket-kernels", "100", "--run-dir", str(run)]
    ctrl_c_at_step(1)                                       # in conv1d's first fold: rocket has finished
    assert main(args) == 130
    command = f"rnnkit classify train --run-dir {run} --resume"
    err = capsys.readouterr().err
    assert f"resume with: {command}\n" in err and "the tournament stopped while training conv1d" in err
    doc = json.loads((run / "config.json").read_text())
    assert doc["finished"] is False and doc["config"]["model"] == "auto"
    before = (run / "tournament.csv").read_text().splitlines()
    assert len(before) == 2 and before[1].startswith("rocket,")
    assert main(command.split()[1:]) == 0
    captured = capsys.readouterr()
    assert "auto: resuming: rocket finished before; their rows are kept" in captured.err
    after = (run / "tournament.csv").read_text().splitlines()
    assert after[1].split(",")[:6] == before[1].split(",")[:6] and after[2].startswith("conv1d,")
    assert "model auto: " in captured.out and ": test accuracy " in captured.out
    assert json.loads((run / "config.json").read_text())["finished"] is True
    # Its tournament is over: a resume now says so rather than starting another.
    assert main(command.split()[1:]) == 2
    assert "a finished --model auto run (its tournament picked" in capsys.readouterr().err


def test_auto_defaults_to_the_baseline_and_dry_runs_a_tournament(tmp_path, capsys):
    X, y = waves(30)
    clf = SequenceClassifier(rocket_kernels=100).fit(X, y, progress=False)
    assert clf.config.model == "rocket" and clf.tournament_["candidates"] == ["rocket"]
    assert clf.tournament_["table"] == [{"model": "rocket", "val_accuracy": "", "sd": "0.000000", "folds": 0,
                                         "val_rows": 0, "seconds": "0.0", "picked": "yes",
                                         "note": "the only candidate: not scored"}]
    texts, y = sentiment_texts(60)
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    assert main(["classify", "train", "--csv", str(data), "--run-dir", str(tmp_path / "bow")]) == 0
    assert "model auto: bow, the default for texts: no network beat it" in capsys.readouterr().out
    assert main(["classify", "train", "--csv", str(data), "--dry-run", "--hidden-size", "4", "--embedding-size", "4",
                 "--candidates", "bow", "bigru", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"model auto: (bow|bigru), picked on accuracy on the \d+ validation rows among bow, bigru:", out)
    assert re.search(r"\n\s+bow\s+\d\.\d{4}\s+\d+ validation rows", out) and ": test accuracy " in out


def test_a_tiny_set_gets_small_batches_and_enough_updates(capsys):
    X, y = waves(24, steps=12)
    clf = SequenceClassifier(model="conv1d", hidden_size=4, early_stop_patience=1).fit(X[:20], y[:20],
                                                                                       (X[20:], y[20:]))
    t = clf.trainer_
    assert clf.train_batch_ == 8 and t.step >= 300                # 20 rows: 3 batches an epoch, 100 epochs
    epochs = [r for r in t.history if r["event"] == "epoch"]
    assert epochs[0]["step"] == 3 and len(epochs) == t.epoch
    assert "data: batch 8 instead of --batch-size 64: 20 training rows would make 1 update(s) an epoch" in \
        capsys.readouterr().err


def test_seeds_report_their_mean_sd_and_averaged_probabilities(tmp_path, capsys):
    texts, y = sentiment_texts(80)
    clf = SequenceClassifier(model="gru", seeds=3, hidden_size=4, embedding_size=4, epochs=2, min_steps=0)
    clf.fit(texts[:60], y[:60], (texts[60:70], y[60:70]), progress=False)
    r = clf.seed_report(texts[70:], y[70:])
    assert r["seeds"] == [0, 1, 2] and [m.config.train.seed for m in clf.seed_models_] == [0, 1, 2]
    accs = [m.evaluate(texts[70:], y[70:])["accuracy"] for m in clf.seed_models_]
    assert r["accuracy"] == pytest.approx(accs) and r["mean"] == pytest.approx(np.mean(accs))
    assert r["sd"] == pytest.approx(np.std(accs, ddof=1))
    mean_probs = np.mean([m.predict_proba(texts[70:]) for m in clf.seed_models_], axis=0)
    assert r["averaged_probabilities"] == pytest.approx(np.mean(np.array(clf.classes_)[mean_probs.argmax(1)] ==
                                                                y[70:]))
    data = write_csv(tmp_path / "reviews.csv", list(zip(texts, y)))
    run = tmp_path / "run"
    assert main(["classify", "train", "--csv", str(data), "--model", "bow", "--seeds", "2", "--bow-min-df", "1",
                 "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"bow: test accuracy over 2 seeds \d\.\d{4} ± \d\.\d{4} \(mean ± sd; seeds 0, 1; 16 held-out "
                     r"test rows\); the seeds' averaged probabilities: \d\.\d{4} \(an ensemble", out)
    assert (run / "seeds.csv").read_text().splitlines()[0] == "seed,val_accuracy,test_accuracy"
    assert json.loads((run / "test_metrics.json").read_text())["seeds"]["seeds"] == [0, 1]


def test_a_datasets_class_names_are_shown_everywhere(tmp_path, monkeypatch, capsys):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import docs_data

    monkeypatch.setenv("RNNKIT_DATA", str(docs_data.fill_cache(tmp_path / "data", ["imdb"])))
    data = load_data("imdb")
    assert data.class_names == {"0": "negative", "1": "positive"}
    assert sorted(set(data.train.y)) == ["negative", "positive"]
    run = tmp_path / "run"
    assert main(["classify", "train", "--dataset", "imdb", "--model", "bow", "--run-dir", str(run)]) == 0
    assert "per-class recall (test rows): negative " in capsys.readouterr().out
    clf = rnnkit.load(run)
    assert clf.describe()["details"]["classes"] == ["negative", "positive"]
    answer = clf.apply({"texts": ["a moving film, great acting"]})
    assert answer["classes"] == ["negative", "positive"] and answer["predictions"][0]["label"] == "positive"
    texts = tmp_path / "in.txt"
    texts.write_text("a bad film\n")
    assert main(["classify", "predict", str(run), "--file", str(texts), "-o", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "row,predicted,p_negative,p_positive"
    # A labelled file with the data set's own labels (0/1) is read with the names.
    held_out = write_csv(tmp_path / "held_out.csv", [("a bad film, dull and slow", 0), ("i loved it", 1)])
    assert main(["classify", "eval", str(run), "--csv", str(held_out)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["recall"] == {"negative": 1.0, "positive": 1.0}


def test_a_network_without_time_left_is_not_started():
    X, y = waves(30)
    # 3 seconds in all: after ROCKET's cross-validation and the 5% kept for the end, less than 5 s for conv1d.
    clf = SequenceClassifier(candidates=["rocket", "conv1d"], **{**TINY, "max_minutes": 0.05}).fit(X, y,
                                                                                                 progress=False)
    rocket, conv = clf.tournament_["table"]
    assert rocket["picked"] == "yes" and float(rocket["val_accuracy"]) > 0.5
    assert conv["val_accuracy"] == "" and re.fullmatch(r"not trained: \d+ s of the budget left", conv["note"])
