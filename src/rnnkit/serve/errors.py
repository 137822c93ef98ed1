"""Errors of the HTTP API: one JSON shape for every status, and the checks on a request body before any
endpoint runs.

Every error is one JSON object::

    {"status": 422, "error": "temperature: Input should be less than or equal to 5 (got 9)",
     "field": "temperature", "constraint": "Input should be less than or equal to 5", "errors": [...]}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A refusal with its status, the request field it is about and the constraint that field broke."""

    def __init__(self, status: int, message: str, field: Optional[str] = None, constraint: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.constraint = status, message, field, constraint


def finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: such floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


class SafeJSONResponse(JSONResponse):
    """JSONResponse that writes NaN and infinities as null instead of failing."""

    def render(self, content: Any) -> bytes:
        return json.dumps(finite(content), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(status: int, message: str, field: Optional[str] = None, constraint: Optional[str] = None,
                   errors: Optional[list] = None) -> SafeJSONResponse:
    body = {"status": status, "error": message, "field": field, "constraint": constraint}
    body["errors"] = errors if errors is not None else [{"field": field, "constraint": constraint}]
    return SafeJSONResponse(body, status_code=status)


def shown(value: Any) -> Any:
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
                    "value": shown(e.get("input"))})
    return out


def validation_response(exc: RequestValidationError) -> SafeJSONResponse:
    errors = validation_errors(exc)
    first = errors[0]
    got = "" if first.get("value") is None else f" (got {json.dumps(first['value'])})"
    return error_response(422, f"{first['field']}: {first['constraint']}{got}", first["field"], first["constraint"],
                          errors)


_NAMED = re.compile(r"([A-Za-z_]\w*)")


def refused_field(err: Exception, fields: list[str]) -> str | None:
    """The request field a task's refusal (a ValueError) is about: the name its message starts with
    (``max_tokens=0: expected ...``, ``texts[2]: ...``) when that is one of ``fields``, else the first field."""
    match = _NAMED.match(str(err))
    if match and match.group(1) in fields:
        return match.group(1)
    return fields[0] if fields else None


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
