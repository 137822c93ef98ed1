"""Run directories: atomic writes, safetensors weights, pickle-free training state, clear load errors."""

import errno
import json
import os
import pickle
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit import __version__
from rnnkit.runs import io as runio
from rnnkit.runs.checkpoint import (BEST_WEIGHTS, LAST_WEIGHTS, STATE_JSON, STATE_TENSORS, CheckpointError,
                                    RunDir)
from rnnkit.runs.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, write_json
from rnnkit.runs.state import load_tree, pack_tree, rng_states, save_tree, set_rng_states, unpack_tree
from rnnkit.runs.weights import load_metadata, load_weights, save_weights


def assert_tree_equal(a, b, path="/"):
    """Exact equality: same types (tuple vs list, int vs str keys), same tensor dtypes and bits."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}{k}/")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tree_equal(x, y, f"{path}{i}/")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"


# -- atomic writes -------------------------------------------------------------------------------------------

def test_the_file_primitives_import_no_torch():
    # rnnkit.runs.io is what `rnnkit data` and the text pipeline write with: it must not pay for the engine.
    code = "import sys, rnnkit.runs.io; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_atomic_writes_replace_and_leave_no_temp_files(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "j.json", {"a": [1, 2]})
    assert write_json is atomic_write_json
    assert read_json(tmp_path / "j.json") == {"a": [1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["j.json", "sub", "t.txt"]
    assert os.listdir(tmp_path / "sub") == ["f.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask  # like a plain open(), not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "config.json"
    atomic_write_json(p, {"v": 1})

    def boom(fd):
        raise KeyboardInterrupt  # a kill between writing and renaming

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(p, {"v": 2})
    monkeypatch.undo()
    assert read_json(p) == {"v": 1}
    assert os.listdir(tmp_path) == ["config.json"]  # the temporary file was removed


def test_unserialisable_json_does_not_touch_the_file(tmp_path):
    p = tmp_path / "c.json"
    atomic_write_json(p, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"v": object()})
    assert read_json(p) == {"v": 1}


def test_read_json_errors_name_file_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n  "a": 1,\n  "b" 2\n}')
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON: Expecting ':' delimiter at line 3, column 7"):
        read_json(p)
    with pytest.raises(FileNotFoundError, match=r"nope\.json: file not found"):
        read_json(tmp_path / "nope.json")


# -- weights ---------------------------------------------------------------------------------------------------

class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5)
        self.out.weight = self.emb.weight  # tied weights share memory


def test_weights_round_trip_with_metadata_and_tied_weights(tmp_path):
    torch.manual_seed(0)
    model = Tied()
    save_weights(tmp_path / "w.safetensors", model.state_dict(), {"task": "x", "epoch": 3})
    assert load_metadata(tmp_path / "w.safetensors") == {"task": "x", "epoch": "3"}
    other = Tied()
    tensors = load_weights(tmp_path / "w.safetensors", other)
    assert set(tensors) == {"emb.weight", "out.weight", "out.bias"}
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)


def test_load_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: file not found"):
        load_weights(tmp_path / "model.safetensors")


def test_load_weights_truncated_file(tmp_path):
    p = tmp_path / "w.safetensors"
    save_weights(p, {"w": torch.arange(100.0)})
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"w\.safetensors: truncated safetensors file: the tensors need 400 "
                                         r"bytes of data but the file holds 390"):
        load_weights(p)
    p.write_bytes(data[:20])
    with pytest.raises(ValueError, match=r"w\.safetensors: truncated safetensors file: the header needs"):
        load_weights(p)
    p.write_bytes(data[:3])
    with pytest.raises(ValueError, match=r"truncated safetensors file: 3 bytes"):
        load_weights(p)


def test_load_weights_corrupted_file(tmp_path):
    p = tmp_path / "w.safetensors"
    p.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match=r"w\.safetensors: corrupted safetensors file"):
        load_weights(p)
    header = b'{"w": {"dtype": "F32", "shape": [2'
    p.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(ValueError, match=r"w\.safetensors: corrupted safetensors file: bad header"):
        load_weights(p)


def test_load_weights_mismatched_model_lists_every_problem(tmp_path):
    p = tmp_path / "w.safetensors"
    save_weights(p, {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(4), "extra": torch.zeros(1)})
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))
    with pytest.raises(ValueError) as err:
        load_weights(p, model)
    text = str(err.value)
    assert text.startswith(f"{p}: weights do not match the model: ")
    assert "missing keys [2.bias, 2.weight]" in text
    assert "unexpected keys [extra]" in text
    assert "shape mismatches [0.bias: file (4,) vs model (5,), 0.weight: file (4, 3) vs model (5, 3)]" in text


# -- training state without pickle -------------------------------------------------------------------------------

def test_pack_tree_round_trip_keeps_types(tmp_path):
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "buf": torch.randn(2, 3)}, 1: {"n": torch.tensor(7)}},
        "groups": [{"betas": (0.9, 0.999), "params": [0, 1], "lr": 1e-3, "fused": None, "ok": True}],
        "best": float("inf"),
        "rng": [torch.get_rng_state()],
        "extra": {"__tensor__": "a dict that only looks like a marker"},
        "empty": torch.zeros(0, 4),
    }
    skeleton, tensors = pack_tree(tree)
    json.dumps(skeleton)  # plain JSON
    assert skeleton["state"]["__items__"][0][0] == 0  # int keys survive as ints
    assert skeleton["state"]["__items__"][0][1]["step"] == {"__scalar__": 3.0, "dtype": "float32"}
    assert_tree_equal(unpack_tree(skeleton, tensors), tree)
    save_tree(tmp_path / "s.json", tmp_path / "s.safetensors", tree, checkpoint_id="abc")
    back, cid = load_tree(tmp_path / "s.json", tmp_path / "s.safetensors")
    assert cid == "abc"
    assert_tree_equal(back, tree)


def test_pack_tree_rejects_unknown_objects():
    with pytest.raises(TypeError, match=r"cannot store a object at /a/0 in a training state"):
        pack_tree({"a": [object()]})


def _train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=g)
        y = torch.randn(8, 2, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.Adam(p, lr=0.01),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
], ids=["adam", "sgd-momentum"])
def test_optimizer_state_round_trip_is_exact(tmp_path, make_opt):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = make_opt(model.parameters())
    _train(model, opt, 3, seed=1)
    run = RunDir(tmp_path / "run")
    run.save_checkpoint(model, opt, {"step": 3})

    torch.manual_seed(123)
    model2 = nn.Linear(4, 2)
    opt2 = make_opt(model2.parameters())
    assert run.load_checkpoint(model2, opt2) == {"step": 3}
    assert_tree_equal(opt2.state_dict(), opt.state_dict())

    # Continuing from the loaded state gives the same bits as continuing without saving.
    _train(model, opt, 4, seed=2)
    _train(model2, opt2, 4, seed=2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_rng_states_round_trip(tmp_path):
    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    states = rng_states()
    save_tree(tmp_path / "r.json", tmp_path / "r.safetensors", states)
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9); np.random.seed(9); torch.manual_seed(9)
    back, _ = load_tree(tmp_path / "r.json", tmp_path / "r.safetensors")
    set_rng_states(back)
    assert random.random() == expected[0]
    assert np.random.rand(3).tolist() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])
    assert isinstance(json.loads((tmp_path / "r.json").read_text())["tree"]["python"][1], list)


def test_nothing_is_unpickled(tmp_path, monkeypatch):
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    _train(model, opt, 2, seed=0)
    run = RunDir(tmp_path)
    run.save_checkpoint(model, opt, {"rng": rng_states()}, best=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    other = nn.Linear(4, 2)
    run.load_checkpoint(other, torch.optim.Adam(other.parameters()))
    run.load_weights(nn.Linear(4, 2), best=True)


# -- the run directory ---------------------------------------------------------------------------------------

def test_config_round_trip_and_version(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"task": "textgen", "model": {"hidden_size": 8}, "train": {"lr": 0.1}})
    config = run.read_config()
    assert config == {"rnnkit_version": __version__, "task": "textgen", "model": {"hidden_size": 8},
                      "train": {"lr": 0.1}}
    assert run.config_path == tmp_path / "run" / "config.json"


def test_read_config_of_missing_or_incomplete_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such run directory"):
        RunDir(tmp_path / "nowhere").read_config()
    run = RunDir(tmp_path / "run")
    save_weights(run.weights_path, {"w": torch.zeros(1)})
    with pytest.raises(FileNotFoundError, match=r"run: not a complete rnnkit run directory: missing "
                                                r"config\.json \(it holds: model\.safetensors\)"):
        run.read_config()
    write_json(run.config_path, {"format_version": 2})
    with pytest.raises(ValueError, match=r"config\.json: incomplete config: missing task \(it has: format_version\)"):
        run.read_config()
    run.config_path.write_text("[1, 2")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON: .* at line 1, column 6"):
        run.read_config()


def test_metrics_append_read_and_torn_last_line(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_metrics() == []
    run.append_metrics({"step": 1, "loss": 2.5})
    run.append_metrics({"step": 2, "loss": 2.0})
    assert run.read_metrics() == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
    # A kill in the middle of an append leaves a torn line: skipped on reading, cut before the next append.
    with open(run.metrics_path, "ab") as f:
        f.write(b'{"step": 3, "lo')
    assert run.read_metrics() == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
    run.append_metrics({"step": 3, "loss": 1.5})
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    assert run.metrics_path.read_text().count("\n") == 3


def test_metrics_bad_lines_are_skipped_with_a_warning(tmp_path):
    # Metrics are a report: damage to them must never keep a model from loading.
    run = RunDir(tmp_path)
    run.metrics_path.write_bytes(b'{"step": 1}\n{"step": 2,,}\n\xff\xfe\n[1, 2]\n{"step": 3}\n')
    with pytest.warns(UserWarning) as caught:
        assert run.read_metrics() == [{"step": 1}, {"step": 3}]
    assert [str(w.message) for w in caught] == [
        f"{run.metrics_path}: line 2 skipped: not a JSON record (Expecting property name enclosed in double quotes)",
        f"{run.metrics_path}: line 3 skipped: not a JSON record (Expecting value)",
        f"{run.metrics_path}: line 4 skipped: not a JSON record (a JSON list, not an object)",
    ]


def save_earlier_layout(run, model, opt, trainer_state, checkpoint_id, best=False):
    """A checkpoint as rnnkit wrote it before checkpoint.json: four files at the top level."""
    weights = {k: v for k, v in model.state_dict().items()}
    save_weights(run.weights_path, weights, {"checkpoint_id": checkpoint_id})
    if best:
        save_weights(run.best_path, weights, {"checkpoint_id": checkpoint_id})
    save_tree(run.path / STATE_JSON, run.path / STATE_TENSORS,
              {"optimizer": opt.state_dict(), "trainer": trainer_state}, checkpoint_id=checkpoint_id)


def test_checkpoint_of_the_earlier_layout_loads_and_its_files_must_match(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = RunDir(tmp_path)
    save_earlier_layout(run, model, opt, {"step": 1}, "one", best=True)
    assert run.has_checkpoint() and run.checkpoint_path(STATE_JSON) == tmp_path / STATE_JSON
    assert run.load_checkpoint(model, opt) == {"step": 1}
    old_weights = run.weights_path.read_bytes()
    save_earlier_layout(run, model, opt, {"step": 2}, "two")
    run.weights_path.write_bytes(old_weights)  # as an earlier version left a kill between two of its writes
    with pytest.raises(ValueError, match=r"model\.safetensors \(checkpoint one\) and trainer_state\.json "
                                         r"\(checkpoint two\) come from different saves"):
        run.load_checkpoint(model, opt)
    # The next save writes the current layout; the earlier layout's state files go, its best weights stay.
    save_earlier_layout(run, model, opt, {"step": 2}, "two")
    run.save_checkpoint(model, opt, {"step": 3})
    assert sorted(os.listdir(tmp_path)) == ["best.safetensors", "checkpoint.json", "checkpoints", "model.safetensors"]
    assert run.load_checkpoint(model, opt) == {"step": 3}
    assert load_metadata(run.checkpoint_path(BEST_WEIGHTS))["checkpoint_id"] == "one"


def test_load_checkpoint_without_one_names_what_is_missing(tmp_path):
    run = RunDir(tmp_path)
    run.write_config({"task": "t", "model": {}})
    with pytest.raises(FileNotFoundError, match=r"no checkpoint to resume from: checkpoint\.json is missing "
                                                r"\(it holds: config\.json\)"):
        run.load_checkpoint(nn.Linear(2, 2))
    assert not run.has_checkpoint()
    (tmp_path / STATE_JSON).write_text("{}")   # the earlier layout, incomplete
    with pytest.raises(FileNotFoundError, match=r"missing model\.safetensors, trainer_state\.safetensors "
                                                r"\(it holds: config\.json, trainer_state\.json\)"):
        run.load_checkpoint(nn.Linear(2, 2))


def test_optimizer_state_that_does_not_fit(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    run = RunDir(tmp_path)
    run.save_checkpoint(model, opt, {})
    other_opt = torch.optim.Adam([model.weight])  # one parameter instead of two
    with pytest.raises(ValueError, match=r"trainer_state\.json: optimizer state does not fit the optimizer"):
        run.load_checkpoint(model, other_opt)


# -- a checkpoint is one unit ----------------------------------------------------------------------------------

def _saved(run, step, best=False, seed=0):
    """Save a checkpoint of a freshly trained Linear at ``step``; returns the model's weights."""
    torch.manual_seed(seed + step)
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, opt, 2, seed=seed + step)
    run.save_checkpoint(model, opt, {"step": step}, best=best)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _load(run):
    model = nn.Linear(4, 2)
    state = run.load_checkpoint(model, torch.optim.Adam(model.parameters(), lr=0.01))
    return state["step"], model.state_dict()


