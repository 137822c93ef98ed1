"""Errors of the HTTP API: one JSON shape for every status, and the checks on a request body before any
endpoint runs.

Every error is one JSON object::

    {"status": 422, "error": "temperature: Input should be less than or equal to 5 (got 9)",
     "field": "temperature", "constraint": "Input should be less than or equal to 5", "errors": [...]}
"""

from __future__ import annotations

import asyncio
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(obj: Any) -> Any:
    """Every str in ``obj`` (keys too) with its lone UTF-16 surrogates (a JSON body may hold ``"\\ud800"``,
    which UTF-8 cannot encode) as U+FFFD: what the server sends back can always be encoded."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {encodable(k): encodable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encodable(v) for v in obj]
    return obj


def to_json(content: Any) -> str:
    """``content`` as JSON text that UTF-8 can always encode: NaN and infinities as null, lone surrogates as
    U+FFFD (the walk over ``content`` runs only when the text holds one)."""
    text = json.dumps(finite(content), ensure_ascii=False, separators=(",", ":"))
    return text if not _SURROGATE.search(text) else json.dumps(encodable(finite(content)), ensure_ascii=False,
                                                               separators=(",", ":"))


class SafeJSONResponse(JSONResponse):
    """JSONResponse that writes NaN and infinities as null and lone surrogates as U+FFFD instead of failing."""

    def render(self, content: Any) -> bytes:
        return to_json(content).encode("utf-8")


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
        constraint = e.get("msg", "invalid").removeprefix("Value error, ")     # a validator's own words
        out.append({"field": ".".join(parts) or "body", "constraint": constraint,
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


def lone_surrogate(value: Any, where: str = "") -> Optional[tuple[str, str]]:
    """The first string of a parsed JSON body (keys included) holding a lone UTF-16 surrogate: (field, the
    surrogate as ``\\udXXX``), or None. A key that holds one is named by its escaped spelling."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return (where or "body", f"\\u{ord(found.group()):04x}") if found else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        name = key.encode("ascii", "backslashreplace").decode() if isinstance(key, str) else str(key)
        if isinstance(key, str) and _SURROGATE.search(key):
            return f"{where}.{name}" if where else name, f"\\u{ord(_SURROGATE.search(key).group()):04x}"
        hit = lone_surrogate(item, f"{where}.{name}" if where else name)
        if hit:
            return hit
    return None


# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): the only way a lone one gets into a UTF-8 body.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class BodyCheck:
    """ASGI middleware in front of every POST, before any endpoint runs: the body must say it is JSON (else
    415), arrive whole within ``timeout`` seconds (else 408: a client that sends half a body and waits must not
    hold a connection for ever), be at most ``max_bytes`` (else 413; read first, so keeping it costs little),
    be UTF-8 (else 400), and hold no lone UTF-16 surrogate such as ``"\\ud800"`` (else 422 naming the field:
    such text cannot be encoded, tokenized or sent back)."""

    def __init__(self, app, max_bytes: int, timeout: float = 10.0):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind != b"application/json":
            got = f"content-type {kind.decode('latin-1')!r}" if kind else "no content-type"
            refusal = error_response(415, f"body: sent with {got}; send the body as JSON with the header "
                                          f"content-type: application/json", "body",
                                     "JSON with content-type: application/json")
            return await refusal(scope, receive, send)
        too_large = error_response(413, f"body: larger than max_body_bytes={self.max_bytes}", "body",
                                   f"at most {self.max_bytes} bytes")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                slow = error_response(408, f"body: not complete within {self.timeout:g} s ({size} bytes arrived); "
                                           f"send the whole body at once", "body", f"sent within {self.timeout:g} s")
                return await slow(scope, receive, send)
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
        if _ESCAPED_SURROGATE.search(body):         # rare: parse once more only then
            try:
                hit = lone_surrogate(json.loads(body))
            except ValueError:
                hit = None                          # not JSON: the endpoint's own check says so
            if hit:
                field, escape = hit
                bad = error_response(422, f"{field}: holds a lone UTF-16 surrogate ({escape}), which is not a "
                                          f"character; expected Unicode text (characters beyond U+FFFF as a "
                                          f"surrogate pair or UTF-8)", field, "Unicode text without lone surrogates")
                return await bad(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()          # afterwards: the client's disconnect, for streaming responses

        await self.app(scope, replay, send)
