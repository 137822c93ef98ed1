"""The Task protocol, checked on every registered task (like scikit-learn's ``check_estimator``).

Each task gets the same checks: clone and repr, NotFittedError before fit, a dry-run fit that marks its run
finished, a save/load round trip that answers the same request the same way, ``rnnkit.load``, unknown load
options refused, an interrupted run refused by the model registry and by ``load`` (but readable from its
checkpoint when asked), and the same request answered over HTTP. A new task must add its tiny example to
``EXAMPLES``: the first test fails until it does.
"""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

import rnnkit
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.registry import Registry
from rnnkit.runs.schema import rewrite_run_config
from rnnkit.tasks.base import FINAL_WEIGHTS, NotFittedError, RunNotFinished, discover_tasks

CORPUS = "the cat sat on the mat. the dog sat on the log. " * 60


def sentiment(n=48):
    rng = np.random.default_rng(0)
    filler = ["the", "film", "was", "a", "story", "with", "music"]
    texts = [" ".join([*rng.choice(filler, 3), "great" if i % 2 else "awful"]) for i in range(n)]
    return texts, ["pos" if i % 2 else "neg" for i in range(n)]


def series_csv(folder, n=200):
    t = np.arange(n)
    times = np.datetime64("2022-05-01T00") + t.astype("timedelta64[h]")
    y = 10 + 5 * np.sin(2 * np.pi * t / 24)
    path = folder / "series.csv"
    path.write_text("time,y\n" + "".join(f"{times[i]}:00:00Z,{y[i]:.5f}\n" for i in range(n)))
    return path


def textgen(tmp):
    from rnnkit.tasks import TextGenerator
    task = TextGenerator(hidden_size=16, num_layers=1, embedding_size=8, seq_len=16, batch_size=4, epochs=2,
                         sample_max_tokens=0)
    return task, (CORPUS,), {"prompt": "the ", "max_tokens": 12, "temperature": 0.5, "seed": 1}


def classify(tmp):
    from rnnkit.tasks import SequenceClassifier
    task = SequenceClassifier(model="gru", hidden_size=8, embedding_size=8, batch_size=8, epochs=2, min_steps=0,
                              early_stop_patience=None)
    return task, sentiment(), {"texts": ["a great film", "an awful story"]}


def multilabel(tmp):
    from rnnkit.tasks import MultilabelClassifier
    from rnnkit.tasks.multilabel.data import make_clinical
    stays, Y, aux = make_clinical(24, seed=0)
    task = MultilabelClassifier(hidden_size=8, batch_size=8, epochs=2, min_steps=0)
    first = stays[0]
    request = {"stays": [{"times": first.times.tolist(), "channels": first.channels.tolist(),
                          "values": first.values.tolist(), "hours": float(first.hours)}]}
    return task, (stays, Y, aux), request


def forecast(tmp):
    from rnnkit.tasks import Forecaster
    task = Forecaster(csv=str(series_csv(tmp)), time_col="time", target=["y"], lookback=24, delay=3,
                      model="gru", hidden_size=8, batch_size=16, epochs=2)
    return task, (), {"history": 5}


def seq2seq(tmp):
    from rnnkit.tasks import Seq2Seq
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdef"), size=rng.integers(1, 5))) for _ in range(120)]
    task = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, encoder_layers=1,
                   decoder_layers=1, batch_size=16, epochs=2, val_frac=0.2, min_steps=0)
    return task, ([(w, w[::-1]) for w in words],), {"texts": ["abc", "fed"]}


def tag(tmp):
    from rnnkit.tasks import Tagger
    rng = np.random.default_rng(0)
    words = {"DET": ["the", "a"], "NOUN": ["cat", "dog", "mat"], "VERB": ["sat", "ran"]}
    tags = [["DET", "NOUN", "VERB"] * int(rng.integers(1, 3)) for _ in range(40)]
    X = [[str(rng.choice(words[t])) for t in ts] for ts in tags]
    task = Tagger(hidden_size=8, num_layers=1, embedding_size=8, char_hidden_size=8, batch_size=8, epochs=2,
                  min_steps=0)
    return task, (X[:32], tags[:32], (X[32:], tags[32:])), {"tokens": [["the", "cat", "sat"]]}


