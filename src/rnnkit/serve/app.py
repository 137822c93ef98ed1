"""The HTTP API: one FastAPI application that serves trained runs, each at the endpoint of its task.

    GET  /                                 the playground page (static/index.html)
    GET  /v1/models                        the models served: name, version, task, endpoint, what they take
    POST /v1/models/{model}/generate       textgen: continue a prompt (JSON; server-sent events with "stream": true)
    POST /v1/models/{model}/classify       classify: class probabilities of texts (or of series)
    POST /v1/models/{model}/forecast       forecast: the next values after a table (default: the run's own data)
    POST /v1/models/{model}/translate      seq2seq: the output of each text, with its attention on request
    POST /v1/models/{model}/embeddings     word vectors: a word's vector and its nearest neighbours
    GET  /openapi.json                     the schema of all of it (no /docs page: it would load a CDN)

Every answer that comes from a model names it: ``"model"`` and ``"version"`` in the JSON, and the headers
``X-Rnnkit-Model`` / ``X-Rnnkit-Version``. ``{model}`` is the name a model is served under: a run
directory's folder name, a registered ``NAME`` (its promoted version) or ``NAME@3``.

A request is held to the limits of :class:`~rnnkit.serve.ServeConfig`: the body's size (413), each field's
range (the request models below; 422), and a time limit (504). Every error is one JSON object::

    {"status": 422, "error": "temperature: Input should be less than or equal to 5 (got 9)",
     "field": "temperature", "constraint": "Input should be less than or equal to 5", "errors": [...]}

Generation requests go through :class:`~rnnkit.serve.batching.BatchedGenerator`: the requests for one text
model are stepped together, one forward pass per token for all of them.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the request models from the endpoint
# annotations, and those models are classes made inside create_app (their limits come from the config).

import asyncio
import contextlib
import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import rnnkit
from rnnkit.runs.registry import Registry
from rnnkit.serve import ServeConfig
from rnnkit.serve.batching import BatchedGenerator

log = logging.getLogger("rnnkit.serve")

STATIC = Path(__file__).parent / "static"

# task -> the endpoint that serves it (and the name of that endpoint in URLs)
ENDPOINTS = {"textgen": "generate", "classify": "classify", "forecast": "forecast", "seq2seq": "translate",
             "embeddings": "embeddings"}
MAX_TEMPERATURE = 5.0     # beyond this every token is about equally likely: nothing left to see
MAX_HISTORY = 10_000      # most past points a forecast request may ask back


# ---------------------------------------------------------------------------------------------------------
# The models served
# ---------------------------------------------------------------------------------------------------------

@dataclass
class ServedModel:
    """One model the server answers with: where it came from and the loaded task object."""

    key: str                  # the name in URLs: /v1/models/{key}/...
    name: str
    version: Optional[int]    # the registry's version; None for a run directory served by its path
    task: str                 # "textgen", "classify", "forecast", "seq2seq" or "embeddings"
    path: Optional[str]
    promoted: bool
    obj: Any                  # TextGenerator, SequenceClassifier, Forecaster, Seq2Seq or Embeddings
    batcher: Optional[BatchedGenerator] = None

    def describe(self) -> dict[str, Any]:
        out = {"model": self.key, "name": self.name, "version": self.version, "task": self.task,
               "promoted": self.promoted, "path": self.path,
               "endpoint": f"/v1/models/{self.key}/{ENDPOINTS[self.task]}"}
        obj = self.obj
        if self.task == "textgen":
            out["details"] = {"level": obj.config.level, "cell": obj.config.cell,
                              "vocabulary": obj.tokenizer_.vocab_size - 1,
                              "max_batch": self.batcher.max_batch, "mean_batch": round(self.batcher.mean_batch, 2)}
        elif self.task == "classify":
            out["details"] = {"classes": [str(c) for c in obj.classes_], "input": obj.kind_,
                              "model": obj.config.model}
        elif self.task == "forecast":
            out["details"] = {"targets": list(obj.series_.targets), "columns": list(obj.columns_),
                              "lookback": obj.window_config_.lookback, "delay": obj.window_config_.delay,
                              "horizon": obj.config.horizon, "model": obj.config.model}
        elif self.task == "seq2seq":
            out["details"] = {"attention": obj.config.attention, "source_level": obj.source_level_,
                              "target_level": obj.target_level_}
        else:
            out["details"] = {"words": len(obj), "dim": obj.dim, "source": obj.source}
        return out

    def headers(self) -> dict[str, str]:
        return {"X-Rnnkit-Model": self.key, "X-Rnnkit-Version": "" if self.version is None else str(self.version)}

    def stamp(self) -> dict[str, Any]:
        """What every answer of this model starts with."""
        return {"model": self.key, "version": self.version}


def load_model(spec: str, config: ServeConfig) -> ServedModel:
    """Resolve and load one model to serve; a run of a task no endpoint serves is refused."""
    mv = Registry().resolve(spec)    # a run directory, NAME (its promoted version) or NAME@3
    if mv.task not in ENDPOINTS or mv.task == "embeddings":
        served = ", ".join(t for t in ENDPOINTS if t != "embeddings")
        raise ValueError(f"{spec}: a {mv.task!r} run, which rnnkit serve has no endpoint for; expected a run of "
                         f"one of: {served} (word vectors: --embeddings)")
    explicit_version = "@" in str(spec) and not Path(spec).is_dir()
    key = f"{mv.name}@{mv.version}" if explicit_version else mv.name
    obj = rnnkit.load(str(mv.path))
    model = ServedModel(key, mv.name, mv.version, mv.task, str(mv.path), bool(mv.promoted), obj)
    if mv.task == "textgen":
        model.batcher = BatchedGenerator(obj, max_batch=config.max_batch if config.batching else 1)
    return model


def load_embeddings(source: str) -> ServedModel:
    from rnnkit.tasks.embeddings.task import Embeddings

    emb = Embeddings.load(source)
    key = Path(source).stem if Path(source).is_file() else str(source)
    return ServedModel(key, key, None, "embeddings", str(source), False, emb)


# ---------------------------------------------------------------------------------------------------------
# Errors: one JSON shape for every status
# ---------------------------------------------------------------------------------------------------------

class ApiError(Exception):
    """A refusal with its status, the request field it is about and the constraint that field broke."""

    def __init__(self, status: int, message: str, field: Optional[str] = None, constraint: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.constraint = status, message, field, constraint


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: such floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class SafeJSONResponse(JSONResponse):
    """JSONResponse that writes NaN and infinities as null instead of failing."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(status: int, message: str, field: Optional[str] = None, constraint: Optional[str] = None,
                   errors: Optional[list] = None) -> SafeJSONResponse:
    body = {"status": status, "error": message, "field": field, "constraint": constraint}
    body["errors"] = errors if errors is not None else [{"field": field, "constraint": constraint}]
    return SafeJSONResponse(body, status_code=status)


