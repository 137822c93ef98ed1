"""Every model of every registered task, in every export format: exported and checked against PyTorch, or refused
in one line that says why (and, where the other format takes the run, which).

The exporters ask the task (``export_spec``); this test holds what each task gives to the table below, so a
task or model kind added without deciding its exports fails here."""

import numpy as np
import pytest
import torch

from rnnkit.export import FORMATS, export
from rnnkit.export.c import check_c, find_compiler
from rnnkit.export.onnx import max_abs_difference
from rnnkit.tasks.base import ExportRefused, discover_tasks
from rnnkit.tasks.classify.config import MODELS as CLASSIFY_MODELS
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.forecast.config import MODELS as FORECAST_MODELS
from rnnkit.tasks.forecast.task import Forecaster
from rnnkit.tasks.multilabel.data import SyntheticConfig, synthetic_splits
from rnnkit.tasks.multilabel.task import MultilabelClassifier
from rnnkit.tasks.seq2seq.task import Seq2Seq
from rnnkit.tasks.textgen.config import CELLS
from rnnkit.tasks.textgen.task import TextGenerator

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"rnnkit[export]\")")

BAR = 1e-4
TEXTS = ["a good fun film", "bad and boring", "great acting", "awful plot", "good", "boring"] * 4
LABELS = ["p", "n"] * 12
CORPUS = "the cat sat on the mat. the dog sat on the log. " * 40


def series(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.normal(5, 2, (int(rng.integers(6, 20)), 3)).astype(np.float32) for _ in range(n)]
    for i, x in enumerate(X):
        x[:, i % 2] += np.linspace(0, 6, len(x))
    return X, [f"c{i % 2}" for i in range(n)]


def table(n=200):
    t = np.arange(n)
    return {"time": (np.datetime64("2022-01-01T00") + t.astype("timedelta64[h]")).astype(str),
            "y": 50 + 5 * np.sin(2 * np.pi * t / 24), "z": 100 * np.cos(t / 7)}


# What each (task, model kind) exports: the formats that take it. Everything else must be refused in one line.
EXPORTS = {
    **{("textgen", cell): {"onnx"} for cell in CELLS},
    **{("classify", f"{m} series"): {"onnx", "c"} for m in ("rnn", "gru", "lstm")},
    ("classify", "mingru series"): {"c"},      # ONNX has no scan operator to map the min cells onto
    ("classify", "minlstm series"): set(),
    **{("classify", f"{m} text"): set() for m in ("mingru", "minlstm")},
    **{("classify", f"{m} series"): {"onnx"} for m in ("bilstm", "bigru", "conv1d", "cnn-lstm", "rocket")},
    **{("classify", f"{m} text"): {"onnx"} for m in ("rnn", "gru", "lstm", "bilstm", "bigru", "conv1d", "cnn-lstm")},
    ("classify", "bow text"): set(),
    **{("forecast", m): {"onnx", "c"} for m in ("gru", "gru_dropout", "stacked_gru", "lstm")},
    **{("forecast", m): {"onnx"} for m in ("naive", "seasonal_naive", "ridge", "mlp", "bigru", "conv1d",
                                           "conv1d_gru")},
    ("seq2seq", "lstm, attention"): set(),
    ("classify-multilabel", "lstm"): set(),
    ("tag", "softmax"): {"onnx"},
    ("tag", "crf"): {"onnx"},       # the emission scores; Viterbi over the saved transitions runs outside
    ("caption", "show-attend-tell"): set(),     # a CNN over an image first: neither exporter writes one
    ("vqa", "attention"): set(),                # an image encoder and a question encoder: neither exporter takes two
}


