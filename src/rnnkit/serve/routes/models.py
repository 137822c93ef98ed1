"""The page, the model list and the probes: ``GET /`` (the playground), ``GET /v1/models``, ``GET /healthz``
(the process answers), ``GET /readyz`` (it takes requests: every model loaded, every batcher running, not
shutting down; else 503), ``GET /metrics`` (Prometheus)."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from rnnkit.serve.errors import error_response
from rnnkit.serve.metrics import CONTENT_TYPE

STATIC = Path(__file__).resolve().parent.parent / "static"


def router(served: dict[str, Any]) -> APIRouter:
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def playground():
        return FileResponse(STATIC / "index.html")

    @r.get("/v1/models", summary="The models served: name, version, task, endpoint, what they take")
    def list_models():
        return {"models": [m.describe() for m in served.values()]}

    @r.get("/healthz", include_in_schema=False)
    def health():
        return {"status": "ok"}

    @r.get("/readyz", include_in_schema=False)
    def ready(request: Request):
        # The models were loaded before the application was made: what can stop being ready is a batcher.
        if request.app.state.shutting_down:
            return error_response(503, "not ready: the server is shutting down")
        stopped = [key for key, m in served.items() if m.worker is not None and not m.worker.alive]
        if stopped:
            return error_response(503, f"not ready: the batcher of {', '.join(stopped)} is not running")
        return {"status": "ready", "models": list(served)}

    @r.get("/metrics", include_in_schema=False)
    def metrics(request: Request):
        return Response(request.app.state.metrics.render(served), media_type=CONTENT_TYPE)

    return r
