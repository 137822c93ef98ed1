"""The Task protocol is the interface: a task defined here, in the test, is fitted, saved, registered, served over
HTTP and loaded with no edit to serve/, export/ or runs/; and every consumer refuses a run whose training did not
finish, in one line that says how to finish it."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import _checks
from rnnkit.cli import main
from rnnkit.config import field
from rnnkit.export import export
from rnnkit.runs.registry import Registry
from rnnkit.tasks import base
from rnnkit.tasks.base import ExportRefused, Task

pytest.importorskip("fastapi", reason='rnnkit serve needs its extra: pip install "rnnkit[serve]"')
from fastapi.testclient import TestClient                   # noqa: E402

from rnnkit.serve import ServeConfig                       # noqa: E402
from rnnkit.serve.app import create_app                    # noqa: E402


@dataclass
class CountConfig:
    scale: float = field(1.0, "what every count is multiplied by")


@dataclass
class CountRequest:
    """Words to look up: how often training saw each."""

    words: list[str] = field([], "the words to count", limits={"min_length": 1, "max_length": "max_texts",
                                                               "items": {"max_length": 50}})


class Counts(torch.nn.Module):
    """The toy task's model: one count per word of the vocabulary."""

    def __init__(self, counts: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", counts)


@pytest.fixture
def toy(monkeypatch):
    """A task of the test's own: registered in a copy of the tasks' registry, which the test drops afterwards."""
    base.discover_tasks()
    monkeypatch.setattr(base, "TASKS", dict(base.TASKS))

    class WordCounter(Task, name="toy-count"):
        config_class = CountConfig
        endpoint = "count"
        request_class = CountRequest

        def fit(self, texts, run_dir=None):
            self.words_ = sorted({w for t in texts for w in t.split()})
            self.model_ = Counts(torch.tensor([sum(t.split().count(w) for t in texts) for w in self.words_],
                                              dtype=torch.float32))
            self.data_ = {"source": "texts passed to fit", "texts": len(texts)}
            if run_dir is not None:
                self.save(run_dir)
            return self

        def fitted_values(self):
            return {"words": self.words_}

        def _load_files(self, run, fitted, tensors, **options):
            self.words_ = list(fitted["words"])
            self.model_ = Counts(tensors["counts"])

        def details(self):
            return {"words": len(self.words_)}

        def apply(self, request):
            request = self.make_request(request)
            unknown = [w for w in request.words if w not in self.words_]
            if unknown:
                _checks.fail("words", unknown, f"words seen in training ({', '.join(self.words_)})")
            counts = self.model_.counts
            return {"counts": {w: float(counts[self.words_.index(w)]) * self.config.scale for w in request.words}}

    return WordCounter


def test_a_new_task_is_registered_served_and_loaded_without_touching_the_consumers(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    run = tmp_path / "counter"
    fitted = toy(scale=2.0).fit(["a b a", "b c", "a"], run_dir=str(run))
    assert fitted.apply({"words": ["a", "c"]}) == {"counts": {"a": 6.0, "c": 2.0}}
    assert json.loads((run / "config.json").read_text())["finished"] is True

    loaded = rnnkit.load(str(run))                            # the tasks' registry finds it
    assert type(loaded) is toy and loaded.apply({"words": ["b"]}) == {"counts": {"b": 4.0}}

    version = Registry().register(run, "counter")            # runs/ reads its config.json like any other
    assert (version.name, version.version, version.task) == ("counter", 1, "toy-count")

    client = TestClient(create_app(["counter"], config=ServeConfig(max_texts=3)), base_url="http://localhost")
    (listed,) = client.get("/v1/models").json()["models"]
    assert (listed["model"], listed["task"], listed["version"]) == ("counter", "toy-count", 1)
    assert listed["endpoint"] == "/v1/models/counter/count" and listed["details"] == {"words": 3}
    assert listed["takes"] == [{"name": "words", "help": "the words to count", "default": []}]
    r = client.post("/v1/models/counter/count", json={"words": ["a", "b"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "counter", "version": 1, "counts": {"a": 6.0, "b": 4.0}}
    # its refusals and its limits, as for rnnkit's own tasks
    r = client.post("/v1/models/counter/count", json={"words": ["zebra"]})
    assert r.status_code == 422 and r.json()["field"] == "words" and "words seen in training" in r.json()["error"]
    r = client.post("/v1/models/counter/count", json={"words": ["a"] * 4})
    assert r.status_code == 422 and r.json()["field"] == "words" and "at most 3 items" in r.json()["error"]
    r = client.post("/v1/models/counter/count", json={"word": ["a"]})
    assert r.status_code == 422 and r.json()["field"] == "word"
    schema = client.get("/openapi.json").json()
    assert "/v1/models/{model}/count" in schema["paths"] and "CountRequest" in schema["components"]["schemas"]

    with pytest.raises(ExportRefused, match=r"^a toy-count run: cannot be exported to ONNX: the toy-count task "
                                            r"defines no ONNX export \(none of its models exports to ONNX\)$"):
        export(str(run), tmp_path / "counter.onnx")


def test_two_tasks_may_share_an_endpoint_name(toy, tmp_path, monkeypatch):
    """The default endpoint, "predict", is multilabel's too: the body is either task's request, and each model
    is held to its own."""
    monkeypatch.setattr(toy, "endpoint", "predict")
    run = tmp_path / "counter"
    toy().fit(["a b a"], run_dir=str(run))
    client = TestClient(create_app([str(run)]), base_url="http://localhost")
    r = client.post("/v1/models/counter/predict", json={"words": ["a"]})
    assert r.status_code == 200 and r.json()["counts"] == {"a": 2.0}, r.text
    r = client.post("/v1/models/counter/predict", json={"stays": [{"times": [0], "channels": [0], "values": [1]}]})
    assert r.status_code == 422 and r.json()["field"] == "stays" and "Extra inputs" in r.json()["error"]
    body = client.get("/openapi.json").json()["paths"]["/v1/models/{model}/predict"]["post"]["requestBody"]
    assert {s["$ref"] for s in body["content"]["application/json"]["schema"]["anyOf"]} == {
        "#/components/schemas/PredictRequest", "#/components/schemas/CountRequest"}


# --- a run whose training did not finish ---------------------------------------------------------------------

def stopped_run(task, path, ctrl_c_at_step):
    """A run of ``task`` stopped by Ctrl-C after its first optimizer step (fit returns; the run is not finished)."""
    from rnnkit.tasks.classify.task import SequenceClassifier
    from rnnkit.tasks.textgen.task import TextGenerator

    ctrl_c_at_step(1)
    if task == "textgen":
        TextGenerator(hidden_size=16, num_layers=1, embedding_size=8, seq_len=16, batch_size=8, epochs=2,
                      sample_max_tokens=0).fit("the cat sat on the mat. " * 80, run_dir=str(path), progress=False)
    else:
        rng = np.random.default_rng(0)
        X = [rng.normal(0, 1, (12, 2)).astype(np.float32) for _ in range(40)]
        SequenceClassifier(model="gru", hidden_size=8, epochs=2, min_steps=0, batch_size=4).fit(
            X, ["a", "b"] * 20, run_dir=str(path), progress=False)
    assert json.loads((path / "config.json").read_text())["finished"] is False


@pytest.mark.parametrize("task", ["textgen", "classify"])
def test_register_serve_and_export_refuse_an_unfinished_run_in_one_line(task, tmp_path, capsys, monkeypatch,
                                                                       ctrl_c_at_step):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    run = tmp_path / "stopped"
    stopped_run(task, run, ctrl_c_at_step)
    capsys.readouterr()
    finish = f"finish it with rnnkit {task} train --run-dir {run} --resume"
    for argv, explicit in ((["models", "register", str(run), "m"], False),
                           (["serve", str(run), "--port", "0"], True),
                           (["export", str(run), "-o", str(tmp_path / "m.onnx")], True)):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"rnnkit: error: {run}") and err.count("\n") == 1, err
        assert f"its training has not finished (config.json is not marked finished); expected a finished run: " \
               f"{finish}" in err
        # serve and export say how to use the checkpoint instead; a registered version is always a model
        assert ("use its last checkpoint explicitly (--checkpoint best|last" in err) == explicit, err
    assert Registry().names() == [] and not (tmp_path / "m.onnx").exists()
    # asked for explicitly, the checkpoint is exported (and checked against PyTorch)
    assert main(["export", str(run), "-o", str(tmp_path / "m.onnx"), "--checkpoint", "last"]) == 0
    assert "check: max abs difference to PyTorch" in capsys.readouterr().out
    served = create_app([str(run)], config=ServeConfig(checkpoint="last")).state.models["stopped"]
    assert served.obj.is_fitted()
