"""Export: ONNX files against PyTorch in onnxruntime, C headers compiled and run against PyTorch, refusals."""

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.export import export
from rnnkit.export.c import (compile_driver, describe, find_compiler, memory, object_size, quantize_rows,
                             run_compiled, torch_outputs)
from rnnkit.nn.layers import RNN
from rnnkit.tasks.base import ExportRefused
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.forecast.task import Forecaster
from rnnkit.tasks.textgen.model import LanguageModel
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator
from rnnkit.text import Tokenizer

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler ($CC, cc or gcc) on this machine")
BAR = 1e-4      # the bar for ONNX parity, used for float32 C too


def rising_channel(n, seed=0, channels=3):
    """Series of 8..30 steps on a raw scale (mean 5, sd 2); the class is the channel that rises."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        T = int(rng.integers(8, 31))
        x = rng.normal(5, 2, (T, channels)).astype(np.float32)
        k = i % channels
        x[:, k] += np.linspace(0, 6, T)
        X.append(x)
        y.append(f"c{k}")
    return X, np.array(y)


def classifier(model="lstm", pooling="maxmean", epochs=8, **kw):
    X, y = rising_channel(60)
    return SequenceClassifier(model=model, pooling=pooling, hidden_size=8, epochs=epochs, min_steps=0, batch_size=16, lr=1e-2,
                              dropout=0.0, early_stop_patience=None, **kw).fit(X, y, progress=False)


def forecaster(model="gru", residual=True, **kw):
    t = np.arange(300)
    table = {"time": (np.datetime64("2022-01-01T00") + t.astype("timedelta64[h]")).astype(str),
             "y": 50 + 5 * np.sin(2 * np.pi * t / 24), "z": 100 * np.cos(t / 7)}
    return Forecaster(time_col="time", target=["y"], features=["z"], lookback=12, delay=2, horizon=2, model=model,
                      hidden_size=8, epochs=1, residual=residual, **kw).fit(table, verbose=False, progress=False)


def language_model(cell):
    torch.manual_seed(0)
    gen = TextGenerator(TextGenConfig(cell=cell, hidden_size=16, num_layers=2, embedding_size=8))
    gen.tokenizer_ = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts(["abcdefgh "])
    gen.end_token_ = None
    gen.model_ = LanguageModel(gen.tokenizer_.vocab_size, 8, 16, 2, cell=cell).eval()
    return gen


@pytest.fixture(scope="module")
def lstm_clf():
    return classifier("lstm", "maxmean")


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"rnnkit[export]\")")


# ----------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_onnx_textgen_step_model_matches_pytorch(tmp_path, ort, cell):
    from rnnkit.export.onnx import max_abs_difference

    gen = language_model(cell)
    info = export(gen, tmp_path / "lm.onnx")
    assert info["kind"] == "step"
    assert info["inputs"] == (["token", "h", "c"] if cell == "lstm" else ["token", "h"])
    # each of 12 chained steps' logits and the final state, at batch sizes 1, 3 and 8
    assert max_abs_difference(gen, info["path"], batch_sizes=(1, 3, 8), lengths=(1, 12)) <= BAR


@pytest.mark.parametrize("model,pooling", [("lstm", "maxmean"), ("bigru", "last"), ("cnn-lstm", "mean")])
def test_onnx_series_classifier_matches_pytorch_at_several_batches_and_lengths(tmp_path, ort, model, pooling):
    from rnnkit.export.onnx import max_abs_difference

    clf = classifier(model, pooling, epochs=1)
    info = export(clf, tmp_path / "clf.onnx")
    assert info["kind"] == "whole-sequence" and info["inputs"] == ["x", "mask"]
    assert max_abs_difference(clf, info["path"], batch_sizes=(1, 4, 16), lengths=(1, 9, 40)) <= BAR


def test_onnx_text_classifier_and_padding_never_changes_a_prediction(tmp_path, ort):
    from rnnkit.export.onnx import max_abs_difference, onnx_session

    texts = ["a good fun film", "bad and boring", "great acting", "awful plot", "good", "boring"] * 6
    clf = SequenceClassifier(model="bilstm", hidden_size=8, epochs=2, min_steps=0, batch_size=8).fit(
        texts, ["p", "n", "p", "n", "p", "n"] * 6, progress=False)
    path = export(clf, tmp_path / "text.onnx")["path"]
    assert max_abs_difference(clf, path, batch_sizes=(1, 5), lengths=(1, 6, 30)) <= BAR
    ids = np.array(clf.tokenizer_.texts_to_sequences(["a good fun film"]), dtype=np.int64)   # (1, 4)
    session = onnx_session(path)
    short = session.run(None, {"x": ids, "mask": np.ones((1, 4), np.float32)})[0]
    padded_ids = np.concatenate([ids, np.zeros((1, 20), np.int64)], axis=1)
    mask = np.concatenate([np.ones((1, 4)), np.zeros((1, 20))], axis=1).astype(np.float32)
    padded = session.run(None, {"x": padded_ids, "mask": mask})[0]
    np.testing.assert_allclose(padded, short, atol=1e-6)
    want = torch.log_softmax(torch.from_numpy(short), 1).exp().numpy()
    np.testing.assert_allclose(want[0], clf.predict_proba(["a good fun film"])[0], atol=1e-5)


@pytest.mark.parametrize("model", ["gru", "lstm", "stacked_gru"])
def test_onnx_forecaster_matches_pytorch_in_the_targets_units(tmp_path, ort, model):
    from rnnkit.export.onnx import max_abs_difference

    fc = forecaster(model, residual=model == "gru")
    info = export(fc, tmp_path / "fc.onnx")
    assert info["outputs"] == ["forecast"]
    assert max_abs_difference(fc, info["path"], batch_sizes=(1, 4, 16), lengths=(12, 30)) <= BAR


# ----------------------------------------------------------------------------- C

def test_int8_rows_hand_computed():
    w = np.array([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0], [2.54, 1.0, -0.02]], np.float32)
    q, scale = quantize_rows(w)
    np.testing.assert_allclose(scale, [0.01, 1.0, 0.02], rtol=1e-6)     # max |row| / 127; a zero row keeps 1
    assert q.tolist() == [[50, -127, 0], [0, 0, 0], [127, 50, -1]]


@needs_cc
@pytest.mark.parametrize("model,pooling", [("lstm", "maxmean"), ("gru", "last"), ("rnn", "mean"), ("lstm", "max")])
def test_c_float32_header_matches_pytorch_on_real_inputs(tmp_path, model, pooling):
    clf = classifier(model, pooling, epochs=1, num_layers=2)
    info = export(clf, tmp_path / "gest.h", format="c")
    X, _ = rising_channel(20, seed=1)
    X[1][3, 1] = np.nan                       # a missing reading: the channel mean, in C as in rnnkit
    got, state_bytes = run_compiled(compile_driver(info["path"], tmp_path), X)
    np.testing.assert_allclose(got, torch_outputs(clf, X), atol=BAR, rtol=0)
    assert state_bytes == memory(describe(clf))["state"] == info["ram"]["state"]   # the RAM figure is sizeof


@needs_cc
def test_c_int8_header_mostly_agrees_and_is_smaller(tmp_path, lstm_clf):
    f32 = export(lstm_clf, tmp_path / "f32.h", format="c")
    i8 = export(lstm_clf, tmp_path / "i8.h", format="c", precision="int8")
    X, y = rising_channel(60, seed=2)
    want = torch_outputs(lstm_clf, X)
    got, _ = run_compiled(compile_driver(i8["path"], tmp_path), X)
    agree = (got.argmax(1) == want.argmax(1)).mean()
    assert agree >= 0.9, agree
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()       # int8 error, small against the logits
    classes = np.array(lstm_clf.classes_)
    assert (classes[got.argmax(1)] == y).mean() >= (classes[want.argmax(1)] == y).mean() - 0.1
    # W (32 x 3), U (32 x 8), head (3 x 16): a byte per weight and a float scale per row, against 4 bytes a weight
    assert i8["weight_bytes"] == (32 * 3 + 32 * 8 + 3 * 16) + 4 * (32 + 32 + 3)
    assert f32["weight_bytes"] == 4 * (32 * 3 + 32 * 8 + 3 * 16)
    assert object_size(i8["path"], tmp_path)["text"] < object_size(f32["path"], tmp_path)["text"]
    assert "int8 weights, symmetric, one scale per row" in (tmp_path / "i8.h").read_text()


@needs_cc
@pytest.mark.parametrize("model", ["gru", "lstm", "stacked_gru"])
def test_c_forecaster_matches_pytorch(tmp_path, model):
    fc = forecaster(model, residual=model != "lstm")
    info = export(fc, tmp_path / "fc.h", format="c")
    windows = list(np.stack([fc.normalizer_.mean + fc.normalizer_.std * np.random.default_rng(0).normal(0, 1, (12, 2))
                             for _ in range(8)]).astype(np.float32))
    got, _ = run_compiled(compile_driver(info["path"], tmp_path), windows)
    np.testing.assert_allclose(got, torch_outputs(fc, windows), atol=BAR, rtol=1e-6)


def _refusal(task, tmp_path, format="c"):
    with pytest.raises(ExportRefused) as err:
        export(task, tmp_path / ("x.h" if format == "c" else "x.onnx"), format=format)
    message = str(err.value)
    assert "\n" not in message and f"cannot be exported to {'C' if format == 'c' else 'ONNX'}: " in message
    assert not (tmp_path / "x.h").exists() and not (tmp_path / "x.onnx").exists()
    return message


ONNX_TOO = "; it exports to ONNX instead (--format onnx)"


def test_c_refuses_what_it_cannot_express_in_one_line(tmp_path):
    clf = classifier("lstm", epochs=1)
    clf.model_.rnn = RNN("jordan", 3, 8)
    message = _refusal(clf, tmp_path)
    assert message == ("model 'lstm': cell JordanCell: cannot be exported to C: the header computes lstm, gru or rnn "
                       "(tanh, relu) cells, stacked, reading one direction")       # ONNX refuses it too: no hint
    assert _refusal(clf, tmp_path, "onnx").startswith("model 'lstm': cell JordanCell: cannot be exported to ONNX: ")
    clf.model_.rnn = RNN("gru", 3, 8, reset_after=False)
    assert _refusal(clf, tmp_path).startswith("model 'lstm': cell GRUCell with reset_after=False: cannot be")
    message = _refusal(classifier("bilstm", epochs=1), tmp_path)
    assert message.startswith("model 'bilstm' (bidirectional: it reads each sequence from both ends): cannot be "
                              "exported to C: ") and message.endswith(ONNX_TOO)
    message = _refusal(classifier("conv1d", epochs=1), tmp_path)
    assert message.startswith("model 'conv1d' (convolutional): cannot be exported to C: ") and message.endswith(ONNX_TOO)
    message = _refusal(language_model("lstm"), tmp_path)
    assert message.startswith("a textgen run (a language model of lstm cells): cannot be exported to C:")
    assert message.endswith(ONNX_TOO)
    bow = SequenceClassifier(model="bow").fit(["good film", "bad film", "good", "bad"] * 3, ["p", "n"] * 6)
    assert _refusal(bow, tmp_path) == (
        "model 'bow' (a tf-idf logistic regression over word n-grams): cannot be exported to C: it is not a network "
        "of tensors; a C header takes a classifier of numeric series with model rnn, gru, lstm or mingru")
    assert _refusal(bow, tmp_path, "onnx") == (
        "model 'bow' (a tf-idf logistic regression over word n-grams): cannot be exported to ONNX: it is not a "
        "network of tensors; every classify model but bow, mingru and minlstm exports to ONNX")


def test_rocket_exports_to_onnx_and_its_c_refusal_says_so(tmp_path, ort):
    """ROCKET's transform (random convolutions, PPV and max over each series' own outputs) and its ridge in one
    graph, against decision_function; C refuses it and points at ONNX, which takes it."""
    from rnnkit.export.onnx import max_abs_difference, onnx_session

    X, y = rising_channel(40)
    clf = SequenceClassifier(model="rocket", rocket_kernels=200).fit(X, y, progress=False)
    info = export(clf, tmp_path / "rocket.onnx")
    assert info["kind"] == "whole-sequence" and info["inputs"] == ["x", "mask"]
    assert max_abs_difference(clf, info["path"], batch_sizes=(1, 4, 16), lengths=(1, 9, 40)) <= BAR
    # the softmax of the graph's scores is predict_proba, and padding changes nothing
    x = X[3][None]
    padded = np.concatenate([x, np.zeros((1, 10, 3), np.float32)], axis=1)
    mask = np.concatenate([np.ones((1, len(X[3]))), np.zeros((1, 10))], axis=1).astype(np.float32)
    scores = onnx_session(info["path"]).run(None, {"x": padded, "mask": mask})[0]
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(scores).double(), 1).numpy()[0],
                               clf.predict_proba([X[3]])[0], atol=1e-5)
    message = _refusal(clf, tmp_path)
    assert message.startswith("model 'rocket' (random convolution kernels and a ridge classifier): cannot be "
                              "exported to C: ") and message.endswith(ONNX_TOO)


# ----------------------------------------------------------------------------- the CLI

@needs_cc
def test_cli_exports_and_checks_both_formats(tmp_path, capsys, ort):
    X, y = rising_channel(40)
    SequenceClassifier(model="gru", hidden_size=8, epochs=1, min_steps=0).fit(X, y, run_dir=str(tmp_path / "run"), progress=False)
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "g.h"), "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "int8 weights" in out and "check: compiled with" in out and "the same class for" in out
    assert "#define G_INPUT_SIZE 3" in (tmp_path / "g.h").read_text()
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "g.onnx")]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("check:")][0]
    assert float(line.split("PyTorch ")[1].split()[0]) <= BAR


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    X, y = rising_channel(20)
    SequenceClassifier(model="lstm", hidden_size=4, epochs=1, min_steps=0).fit(X, y, run_dir=str(tmp_path / "run"), progress=False)
    txt = str(tmp_path / "m.txt")
    cases = [(["-o", txt], f"--output={txt!r}: expected a name ending in .onnx or .h"),
             (["-o", str(tmp_path / "m.onnx"), "--precision", "int8"],
              "precision='int8': expected 'float32' for the onnx format"),
             (["-o", str(tmp_path / "nope" / "m.h")], "the folder")]
    for flags, message in cases:
        assert main(["export", str(tmp_path / "run"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: ") and message in err and err.count("\n") == 1, err
    assert main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "m.h")]) == 2
    assert "no such run directory" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".onnx", ".h"])
def test_a_full_disk_leaves_no_truncated_file_and_names_it(tmp_path, capsys, monkeypatch, suffix):
    import errno
    import os

    from rnnkit.runs import io as run_io

    X, y = rising_channel(20)
    SequenceClassifier(model="gru", hidden_size=4, epochs=1, min_steps=0).fit(X, y, run_dir=str(tmp_path / "run"), progress=False)
    out = tmp_path / f"m{suffix}"
    out.write_bytes(b"the earlier export")
    write_all = run_io.write_all

    def half_then_full(fd, data, **kwargs):            # half of the file goes to disk, then the disk is full
        write_all(fd, data[: len(data) // 2], **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(run_io, "write_all", half_then_full)
    assert main(["export", str(tmp_path / "run"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"rnnkit: error: {out}: No space left on device\n"
    assert out.read_bytes() == b"the earlier export"                     # the old file, whole
    assert [p.name for p in tmp_path.iterdir() if p.name != "run"] == [out.name]   # no temporary left behind