def _shown(value: Any) -> Any:
    """A request value as an error shows it: short, and JSON-safe."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)[:200]
    return text if len(text) <= 80 else text[:77] + "..."


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as {field, constraint, value}: ``("body", "texts", 3)`` -> ``"texts.3"``."""
    out = []
    for e in exc.errors():
        loc = list(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            reason = (e.get("ctx") or {}).get("error", "JSON decode error")
            out.append({"field": "body", "constraint": f"valid JSON ({reason}{where})", "value": None})
            continue
        parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "path", "query") else [str(p) for p in loc]
        out.append({"field": ".".join(parts) or "body", "constraint": e.get("msg", "invalid"),
                    "value": _shown(e.get("input"))})
    return out


class BodyCheck:
    """ASGI middleware in front of every POST: the body is read first (at most ``max_bytes``, so keeping it
    costs little), a larger one is answered 413 and one that is not UTF-8 400, before any endpoint runs."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_large = error_response(413, f"body: larger than max_body_bytes={self.max_bytes}", "body",
                                   f"at most {self.max_bytes} bytes")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = error_response(400, f"body: byte 0x{body[err.start]:02x} at position {err.start} is not UTF-8; "
                                      f"expected JSON encoded as UTF-8", "body", "UTF-8 encoded JSON")
            return await bad(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()          # afterwards: the client's disconnect, for streaming responses

        await self.app(scope, replay, send)


# ---------------------------------------------------------------------------------------------------------
# Request bodies (their limits come from the config, so they are made per application)
# ---------------------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")     # a misspelt field is an error, not silently ignored


def request_models(config: ServeConfig) -> dict[str, type]:
    Text = Annotated[str, Field(max_length=config.max_text_chars)]
    Finite = Annotated[float, Field(allow_inf_nan=False)]
    Cell = Union[Finite, int, str, None]

    class GenerateRequest(_Strict):
        prompt: str = Field("", max_length=config.max_prompt_chars,
                            description="text to continue (empty: start as after a line)")
        max_tokens: int = Field(200, ge=1, le=config.max_tokens, description="most tokens to generate")
        temperature: float = Field(1.0, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False,
                                   description="0: greedy; below 1 repeats the likely, above 1 invents")
        top_k: Optional[int] = Field(None, ge=1, le=1_000_000, description="keep the k most likely tokens")
        top_p: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False, description="nucleus mass to keep")
        seed: Optional[int] = Field(None, ge=0, le=2**63 - 1, description="same seed, same text (none: random)")
        stream: bool = Field(False, description="answer with server-sent events, one per token")

    class ClassifyRequest(_Strict):
        texts: Optional[list[Text]] = Field(None, min_length=1, max_length=config.max_texts,
                                            description="texts to classify (a text classifier)")
        series: Optional[list[list[list[Finite]]]] = Field(None, min_length=1, max_length=config.max_texts,
                                                           description="series (steps x channels) to classify "
                                                                       "(a series classifier)")

    class ForecastRequest(_Strict):
        table: Optional[dict[str, list[Cell]]] = Field(
            None, max_length=1000, description="columns like the training table's, oldest row first (none: the "
                                               "run's own data)")
        history: int = Field(200, ge=0, le=MAX_HISTORY, description="how many past points to send back")

    class TranslateRequest(_Strict):
        texts: list[Text] = Field(min_length=1, max_length=config.max_texts)
        beam: Optional[int] = Field(None, ge=1, le=config.max_beam, description="beam size (none: greedy)")
        max_length: Optional[int] = Field(None, ge=1, le=config.max_tokens, description="most output tokens")
        attention: bool = Field(False, description="send each output step's attention over the source")

    class EmbeddingsRequest(_Strict):
        word: str = Field(min_length=1, max_length=200)
        top: int = Field(10, ge=1, le=config.max_top, description="how many neighbours")

    return {"generate": GenerateRequest, "classify": ClassifyRequest, "forecast": ForecastRequest,
            "translate": TranslateRequest, "embeddings": EmbeddingsRequest}


# ---------------------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------------------

def create_app(models, embeddings=(), config: Optional[ServeConfig] = None) -> FastAPI:
    """The application serving ``models`` (run directories, ``NAME`` or ``NAME@VERSION``; or ServedModel
    objects) and ``embeddings`` (glove-50d or GloVe text files)."""
    config = config or ServeConfig()
    served: dict[str, ServedModel] = {}
    loaded = [m if isinstance(m, ServedModel) else load_model(m, config) for m in models]
    loaded += [load_embeddings(e) for e in embeddings]
    for m in loaded:
        if m.key in served:
            raise ValueError(f"{m.path}: served as {m.key!r}, like {served[m.key].path}; expected each model once "
                             f"(serve a registered version as NAME@VERSION, or rename one run directory)")
        served[m.key] = m
    if not served:
        raise ValueError("models: none given; expected at least one run directory, NAME, NAME@VERSION or "
                         "--embeddings SOURCE")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for m in served.values():          # shutting down: end the generation threads
            if m.batcher is not None:
                m.batcher.close()

    app = FastAPI(title="rnnkit", version=rnnkit.__version__, docs_url=None, redoc_url=None,
                  default_response_class=SafeJSONResponse, lifespan=lifespan,
                  description="Recurrent models trained with rnnkit: generate, classify, forecast, translate, "
                              "word vectors.")
    app.state.models = served
    app.state.config = config
    app.add_middleware(BodyCheck, max_bytes=config.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    req = request_models(config)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.field, exc.constraint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = validation_errors(exc)
        first = errors[0]
        got = "" if first.get("value") is None else f" (got {json.dumps(first['value'])})"
        return error_response(422, f"{first['field']}: {first['constraint']}{got}", first["field"],
                              first["constraint"], errors)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception):
        # A fault of rnnkit's, not of the request: one line to the client and one in the server's log (with
        # the traceback when RNNKIT_DEBUG=1, as on the command line).
        line = f"internal error: {type(exc).__name__}: {exc}"
        log.error("%s %s: %s", request.method, request.url.path, line,
                  exc_info=os.environ.get("RNNKIT_DEBUG", "") not in ("", "0"))
        return error_response(500, line)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        field = "path" if exc.status_code in (404, 405) else None
        return error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", field,
                              None if field is None else "a path and method of this API (see /openapi.json)")

    # -- helpers the endpoints share ----------------------------------------------------------------------

    def pick(key: str, task: str) -> ServedModel:
        m = served.get(key)
        if m is None:
            known = ", ".join(served)
            raise ApiError(404, f"model {key!r} is not served; known models: {known}", "model", f"one of: {known}")
        if m.task != task:
            same = [k for k, s in served.items() if s.task == task]
            offer = f" (served: {', '.join(same)})" if same else " (none is served)"
            raise ApiError(400, f"model {key!r} is a {m.task} model, which /{ENDPOINTS[task]} does not serve; "
                                f"/{ENDPOINTS[task]} serves {task} models{offer}; {key!r} answers at "
                                f"/v1/models/{key}/{ENDPOINTS[m.task]}", "model", f"a {task} model")
        return m

    async def run_model(fn, field: str):
        """``fn()`` in a worker thread, within the time limit; rnnkit's refusals become 422s naming ``field``.
        (A thread cannot be stopped: past the limit the client gets its 504 and the work ends unseen.)"""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, fn), config.timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the model took longer than timeout={config.timeout:g} s; send less work per "
                                f"request", None, f"at most {config.timeout:g} s") from None
        except (ValueError, FileNotFoundError) as err:
            raise ApiError(422, f"{field}: {err}", field, str(err)) from None

    def answer(m: ServedModel, body: dict[str, Any]) -> SafeJSONResponse:
        return SafeJSONResponse({**m.stamp(), **body}, headers=m.headers())

    # -- pages and the model list ---------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def playground():
        return FileResponse(STATIC / "index.html")

    @app.get("/v1/models", summary="The models served")
    def list_models():
        return {"models": [m.describe() for m in served.values()]}

    @app.get("/healthz", include_in_schema=False)
    def health():
        return {"status": "ok"}

    # -- generate (textgen) ---------------------------------------------------------------------------------

    GenerateRequest = req["generate"]

    @app.post("/v1/models/{model}/generate", summary="Continue a prompt (textgen)")
    async def generate(model: str, body: GenerateRequest):
        m = pick(model, "textgen")
        ids = prompt_ids(m.obj, body.prompt)
        seed = body.seed if body.seed is not None else random.randrange(2**31)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def listener(kind, value):        # called in the batcher's thread
            # A JSON answer waits for the end only: waking the event loop for every token would cost the
            # batcher's thread its time (they share the GIL).
            if body.stream or kind == "done":
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        stream = m.batcher.submit(ids, body.max_tokens, body.temperature, body.top_k, body.top_p, seed,
                                  timeout=config.timeout, listener=listener)
        joiner = "" if m.obj.config.level == "char" else " "

        def piece(token: int, first: bool) -> str:
            word = m.obj.tokenizer_.sequences_to_texts([[token]])[0]
            return word if first or not word else joiner + word

        def result() -> dict[str, Any]:
            return {**m.stamp(), "seed": seed, "text": m.obj.tokenizer_.sequences_to_texts([stream.tokens])[0],
                    "tokens": len(stream.tokens), "finish_reason": stream.finish_reason}

        if body.stream:
            async def sse():
                try:
                    yield _sse("start", {**m.stamp(), "seed": seed})
                    count = 0
                    while True:
                        kind, value = await events.get()
                        if kind == "token":
                            yield _sse("token", {"text": piece(value, count == 0)})
                            count += 1
                        else:
                            if stream.finish_reason in ("timeout", "error", "closed"):
                                yield _sse("error", {**m.stamp(), "error": _stream_error(stream, config)})
                            yield _sse("done", result())
                            return
                finally:
                    m.batcher.cancel(stream)      # the client went away (or all is sent): free its row

            return StreamingResponse(sse(), media_type="text/event-stream",
                                     headers={**m.headers(), "Cache-Control": "no-cache"})
        try:
            while (await events.get())[0] != "done":
                pass
        finally:
            m.batcher.cancel(stream)
        if stream.finish_reason == "timeout":
            raise ApiError(504, _stream_error(stream, config), "max_tokens", f"at most {config.timeout:g} s of work")
        if stream.finish_reason == "closed":
            raise ApiError(503, _stream_error(stream, config))
        if stream.finish_reason == "error":
            raise ApiError(500, _stream_error(stream, config))
        return answer(m, result())

    # -- classify ---------------------------------------------------------------------------------------------

    ClassifyRequest = req["classify"]

    @app.post("/v1/models/{model}/classify", summary="Class probabilities of texts or series (classify)")
    async def classify(model: str, body: ClassifyRequest):
        m = pick(model, "classify")
        clf = m.obj
        field, other = ("texts", "series") if clf.kind_ == "text" else ("series", "texts")
        inputs = getattr(body, field)
        if getattr(body, other) is not None or inputs is None:
            what = "texts (a list of strings)" if field == "texts" else "series (a list of steps x channels arrays)"
            raise ApiError(422, f"{field}: {m.key!r} classifies {clf.kind_}; expected \"{field}\": {what}"
                                + (f", not \"{other}\"" if getattr(body, other) is not None else ""),
                           field, f"required for a {clf.kind_} classifier")
        X = inputs if field == "texts" else [np.asarray(s, dtype=np.float32) for s in inputs]
        probs = await run_model(lambda: clf.predict_proba(X), field)
        classes = [str(c) for c in clf.classes_]
        return answer(m, {"classes": classes, "predictions": [
            {"label": classes[int(np.argmax(p))], "probabilities": dict(zip(classes, map(float, p)))}
            for p in probs]})

    # -- forecast ---------------------------------------------------------------------------------------------

    ForecastRequest = req["forecast"]

    @app.post("/v1/models/{model}/forecast", summary="The next values of a series (forecast)")
    async def forecast(model: str, body: ForecastRequest):
        m = pick(model, "forecast")
        if body.table is not None and len({len(v) for v in body.table.values()}) > 1:
            sizes = ", ".join(f"{c}: {len(v)}" for c, v in body.table.items())
            raise ApiError(422, f"table: columns of different lengths ({sizes}); expected one value per row in "
                                f"every column", "table", "columns of equal length")
        table = None if body.table is None else {c: _column(c, v) for c, v in body.table.items()}
        out = await run_model(lambda: forecast_work(m.obj, table, body.history), "table")
        return answer(m, out)

    # -- translate (seq2seq) ----------------------------------------------------------------------------------

    TranslateRequest = req["translate"]

    @app.post("/v1/models/{model}/translate", summary="Outputs of a sequence-to-sequence model (seq2seq)")
    async def translate(model: str, body: TranslateRequest):
        m = pick(model, "seq2seq")
        results = await run_model(lambda: m.obj.translate(body.texts, beam=body.beam, max_length=body.max_length,
                                                          return_attention=body.attention, details=True), "texts")
        out = []
        for t in results:
            best = t.hypotheses[0]
            item = {"source": t.source, "text": best.text, "source_tokens": t.source_tokens,
                    "tokens": best.tokens, "score": float(best.score), "unknown": t.unknown,
                    "truncated": t.truncated}
            if body.attention:
                item["attention"] = np.round(np.asarray(best.attention, dtype=np.float64), 4).tolist()
            out.append(item)
        return answer(m, {"translations": out})

    # -- embeddings -------------------------------------------------------------------------------------------

    EmbeddingsRequest = req["embeddings"]

    @app.post("/v1/models/{model}/embeddings", summary="A word's vector and its nearest neighbours")
    async def embeddings_(model: str, body: EmbeddingsRequest):
        m = pick(model, "embeddings")
        emb = m.obj
        if body.word not in emb:
            try:
                emb.require(body.word)
            except ValueError as err:
                raise ApiError(404, str(err), "word", f"a word of {m.key}") from None
        neighbors = await run_model(lambda: emb.neighbors(body.word, body.top), "word")
        return answer(m, {"word": body.word, "vector": [float(v) for v in emb.get(body.word)],
                          "neighbors": [{"word": w, "similarity": s} for w, s in neighbors]})

    return app


# ---------------------------------------------------------------------------------------------------------
# The work behind the endpoints
# ---------------------------------------------------------------------------------------------------------

def prompt_ids(gen, prompt: str) -> list[int]:
    """A prompt's token ids as TextGenerator.generate reads a seed; an empty prompt starts as after the end of
    an item (a line corpus) or of a line. A token the model never saw is a 422 naming it."""
    try:
        ids = gen.encode_seed(prompt, unknown="error")
    except ValueError as err:
        raise ApiError(422, str(err).replace("seed_text=", "prompt=", 1), "prompt",
                       "tokens the model saw in training") from None
    if ids:
        return ids
    end = gen.tokenizer_.word_index.get(gen.end_token_) if gen.end_token_ is not None else None
    start = end if end is not None else gen.tokenizer_.word_index.get("\n")
    if start is None:
        raise ApiError(422, f"prompt={prompt!r}: this model's corpus has no end token or newline to start after; "
                            f"expected at least one known token", "prompt", "at least one known token")
    return [start]


def _stream_error(stream, config: ServeConfig) -> str:
    if stream.finish_reason == "timeout":
        return (f"generation took longer than timeout={config.timeout:g} s ({len(stream.tokens)} tokens generated); "
                f"ask for fewer max_tokens")
    return stream.error or f"generation stopped: {stream.finish_reason}"


def _sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event: ``event: NAME`` and one ``data:`` line of JSON."""
    return f"event: {event}\ndata: {json.dumps(_finite(data), ensure_ascii=False)}\n\n"


def _column(name: str, values: list) -> np.ndarray:
    """A JSON column as the CSV reader types one: int64, float64 (null -> NaN) or str."""
    from rnnkit.datasets.files import _typed

    return _typed(["" if v is None else str(v) for v in values])


def forecast_work(fc, table: Optional[dict[str, np.ndarray]], history: int) -> dict[str, Any]:
    """The forecast after ``table`` (None: the run's own data) and its last ``history`` target values."""
    rows = fc.predict(table)
    source = "table"
    if table is None:
        from rnnkit.tasks.forecast.data import load_source
        table, source = load_source(fc.config)
    series = fc._inputs(table, source)[0]          # the table prepared as predict prepares it
    targets = list(series.targets)
    past = []
    if history:
        for t, row in zip(series.times[-history:], series.values[-history:]):   # the targets come first
            past.append({"time": str(t), **{name: float(row[k]) for k, name in enumerate(targets)}})
    return {"targets": targets, "history": past, "forecast": rows}
