"""rnnkit serve: every endpoint against the task object it serves, continuous batching, the limits and their
JSON errors, fuzzed requests, model names and versions, and the command line.

The runs are tiny models the tests train themselves (a few seconds in all)."""

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason='rnnkit serve needs its extra: pip install "rnnkit[serve]"')
pytest.importorskip("httpx", reason='the API tests need httpx: pip install "rnnkit[test]"')

import httpx                                                    # noqa: E402
from fastapi.testclient import TestClient as _TestClient         # noqa: E402

import rnnkit                                                   # noqa: E402
from rnnkit.cli import main                                     # noqa: E402
from rnnkit.serve import ServeConfig                            # noqa: E402
from rnnkit.serve.app import create_app                         # noqa: E402
from rnnkit.tasks.classify.task import SequenceClassifier       # noqa: E402
from rnnkit.tasks.forecast.task import Forecaster               # noqa: E402
from rnnkit.tasks.seq2seq.task import Seq2Seq                   # noqa: E402
from rnnkit.tasks.textgen.config import GenerateRequest          # noqa: E402
from rnnkit.tasks.textgen.task import TextGenerator             # noqa: E402

CORPUS = "the cat sat on the mat. the dog sat on the log. " * 120
VECTORS = [("king", (0.9, 0.1, 0.0)), ("queen", (0.85, 0.2, 0.05)), ("prince", (0.7, 0.0, 0.3)),
           ("apple", (0.0, 0.1, 0.95)), ("pear", (0.05, 0.0, 0.9))]


def sentiment_texts(n, seed=0):
    """Two classes told apart by one word among filler words."""
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "story", "with", "some", "actors", "and", "music", "plot"]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(3, 8)))
        label = "pos" if i % 2 else "neg"
        words.insert(int(rng.integers(0, len(words) + 1)), "great" if label == "pos" else "awful")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def write_series_csv(path, n=240):
    """An hourly daily cycle (period 24)."""
    t = np.arange(n)
    y = 10 + 5 * np.sin(2 * np.pi * t / 24)
    times = np.datetime64("2022-05-01T00") + t.astype("timedelta64[h]")
    path.write_text("time,y\n" + "".join(f"{times[i]}:00:00Z,{y[i]:.6f}\n" for i in range(n)))
    return path


def make_runs(root):
    """Tiny run directories of every served task, and a GloVe text file: {name: path}."""
    torch.manual_seed(0)
    runs = {name: root / name for name in ("words", "reviews", "weather", "reverse")}
    TextGenerator(hidden_size=48, num_layers=1, embedding_size=16, seq_len=32, batch_size=16, epochs=3, lr=1e-2,
                  sample_max_tokens=0, warmup_steps=0, max_minutes=1).fit(CORPUS, run_dir=str(runs["words"]),
                                                                     progress=False)
    texts, labels = sentiment_texts(120)
    SequenceClassifier(model="lstm", hidden_size=16, embedding_size=16, epochs=4, min_steps=0, batch_size=20, lr=1e-2,
                       early_stop_patience=None, dropout=0.0, seed=1).fit(texts, labels, run_dir=runs["reviews"])
    csv = write_series_csv(root / "weather.csv")
    Forecaster(csv=str(csv), time_col="time", target=["y"], lookback=24, delay=3, horizon=2,
               model="ridge").fit(verbose=False, run_dir=str(runs["weather"]))
    rng = np.random.default_rng(0)            # reversing words of a-f: learned in a few seconds
    words = ["".join(rng.choice(list("abcdef"), size=rng.integers(1, 6))) for _ in range(600)]
    Seq2Seq(source_level="char", target_level="char", hidden_size=32, embedding_size=16, encoder_layers=1,
            decoder_layers=1, attention="dot", dropout=0.0, val_frac=0.1, epochs=6, batch_size=32, lr=1e-2,
            log_every=1000).fit([(w, w[::-1]) for w in words], run_dir=str(runs["reverse"]), progress=False)
    glove = root / "toy.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECTORS))
    runs["toy"] = glove
    return runs


def TestClient(app, **kw):
    """Starlette's test client as a browser on this machine sends it: Host localhost (its own default,
    "testserver", is a name the server does not answer to: see test_serve_security.py)."""
    return _TestClient(app, base_url="http://localhost", **kw)


_MADE = {}


