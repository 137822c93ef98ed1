"""The HTTP API: one FastAPI application that serves trained runs, each at the endpoint of its task.

    GET  /                                 the playground page (static/index.html)
    GET  /v1/models                        the models served: name, version, task, endpoint, what they take
    POST /v1/models/{model}/{endpoint}     a task's uniform apply, at its endpoint: generate (textgen),
                                           classify, forecast, translate (seq2seq), predict (multilabel), and
                                           whatever endpoint a registered task names
    POST /v1/models/{model}/embeddings     word vectors: a word's vector and its nearest neighbours
    GET  /openapi.json                     the schema of all of it (no /docs page: it would load a CDN)
    GET  /healthz, /readyz                 alive; ready (every model loaded, its batcher running, not stopping)
    GET  /metrics                          Prometheus metrics (rnnkit.serve.metrics)

This module assembles the pieces: the models served (:class:`ServedModel`), the routers
(:mod:`rnnkit.serve.routes`), the error handlers (:mod:`rnnkit.serve.errors`: every error is one JSON object
naming the field and the constraint) and the middleware in front of every request, outermost first: the
metrics and access log (:mod:`rnnkit.serve.metrics`), the Host check and the API key
(:mod:`rnnkit.serve.security`), and the body check in front of every POST (:class:`~rnnkit.serve.errors.BodyCheck`). The server asks the Task
protocol what a model takes (``request_class``), how to apply it (``apply``, or its ``serving_worker`` for
generation: continuous batching) and what to list (``describe``): adding a task touches nothing here.

Every answer that comes from a model names it: ``"model"`` and ``"version"`` in the JSON, and the headers
``X-Rnnkit-Model`` / ``X-Rnnkit-Version``. ``{model}`` is the name a model is served under: a run
directory's folder name, a registered ``NAME`` (its promoted version, followed while serving: a version promoted
later is loaded and swapped in at the next request, see :mod:`rnnkit.serve.versions`) or ``NAME@3``. A
request is held to the limits of :class:`~rnnkit.serve.ServeConfig`: the body's size (413), each field's range
(422), and a time limit (504). :func:`begin_shutdown` (SIGTERM, see :mod:`rnnkit.serve.cli`) ends the generation streams in
flight with an ``error`` event and ``done``, and answers generation requests in flight 503.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import rnnkit
from rnnkit.runs.registry import Registry
from rnnkit.serve import ServeConfig
from rnnkit.serve.errors import ApiError, BodyCheck, SafeJSONResponse, error_response, validation_response
from rnnkit.serve.metrics import Metrics, Observe
from rnnkit.serve.security import ApiKeyCheck, HostCheck, allowed_hosts
from rnnkit.serve.routes import embeddings as embedding_routes
from rnnkit.serve.routes import models as model_routes
from rnnkit.serve.routes import tasks as task_routes
from rnnkit.serve.versions import FollowPromoted, VersionFollower
from rnnkit.tasks.base import Task, discover_tasks

log = logging.getLogger("rnnkit.serve")


@dataclass
class ServedModel:
    """One model the server answers with: where it came from, the loaded object and its endpoint."""

    key: str                  # the name in URLs: /v1/models/{key}/...
    name: str
    version: Optional[int]    # the registry's version; None for a run directory served by its path
    task: str                 # the task's registered name ("embeddings" for word vectors)
    path: Optional[str]
    promoted: bool
    obj: Any                  # a fitted Task, or an Embeddings table
    endpoint: str             # the last part of its URL: the task's endpoint, or "embeddings"
    worker: Any = None        # the task's serving_worker, when it has one

    @property
    def source(self) -> str:
        """Where the model came from, as clients may see it: ``NAME@VERSION`` of the registry, or the folder
        (or file) name; never the server's filesystem path."""
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return Path(self.path).name if self.path else self.name

    def describe(self) -> dict[str, Any]:
        out = {"model": self.key, "name": self.name, "version": self.version, "task": self.task,
               "promoted": self.promoted, "source": self.source,
               "endpoint": f"/v1/models/{self.key}/{self.endpoint}"}
        if isinstance(self.obj, Task):
            info = self.obj.describe()
            out["takes"] = info["takes"]
            out["details"] = {**info["details"], **(self.worker.details() if self.worker is not None else {})}
        else:
            out["details"] = {"words": len(self.obj), "dim": self.obj.dim, "source": self.source}
        return out

    def headers(self) -> dict[str, str]:
        return {"X-Rnnkit-Model": self.key, "X-Rnnkit-Version": "" if self.version is None else str(self.version)}

    def stamp(self) -> dict[str, Any]:
        """What every answer of this model starts with."""
        return {"model": self.key, "version": self.version}


