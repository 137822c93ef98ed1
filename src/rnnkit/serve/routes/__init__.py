"""The routers of the HTTP API, one per endpoint family: :mod:`~rnnkit.serve.routes.models` (the page, the
model list), :mod:`~rnnkit.serve.routes.tasks` (every task's endpoint, one generic handler) and
:mod:`~rnnkit.serve.routes.embeddings` (word vectors). What they share is here: finding the model a request
names, running a model's work within the time limit, and the answer that names the model."""

import asyncio
from typing import Any, Callable

from rnnkit.serve.errors import ApiError, SafeJSONResponse, refused_field


def pick(served: dict[str, Any], key: str, endpoint: str, serves: str) -> Any:
    """The served model ``key`` for ``/{endpoint}`` (which ``serves`` what, e.g. "textgen models"); a 404 that
    lists the known models, or a 400 that names the endpoint the model answers at."""
    m = served.get(key)
    if m is None:
        known = ", ".join(served)
        raise ApiError(404, f"model {key!r} is not served; known models: {known}", "model", f"one of: {known}")
    if m.endpoint != endpoint:
        same = [k for k, s in served.items() if s.endpoint == endpoint]
        offer = f" (served: {', '.join(same)})" if same else " (none is served)"
        raise ApiError(400, f"model {key!r} is a {m.task} model, which /{endpoint} does not serve; /{endpoint} "
                            f"serves {serves}{offer}; {key!r} answers at /v1/models/{key}/{m.endpoint}",
                       "model", f"a model served at /{endpoint}")
    return m


async def run_model(fn: Callable[[], Any], fields: list[str], timeout: float) -> Any:
    """``fn()`` in a worker thread, within ``timeout`` seconds; a refusal of the request (a ValueError) becomes a
    422 naming the field it is about (one of ``fields``). (A thread cannot be stopped: past the limit the client
    gets its 504 and the work ends unseen.)"""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, fn), timeout)
    except asyncio.TimeoutError:
        raise ApiError(504, f"the model took longer than timeout={timeout:g} s; send less work per request",
                       None, f"at most {timeout:g} s") from None
    except (ValueError, FileNotFoundError) as err:
        raise refusal(err, fields) from None


def refusal(err: Exception, fields: list[str]) -> ApiError:
    """The 422 of a task's ValueError: the message, led by the field it is about."""
    field = refused_field(err, fields)
    message = str(err)
    return ApiError(422, message if field is None or message.startswith(field) else f"{field}: {message}", field,
                    message)


def answer(m: Any, body: dict[str, Any], notes: list[str] = ()) -> SafeJSONResponse:
    """A model's answer: its name and version first, then ``body``, then the deprecation ``notes`` (old field
    names the request used), with the headers that name the model."""
    extra = {"deprecated": list(notes)} if notes else {}
    return SafeJSONResponse({**m.stamp(), **body, **extra}, headers=m.headers())
