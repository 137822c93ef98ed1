"""The Task base, the one config.json schema, rnnkit.load, and config dataclasses as CLI flags."""

import argparse
import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from sklearn.base import clone

import rnnkit
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field, given_fields
from rnnkit.runs import schema
from rnnkit.runs.checkpoint import RunDir
from rnnkit.tasks import base
from rnnkit.tasks.base import NotFittedError, Task, add_train_arguments, train_config_from_args
from rnnkit.training import TrainConfig


@dataclasses.dataclass
class ToyConfig:
    hidden_size: int = field(8, "units")
    shuffle: bool = field(True, "shuffle the rows")
    note: str = field("70% train", "a help text with a percent sign")
    train: TrainConfig = field(TrainConfig(lr=3e-3, epochs=4), "training options")


class Toy(Task):
    """A task with one linear layer: enough to exercise the base."""

    name = "toy"
    config_class = ToyConfig

    def fit(self, x, y):
        self.model_ = torch.nn.Linear(x.shape[1], 1)
        with torch.no_grad():
            self.model_.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
            self.model_.bias.zero_()
        self.data_ = {"rows": len(x)}
        return self

    def evaluate(self, data):
        x, y = data
        with torch.no_grad():
            return {"mse": float(((self.model_(x) - y) ** 2).mean())}

    def _load_files(self, run, fitted, tensors, **options):
        self.model_ = torch.nn.Linear(fitted["inputs"], 1)
        self.model_.load_state_dict(tensors)

    def fitted_values(self):
        return {"inputs": self.model_.in_features}


@pytest.fixture
def toy_task(monkeypatch):
    # Registered for one test only (a subclass with name="toy" would stay registered for the whole session).
    monkeypatch.setitem(base.TASKS, "toy", Toy)


def data():
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    return x, x @ torch.tensor([[1.0], [2.0], [-1.0]])


def test_overrides_go_to_the_task_or_its_training_options():
    toy = Toy(hidden_size=4, lr=0.1)
    assert toy.config.hidden_size == 4 and toy.config.train.lr == 0.1 and toy.config.train.epochs == 4
    assert Toy().config.train.lr == 3e-3                        # the task's own default
    assert Toy(ToyConfig(hidden_size=5)).config.hidden_size == 5
    assert Toy({"hidden_size": 6, "train": {"lr": 0.5}}).config.train.epochs == 4   # a dict fills in defaults
    with pytest.raises(ValueError, match=r"hiden_size=3: expected a field of ToyConfig \(auto_batch, batch_size, "):
        Toy(hiden_size=3)
    with pytest.raises(ValueError, match=r"config=3: expected a ToyConfig, a dict of its fields, or None"):
        Toy(3)
    assert repr(Toy(hidden_size=4, lr=0.1)) == "Toy(hidden_size=4, lr=0.1)"


def test_get_params_set_params_and_sklearn_clone():
    toy = Toy(hidden_size=4, lr=0.1)
    params = toy.get_params()
    assert params["hidden_size"] == 4 and params["lr"] == 0.1 and params["epochs"] == 4 and "train" not in params
    copy = clone(toy)
    assert copy is not toy and copy.get_params() == params and copy.config == toy.config
    assert copy.set_params(epochs=9) is copy and copy.config.train.epochs == 9 and toy.config.train.epochs == 4


def test_a_task_used_before_fit_says_what_to_call():
    with pytest.raises(NotFittedError, match=r"this Toy is not fitted \(model_ is learned by fit\(\)\): call "
                                             r"fit\(\.\.\.\) first, or Toy\.load\(run_dir\)"):
        Toy().evaluate(data())
    with pytest.raises(NotFittedError, match="this Toy is not fitted"):
        Toy().save("nowhere")
    assert isinstance(NotFittedError("x"), (ValueError, AttributeError))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        Toy().nothing


