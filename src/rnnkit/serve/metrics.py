"""What the server has done: Prometheus metrics at ``GET /metrics`` and one access-log line per request.

The text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/) is a few lines per
metric, so it is written here rather than adding ``prometheus_client`` as a dependency:

    rnnkit_requests_total{endpoint, model, status}          counter: answered requests
    rnnkit_request_duration_seconds{endpoint}               histogram: from the request to its last byte
    rnnkit_requests_in_flight                               gauge
    rnnkit_queue_seconds{model}                             histogram: a generation stream's wait to join a batch
    rnnkit_batch_size{model}                                histogram: rows stepped together, one per step
    rnnkit_generated_tokens_total{model}                    counter: tokens/s is its rate()

``endpoint`` is the route's template (``/v1/models/{model}/generate``), never the raw path: a client cannot
make the number of series grow. The batcher keeps its own histograms (:class:`Histogram`: a lock and a few
integers, cheap at one observation per step); they are read only when ``/metrics`` is asked.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from typing import Any, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

access_log = logging.getLogger("rnnkit.serve.access")


class Histogram:
    """Counts of observations at or below each bucket's upper bound, their sum and number (thread-safe)."""

    def __init__(self, buckets: Iterable[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)         # the last one: above every bound (+Inf)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            self.counts[i] += 1
            self.sum += value

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        out, running = [], 0
        for bound, n in zip((*self.buckets, "+Inf"), counts):
            running += n
            le = bound if isinstance(bound, str) else f"{bound:g}"
            out.append(f"{name}_bucket{_labels({**labels, 'le': le})} {running}")
        out += [f"{name}_sum{_labels(labels)} {total:.6g}", f"{name}_count{_labels(labels)} {running}"]
        return out


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = {k: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in labels.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc.items()) + "}"


class Metrics:
    """The server's own counters (requests, latency); the batchers' are read from the served models."""

    def __init__(self):
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.in_flight = 0

    def record(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        key = (endpoint, model, status)
        self.requests[key] = self.requests.get(key, 0) + 1         # only the event loop's thread writes these
        if endpoint not in self.latency:
            self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
        self.latency[endpoint].observe(seconds)

    def render(self, served: dict[str, Any]) -> str:
        out = ["# HELP rnnkit_requests_total Requests answered, by endpoint, model and status.",
               "# TYPE rnnkit_requests_total counter"]
        for (endpoint, model, status), n in sorted(self.requests.items()):
            out.append(f"rnnkit_requests_total{_labels({'endpoint': endpoint, 'model': model, 'status': str(status)})} {n}")
        out += ["# HELP rnnkit_request_duration_seconds Seconds from a request to the last byte of its answer.",
                "# TYPE rnnkit_request_duration_seconds histogram"]
        for endpoint, hist in sorted(self.latency.items()):
            out += hist.lines("rnnkit_request_duration_seconds", {"endpoint": endpoint})
        out += ["# HELP rnnkit_requests_in_flight Requests being answered now.",
                "# TYPE rnnkit_requests_in_flight gauge", f"rnnkit_requests_in_flight {self.in_flight}"]
        workers = {key: m.worker for key, m in served.items() if getattr(m, "worker", None) is not None}
        for name, kind, what, attr in (
                ("rnnkit_queue_seconds", "histogram", "Seconds a generation stream waited to join a batch.",
                 "queue_seconds"),
                ("rnnkit_batch_size", "histogram", "Rows stepped together, one observation per step.", "batch_sizes"),
                ("rnnkit_generated_tokens_total", "counter", "Tokens generated.", "tokens")):
            out += [f"# HELP {name} {what}", f"# TYPE {name} {kind}"]
            for key, worker in workers.items():
                value = getattr(worker, attr)
                out += value.lines(name, {"model": key}) if kind == "histogram" else [
                    f"{name}{_labels({'model': key})} {value}"]
        return "\n".join(out) + "\n"


def endpoint_of(scope: dict) -> str:
    """The route template a request matched (bounded: never the raw path), or "other"."""
    route = scope.get("route")
    return getattr(route, "path", None) or "other"


class Observe:
    """ASGI middleware around everything: counts each request into ``metrics`` and, with ``log``, writes one
    access line when its answer has been sent (for a stream: its last event), e.g.

        127.0.0.1 POST /v1/models/words/generate 200 0.153s model=words
    """

    def __init__(self, app, metrics: Metrics, log: bool):
        self.app, self.metrics, self.log = app, metrics, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status, model = 500, "-"

        async def watch(message):
            nonlocal status, model
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", ()):
                    if k.lower() == b"x-rnnkit-model":
                        model = v.decode("latin-1")
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.in_flight -= 1
            seconds = time.perf_counter() - began
            self.metrics.record(endpoint_of(scope), model, status, seconds)
            if self.log:
                client = (scope.get("client") or ("-",))[0]
                access_log.info("%s %s %s %d %.3fs model=%s", client, scope["method"], scope["path"], status,
                                seconds, model)
