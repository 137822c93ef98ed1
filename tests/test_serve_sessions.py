"""Generation sessions (rnnkit.serve.sessions): the recurrent state kept between requests under a client's id.

"The same" text: with greedy decoding a session's 20 + 20 tokens are exactly one request's 40. When sampling,
a session's request without a seed takes the next uniform numbers of the seed its session started with, so
20 + 20 tokens from seed s are one request's 40 from seed s (the same draws, the same state; equal here, up to
float rounding in general).
"""

import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='rnnkit serve needs its extra: pip install "rnnkit[serve]"')
pytest.importorskip("httpx", reason='the API tests need httpx: pip install "rnnkit[test]"')

import httpx                                                    # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_serve import TestClient, assert_error, live_server, shared_runs, sse_events   # noqa: E402

import rnnkit                                                   # noqa: E402
from rnnkit.serve import ServeConfig                            # noqa: E402
from rnnkit.serve.app import create_app                         # noqa: E402
from rnnkit.tasks.textgen.config import GenerateRequest          # noqa: E402

URL = "/v1/models/words/generate"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_runs(tmp_path_factory)


def client_for(runs, **config):
    return TestClient(create_app([str(runs["words"])], config=ServeConfig(**config)))


def slow_steps(c, seconds):
    """Make the words model's worker take ``seconds`` a step (returns a function that undoes it)."""
    worker = c.app.state.models["words"].worker
    real = worker.step

    def step(tokens, state):
        time.sleep(seconds)
        return real(tokens, state)

    worker.step = step
    return lambda: setattr(worker, "step", real)


def test_a_session_continues_exactly_where_it_stopped(runs):
    c = client_for(runs)
    whole = c.post(URL, json={"prompt": "the c", "max_tokens": 40, "temperature": 0}).json()["text"]
    first = c.post(URL, json={"prompt": "the c", "max_tokens": 20, "temperature": 0, "session": "g1"}).json()
    second = c.post(URL, json={"max_tokens": 20, "temperature": 0, "session": "g1"}).json()
    assert first["text"] + second["text"] == whole and len(whole) == 40
    assert first["session"] == {"id": "g1", "start": "new", "ended": False}
    assert second["session"] == {"id": "g1", "start": "continued", "ended": False}

    # sampling: without a seed of its own, the session's next request takes its seed's next numbers
    whole = c.post(URL, json={"prompt": "the d", "max_tokens": 40, "temperature": 1.0, "seed": 5}).json()["text"]
    a = c.post(URL, json={"prompt": "the d", "max_tokens": 20, "temperature": 1.0, "seed": 5, "session": "s1"}).json()
    b = c.post(URL, json={"max_tokens": 20, "temperature": 1.0, "session": "s1"}).json()
    assert a["text"] + b["text"] == whole and b["seed"] == 5

    # a prompt is read on top of the state: as a fresh request that reads the whole text so far
    third = c.post(URL, json={"prompt": " the", "max_tokens": 15, "temperature": 0, "session": "g1"}).json()
    fresh = rnnkit.load(str(runs["words"])).generate("the c" + first["text"] + second["text"] + " the", 15,
                                                     temperature=0)
    assert third["text"] == fresh