def fitted(task: str, kind: str):
    """A small fitted object of ``task`` with model ``kind`` (seconds)."""
    torch.manual_seed(0)
    if task == "textgen":
        return TextGenerator(cell=kind, hidden_size=8, num_layers=2, embedding_size=8, seq_len=16, batch_size=4,
                             sample_max_tokens=0).fit(CORPUS, dry_run=True, progress=False)
    if task == "classify":
        model, data = kind.split()
        X, y = series() if data == "series" else (TEXTS, LABELS)
        return SequenceClassifier(model=model, hidden_size=8, embedding_size=8, epochs=1, min_steps=0, batch_size=8,
                                  rocket_kernels=100, bow_min_df=1).fit(X, y, progress=False)
    if task == "forecast":
        return Forecaster(time_col="time", target=["y"], features=["z"], lookback=12, delay=2, horizon=2, model=kind,
                          hidden_size=8, epochs=1, season=6).fit(table(), verbose=False, progress=False)
    if task == "seq2seq":
        rng = np.random.default_rng(0)
        words = ["".join(rng.choice(list("abcd"), size=rng.integers(1, 5))) for _ in range(60)]
        return Seq2Seq(source_level="char", target_level="char", hidden_size=8, embedding_size=8, encoder_layers=1,
                       decoder_layers=1, attention="dot", epochs=1, batch_size=8).fit(
            [(w, w[::-1]) for w in words], progress=False)
    if task == "tag":
        from rnnkit.tasks import Tagger
        X = [["the", "cat", "sat"], ["a", "dog", "ran", "home"], ["the", "mat"]] * 8
        y = [["DET", "NOUN", "VERB"], ["DET", "NOUN", "VERB", "ADV"], ["DET", "NOUN"]] * 8
        return Tagger(output_layer=kind, hidden_size=8, embedding_size=8, char_hidden_size=8, epochs=1, min_steps=0,
                      batch_size=8).fit(X, y, progress=False)
    if task == "caption":
        from rnnkit.tasks import Captioner
        return Captioner(model=kind, train_images=16, val_images=4, test_images=0, hidden_size=8, embedding_size=8,
                         encoder_channels=4, epochs=1, min_steps=0, batch_size=8).fit(progress=False)
    if task == "vqa":
        from rnnkit.datasets.sort_of_clevr import make_split
        from rnnkit.tasks import VisualQA
        return VisualQA(merge=kind, channels=4, blocks=3, hidden_size=8, question_size=8, epochs=1,
                        batch_size=12).fit(make_split(4, 7, size=32, object_size=4), progress=False)
    stays, Y, _ = synthetic_splits(SyntheticConfig(num_stays=40))["train"]
    return MultilabelClassifier(hidden_size=8, num_layers=1, epochs=1, min_steps=0, batch_size=8).fit(stays, Y, progress=False)


def test_the_table_covers_every_registered_task_and_model_kind():
    assert {task for task, _ in EXPORTS} == set(discover_tasks())
    assert {m for t, k in EXPORTS if t == "forecast" for m in [k]} == set(FORECAST_MODELS)
    assert {k.split()[0] for t, k in EXPORTS if t == "classify"} == set(CLASSIFY_MODELS) - {"auto"}
    assert {k for t, k in EXPORTS if t == "textgen"} == set(CELLS)


@pytest.mark.parametrize("task, kind", sorted(EXPORTS), ids=lambda v: str(v).replace(" ", "-"))
def test_each_model_exports_and_matches_pytorch_or_is_refused_in_one_line(tmp_path, task, kind):
    obj = fitted(task, kind)
    takes = EXPORTS[task, kind]
    for fmt in FORMATS:
        path = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'h'}"
        if fmt not in takes:
            with pytest.raises(ExportRefused) as err:
                export(obj, path, format=fmt)
            message = str(err.value)
            assert "\n" not in message and f"cannot be exported to {'ONNX' if fmt == 'onnx' else 'C'}: " in message
            other = takes - {fmt}
            # the refusal points at the other format exactly when that format takes the run
            assert message.endswith("; it exports to ONNX instead (--format onnx)") == (other == {"onnx"}), message
            assert not path.exists()
            continue
        export(obj, path, format=fmt)
        if fmt == "onnx":
            assert max_abs_difference(obj, path, batch_sizes=(1, 4), lengths=(1, 9, 30)) <= BAR
        elif find_compiler() is not None:
            assert check_c(obj, path, n=8)["max_abs_difference"] <= BAR