def shared_runs(tmp_path_factory):
    """make_runs once per test session: test_playground.py serves the same runs."""
    if "runs" not in _MADE:
        torch.set_num_threads(1)
        _MADE["runs"] = make_runs(tmp_path_factory.mktemp("serve"))
    return _MADE["runs"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def client(runs):
    app = create_app([str(runs[k]) for k in ("words", "reviews", "weather", "reverse")], [str(runs["toy"])],
                     ServeConfig(max_tokens=300, max_texts=8))
    with TestClient(app) as c:
        yield c


@contextlib.contextmanager
def live_server(app):
    """The app served by uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def assert_error(r, status, field, *phrases):
    """A JSON error with the status, naming the field, and the phrases in its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["field"] == field, body
    for phrase in phrases:
        assert phrase in body["error"], body
    return body


def sse_events(text):
    """Server-sent events as (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


# --- every endpoint gives what the task object gives ------------------------------------------------------

def test_model_list_names_every_model_its_task_and_endpoint(client, runs):
    models = {m["model"]: m for m in client.get("/v1/models").json()["models"]}
    assert {k: m["task"] for k, m in models.items()} == {
        "words": "textgen", "reviews": "classify", "weather": "forecast", "reverse": "seq2seq", "toy": "embeddings"}
    assert models["words"]["endpoint"] == "/v1/models/words/generate"
    assert models["reviews"]["details"]["classes"] == ["neg", "pos"]
    assert models["toy"]["details"] == {"words": 5, "dim": 3, "source": "toy.txt"}
    # where each came from, by name: the server's filesystem paths are not the clients' business
    assert {k: m["source"] for k, m in models.items()} == {
        "words": "words", "reviews": "reviews", "weather": "weather", "reverse": "reverse", "toy": "toy.txt"}
    assert str(runs["words"].parent) not in json.dumps(models) and all("path" not in m for m in models.values())
    assert models["words"]["details"]["max_batch"] == 64 and models["words"]["details"]["level"] == "char"
    # what each task's request takes, from its request_class: the one vocabulary
    assert [f["name"] for f in models["words"]["takes"]] == ["prompt", "max_tokens", "temperature", "top_k", "top_p",
                                                            "greedy", "seed", "num_results", "beam", "unknown",
                                                            "stream", "session", "end_session"]
    assert [f["name"] for f in models["reverse"]["takes"]] == ["texts", "beam", "max_tokens", "num_results",
                                                              "greedy", "temperature", "top_k", "top_p", "seed",
                                                              "length_penalty", "coverage_penalty", "attention"]
    assert all(m["version"] is None for m in models.values())      # run directories, not registered versions


def test_generate_gives_the_text_of_textgenerator_generate_for_the_same_seed(client, runs):
    gen = rnnkit.load(str(runs["words"]))
    for temperature in (0.0, 0.5, 1.3):
        r = client.post("/v1/models/words/generate", json={"prompt": "the c", "max_tokens": 60,
                                                           "temperature": temperature, "seed": 7})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"] == gen.generate("the c", 60, temperature=temperature, seed=7)
        assert (body["model"], body["version"], body["seed"]) == ("words", None, 7)
        assert body["tokens"] == len(body["text"]) == 60 and body["finish_reason"] == "length"
        assert r.headers["x-rnnkit-model"] == "words"
    # top-k 1 keeps only the most likely token: the greedy text at any temperature
    r = client.post("/v1/models/words/generate", json={"prompt": "the", "max_tokens": 30, "temperature": 2,
                                                       "top_k": 1})
    assert r.json()["text"] == gen.generate("the", 30, temperature=0)
    # beam search is not stepped by the batcher: the server runs it through apply, as the CLI does
    r = client.post("/v1/models/words/generate", json={"prompt": "the", "max_tokens": 20, "beam": 3,
                                                       "num_results": 2})
    assert r.status_code == 200, r.text
    assert [x["text"] for x in r.json()["results"]] == gen.generate("the", 20, beam=3, num_results=2)
    r = client.post("/v1/models/words/generate", json={"prompt": "the", "beam": 3, "stream": True})
    assert_error(r, 422, "stream", "false with beam")


def test_generate_streams_each_token_as_a_server_sent_event(client, runs):
    with client.stream("POST", "/v1/models/words/generate",
                       json={"prompt": "the d", "max_tokens": 25, "temperature": 0.8, "seed": 3, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert events[0] == ("start", {"model": "words", "version": None, "seed": 3})
    tokens = [data["text"] for kind, data in events if kind == "token"]
    kind, done = events[-1]
    assert kind == "done" and len(tokens) == 25 == done["tokens"]
    assert "".join(tokens) == done["text"] == rnnkit.load(str(runs["words"])).generate(
        "the d", 25, temperature=0.8, seed=3)


def test_concurrent_requests_share_forward_passes_and_keep_their_own_text(runs):
    """Eight requests at once through the ASGI app: each gets its own seed's text, in fewer steps than one by one."""
    app = create_app([str(runs["words"])])
    gen = rnnkit.load(str(runs["words"]))
    batcher = app.state.models["words"].worker
    # Hold the worker until all eight have arrived, so they certainly start together.
    holder = batcher.submit(GenerateRequest(prompt="t", max_tokens=1))
    holder.wait()

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            return await asyncio.gather(*[
                ac.post("/v1/models/words/generate", json={"prompt": "the", "max_tokens": 40,
                                                           "temperature": 1.0, "seed": s}) for s in range(8)])

    steps_before = batcher.steps
    replies = asyncio.run(ask_all())
    for seed, r in enumerate(replies):
        assert r.json()["text"] == gen.generate("the", 40, temperature=1.0, seed=seed)
    assert batcher.steps - steps_before < 8 * 40 / 2          # one by one would take 320 steps
    batcher.close()


def test_one_at_a_time_batcher_steps_each_request_alone(runs):
    gen = rnnkit.load(str(runs["words"]))
    batcher = gen.serving_worker(max_batch=1)
    jobs = [batcher.submit(GenerateRequest(prompt="the", max_tokens=20, temperature=0.7, seed=s)) for s in range(3)]
    for job in jobs:
        assert job.wait(30)
    assert batcher.steps == 60 and batcher.mean_batch == 1.0
    assert [job.result()["text"] for job in jobs] == [gen.generate("the", 20, temperature=0.7, seed=s)
                                                       for s in range(3)]
    batcher.close()


def test_the_batcher_takes_the_librarys_processors_and_several_results_per_request(runs):
    """greedy, top-k and top-p rows stepped together, each as generate gives it; num_results as one request."""
    gen = rnnkit.load(str(runs["words"]))
    batcher = gen.serving_worker(max_batch=8)
    asks = [dict(greedy=True), dict(top_k=3, temperature=0.9), dict(top_p=0.8, temperature=1.2),
            dict(top_k=5, top_p=0.9, temperature=0.6, num_results=3)]
    jobs = [batcher.submit(GenerateRequest(prompt="the ", max_tokens=30, seed=11, **a)) for a in asks]
    for job, ask in zip(jobs, asks):
        assert job.wait(30)
        want = gen.generate("the ", 30, seed=11, **ask)
        got = [r["text"] for r in job.result()["results"]]
        assert got == (want if isinstance(want, list) else [want])
        assert gen.apply({"prompt": "the ", "max_tokens": 30, "seed": 11, **ask})["results"] == job.result()["results"]
    batcher.close()


def test_word_level_tokens_stream_with_the_spaces_between_them(tmp_path):
    run = tmp_path / "wordrun"
    TextGenerator(level="word", hidden_size=16, num_layers=1, embedding_size=8, seq_len=8, batch_size=4, epochs=1,
                  sample_max_tokens=0, warmup_steps=0).fit(CORPUS, run_dir=str(run), progress=False)
    c = TestClient(create_app([str(run)]))
    r = c.post("/v1/models/wordrun/generate", json={"prompt": "the cat", "max_tokens": 12, "seed": 2, "stream": True})
    events = sse_events(r.text)
    words = [data["text"] for kind, data in events if kind == "token"]
    assert words[0] != "" and not words[0].startswith(" ") and all(w.startswith(" ") for w in words[1:])
    assert "".join(words) == events[-1][1]["text"] == rnnkit.load(str(run)).generate("the cat", 12, seed=2)


def test_a_client_that_goes_away_mid_stream_frees_its_row(runs):
    app = create_app([str(runs["words"])], config=ServeConfig(max_tokens=1_000_000))
    batcher = app.state.models["words"].worker
    with live_server(app) as url:
        with httpx.stream("POST", f"{url}/v1/models/words/generate",
                          json={"prompt": "the", "max_tokens": 1_000_000, "stream": True}) as r:
            tokens = 0
            for line in r.iter_lines():
                tokens += line.startswith("event: token")
                if tokens == 20:
                    break                                  # and hang up
        deadline, rows = time.monotonic() + 20, -1
        while batcher.rows != rows and time.monotonic() < deadline:   # until no row is stepped any more
            rows = batcher.rows
            time.sleep(0.5)
        assert batcher.rows == rows < 100_000
        assert httpx.post(f"{url}/v1/models/words/generate", json={"prompt": "the", "max_tokens": 3}).json()["tokens"] == 3


def test_classify_gives_the_classifiers_probabilities(client, runs):
    texts = ["a great film", "awful story and music"]
    r = client.post("/v1/models/reviews/classify", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = rnnkit.load(str(runs["reviews"])).predict_proba(texts)
    assert body["classes"] == ["neg", "pos"] and body["model"] == "reviews"
    got = np.array([[p["probabilities"]["neg"], p["probabilities"]["pos"]] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert [p["label"] for p in body["predictions"]] == ["pos", "neg"]


def test_forecast_of_the_runs_own_data_and_of_a_posted_table(client, runs):
    fc = rnnkit.load(str(runs["weather"]))
    r = client.post("/v1/models/weather/forecast", json={"history": 48})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["targets"] == ["y"] and body["forecast"] == fc.predict()
    assert len(body["history"]) == 48 and body["history"][-1]["time"] == "2022-05-10T23:00:00"
    # A posted table: the last 30 hours of a shifted cycle.
    t = np.arange(30)
    table = {"time": [f"{np.datetime64('2023-01-01T00') + np.timedelta64(int(i), 'h')}:00:00" for i in t],
             "y": (20 + 5 * np.sin(2 * np.pi * t / 24)).round(6).tolist()}
    r = client.post("/v1/models/weather/forecast", json={"table": table, "history": 0})
    expected = fc.predict({"time": np.array(table["time"], dtype=object), "y": np.array(table["y"])})
    assert r.json()["forecast"] == expected and r.json()["history"] == []
    assert expected[0]["time"] == "2023-01-02T08:00:00"


def test_translate_gives_the_models_outputs_and_attention(client, runs):
    s2s = rnnkit.load(str(runs["reverse"]))
    r = client.post("/v1/models/reverse/translate", json={"texts": ["abc", "cab"], "attention": True})
    assert r.status_code == 200, r.text
    items = r.json()["translations"]
    assert [t["text"] for t in items] == s2s.translate(["abc", "cab"])
    for t in items:
        attention = np.array(t["attention"])     # (output steps, <eos> included when emitted; source tokens)
        assert attention.shape[1] == 3 and attention.shape[0] - len(t["tokens"]) in (0, 1)
        np.testing.assert_allclose(attention.sum(1), 1.0, atol=1e-3)
    beam = client.post("/v1/models/reverse/translate", json={"texts": ["abc"], "beam": 3, "num_results": 2}).json()
    assert beam["translations"][0]["text"] == s2s.translate("abc", beam=3)
    assert [h["text"] for h in beam["translations"][0]["results"]] == [
        h.text for h in s2s.translate("abc", beam=3, num_results=2).hypotheses]
    assert "deprecated" not in beam


def test_embeddings_give_the_vector_and_the_nearest_words(client):
    r = client.post("/v1/models/toy/embeddings", json={"word": "king", "num_results": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vector"] == pytest.approx([0.9, 0.1, 0.0])
    assert [n["word"] for n in body["neighbors"]] == ["queen", "prince"]
    king, queen = np.array(VECTORS[0][1]), np.array(VECTORS[1][1])
    assert body["neighbors"][0]["similarity"] == pytest.approx(king @ queen / np.linalg.norm(king) / np.linalg.norm(queen),
                                                               rel=1e-5)


# --- bad input: a JSON error naming the field and the constraint -----------------------------------------

@pytest.mark.parametrize("body, field, phrase", [
    ({"prompt": "the", "temperature": 9}, "temperature", "less than or equal to 5"),
    ({"prompt": "the", "temperature": -0.5}, "temperature", "greater than or equal to 0"),
    ({"prompt": "the", "max_tokens": -3}, "max_tokens", "greater than or equal to 1"),
    ({"prompt": "the", "max_tokens": 301}, "max_tokens", "less than or equal to 300"),
    ({"prompt": "the", "top_p": 0}, "top_p", "greater than 0"),
    ({"prompt": "x" * 2001}, "prompt", "at most 2000 characters"),
    ({"prompt": "the", "temprature": 0.5}, "temprature", "Extra inputs are not permitted"),
    ({"prompt": 5}, "prompt", "valid string"),
    ({"prompt": "the ZEBRA"}, "prompt", "unseen: 'Z', 'E', 'B', 'R', 'A'"),
])
def test_generate_refuses_bad_fields_by_name(client, body, field, phrase):
    assert_error(client.post("/v1/models/words/generate", json=body), 422, field, phrase)


def test_unknown_model_lists_the_known_ones_and_a_wrong_task_names_the_right_endpoint(client):
    body = assert_error(client.post("/v1/models/nope/generate", json={}), 404, "model", "model 'nope' is not served")
    assert "known models: words, reviews, weather, reverse, toy" in body["error"]
    assert_error(client.post("/v1/models/words/classify", json={"texts": ["a"]}), 400, "model",
                 "'words' is a textgen model, which /classify does not serve", "(served: reviews)",
                 "/v1/models/words/generate")
    assert_error(client.get("/v1/nothing"), 404, "path", "GET /v1/nothing: Not Found")


def test_body_problems_are_4xx_with_the_reason(runs):
    app = create_app([str(runs["words"])], config=ServeConfig(max_body_bytes=200))
    c = TestClient(app)
    url = "/v1/models/words/generate"
    assert_error(c.post(url, json={"prompt": "the " * 100}), 413, "body", "larger than max_body_bytes=200")
    assert_error(c.post(url, content=b'{"prompt": "\xff\xfe"}', headers={"content-type": "application/json"}),
                 400, "body", "byte 0xff at position 12 is not UTF-8")
    assert_error(c.post(url, content='{"prompt": "the"}'.encode("utf-16"),
                        headers={"content-type": "application/json"}), 400, "body", "not UTF-8")
    body = assert_error(c.post(url, content=b'{"prompt": "the"', headers={"content-type": "application/json"}),
                        422, "body")
    assert "valid JSON" in body["constraint"]
    assert_error(c.post(url, content=b"[1, 2]", headers={"content-type": "application/json"}), 422, "body")


def test_inputs_the_model_cannot_take_are_422s_naming_the_field(client):
    assert_error(client.post("/v1/models/reviews/classify", json={"series": [[[1.0]]]}), 422, "texts",
                 "texts: this classifier reads text; expected \"texts\": a list of strings, not \"series\"")
    assert_error(client.post("/v1/models/reviews/classify", json={"texts": ["a"] * 9}), 422, "texts",
                 "at most 8 items")
    assert_error(client.post("/v1/models/weather/forecast", json={"table": {"when": [1, 2], "y": [1.0, 2.0]}}),
                 422, "table", "time_col='time'")
    assert_error(client.post("/v1/models/weather/forecast", json={"table": {"time": ["2022-01-01"] * 3, "y": [1.0]}}),
                 422, "table", "columns of different lengths (time: 3, y: 1)")
    assert_error(client.post("/v1/models/reverse/translate", json={"texts": ["abc"], "beam": 0}), 422, "beam")
    assert_error(client.post("/v1/models/toy/embeddings", json={"word": "kign"}), 404, "word",
                 "word='kign': not in the vocabulary", "did you mean 'king'")


def test_a_fault_inside_a_model_is_a_json_500_and_the_server_goes_on(client):
    reviews = client.app.state.models["reviews"]
    real = reviews.obj

    class Broken:                       # the loaded classifier, with an apply that fails
        def __getattr__(self, name):
            return getattr(real, name)

        def apply(self, request):
            raise KeyError("weights")

    reviews.obj = Broken()
    try:
        c = TestClient(client.app, raise_server_exceptions=False)
        r = c.post("/v1/models/reviews/classify", json={"texts": ["a"]})
    finally:
        reviews.obj = real
    assert r.status_code == 500 and r.json()["error"] == "internal error: KeyError: 'weights'"
    assert client.post("/v1/models/reviews/classify", json={"texts": ["a"]}).status_code == 200


def test_a_request_past_the_time_limit_is_a_504(runs):
    app = create_app([str(runs["words"])], config=ServeConfig(timeout=1e-6))
    body = assert_error(TestClient(app).post("/v1/models/words/generate", json={"prompt": "the"}), 504,
                        "max_tokens", "generation took longer than timeout=1e-06 s")
    assert "ask for fewer max_tokens" in body["error"]


def test_openapi_schema_shows_the_limits(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/models", "/v1/models/{model}/generate", "/v1/models/{model}/classify", "/v1/models/{model}/forecast",
            "/v1/models/{model}/translate", "/v1/models/{model}/predict",
            "/v1/models/{model}/embeddings"} <= set(schema["paths"])
    generate = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert generate["max_tokens"]["maximum"] == 300 and generate["temperature"]["maximum"] == 5.0
    translate = schema["components"]["schemas"]["TranslateRequest"]["properties"]
    assert translate["max_tokens"]["anyOf"][0]["maximum"] == 300 and translate["texts"]["maxItems"] == 8


RETIRED = ("seed_text", "length", "random_seed", "n_best", "max_length", "num_samples", "top", "max_top")


def test_openapi_schema_uses_no_retired_spelling(client):
    """Every property of every request body is a name of the one vocabulary (prompt, max_tokens, seed,
    num_results, ...): none of rnnkit 0.1's spellings."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    bodies = [name for name in schemas if name.endswith("Request")]
    assert {"GenerateRequest", "ClassifyRequest", "ForecastRequest", "TranslateRequest", "PredictRequest",
            "EmbeddingsRequest"} <= set(bodies)
    used = {prop for name in bodies for prop in schemas[name]["properties"]}
    assert not used & set(RETIRED), used & set(RETIRED)
    assert {"prompt", "max_tokens", "seed", "num_results", "greedy"} <= used


def test_old_field_names_still_work_for_one_release_with_a_note(client, runs):
    r = client.post("/v1/models/reverse/translate", json={"texts": ["abc"], "max_length": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["translations"][0]["tokens"]) <= 2
    assert r.json()["deprecated"] == ["max_length is renamed max_tokens; the old name goes in the next release"]
    r = client.post("/v1/models/toy/embeddings", json={"word": "king", "top": 1})
    assert [n["word"] for n in r.json()["neighbors"]] == ["queen"]
    assert r.json()["deprecated"] == ["top is renamed num_results; the old name goes in the next release"]
    assert_error(client.post("/v1/models/toy/embeddings", json={"word": "king", "top": 1, "num_results": 2}), 422,
                 "body", "top and num_results: the same setting twice")


# --- fuzzing: whatever arrives, no 5xx and the server stays up ---------------------------------------------

def test_fuzzed_requests_never_get_a_5xx(client):
    pytest.importorskip("hypothesis", reason='the fuzz test needs hypothesis: pip install "rnnkit[test]"')
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=30)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                               inner, max_size=4),
                          max_leaves=12)
    fields = {
        "generate": st.fixed_dictionaries({}, optional={
            "prompt": st.text(alphabet="the catsordmg.lZ\n\x00é", max_size=40) | values,
            "max_tokens": st.integers(-5, 400) | values, "temperature": st.floats(-1, 6) | values,
            "top_k": st.integers(-2, 50) | st.none(), "top_p": st.floats(-0.5, 1.5) | st.none(),
            "seed": st.integers(-1, 2**64) | values, "stream": st.booleans()}),
        "classify": st.fixed_dictionaries({}, optional={"texts": st.lists(st.text(max_size=50), max_size=10) | values,
                                                        "series": values}),
        "forecast": st.fixed_dictionaries({}, optional={
            "table": st.dictionaries(st.sampled_from(["time", "y", "z"]),
                                     st.lists(st.floats(-1e6, 1e6) | st.integers(0, 100) | st.none() | st.text(max_size=12),
                                              max_size=40), max_size=3) | values,
            "history": st.integers(-5, 20000)}),
        "translate": st.fixed_dictionaries({}, optional={"texts": st.lists(st.text(max_size=30), max_size=10) | values,
                                                         "beam": st.integers(-1, 20) | values,
                                                         "max_tokens": st.integers(-1, 400) | st.none(),
                                                         "num_results": st.integers(-1, 20) | values,
                                                         "attention": st.booleans() | values}),
        "embeddings": st.fixed_dictionaries({}, optional={"word": st.text(max_size=10) | values,
                                                          "num_results": st.integers(-1, 200) | values}),
    }
    models = {"generate": "words", "classify": "reviews", "forecast": "weather", "translate": "reverse",
              "embeddings": "toy"}
    requests = st.one_of(
        *[st.tuples(st.just(endpoint), st.sampled_from([model, "nope", "words"]), body.map(json.dumps).map(str.encode))
          for endpoint, (model, body) in ((e, (models[e], fields[e])) for e in fields)],
        st.tuples(st.sampled_from(list(fields)), st.sampled_from(list(models.values())), st.binary(max_size=60)))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(requests)
    def check(request):
        endpoint, model, body = request
        r = client.post(f"/v1/models/{model}/{endpoint}", content=body, headers={"content-type": "application/json"})
        assert r.status_code < 500, (endpoint, body, r.text)
        if r.status_code >= 400:
            error = r.json()
            assert error["status"] == r.status_code and error["error"] and "field" in error

    check()
    assert client.get("/v1/models").status_code == 200


# --- loading models: run directories, registered versions, refusals -----------------------------------------

def test_the_model_registry_serves_the_promoted_and_a_given_version(runs, tmp_path, monkeypatch):
    from rnnkit.runs import registry
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    reg = registry.Registry()
    reg.register(runs["words"], "poet")
    reg.register(runs["words"], "poet")
    reg.promote("poet", 2)
    c = TestClient(create_app(["poet", "poet@1"]))
    for model, version in (("poet", 2), ("poet@1", 1)):
        r = c.post(f"/v1/models/{model}/generate", json={"prompt": "the", "max_tokens": 5, "seed": 1})
        assert (r.json()["model"], r.json()["version"], r.headers["x-rnnkit-version"]) == (model, version, str(version))
    with pytest.raises(ValueError, match=r"poet@7: no such version; expected one of poet@1, poet@2"):
        create_app(["poet@7"])
    with pytest.raises(ValueError, match=r"model 'verse': not registered .* expected one of poet"):
        create_app(["verse"])


def test_unfinished_and_missing_runs_are_refused(runs, tmp_path, ctrl_c_at_step, capsys):
    """A run whose training was stopped after one step is refused in one line that says how to finish it, unless
    its checkpoint is asked for explicitly (--checkpoint)."""
    run = tmp_path / "stopped"
    ctrl_c_at_step(1)       # fit saves its checkpoint and returns: the run is not finished
    TextGenerator(hidden_size=16, num_layers=1, embedding_size=8, seq_len=16, batch_size=8, epochs=2,
                  sample_max_tokens=0, warmup_steps=0).fit(CORPUS, run_dir=str(run), progress=False)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run))}: its training has not finished .*finish it with "
                                         rf"rnnkit textgen train --run-dir {re.escape(str(run))} --resume, or use "
                                         r"its last checkpoint explicitly") as err:
        create_app([str(run)])
    assert "\n" not in str(err.value)
    assert main(["serve", str(run), "--port", "0"]) == 2
    assert "rnnkit: error: " in capsys.readouterr().err
    app = create_app([str(run)], config=ServeConfig(checkpoint="last"))
    r = TestClient(app).post("/v1/models/stopped/generate", json={"prompt": "the", "max_tokens": 5})
    assert r.status_code == 200 and r.json()["tokens"] == 5
    with pytest.raises(FileNotFoundError, match=r"nope: no such run directory"):
        create_app([str(tmp_path / "nope")])
    with pytest.raises(ValueError, match=r"served as 'words', like"):
        create_app([str(runs["words"]), str(runs["words"])])


def test_cli_says_how_to_install_the_extra_and_refuses_no_models(runs, capsys, monkeypatch):
    assert main(["serve"]) == 2
    assert "rnnkit: error: RUN_OR_NAME: none given" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)                    # as if the extra were not installed
    assert main(["serve", str(runs["words"])]) == 2
    assert ('rnnkit: error: rnnkit serve needs FastAPI and uvicorn (uvicorn is not installed): '
            'pip install "rnnkit[serve]"') in capsys.readouterr().err


def test_cli_serves_a_run_and_refuses_a_busy_port(runs, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(runs["words"]), "--port", str(port)]) == 2
        assert (f"rnnkit: error: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use)"
                in capsys.readouterr().err)
    server = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "serve", str(runs["words"]), "--port", str(port),
                               "--max-tokens", "50"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["models"]
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert [m["model"] for m in models] == ["words"]
        r = httpx.post(f"http://127.0.0.1:{port}/v1/models/words/generate", json={"prompt": "the", "max_tokens": 51})
        assert_error(r, 422, "max_tokens", "less than or equal to 50")
        assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
    finally:
        server.terminate()
        err = server.communicate(timeout=30)[1]
    assert "serving words (textgen) at /v1/models/words/generate" in err and "Traceback" not in err