def test_checkpoint_layout_pointer_folder_and_top_level_copies(tmp_path):
    run = RunDir(tmp_path)
    first = _saved(run, 1, best=True)
    second = _saved(run, 2)               # not better: the best weights stay those of step 1
    assert sorted(os.listdir(tmp_path)) == ["best.safetensors", "checkpoint.json", "checkpoints", "model.safetensors"]
    (folder,) = os.listdir(tmp_path / "checkpoints")       # the previous checkpoint is gone
    assert folder.startswith("step-000000002-")
    pointer = read_json(tmp_path / "checkpoint.json")
    assert pointer["folder"] == f"checkpoints/{folder}" and pointer["step"] == 2
    assert sorted(pointer["files"]) == sorted([LAST_WEIGHTS, BEST_WEIGHTS, STATE_JSON, STATE_TENSORS])
    assert run.checkpoint_path(STATE_JSON) == tmp_path / "checkpoints" / folder / STATE_JSON
    for name in (LAST_WEIGHTS, BEST_WEIGHTS):   # the top-level files are copies, not links, of the checkpoint's
        assert (tmp_path / name).read_bytes() == run.checkpoint_path(name).read_bytes()
        assert os.stat(tmp_path / name).st_ino != os.stat(run.checkpoint_path(name)).st_ino
    step, weights = _load(run)
    assert step == 2 and all(torch.equal(weights[k], second[k]) for k in weights)
    best = run.load_weights(best=True)
    assert all(torch.equal(best[k], first[k]) for k in best)