def test_save_load_and_rnnkit_load_use_one_schema(tmp_path, toy_task):
    toy = Toy(hidden_size=4, lr=0.1).fit(*data())
    toy.save(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["task"] == "toy" and doc["format_version"] == schema.FORMAT_VERSION
    assert doc["config"]["hidden_size"] == 4 and doc["config"]["train"]["lr"] == 0.1
    assert doc["data"] == {"rows": 32} and doc["fitted"] == {"inputs": 3}
    for loaded in (Toy.load(tmp_path / "run"), rnnkit.load(str(tmp_path / "run"))):
        assert type(loaded) is Toy and loaded.config == toy.config and loaded.data_ == {"rows": 32}
        assert loaded.evaluate(data())["mse"] == pytest.approx(toy.evaluate(data())["mse"])
        assert loaded.evaluate(data())["mse"] < 1e-8


def test_loading_the_wrong_or_a_newer_run_is_a_clear_error(tmp_path, toy_task):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"task": "textgen", "format_version": 2, "config": {}})
    with pytest.raises(ValueError, match=r"config\.json: this run directory holds a 'textgen' run, expected 'toy'"):
        schema.read_run_config(run, "toy")
    run.write_config({"task": "nonsense"})
    with pytest.raises(ValueError, match=r"config\.json: task 'nonsense' is not an rnnkit task; expected one of"):
        rnnkit.load(str(run.path))
    run.write_config({"task": "toy", "format_version": 99})
    with pytest.raises(ValueError, match=r"format_version 99 is newer than this rnnkit reads \(2\); upgrade"):
        Toy.load(run.path)
    run.write_config({"task": "toy"})                         # format 1, and Toy cannot convert it
    with pytest.raises(ValueError, match=r"format_version 1, which this rnnkit cannot convert: train the run"):
        Toy.load(run.path)


def parse(argv, cls=ToyConfig):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return parser, parser.parse_args(argv)


def test_nested_training_options_are_flat_flags_and_booleans_are_x_no_x():
    parser, args = parse(["--hidden-size", "3", "--lr", "0.5", "--no-shuffle"])
    cfg = config_from_args(ToyConfig, args)
    assert cfg.hidden_size == 3 and cfg.train.lr == 0.5 and cfg.train.epochs == 4 and cfg.shuffle is False
    assert given_fields(args) == {"hidden_size", "lr", "shuffle"}
    assert config_from_args(ToyConfig, parse(["--shuffle"])[1]).shuffle is True
    text = parser.format_help()                                     # renders: the % is escaped
    assert "70% train" in text and "--no-shuffle" in text
    assert text.count("(default: 0.003)") == 1                      # the task's default, shown once
    with pytest.raises(SystemExit):
        parser.parse_args(["--shuffle", "true"])                    # a boolean takes no value


def test_config_from_dict_rebuilds_nested_configs_and_names_unknown_fields():
    cfg = config_from_dict(ToyConfig, {"hidden_size": 2, "train": {"lr": 0.2}})
    assert cfg.train == TrainConfig(lr=0.2, epochs=4)
    with pytest.raises(ValueError, match=r"run/config\.json: train: unknown field\(s\) \['lrr'\] for TrainConfig"):
        config_from_dict(ToyConfig, {"train": {"lrr": 0.2}}, source="run/config.json")


def test_resume_keeps_the_runs_config_and_takes_only_budgets(tmp_path, toy_task):
    Toy(hidden_size=4, lr=0.1).fit(*data()).save(tmp_path / "run")
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, ToyConfig, default_run_dir=None)
    args = parser.parse_args(["--run-dir", str(tmp_path / "run"), "--resume", "--max-minutes", "5"])
    cfg = train_config_from_args(Toy, args)
    assert cfg.hidden_size == 4 and cfg.train.lr == 0.1 and cfg.train.max_minutes == 5
    args = parser.parse_args(["--run-dir", str(tmp_path / "run"), "--resume", "--hidden-size", "9"])
    with pytest.raises(ValueError, match=r"--hidden-size=9: expected no --hidden-size with --resume: the run keeps "
                                         r"its own config; a resumed run may change only --device, --early-stop"):
        train_config_from_args(Toy, args)
    args = parser.parse_args(["--resume"])
    with pytest.raises(ValueError, match=r"--resume=True: expected a --run-dir to resume"):
        train_config_from_args(Toy, args)


