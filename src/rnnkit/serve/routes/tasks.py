"""Every task's endpoint, ``POST /v1/models/{model}/{endpoint}``, through one generic handler.

The server asks the Task protocol (:mod:`rnnkit.tasks.base`) and names no task: each registered task has an
``endpoint`` and a ``request_class``; the body is validated by the pydantic model built from that class and
the server's limits (:mod:`rnnkit.serve.schemas`), then goes to the model's ``serving_worker`` when it has one
(generation: continuous batching, server-sent events with ``"stream": true``, and sessions that keep the
recurrent state between requests: :mod:`rnnkit.serve.sessions`), else to its ``apply`` in a
worker thread. A ValueError from the task is a 422 naming the field.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the body's model from the handler's
# annotations, and those models are made here, per application (their limits come from the config).

import asyncio
from typing import Any, Union

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from rnnkit.serve.errors import ApiError, to_json
from rnnkit.serve.routes import answer, pick, refusal, run_model
from rnnkit.serve.schemas import fields_of, renamed_notes, request_model
from rnnkit.serve.sessions import SessionBusy, SessionsFull

FAILURE_STATUS = {"timeout": 504, "closed": 503, "error": 500}     # a worker's job that did not complete


def router(served: dict[str, Any], config: Any, tasks: list[type]) -> APIRouter:
    """The endpoints of ``tasks`` (Task subclasses): one route per endpoint name, every one the same handler."""
    r = APIRouter()
    by_endpoint: dict[str, list[type]] = {}
    for task in tasks:
        if task.request_class is not None:
            by_endpoint.setdefault(task.endpoint, []).append(task)
    for endpoint, classes in by_endpoint.items():
        models = {}
        for task in classes:
            if task.request_class not in models:
                models[task.request_class] = request_model(task.request_class, config)
        doc = (classes[0].request_class.__doc__ or "").strip().split("\n")[0]
        r.add_api_route(f"/v1/models/{{model}}/{endpoint}", _handler(served, config, endpoint, classes, models),
                        methods=["POST"], summary=f"{doc} ({', '.join(t.name for t in classes)})")
    return r


def _handler(served: dict[str, Any], config: Any, endpoint: str, classes: list[type], models: dict[type, type]):
    serves = f"{' and '.join(t.name for t in classes)} models"
    # Tasks that share an endpoint name with different requests: the body is any of them, checked again below
    # against the request of the model it is for.
    Body = next(iter(models.values())) if len(models) == 1 else Union[tuple(models.values())]

    async def handle(model: str, body: Body):
        m = pick(served, model, endpoint, serves)
        task = m.obj
        own = models[task.request_class]
        if not isinstance(body, own):
            try:
                body = own.model_validate(body.model_dump(exclude_unset=True))
            except ValidationError as err:
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in err.errors()]) from None
        fields = list(own.model_fields)
        try:
            request = task.request_class(**fields_of(body))
        except ValueError as err:
            raise refusal(err, fields) from None
        notes = renamed_notes(body)
        if m.worker is not None and m.worker.takes(request):
            return await _through_worker(m, request, fields, notes, config)
        out = await run_model(lambda: task.apply(request), fields, config.timeout)
        return answer(m, out, notes)

    return handle


async def _through_worker(m: Any, request: Any, fields: list[str], notes: list[str], config: Any):
    """A request run by the model's worker (see ``Task.serving_worker``): a JSON answer when it is done, or with
    ``stream`` server-sent events as it goes (``start``, one per piece, then ``done``; ``error`` before
    ``done`` when the work did not complete)."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    stream = bool(getattr(request, "stream", False))

    def listener(kind: str, data: Any) -> None:          # called in the worker's thread
        # A JSON answer waits for the end only: waking the event loop for every piece would cost the worker's
        # thread its time (they share the GIL).
        if stream or kind == "done":
            loop.call_soon_threadsafe(events.put_nowait, (kind, data))

    try:
        job = m.worker.submit(request, listener, timeout=config.timeout)
    except SessionBusy as err:
        raise ApiError(409, str(err), "session", "one request at a time per session") from None
    except SessionsFull as err:
        raise ApiError(429, str(err), "session", f"at most max_sessions={config.max_sessions} sessions") from None
    except ValueError as err:
        raise refusal(err, fields) from None
    extra = {"deprecated": notes} if notes else {}
    if stream:
        async def sse():
            try:
                yield _sse("start", {**m.stamp(), **job.start, **extra})
                while True:
                    kind, data = await events.get()
                    if kind != "done":
                        yield _sse(kind, data)
                        continue
                    if job.failure is not None:
                        yield _sse("error", {**m.stamp(), "error": job.failure[1]})
                    yield _sse("done", {**m.stamp(), **job.result()})
                    return
            finally:
                m.worker.cancel(job)      # the client went away (or all is sent): free its rows

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={**m.headers(), "Cache-Control": "no-cache"})
    try:
        while (await events.get())[0] != "done":
            pass
    finally:
        m.worker.cancel(job)
    if job.failure is not None:
        reason, message, field = job.failure
        constraint = f"at most {config.timeout:g} s of work" if reason == "timeout" else None
        raise ApiError(FAILURE_STATUS.get(reason, 500), message, field, constraint)
    return answer(m, job.result(), notes)


def _sse(event: str, data: Any) -> str:
    """One server-sent event: ``event: NAME`` and one ``data:`` line of JSON."""
    return f"event: {event}\ndata: {to_json(data)}\n\n"