def test_sessions_run_side_by_side_never_see_each_others_state(runs):
    """Two sessions, each three requests, in two threads against a live server: each gets what it gets alone."""
    app = create_app([str(runs["words"])])
    plans = {name: [{"prompt": prompt, "max_tokens": 30, "temperature": 1.0, "seed": seed},
                    {"max_tokens": 25, "temperature": 1.0},
                    {"prompt": " the", "max_tokens": 30, "temperature": 0.7, "seed": seed + 1}]
             for name, prompt, seed in (("a", "the c", 1), ("b", "the d", 2))}

    def run(url, sid, plan, out):
        for body in plan:
            r = httpx.post(f"{url}{URL}", json={**body, "session": sid}, timeout=30)
            assert r.status_code == 200, r.text
            out.append(r.json()["text"])

    with live_server(app) as url:
        alone = {}
        for name, plan in plans.items():
            alone[name] = []
            run(url, f"alone-{name}", plan, alone[name])
        for trial in range(3):
            together = {name: [] for name in plans}
            threads = [threading.Thread(target=run, args=(url, f"{name}-{trial}", plan, together[name]))
                       for name, plan in plans.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert together == alone
    assert alone["a"] != alone["b"]


def test_an_idle_session_expires_and_the_answer_says_it_started_fresh(runs):
    c = client_for(runs, session_ttl=60)
    now = [1000.0]
    c.app.state.models["words"].worker.sessions.clock = lambda: now[0]
    body = {"prompt": "the c", "max_tokens": 10, "temperature": 0, "session": "idle"}
    fresh = c.post(URL, json=body).json()
    now[0] += 59
    assert c.post(URL, json=body).json()["session"]["start"] == "continued"
    now[0] += 61
    r = c.post(URL, json=body).json()
    assert r["session"]["start"] == "expired" and "expired" in r["session"]["note"]
    assert r["text"] == fresh["text"]                    # from the initial state again
    assert c.post(URL, json=body).json()["session"]["start"] == "continued"


def test_end_session_answers_then_drops_the_state(runs):
    c = client_for(runs)
    body = {"prompt": "the c", "max_tokens": 10, "temperature": 0, "session": "bye"}
    first = c.post(URL, json=body).json()
    last = c.post(URL, json={**body, "end_session": True}).json()
    assert last["session"] == {"id": "bye", "start": "continued", "ended": True}
    assert last["text"] == rnnkit.load(str(runs["words"])).generate("the c" + first["text"] + "the c", 10,
                                                                    temperature=0)
    assert len(c.app.state.models["words"].worker.sessions) == 0
    again = c.post(URL, json=body).json()
    assert again["session"]["start"] == "new" and again["text"] == first["text"]
    # the stream's first event says the same
    with c.stream("POST", URL, json={**body, "stream": True}) as r:
        events = sse_events(r.read().decode())
    assert events[0][1]["session"] == {"id": "bye", "start": "continued", "ended": False}


def test_a_second_request_in_a_busy_session_is_a_409_and_too_many_sessions_a_429(runs):
    c = client_for(runs, max_sessions=2)
    undo = slow_steps(c, 0.02)
    sessions = c.app.state.models["words"].worker.sessions
    out = {}
    t = threading.Thread(target=lambda: out.update(r=c.post(URL, json={"prompt": "the", "max_tokens": 60,
                                                                      "session": "busy"})))
    t.start()
    deadline = time.monotonic() + 10
    while "busy" not in sessions._busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert_error(c.post(URL, json={"prompt": "the", "session": "busy"}), 409, "session",
                 "session 'busy' is running another request")
    t.join(30)
    undo()
    assert out["r"].status_code == 200
    assert c.post(URL, json={"max_tokens": 5, "session": "busy"}).json()["session"]["start"] == "continued"

    assert c.post(URL, json={"prompt": "the", "max_tokens": 5, "session": "two"}).status_code == 200
    assert_error(c.post(URL, json={"prompt": "the", "max_tokens": 5, "session": "three"}), 429, "session",
                 "max_sessions=2")
    assert c.post(URL, json={"max_tokens": 5, "session": "two"}).status_code == 200      # a kept one goes on
    c.post(URL, json={"max_tokens": 5, "session": "two", "end_session": True})
    assert c.post(URL, json={"prompt": "the", "max_tokens": 5, "session": "three"}).status_code == 200


def test_a_request_that_times_out_or_is_cancelled_leaves_the_session_as_it_was(runs):
    c = client_for(runs, timeout=1.0)
    start = {"prompt": "the c", "max_tokens": 10, "temperature": 0}
    go_on = {"max_tokens": 20, "temperature": 0}
    c.post(URL, json={**start, "session": "ref"})
    want = c.post(URL, json={**go_on, "session": "ref"}).json()["text"]

    c.post(URL, json={**start, "session": "t"})
    undo = slow_steps(c, 0.05)
    assert_error(c.post(URL, json={"max_tokens": 200, "temperature": 0, "session": "t"}), 504, "max_tokens")
    undo()
    assert c.post(URL, json={**go_on, "session": "t"}).json()["text"] == want

    # cancelled (its client went away) in the batcher itself: the same
    gen = rnnkit.load(str(runs["words"]))
    batcher = gen.serving_worker(max_batch=4)
    batcher.submit(GenerateRequest(**start, session="x")).wait(30)
    job = batcher.submit(GenerateRequest(prompt="the", max_tokens=1000, session="x"))
    batcher.cancel(job)
    assert job.wait(30) and job.result()["finish_reason"] == "cancelled"
    job = batcher.submit(GenerateRequest(**go_on, session="x"))
    assert job.wait(30) and job.result()["text"] == want
    batcher.close()


def test_session_fields_are_checked_by_name(runs):
    c = client_for(runs)
    assert_error(c.post(URL, json={"prompt": "the", "session": "no spaces"}), 422, "session", "A-Z")
    assert_error(c.post(URL, json={"prompt": "the", "session": "x" * 65}), 422, "session")
    assert_error(c.post(URL, json={"prompt": "the", "session": "b", "beam": 2}), 422, "beam", "in a session")
    assert_error(c.post(URL, json={"prompt": "the", "session": "n", "num_results": 2}), 422, "num_results")
    assert_error(c.post(URL, json={"prompt": "the", "end_session": True}), 422, "end_session")
    with pytest.raises(ValueError, match="session"):
        rnnkit.load(str(runs["words"])).apply({"prompt": "the", "session": "s"})