class Killed(BaseException):
    """What the in-process kill test raises at a fault point (a BaseException, like a real kill it is
    not caught by ``except Exception``)."""


def _fault_points_of_one_save(tmp_path, monkeypatch, best):
    run = RunDir(tmp_path / "count")
    _saved(run, 1, best=True)
    count = []
    monkeypatch.setattr(runio, "fault_point", lambda: count.append(1))
    _saved(run, 2, best=best)
    monkeypatch.undo()
    return len(count)


@pytest.mark.parametrize("best", [False, True], ids=["keep-best", "new-best"])
def test_a_kill_at_any_point_of_a_save_leaves_the_last_complete_checkpoint(tmp_path, monkeypatch, best):
    # In-process and exhaustive: stop the save at each of its fault points (test_kills.py does it with
    # SIGKILL to real training processes).
    points = _fault_points_of_one_save(tmp_path, monkeypatch, best)
    assert points >= 12
    outcomes = set()
    for n in range(1, points + 1):
        run = RunDir(tmp_path / f"kill{n}")
        before = _saved(run, 1, best=True)
        calls = []

        def fault():
            calls.append(1)
            if len(calls) == n:
                raise Killed

        monkeypatch.setattr(runio, "fault_point", fault)
        with pytest.raises(Killed):
            _saved(run, 2, best=best)
        monkeypatch.undo()
        step, weights = _load(run)               # always one complete checkpoint: the old one or the new one
        expected = before if step == 1 else _saved(RunDir(tmp_path / "again"), 2, best=best)
        assert all(torch.equal(weights[k], expected[k]) for k in weights), n
        outcomes.add(step)
        run.clean()                              # what the next start does
        assert os.listdir(run.path / "checkpoints") == [run.checkpoint_path(STATE_JSON).parent.name]
        assert not [p for p in os.listdir(run.path) if p.endswith(".tmp")]
        run.load_weights(nn.Linear(4, 2), best=True)
        _saved(run, 3)                           # and training goes on
        assert _load(run)[0] == 3
    assert outcomes == {1, 2}                    # kills before and after the commit point were both tried


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    before = _saved(run, 1, best=True)
    real_write = os.write
    budget = {"bytes": 300}

    def write(fd, data):   # the disk fills up after a few hundred bytes
        if budget["bytes"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:budget["bytes"]]))
        budget["bytes"] -= n
        return n

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(CheckpointError) as err:
        _saved(run, 2, best=True)
    monkeypatch.undo()
    text = str(err.value)
    assert text.startswith(f"{run.path}: could not write {run.path / 'checkpoints'}")
    assert text.endswith(": no space left on device; the previous checkpoint (step 1) is intact. Free some space "
                         "(or move the run directory) and continue the run with --resume (Python: resume=True)")
    assert len(os.listdir(run.path / "checkpoints")) == 1            # the partial folder was removed
    step, weights = _load(run)
    assert step == 1 and all(torch.equal(weights[k], before[k]) for k in weights)
    _saved(run, 2)                                                    # space freed: it goes on
    assert _load(run)[0] == 2