def load_model(spec: str, config: ServeConfig, registry: Optional[Registry] = None) -> ServedModel:
    """Resolve and load one model to serve: a run directory, ``NAME`` (its promoted version) or ``NAME@3``.
    A run whose training did not finish is refused (unless ``config.checkpoint`` asks for its checkpoint)."""
    mv = (registry or Registry()).resolve(spec)
    explicit_version = "@" in str(spec) and not Path(spec).is_dir()
    key = f"{mv.name}@{mv.version}" if explicit_version else mv.name
    options = {} if config.checkpoint is None else {"checkpoint": config.checkpoint}
    obj = rnnkit.load(str(mv.path), **options)
    if obj.request_class is None:
        raise ValueError(f"{spec}: a {mv.task!r} run, whose task defines no request_class (what a request holds); "
                         f"expected a run of a task rnnkit serve can apply")
    worker = obj.serving_worker(config.max_batch if config.batching else 1)
    if getattr(worker, "sessions", None) is not None:     # a worker that keeps generation sessions
        worker.sessions.configure(config.session_ttl, config.max_sessions)
    return ServedModel(key, mv.name, mv.version, mv.task, str(mv.path), bool(mv.promoted), obj, obj.endpoint, worker)


def load_embeddings(source: str) -> ServedModel:
    """Word vectors to serve: a dataset name (glove-50d) or a GloVe text file."""
    from rnnkit.tasks.embeddings.task import Embeddings

    emb = Embeddings.load(source)
    key = Path(source).stem if Path(source).is_file() else str(source)
    return ServedModel(key, key, None, "embeddings", str(source), False, emb, embedding_routes.ENDPOINT)


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

    # A model served as NAME follows the registry's promoted version (rnnkit.serve.versions).
    registry = Registry()
    follower = VersionFollower(served, registry, lambda name, version: load_model(f"{name}@{version}", config,
                                                                                  registry))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        follower.close()
        for m in served.values():          # shutting down: end the workers' threads
            if m.worker is not None:
                m.worker.close()

    app = FastAPI(title="rnnkit", version=rnnkit.__version__, docs_url=None, redoc_url=None,
                  default_response_class=SafeJSONResponse, lifespan=lifespan,
                  description="Recurrent models trained with rnnkit: each at its task's endpoint "
                              "(generate, classify, forecast, translate, ...), and word vectors.")
    app.state.models = served
    app.state.config = config
    app.state.metrics = Metrics()
    app.state.shutting_down = False
    app.state.versions = follower
    # Starlette runs the middleware added last first: Observe sees every request, refusals included; a newly
    # promoted version is looked for last, for requests that passed every check.
    app.add_middleware(FollowPromoted, follower=follower)
    app.add_middleware(BodyCheck, max_bytes=config.max_body_bytes, timeout=config.body_timeout)
    if config.api_key is not None:
        app.add_middleware(ApiKeyCheck, key=config.api_key)
    hosts = allowed_hosts(config.host, config.allowed_hosts)
    if hosts is not None:
        app.add_middleware(HostCheck, allowed=hosts)
    app.add_middleware(Observe, metrics=app.state.metrics, log=config.access_log)
    app.mount("/static", StaticFiles(directory=model_routes.STATIC), name="static")

    # Every registered task has its endpoint (the schema does not depend on which models are served), and so
    # has the task of every model served (a task registered outside rnnkit's own packages).
    task_classes = dict(discover_tasks())
    for m in served.values():
        if isinstance(m.obj, Task):
            task_classes.setdefault(m.task, type(m.obj))
    app.include_router(model_routes.router(served))
    app.include_router(task_routes.router(served, config, list(task_classes.values())))
    app.include_router(embedding_routes.router(served, config))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.field, exc.constraint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return validation_response(exc)

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

    return app


def begin_shutdown(app: FastAPI) -> None:
    """The server is stopping (SIGTERM): /readyz says so, and every batcher ends its streams now ("the server
    is shutting down": an ``error`` event and ``done`` for a stream, 503 for a JSON request) instead of the
    stopping server waiting for them. Requests answered by a task's ``apply`` finish. Safe in a signal handler:
    nothing here waits."""
    app.state.shutting_down = True
    app.state.versions.close(wait=False)
    for m in app.state.models.values():
        if m.worker is not None:
            m.worker.close(wait=False)
