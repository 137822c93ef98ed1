"""The page and the model list: ``GET /`` (the playground), ``GET /v1/models``, ``GET /healthz``."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

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

    return r
