"""Model versions: register (copy or link, atomically), list, promote, remove, resolve; the CLI and bad input."""

import json
import re
import shutil

import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.runs import registry as registry_module
from rnnkit.runs.registry import ModelVersion, Registry, default_root
from rnnkit.tasks.forecast.task import Forecaster

from test_forecast import write_csv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished forecast runs the tests train themselves: a small MLP (2 epochs) and a ridge model."""
    folder = tmp_path_factory.mktemp("runs")
    csv = write_csv(folder / "s.csv", n=240)
    common = dict(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=3)
    Forecaster(model="mlp", hidden_size=8, epochs=2, **common).fit(verbose=False, run_dir=str(folder / "mlp"))
    Forecaster(model="ridge", **common).fit(verbose=False, run_dir=str(folder / "ridge"))
    return {"mlp": folder / "mlp", "ridge": folder / "ridge", "csv": csv}


@pytest.fixture
def reg(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("RNNKIT_MODELS", str(root))     # what the CLI uses too
    return Registry(root)


def test_a_copied_version_loads_and_predicts_what_the_run_does_without_it(runs, reg, tmp_path):
    source = tmp_path / "mine"
    shutil.copytree(runs["mlp"], source)
    v = reg.register(source, "cycle")
    assert (v.name, v.version, v.promoted) == ("cycle", 1, True)
    assert v.path == reg.root / "cycle" / "1" and not v.path.is_symlink()
    expected = rnnkit.load(str(source)).predict()
    shutil.rmtree(source)                                   # the copy stands on its own
    again = rnnkit.load(str(v.path))
    assert isinstance(again, Forecaster) and again.predict() == expected
    # metadata from the run's own files
    doc = json.loads((runs["mlp"] / "config.json").read_text())
    assert v.task == "forecast" and v.data_digest == doc["data"]["digest"] and v.data_digest.startswith("sha256:")
    assert v.metrics["test_mae"] == pytest.approx(doc["fitted"]["metrics"]["test_mae"])
    best_epoch = [r for r in map(json.loads, (runs["mlp"] / "metrics.jsonl").read_text().splitlines())
                  if r["event"] == "epoch" and r["best"]][-1]
    assert v.metrics["val_loss"] == pytest.approx(best_epoch["val_loss"])
    assert v.main_metric() == ("test_mae", v.metrics["test_mae"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", v.created)


def test_versions_count_up_promote_and_resolve(runs, reg):
    assert [reg.register(runs[k], "cycle").version for k in ("mlp", "ridge", "mlp")] == [1, 2, 3]
    assert [v.promoted for v in reg.list("cycle")] == [True, False, False]     # the first one, until promoted
    assert reg.resolve("cycle").version == 1
    reg.promote("cycle", 2)
    assert reg.resolve("cycle").version == 2 and reg.resolve("cycle@3").version == 3
    assert [v.version for v in reg.list() if v.promoted] == [2]
    assert reg.resolve("cycle@2").metrics["test_mae"] < reg.resolve("cycle@1").metrics["test_mae"]  # ridge is exact
    # a number is never given twice: after removing version 3, the next is 4
    reg.remove("cycle", 3)
    assert reg.register(runs["mlp"], "cycle").version == 4
    # a plain run directory resolves too, with no version
    plain = reg.resolve(str(runs["ridge"]))
    assert isinstance(plain, ModelVersion) and plain.version is None and plain.path == runs["ridge"]
    assert plain.task == "forecast" and plain.name == "ridge" and not plain.promoted


def test_removing_the_promoted_version_passes_the_mark_to_the_newest_left(runs, reg):
    for _ in range(3):
        reg.register(runs["ridge"], "r")
    reg.promote("r", 2)
    assert reg.remove("r", 2) == 3
    assert not (reg.root / "r" / "2").exists()
    assert [(v.version, v.promoted) for v in reg.list("r")] == [(1, False), (3, True)]
    assert reg.resolve("r").version == 3
    with pytest.raises(ValueError, match=r"^r@2: no such version; expected one of r@1, r@3$"):
        reg.resolve("r@2")
    assert reg.remove("r", 3) == 1 and reg.resolve("r").version == 1
    assert reg.remove("r") is None
    assert reg.names() == [] and not (reg.root / "r").exists()


def test_a_linked_version_points_at_the_run_and_removing_it_keeps_the_run(runs, reg, tmp_path):
    v = reg.register(runs["ridge"], "linked", link=True)
    assert v.path.is_symlink() and v.path.resolve() == runs["ridge"].resolve()
    assert rnnkit.load(str(v.path)).predict() == rnnkit.load(str(runs["ridge"])).predict()
    reg.remove("linked", 1)
    assert not v.path.exists() and (runs["ridge"] / "config.json").is_file()
    # a link whose run went away is named, with what to do
    moved = tmp_path / "moved"
    shutil.copytree(runs["ridge"], moved)
    reg.register(moved, "linked", link=True)
    shutil.rmtree(moved)
    with pytest.raises(FileNotFoundError, match=rf"^linked@2: it links to {re.escape(str(moved))}, which no longer "
                                                r"exists; put the run back, or remove the version with "
                                                r"'rnnkit models rm linked@2'$"):
        reg.resolve("linked")
    reg.remove("linked", 2)
    assert reg.list("linked") == []


@pytest.mark.parametrize("name", ["a b", "../up", ".hidden", "", "x@1", "a/b", "ü", "x" * 101])
def test_bad_names_are_refused(runs, reg, name):
    with pytest.raises(ValueError, match=r"model name .*: expected letters, digits, '-', '_' and '\.', starting "
                                         r"with a letter or digit, at most 100 characters"):
        reg.register(runs["ridge"], name)
    assert not reg.root.exists() or list(reg.root.iterdir()) == []


def test_unknown_names_and_versions_list_the_known_ones(runs, reg):
    reg.register(runs["ridge"], "alpha")
    reg.register(runs["ridge"], "alpha")
    reg.register(runs["ridge"], "beta")
    with pytest.raises(ValueError, match=rf"^model 'gamma': not registered in {re.escape(str(reg.root))}; "
                                         r"expected one of alpha, beta$"):
        reg.resolve("gamma")
    with pytest.raises(ValueError, match=r"^alpha@7: no such version; expected one of alpha@1, alpha@2$"):
        reg.resolve("alpha@7")
    with pytest.raises(ValueError, match=r"^alpha@7: no such version; expected one of alpha@1, alpha@2$"):
        reg.promote("alpha", 7)
    with pytest.raises(ValueError, match=r"^alpha@7: no such version"):
        reg.remove("alpha", 7)
    with pytest.raises(ValueError, match=r"'alpha@x': version 'x': expected a whole number >= 1, as in alpha@1"):
        reg.resolve("alpha@x")
    with pytest.raises(ValueError, match=r"^model 'gamma': not registered"):
        reg.list("gamma")
    with pytest.raises(FileNotFoundError, match=r"no/such/run: no such run directory"):
        reg.resolve("no/such/run")
    assert [v.spec for v in reg.list()] == ["alpha@1", "alpha@2", "beta@1"]


def test_only_a_finished_run_is_registered(runs, reg, tmp_path, ctrl_c_at_step):
    run = tmp_path / "stopped"
    ctrl_c_at_step(2)
    assert main(["forecast", "train", "--csv", str(runs["csv"]), "--time-col", "time", "--target", "y",
                 "--lookback", "24", "--delay", "3", "--model", "gru", "--hidden-size", "4", "--batch-size", "16",
                 "--epochs", "2", "--run-dir", str(run)]) == 130
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run))}: not a finished run that rnnkit.load reads "
                                         r"\(its training has not finished \(config.json is not marked finished\); "
                                         r"expected a finished run: finish it with rnnkit forecast train --run-dir "
                                         rf"{re.escape(str(run))} --resume\)$"):
        reg.register(run, "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: not a finished run .*missing config\.json"):
        reg.register(tmp_path / "empty", "m")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such run directory"):
        reg.register(tmp_path / "nowhere", "m")
    assert reg.names() == []


def test_a_copy_stopped_midway_leaves_no_version(runs, reg, monkeypatch):
    reg.register(runs["mlp"], "m")

    def killed(folder):        # the copy is on disk but not yet renamed: as a Ctrl-C at the worst moment
        raise KeyboardInterrupt
    monkeypatch.setattr(registry_module, "_fsync_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        reg.register(runs["mlp"], "m")
    assert [v.version for v in reg.list("m")] == [1]
    assert sorted(p.name for p in (reg.root / "m").iterdir()) == [".lock", "1", "model.json"]
    # A SIGKILL leaves the temporary folder behind: it is never listed, and the next register removes it.
    monkeypatch.undo()
    monkeypatch.setenv("RNNKIT_MODELS", str(reg.root))
    shutil.copytree(runs["mlp"], reg.root / "m" / ".incoming-0123456789ab")
    assert [v.version for v in reg.list("m")] == [1]
    assert reg.register(runs["ridge"], "m").version == 2
    assert sorted(p.name for p in (reg.root / "m").iterdir()) == [".lock", "1", "2", "model.json"]


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "m"))
    assert default_root() == tmp_path / "m" and Registry().root == tmp_path / "m"
    monkeypatch.delenv("RNNKIT_MODELS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / "rnnkit" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".local" / "share" / "rnnkit" / "models"


def test_cli_register_list_promote_rm(runs, reg, capsys):
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out.startswith(f"no models registered in {reg.root}")
    assert main(["models", "register", str(runs["mlp"]), "cycle"]) == 0
    assert capsys.readouterr().out.startswith("cycle@1: forecast run copied from")
    assert main(["models", "register", str(runs["ridge"]), "cycle", "--link"]) == 0
    assert capsys.readouterr().out.startswith("cycle@2: forecast run linked to")
    assert main(["models", "promote", "cycle@2"]) == 0
    assert capsys.readouterr().out == "cycle@2 is now promoted: 'cycle' means this version\n"
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "version", "task", "promoted", "main", "metric", "created"]
    rows = [line.split() for line in lines[1:3]]
    ridge_mae = reg.resolve("cycle@2").metrics["test_mae"]
    assert rows[0][:4] == ["cycle", "1", "forecast", "test_mae"]            # not promoted: no mark
    assert rows[1][:6] == ["cycle", "2", "forecast", "*", "test_mae", f"{ridge_mae:.4g}"]
    assert lines[-1] == f"registry: {reg.root}"
    assert main(["models", "rm", "cycle@2"]) == 0
    assert capsys.readouterr().out == "cycle@2 removed; it was the promoted version: cycle@1 is promoted now\n"
    assert main(["models", "rm", "cycle"]) == 0
    assert capsys.readouterr().out == "cycle: removed with all its versions\n"
    assert reg.names() == []


@pytest.mark.parametrize("argv, message", [
    (["models", "promote", "cycle"], "'cycle': expected NAME@VERSION, e.g. cycle@1"),
    (["models", "promote", "cycle@9"], "cycle@9: no such version; expected one of cycle@1"),
    (["models", "rm", "nope@1"], "model 'nope': not registered in {root}; expected one of cycle"),
    (["models", "register", "{mlp}", "no way"], "model name 'no way': expected letters"),
])
def test_cli_errors_are_one_line(runs, reg, capsys, argv, message):
    reg.register(runs["ridge"], "cycle")
    argv = [a.format(mlp=runs["mlp"]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: " + message.format(root=reg.root)) and err.count("\n") == 1