def caption(tmp):
    import base64
    import io

    from PIL import Image

    from rnnkit.datasets.digit_strips import digit_strips
    from rnnkit.tasks import Captioner
    task = Captioner(train_images=32, val_images=8, test_images=4, hidden_size=8, embedding_size=8, attention_size=8,
                     encoder_channels=4, batch_size=8, epochs=2, min_steps=0)
    buf = io.BytesIO()
    Image.fromarray((digit_strips(0, 0, 1)["test"].images[0] * 255).astype("uint8")).save(buf, format="PNG")
    return task, (), {"image": base64.b64encode(buf.getvalue()).decode(), "attention": True}


def vqa(tmp):
    import base64
    import io

    from PIL import Image

    from rnnkit.datasets.sort_of_clevr import make_split
    from rnnkit.tasks import VisualQA
    task = VisualQA(channels=4, blocks=3, hidden_size=8, question_size=8, embedding_size=8, batch_size=12, epochs=2)
    buf = io.BytesIO()
    Image.fromarray((make_split(1, 9).images[0] * 255).astype("uint8")).save(buf, format="PNG")
    request = {"image": base64.b64encode(buf.getvalue()).decode(), "question": "what shape is the red object?"}
    return task, (make_split(8, 7, size=32, object_size=4), make_split(2, 8, size=32, object_size=4)), request


# task name -> its tiny example: (an unfitted task object, fit's positional data, a request for apply)
EXAMPLES = {"textgen": textgen, "classify": classify, "classify-multilabel": multilabel, "forecast": forecast,
            "seq2seq": seq2seq, "tag": tag, "caption": caption, "vqa": vqa}
TASKS = sorted(discover_tasks())


def fit(task, data, run_dir, **kwargs):
    kwargs.setdefault("progress", False)
    return task.fit(*data, run_dir=str(run_dir), **kwargs)


def test_every_registered_task_has_an_example():
    assert set(TASKS) >= {"textgen", "classify", "classify-multilabel", "forecast", "seq2seq"}
    assert set(TASKS) == set(EXAMPLES), "add a tiny example of each new task to EXAMPLES"


@pytest.mark.parametrize("name", TASKS)
def test_clone_repr_and_not_fitted(name, tmp_path):
    task, data, request = EXAMPLES[name](tmp_path)
    copy = clone(task)
    assert copy is not task and copy.get_params() == task.get_params()
    assert repr(task).startswith(type(task).__name__ + "(") and "hidden_size=" in repr(task)
    for use in (task.describe, lambda: task.apply(request), lambda: task.save(tmp_path / "x")):
        with pytest.raises(NotFittedError, match=rf"this {type(task).__name__} is not fitted"):
            use()


@pytest.mark.parametrize("name", TASKS)
def test_a_fit_makes_a_finished_run_that_loads_and_answers_the_same(name, tmp_path):
    torch.manual_seed(0)
    task, data, request = EXAMPLES[name](tmp_path)
    run = tmp_path / "run"
    assert fit(task, data, run) is task
    doc = json.loads((run / "config.json").read_text())
    assert doc["task"] == name and doc["finished"] is True and (run / FINAL_WEIGHTS).is_file()
    answer = task.apply(request)
    assert json.loads(json.dumps(answer)) == answer              # JSON values only
    described = task.describe()
    assert described["task"] == name and described["endpoint"] == task.endpoint
    assert {f["name"] for f in described["takes"]} >= set(request)
    for loaded in (type(task).load(run), rnnkit.load(str(run))):
        assert type(loaded) is type(task) and loaded.config == task.config
        assert loaded.apply(request) == answer
    with pytest.raises(ValueError, match=rf"^bogus=1: expected a load option of {type(task).__name__} \(checkpoint"):
        type(task).load(run, bogus=1)


