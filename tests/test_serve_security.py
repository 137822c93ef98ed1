"""rnnkit serve, fit to leave localhost: hostile text (lone surrogates), bodies that are not JSON or arrive
slowly, the Host check, the API key, the access log, /readyz and /metrics, and a graceful SIGTERM.

The runs are the tiny ones of test_serve.py (made once per session)."""

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='rnnkit serve needs its extra: pip install "rnnkit[serve]"')
pytest.importorskip("httpx", reason='the API tests need httpx: pip install "rnnkit[test]"')

import httpx                                                            # noqa: E402
from fastapi.testclient import TestClient as StarletteClient            # noqa: E402

from rnnkit.cli import main                                             # noqa: E402
from rnnkit.serve import ServeConfig                                    # noqa: E402
from rnnkit.serve.app import begin_shutdown, create_app                 # noqa: E402
from rnnkit.serve.errors import error_response                          # noqa: E402
from test_serve import TestClient, assert_error, live_server, shared_runs, sse_events   # noqa: E402

GEN = "/v1/models/words/generate"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def client(runs):
    app = create_app([str(runs[k]) for k in ("words", "reviews", "weather")], config=ServeConfig(max_tokens=300))
    with TestClient(app) as c:
        yield c


def raw_json(client, url, text):
    """POST ``text`` as it is (JSON escapes such as \\ud800 kept for the server to parse)."""
    return client.post(url, content=text.encode(), headers={"content-type": "application/json"})


# --- 1. lone surrogates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url, text, field", [
    (GEN, r'{"prompt": "the \ud800"}', "prompt"),
    ("/v1/models/reviews/classify", r'{"texts": ["fine", "bad \udc00 film"]}', "texts.1"),
    (GEN, r'{"prompt": "the", "x\ud800": 1}', r"x\ud800"),
])
def test_a_lone_surrogate_anywhere_is_a_422_naming_the_field(client, url, text, field):
    r = raw_json(client, url, text)
    body = assert_error(r, 422, field, "lone UTF-16 surrogate", "expected Unicode text")
    assert r.content.decode("utf-8")          # the answer is UTF-8 (it could not be encoded before)
    assert body["constraint"] == "Unicode text without lone surrogates"
    # a surrogate pair is one character (U+1F600), not an error: the model refuses it as unseen, by name
    assert_error(raw_json(client, GEN, r'{"prompt": "the \ud83d\ude00"}'), 422, "prompt", "unseen")


def test_every_error_answer_can_be_encoded():
    r = error_response(422, "prompt: '\ud800' is bad", "x\udfff")
    assert json.loads(r.body.decode("utf-8")) == {"status": 422, "error": "prompt: '\ufffd' is bad",
                                                  "field": "x\ufffd", "constraint": None,
                                                  "errors": [{"field": "x\ufffd", "constraint": None}]}


# --- 2. content type, the unseen-character hint, /v1/models, the access log -----------------------------