# -- nothing lost (issue 14): data digests, run directories that hold a run, damaged config.json -------------

def test_data_digest_is_stable_and_tells_data_apart():
    from rnnkit.tasks.base import data_digest

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    same = data_digest(["ab", "c"], x, {"b": 1, "a": None})
    assert same == data_digest(["ab", "c"], x.copy(), {"a": None, "b": 1}) and same.startswith("sha256:")
    assert data_digest(["ab", "c"]) != data_digest(["a", "bc"])             # items are framed
    assert data_digest(x) != data_digest(x.astype(np.float64))              # dtype and shape count
    assert data_digest(x) != data_digest(x.reshape(3, 2))
    assert data_digest(np.array(["a", "b"], dtype=object)) == data_digest(["a", "b"])
    assert data_digest(torch.from_numpy(x)) == data_digest(x)
    assert data_digest("text") == "sha256:" + __import__("hashlib").sha256(
        b"s" + (4).to_bytes(8, "little") + b"text").hexdigest()           # the framing, by hand


def test_a_run_dir_that_holds_a_run_is_refused_and_overwrite_clears_only_run_files(tmp_path, toy_task):
    run = tmp_path / "run"
    Toy(hidden_size=4).fit(*data()).save(run)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "model.safetensors").write_bytes(b"x")
    (run / "my_data.csv").write_text("a,b\n")
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, ToyConfig, default_run_dir=None)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run))}: holds an earlier toy run, which training again "
                                         r"would overwrite; expected a new folder: go on with that run with --resume "
                                         rf"\(rnnkit toy train --run-dir {re.escape(str(run))} --resume\), choose "
                                         r"another --run-dir, or replace it with --overwrite$"):
        train_config_from_args(Toy, parser.parse_args(["--run-dir", str(run)]))
    assert (run / "config.json").is_file()
    cfg = train_config_from_args(Toy, parser.parse_args(["--run-dir", str(run), "--overwrite", "--hidden-size", "2"]))
    assert cfg.hidden_size == 2
    assert sorted(p.name for p in run.iterdir()) == ["my_data.csv"]          # the user's file stays
    train_config_from_args(Toy, parser.parse_args(["--run-dir", str(run)]))  # no run there now: fine


@pytest.mark.parametrize("doc,message", [
    ({"task": "toy", "format_version": 2}, r"config\.json: no 'config'; expected \"config\": \{\.\.\.\}, the toy "
                                           r"run's settings as a JSON object$"),
    ({"task": "toy", "format_version": 2, "config": None}, r"config\.json: 'config' is null; expected"),
    ({"task": "toy", "format_version": 2, "config": {}, "fitted": [1]}, r"config\.json: 'fitted' is \[1\]; expected "
                                                                         r"a JSON object$"),
    ({"task": "toy", "format_version": 2, "config": {"train": {"lr": -1}}}, r"config\.json: train: lr=-1: "
                                                                             r"expected a number in \(0, 100\.0\]$"),
    ({"task": "classify", "model": "gru"}, r"config\.json: a config\.json of format_version 1 that cannot be read "
                                           r"\(no 'config'\); expected one as rnnkit wrote it, or train the run again$"),
    ({"task": "classify", "config": None}, r"config\.json: a config\.json of format_version 1 that cannot be read "),
])
def test_a_damaged_config_json_is_one_message_naming_the_file(tmp_path, toy_task, doc, message):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(doc)
    with pytest.raises(ValueError, match=message) as err:
        rnnkit.load(str(run.path))
    assert str(err.value).startswith(str(run.config_path)) and "\n" not in str(err.value)
