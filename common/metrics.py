"""Prometheus metrics for every nubis server and daemon (PyPI ``prometheus-client``).

One :class:`Metrics` per process holds a ``CollectorRegistry`` and the HTTP
request tallies, and renders the Prometheus text format for ``GET /metrics``:

- ``nubis_http_requests_total{server, method, status}``
- ``nubis_http_request_duration_seconds{server, method, status}`` (histogram; the
  time until the response status and headers are ready, streamed bodies excluded)

Servers wire it in one line: :func:`instrument` wraps a
:mod:`nubis.common.httpserver` handler (storage servers, the native proxy),
:class:`MetricsMiddleware` wraps an ASGI app (the Falcon proxy, ``nubis api``,
the scheduler). A daemon adds its own counters to ``metrics.registry`` with
the ordinary client API::

    synced = Counter("nubis_replicator_suffixes_synced", "Suffixes synced",
                     registry=metrics.registry)

and a background daemon without a port writes them with
:meth:`Metrics.write_textfile` (node-exporter textfile format) and its last pass
with :func:`write_pass`, which ``nubis status`` shows.

With ``workers > 1`` each worker process counts its own requests and a scrape
sees the worker that accepted it.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nubis.common.fileutil import atomic_write
from nubis.common.httpserver import Request, Response
from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Latency bucket upper bounds in seconds (the ``+Inf`` bucket is implicit).
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                              0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Methods counted by name; anything else is ``other`` (bounded label values).
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "COPY", "OPTIONS",
                     "REPLICATE", "UPDATE", "SSYNC"})
CONTENT_TYPE = CONTENT_TYPE_LATEST
METRICS_PATH = "/metrics"


class RequestMetrics:
    """Request counts and latency histograms by method and status (a custom collector).

    PERF: :meth:`observe` is on every request's path: one dict lookup, one bisect
    and three list updates, no locks and no label objects; the Prometheus
    families are built only when scraped (``python -m nubis.bench swift``).
    """

    def __init__(self, server: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.server = server
        self.bounds = list(buckets)
        #: (method, status) -> [count per bucket ..., +Inf count, sum of seconds]
        self.rows: dict[tuple[str, int], list[float]] = {}

    def observe(self, method: str, status: int, seconds: float) -> None:
        """Count one request."""
        key = (method if method in METHODS else "other", status)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        """Yield the counter and histogram families (called by the registry)."""
        labels = ["server", "method", "status"]
        total = CounterMetricFamily("nubis_http_requests", "HTTP requests answered",
                                    labels=labels)
        hist = HistogramMetricFamily("nubis_http_request_duration_seconds",
                                     "Time until the response status was ready",
                                     labels=labels)
        for (method, status), row in sorted(self.rows.items()):
            values = [self.server, method, str(status)]
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(str, self.bounds), "+Inf"], row[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            total.add_metric(values, cumulative)
            hist.add_metric(values, buckets, row[-1])
        yield total
        yield hist


class Metrics:
    """The metrics of one process: a registry with the request tallies in it."""

    def __init__(self, server: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestMetrics(server)
        self.registry.register(self.requests)

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return bytes(generate_latest(self.registry))

    def write_textfile(self, path: str | Path) -> None:
        """Write every metric to ``path`` atomically (node-exporter textfile format)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)


def is_loopback(host: str | None) -> bool:
    """Tell whether a peer address is on the loopback network."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


Handler = Callable[[Request], Awaitable[Response]]


def instrument(handler: Handler, metrics: Metrics, *, loopback_only: bool = False) -> Handler:
    """Wrap an :mod:`~nubis.common.httpserver` handler: count requests, answer ``/metrics``.

    Args:
        handler: The server's request handler.
        metrics: Where to count.
        loopback_only: Answer ``/metrics`` only to loopback peers (public APIs);
            others get what ``handler`` answers for that path.
    """
    observe = metrics.requests.observe
    clock = time.perf_counter

    async def handle(req: Request) -> Response:
        if req.path == METRICS_PATH and req.method in ("GET", "HEAD") and (
                not loopback_only or is_loopback(req.peer_host)):
            return Response(200, [("Content-Type", CONTENT_TYPE)], metrics.render())
        start = clock()
        try:
            resp = await handler(req)
        except Exception:
            observe(req.method, 500, clock() - start)
            raise
        observe(req.method, resp.status, clock() - start)
        return resp

    return handle


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MetricsMiddleware:
    """Wrap an ASGI app: count requests, answer ``GET /metrics`` to loopback peers."""

    def __init__(self, app: Any, metrics: Metrics, *, loopback_only: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.loopback_only = loopback_only

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if scope["path"] == METRICS_PATH and method in ("GET", "HEAD") and (
                not self.loopback_only or is_loopback((scope.get("client") or ("",))[0])):
            await self._answer(send, method == "HEAD")
            return
        start = time.perf_counter()
        observe = self.metrics.requests.observe
        seen = False

        async def counted(message: dict[str, Any]) -> None:
            nonlocal seen
            if not seen and message["type"] == "http.response.start":
                seen = True
                observe(method, int(message["status"]), time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, counted)
        except Exception:
            if not seen:
                observe(method, 500, time.perf_counter() - start)
            raise

    async def _answer(self, send: Send, head: bool) -> None:
        body = self.metrics.render()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if head else body})


# -- last passes of background daemons ---------------------------------------

@dataclass(frozen=True)
class PassRecord:
    """One finished pass of a background daemon (``<state>/status/<name>.json``)."""

    name: str
    #: Wall-clock start (seconds since the epoch) and duration in seconds.
    started: float
    duration: float
    #: What the pass did, e.g. ``{"suffixes_synced": 12, "objects_quarantined": 0}``.
    stats: Mapping[str, int | float] = field(default_factory=dict)


def write_pass(state_dir: str | Path, record: PassRecord) -> None:
    """Record a daemon's last pass for ``nubis status`` (``name`` like ``replicator-0``)."""
    out = Path(state_dir) / "status"
    out.mkdir(parents=True, exist_ok=True)
    raw = asdict(record)
    raw["stats"] = dict(record.stats)
    atomic_write(out / f"{record.name}.json", [json.dumps(raw).encode()])


def read_passes(state_dir: str | Path) -> list[PassRecord]:
    """Return every recorded last pass, by name."""
    out = []
    for path in sorted((Path(state_dir) / "status").glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            out.append(PassRecord(str(raw["name"]), float(raw["started"]),
                                  float(raw["duration"]), dict(raw.get("stats") or {})))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
