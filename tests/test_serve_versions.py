"""A model served by its registered NAME follows the registry's promoted version while the server runs
(rnnkit.serve.versions): promote -> the next request answers with the new version; NAME@N stays; a version
that fails to load is one log line and the old one keeps serving; a swapped-out worker closes once idle."""

import asyncio
import logging

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import rnnkit                                                      # noqa: E402
from fastapi.testclient import TestClient as _TestClient          # noqa: E402
from rnnkit.runs.registry import Registry                          # noqa: E402
from rnnkit.serve import versions as versions_module                # noqa: E402
from rnnkit.serve.app import ServedModel, create_app               # noqa: E402
from rnnkit.serve.versions import VersionFollower                  # noqa: E402
from rnnkit.tasks.forecast.task import Forecaster                  # noqa: E402

from test_forecast import write_csv                                # noqa: E402


def TestClient(app, **kw):
    return _TestClient(app, base_url="http://localhost", **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny ridge forecasters of different series: their forecasts differ."""
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name, n in (("a", 240), ("b", 264)):
        csv = write_csv(folder / f"{name}.csv", n=n)
        Forecaster(model="ridge", csv=str(csv), time_col="time", target=["y"], lookback=24,
                   delay=3).fit(verbose=False, run_dir=str(folder / name))
        out[name] = folder / name
    return out


@pytest.fixture
def reg(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    reg = Registry()
    reg.register(runs["a"], "cyc")         # cyc@1, promoted
    reg.register(runs["b"], "cyc")         # cyc@2
    return reg


def forecast(c, model):
    r = c.post(f"/v1/models/{model}/forecast", json={"history": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-rnnkit-version"] == str(body["version"])
    return body["version"], body["forecast"]


def listed(c):
    return {m["model"]: (m["version"], m["promoted"]) for m in c.get("/v1/models").json()["models"]}


def test_a_promoted_version_is_served_at_the_next_request_and_name_at_n_stays(runs, reg):
    one, two = rnnkit.load(str(runs["a"])).predict(), rnnkit.load(str(runs["b"])).predict()
    assert one != two
    app = create_app(["cyc", "cyc@1"])
    app.state.versions.interval = 0
    with TestClient(app) as c:
        assert forecast(c, "cyc") == (1, one)
        reg.promote("cyc", 2)                               # while serving
        assert forecast(c, "cyc") == (2, two)
        assert forecast(c, "cyc@1") == (1, one)             # a given version never changes
        assert listed(c) == {"cyc": (2, True), "cyc@1": (1, False)}
        # removing the promoted version passes the mark to the newest left: followed too
        reg.register(runs["a"], "cyc")                      # cyc@3
        reg.remove("cyc", 2)
        assert forecast(c, "cyc") == (3, one)
        assert listed(c) == {"cyc": (3, True), "cyc@1": (1, False)}


def test_the_registry_is_looked_at_most_once_per_interval(reg, monkeypatch):
    app = create_app(["cyc"])
    app.state.versions.interval = 30
    clock = [1000.0]
    monkeypatch.setattr(versions_module.time, "monotonic", lambda: clock[0])
    stats = []
    real = versions_module.VersionFollower._signature
    monkeypatch.setattr(versions_module.VersionFollower, "_signature",
                        lambda self, name: stats.append(name) or real(self, name))
    with TestClient(app) as c:
        assert forecast(c, "cyc")[0] == 1
        reg.promote("cyc", 2)
        assert [forecast(c, "cyc")[0] for _ in range(3)] == [1, 1, 1]     # within the interval: not looked at
        assert stats == ["cyc"]
        clock[0] += 31
        assert forecast(c, "cyc")[0] == 2
        assert stats == ["cyc", "cyc"]


def test_a_version_that_fails_to_load_is_one_log_line_and_the_old_one_keeps_serving(runs, reg, caplog):
    broken = reg.register(runs["b"], "cyc")                 # cyc@3, then damaged in the registry
    (broken.path / "final.safetensors").write_bytes(b"not weights")
    app = create_app(["cyc"])
    app.state.versions.interval = 0
    with TestClient(app) as c:
        assert forecast(c, "cyc")[0] == 1
        reg.promote("cyc", 3)
        with caplog.at_level(logging.INFO, logger="rnnkit.serve"):
            assert [forecast(c, "cyc")[0] for _ in range(3)] == [1, 1, 1]
        lines = [r.getMessage() for r in caplog.records if r.name == "rnnkit.serve" and r.levelno >= logging.WARNING]
        assert len(lines) == 1 and "\n" not in lines[0], lines
        assert lines[0].startswith("cyc@3: promoted, but it failed to load (") and "still serving cyc@1" in lines[0]
        assert listed(c)["cyc"] == (1, True)
        reg.promote("cyc", 2)                               # a good one afterwards is picked up
        assert forecast(c, "cyc")[0] == 2


class FakeWorker:
    def __init__(self):
        self.closed = False

    def close(self, wait=True):
        self.closed = True


def test_a_swapped_out_worker_is_closed_when_the_requests_that_may_use_it_have_ended(reg):
    def served_model(version):
        return ServedModel(f"cyc@{version}", "cyc", version, "forecast", None, False, object(), "forecast",
                           FakeWorker())

    first = served_model(1)
    first.key = "cyc"
    served = {"cyc": first}
    follower = VersionFollower(served, reg, lambda name, version: served_model(version), interval=0)

    async def scenario():
        await follower.refresh("cyc")                       # the first look: version 1 is the promoted one
        assert served["cyc"] is first
        in_flight = follower.enter("cyc")                   # a request picked version 1 and runs on
        reg.promote("cyc", 2)
        await follower.refresh("cyc")
        second = served["cyc"]
        assert (second.key, second.version, second.promoted) == ("cyc", 2, True)
        assert not first.worker.closed                      # still in use
        later = follower.enter("cyc")
        follower.leave(in_flight)
        assert first.worker.closed and not second.worker.closed
        follower.leave(later)
        assert not second.worker.closed
        # swapped again with nothing in flight: closed at once; at shutdown the retired ones close too
        reg.promote("cyc", 1)
        await follower.refresh("cyc")
        assert second.worker.closed and served["cyc"].version == 1
        third = served["cyc"]
        pending = follower.enter("cyc")
        reg.promote("cyc", 2)
        await follower.refresh("cyc")
        assert not third.worker.closed                      # in use by the pending request
        follower.close()
        assert third.worker.closed and not served["cyc"].worker.closed   # the served one is the app's to close
        follower.leave(pending)

    asyncio.run(scenario())