@pytest.mark.parametrize("headers", [{}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}])
def test_a_body_not_sent_as_json_is_a_415_saying_how_to_send_it(client, headers):
    r = client.post(GEN, content=b'{"prompt": "the"}', headers=headers)
    body = assert_error(r, 415, "body", "send the body as JSON with the header content-type: application/json")
    assert "\\\\" not in body["error"] and "b'" not in body["error"]
    assert client.post(GEN, content=b'{"prompt": "the", "max_tokens": 2}',
                       headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_the_unseen_character_hint_names_the_json_field_that_works(client):
    body = assert_error(client.post(GEN, json={"prompt": "the ZEBRA"}), 422, "prompt", "unseen: 'Z'")
    assert '"unknown": "drop"' in body["error"]
    r = client.post(GEN, json={"prompt": "the ZEBRA", "unknown": "drop", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["tokens"] == 3


class Lines(logging.Handler):
    """The access log's records, collected on its own logger (whatever handlers and propagation other tests, or
    an in-process `rnnkit serve`, left on it)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def access_lines():
    logger, lines = logging.getLogger("rnnkit.serve.access"), Lines()
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        yield lines.lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)


def test_one_access_line_per_request_and_none_with_no_access_log(runs):
    app = create_app([str(runs["words"])])
    with access_lines() as lines:
        c = TestClient(app)
        c.post(GEN, json={"prompt": "the", "max_tokens": 2})
        c.post(GEN, json={"prompt": "the", "temperature": 9})
        c.get("/healthz")
    assert len(lines) == 3, lines
    assert re.fullmatch(r"testclient POST /v1/models/words/generate 200 \d+\.\d{3}s model=words", lines[0])
    assert re.fullmatch(r"testclient POST /v1/models/words/generate 422 \d+\.\d{3}s model=-", lines[1])
    assert lines[2].startswith("testclient GET /healthz 200 ")
    quiet = create_app([str(runs["words"])], config=ServeConfig(access_log=False))
    with access_lines() as lines:
        TestClient(quiet).post(GEN, json={"prompt": "the", "max_tokens": 2})
    assert lines == []


def test_no_access_log_is_a_flag():
    import argparse

    from rnnkit.config import add_config_arguments, config_from_args
    p = argparse.ArgumentParser()
    add_config_arguments(p, ServeConfig)
    assert config_from_args(ServeConfig, p.parse_args([])).access_log is True
    assert config_from_args(ServeConfig, p.parse_args(["--no-access-log"])).access_log is False


# --- 3. the Host header, slow bodies, forecast tables ----------------------------------------------------

def test_only_the_bound_host_names_are_answered(runs):
    app = create_app([str(runs["words"])])
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert StarletteClient(app, base_url=f"http://{host}").get("/v1/models").status_code == 200, host
    evil = StarletteClient(app, base_url="http://attacker.example:8000")
    assert_error(evil.get("/v1/models"), 400, "Host", "'attacker.example:8000' is not a name this server answers to",
                 "--allowed-hosts")
    assert_error(evil.post(GEN, json={"prompt": "the"}), 400, "Host")
    assert evil.get("/healthz").status_code == 200 and evil.get("/readyz").status_code == 200     # probes
    named = create_app([str(runs["words"])], config=ServeConfig(allowed_hosts="api.example, other.example"))
    assert StarletteClient(named, base_url="http://api.example").get("/v1/models").status_code == 200
    assert StarletteClient(named, base_url="http://localhost").get("/v1/models").status_code == 200
    assert StarletteClient(named, base_url="http://attacker.example").get("/v1/models").status_code == 400
    anyone = create_app([str(runs["words"])], config=ServeConfig(allowed_hosts="*"))
    assert StarletteClient(anyone, base_url="http://attacker.example").get("/v1/models").status_code == 200


def test_a_half_sent_body_is_timed_out_with_a_408(runs):
    app = create_app([str(runs["words"])], config=ServeConfig(body_timeout=0.5))
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/models/words/generate HTTP/1.1\r\nHost: localhost\r\n"
                      b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\": ")
            began = time.monotonic()
            answer = s.recv(65536).decode()
            waited = time.monotonic() - began
            head, _, rest = answer.partition("\r\n\r\n")
            length = int(re.search(r"content-length: (\d+)", head, re.I).group(1))
            while len(rest.encode()) < length:
                rest += s.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert 0.4 < waited < 5, waited
        body = json.loads(rest)
        assert body["field"] == "body" and "not complete within 0.5 s (11 bytes arrived)" in body["error"]
        # the server goes on
        assert httpx.post(f"{url}{GEN}", json={"prompt": "the", "max_tokens": 2}).status_code == 200


def test_headers_sent_a_byte_at_a_time_are_cut_off(runs):
    # slowloris: a client that opens a connection and dribbles its request line and headers held it forever
    import uvicorn

    from rnnkit.serve.security import uvicorn_config

    app = create_app([str(runs["words"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, ServeConfig(port=port, body_timeout=0.5)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            began = time.monotonic()
            closed = False
            for byte in b"POST /v1/models/words/generate HTTP/1.1\r\nHost: localhost\r\n":
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
            if not closed:
                closed = s.recv(1024) == b""
            waited = time.monotonic() - began
        assert closed and waited < 5, waited
        # a normal client on a new connection is answered, on the same server
        r = httpx.post(f"http://127.0.0.1:{port}{GEN}", json={"prompt": "the", "max_tokens": 2},
                       headers={"host": "localhost"})
        assert r.status_code == 200, r.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("cells, field, phrase", [
    ("[1.0, 1e309]", "table.y.1", "finite number within float32"),
    ("[1.0, 1e308]", "table.y.1", "finite number within float32"),
    ("[1.0, -1e39]", "table.y.1", "finite number within float32"),
    ("[true, 2.0]", "table.y.0", "a number, not true or false"),
])
def test_forecast_tables_refuse_overflow_infinities_and_booleans_by_column(client, cells, field, phrase):
    text = '{"table": {"time": ["2022-01-01T00:00:00", "2022-01-01T01:00:00"], "y": ' + cells + '}}'
    assert_error(raw_json(client, "/v1/models/weather/forecast", text), 422, field, phrase)


def test_float_fields_refuse_booleans(client):
    assert_error(client.post(GEN, json={"prompt": "the", "temperature": True}), 422, "temperature",
                 "a number, not true or false")


# --- 4. the API key -------------------------------------------------------------------------------------

def test_an_api_key_guards_every_v1_request_and_metrics_but_not_the_probes(runs):
    app = create_app([str(runs["words"])], config=ServeConfig(api_key="s3cret"))
    c = TestClient(app)
    r = c.get("/v1/models")
    assert_error(r, 401, "Authorization", "no Authorization header", "Authorization: Bearer KEY")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(c.post(GEN, json={"prompt": "the"}, headers={"authorization": "Bearer s3cre"}), 401,
                 "Authorization", "the key sent is not this server's")
    assert_error(c.get("/metrics"), 401, "Authorization")
    good = {"authorization": "Bearer s3cret"}
    assert c.get("/v1/models", headers=good).status_code == 200
    assert c.post(GEN, json={"prompt": "the", "max_tokens": 2}, headers=good).json()["tokens"] == 2
    assert c.get("/metrics", headers=good).status_code == 200
    for open_path in ("/healthz", "/readyz", "/", "/static/app.js"):
        assert c.get(open_path).status_code == 200, open_path


def test_serving_beyond_localhost_needs_a_key(runs, capsys, monkeypatch):
    monkeypatch.delenv("RNNKIT_API_KEY", raising=False)
    assert main(["serve", str(runs["words"]), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert ("rnnkit: error: --host 0.0.0.0: reachable beyond this machine, so the API needs a key; pass --api-key KEY "
            "or set RNNKIT_API_KEY") in err and len(err.strip().splitlines()) == 1


# --- 5. /readyz and /metrics --------------------------------------------------------------------------------

def test_readyz_is_ready_until_shutdown_begins(runs):
    app = create_app([str(runs["words"])])
    c = TestClient(app)
    assert c.get("/readyz").json() == {"status": "ready", "models": ["words"]}
    begin_shutdown(app)
    assert_error(c.get("/readyz"), 503, None, "not ready: the server is shutting down")
    assert c.get("/healthz").status_code == 200
    app.state.models["words"].worker.close()


def metric(text, name, **labels):
    """The value of one sample of the exposition ``text``."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line = f"{name}{{{want}}} " if labels else f"{name} "
    found = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert len(found) == 1, (line, text)
    return float(found[0][len(line):])


def test_metrics_count_requests_latency_queue_tokens_and_batches(runs):
    app = create_app([str(runs["words"]), str(runs["reviews"])])
    c = TestClient(app)
    for seed in range(3):
        assert c.post(GEN, json={"prompt": "the", "max_tokens": 7, "seed": seed}).status_code == 200
    c.post(GEN, json={"prompt": "the", "temperature": 9})
    c.post("/v1/models/reviews/classify", json={"texts": ["a fine film"]})
    c.get("/v1/nothing/at/all")
    r = c.get("/metrics")
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    gen = "/v1/models/{model}/generate"
    assert metric(text, "rnnkit_requests_total", endpoint=gen, model="words", status="200") == 3
    assert metric(text, "rnnkit_requests_total", endpoint=gen, model="-", status="422") == 1
    assert metric(text, "rnnkit_requests_total", endpoint="/v1/models/{model}/classify", model="reviews",
                  status="200") == 1
    assert metric(text, "rnnkit_requests_total", endpoint="other", model="-", status="404") == 1
    assert metric(text, "rnnkit_request_duration_seconds_count", endpoint=gen) == 4
    assert metric(text, "rnnkit_request_duration_seconds_bucket", endpoint=gen, le="+Inf") == 4
    assert metric(text, "rnnkit_generated_tokens_total", model="words") == 21
    assert metric(text, "rnnkit_queue_seconds_count", model="words") == 3
    batcher = app.state.models["words"].worker
    assert metric(text, "rnnkit_batch_size_count", model="words") == batcher.steps
    assert metric(text, "rnnkit_batch_size_sum", model="words") == batcher.rows == 21
    assert "# TYPE rnnkit_request_duration_seconds histogram" in text
    assert "rnnkit_queue_seconds_count{model=\"reviews\"}" not in text          # no batcher: no series
    buckets = [float(v) for v in re.findall(r'rnnkit_request_duration_seconds_bucket\{endpoint="/v1/models/\{model\}/'
                                            r'generate",le="[^"]+"\} (\S+)', text)]
    assert buckets == sorted(buckets)                                           # cumulative
    batcher.close()


# --- 6. graceful shutdown ---------------------------------------------------------------------------------

def test_sigterm_ends_streams_with_an_error_event_answers_json_503_and_exits_0(runs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "serve", str(runs["words"]), "--port", str(port),
                               "--max-tokens", "1000000", "--timeout", "600"],
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        json_answer = {}

        def long_json_request():
            json_answer["r"] = httpx.post(f"{url}{GEN}", json={"prompt": "the", "max_tokens": 1_000_000}, timeout=60)

        asker = threading.Thread(target=long_json_request)
        asker.start()
        text = ""
        with httpx.stream("POST", f"{url}{GEN}", json={"prompt": "the", "max_tokens": 1_000_000, "stream": True},
                          timeout=60) as r:
            lines = r.iter_lines()
            tokens = 0
            for line in lines:
                text += line + "\n"
                tokens += line.startswith("event: token")
                if tokens == 20:
                    server.send_signal(signal.SIGTERM)
                    break
            for line in lines:                       # what comes after SIGTERM, to the end of the stream
                text += line + "\n"
        asker.join(timeout=30)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        err = server.communicate(timeout=30)[1]
    events = sse_events(text)
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["error", "done"], kinds[-5:]
    assert events[-2][1]["error"] == "the server is shutting down"
    assert events[-1][1]["finish_reason"] == "closed"
    assert_error(json_answer["r"], 503, None, "the server is shutting down")
    assert code == 0, err
    assert "Traceback" not in err and err.rstrip().endswith("stopped")