@pytest.mark.parametrize("name", TASKS)
def test_an_interrupted_run_is_not_a_model(name, tmp_path, ctrl_c_at_step, monkeypatch):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    task, data, request = EXAMPLES[name](tmp_path)
    run = tmp_path / "run"
    ctrl_c_at_step(1)
    fit(task, data, run)
    doc = json.loads((run / "config.json").read_text())
    assert doc["finished"] is False and not (run / FINAL_WEIGHTS).exists()
    command = f"{type(task).command()} --run-dir {run} --resume"
    with pytest.raises(RunNotFinished, match=rf"its training has not finished .*finish it with {command}, or use "
                                             rf"its last checkpoint explicitly"):
        rnnkit.load(str(run))
    with pytest.raises(ValueError, match=rf"not a finished run .*finish it with {command}\)$"):
        Registry().register(run, "m")
    assert Registry().names() == []


@pytest.mark.parametrize("name", TASKS)
def test_served_over_http_the_answer_is_apply(name, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from rnnkit.serve.app import create_app

    torch.manual_seed(0)
    task, data, request = EXAMPLES[name](tmp_path)
    run = tmp_path / "run"
    fit(task, data, run)
    with TestClient(create_app([str(run)]), base_url="http://localhost") as client:
        listed = client.get("/v1/models").json()["models"]
        assert [(m["model"], m["task"]) for m in listed] == [("run", name)]
        r = client.post(f"/v1/models/run/{task.endpoint}", json=request)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "run"
        expected = type(task).load(run).apply(request)
        assert {k: body[k] for k in expected} == expected


def unfinish(run, *, keep_checkpoint):
    """The run as a kill leaves it: config.json not marked finished, no final weights (and, killed before its
    first checkpoint, no checkpoint either)."""
    doc = json.loads((run / "config.json").read_text())
    rewrite_run_config(RunDir(run), {**doc, "finished": False})     # with its digest: only the mark changes
    (run / FINAL_WEIGHTS).unlink()
    if not keep_checkpoint:
        for path in [*run.glob("checkpoint*"), *run.glob("*.safetensors"), run / "trainer_state.json"]:
            if path.is_dir():
                import shutil
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


@pytest.mark.parametrize("name", TASKS)
def test_a_run_killed_before_its_final_save_finishes_with_resume(name, tmp_path, capsys):
    # Its budget was spent (or it stopped early) but the kill came before the finished model was written:
    # resume writes it, rather than calling the run complete while nothing loads it (a dead end before).
    torch.manual_seed(0)
    task, data, request = EXAMPLES[name](tmp_path)
    run = tmp_path / "run"
    answer = fit(task, data, run).apply(request)
    unfinish(run, keep_checkpoint=True)
    with pytest.raises(RunNotFinished):
        rnnkit.load(str(run))
    again, _, _ = EXAMPLES[name](tmp_path)
    fit(again, data, run, resume=True)
    assert "its training had ended before the finished model was written: writing it now" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["finished"] is True
    assert rnnkit.load(str(run)).apply(request) == answer


@pytest.mark.parametrize("name", TASKS)
def test_a_run_killed_before_its_first_checkpoint_starts_again_with_resume(name, tmp_path, capsys):
    torch.manual_seed(0)
    task, data, request = EXAMPLES[name](tmp_path)
    run = tmp_path / "run"
    fit(task, data, run)
    unfinish(run, keep_checkpoint=False)
    again, _, _ = EXAMPLES[name](tmp_path)
    fit(again, data, run, resume=True)
    assert "stopped before its first checkpoint was saved: training starts from the beginning" in \
        capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["finished"] is True
    assert rnnkit.load(str(run)).apply(request) == again.apply(request)