def test_damaged_files_are_named(tmp_path):
    run = RunDir(tmp_path)
    _saved(run, 1, best=True)
    _saved(run, 2)
    data = bytearray(run.best_path.read_bytes())
    data[-16:-8] = bytes(255 - b for b in data[-16:-8])                # flip bytes in the tensor data
    run.best_path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run.best_path))}: damaged: the sha256 of its tensor "
                                         r"data \(\w{12}\.\.\.\) is not the one recorded when it was written"):
        run.load_weights(nn.Linear(4, 2), best=True)
    # In the checkpoint itself: checkpoint.json's digests catch it, in any of its files.
    for name in (BEST_WEIGHTS, STATE_JSON):
        path = run.checkpoint_path(name)
        original = path.read_bytes()
        path.write_bytes(original.replace(b"0", b"1", 1))
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: damaged: its sha256 \(\w{{12}}\.\.\.\) is "
                                             r"not the one checkpoint\.json recorded"):
            _load(run)
        path.write_bytes(original)
    assert _load(run)[0] == 2


def test_a_pointer_cannot_send_reads_elsewhere(tmp_path):
    run = RunDir(tmp_path)
    _saved(run, 1)
    pointer = read_json(run.pointer_path)
    write_json(run.pointer_path, {**pointer, "folder": "../elsewhere"})
    with pytest.raises(ValueError, match=r"checkpoint\.json: folder='\.\./elsewhere': expected 'checkpoints/<name>'"):
        _load(run)
    assert run.clean() == []                 # a damaged pointer: nothing is removed


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["optimizer"]["state"]["__items__"][0][1].update(step={"__scalar__": 1.0, "dtype": "os.system"}),
     r"trainer_state\.json: /optimizer/state/0/step/dtype='os\.system': expected a torch dtype name"),
    (lambda t: t["optimizer"]["state"]["__items__"][0][1].update(step={"__scalar__": "x", "dtype": "float32"}),
     r"trainer_state\.json: /optimizer/state/0/step/__scalar__='x': expected a number"),
    (lambda t: t["optimizer"]["state"]["__items__"][0][1].update(exp_avg={"__tensor__": "nope"}),
     r"trainer_state\.json: /optimizer/state/0/exp_avg: tensor 'nope' named in the skeleton is missing"),
    (lambda t: t["optimizer"]["param_groups"][0].update(betas={"__tuple__": 5}),
     r"trainer_state\.json: /optimizer/param_groups/0/betas=5: expected a JSON list"),
], ids=["dtype", "scalar", "tensor", "tuple"])
def test_a_hand_edited_training_state_names_file_and_field(tmp_path, edit, message):
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    _train(model, opt, 1, seed=0)
    save_tree(tmp_path / STATE_JSON, tmp_path / STATE_TENSORS, {"optimizer": opt.state_dict()})
    doc = read_json(tmp_path / STATE_JSON)
    edit(doc["tree"])
    write_json(tmp_path / STATE_JSON, doc)
    with pytest.raises(ValueError, match=message):
        load_tree(tmp_path / STATE_JSON, tmp_path / STATE_TENSORS)
