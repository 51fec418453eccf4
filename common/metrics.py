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

and a background daemon without a port records its passes in its status file,
which ``nubis status`` shows and the servers of its node export
(:class:`PassCollector`).

With ``workers > 1`` each worker process counts its own requests and a scrape
sees the worker that accepted it.
"""

from __future__ import annotations

import bisect
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from nubis.common.daemon import PassReport, read_reports
from nubis.common.httpserver import Request, Response
from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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


# -- background daemons' passes ---------------------------------------------------

class PassCollector:
    """Export the pass totals of background daemons from their status files.

    A background daemon has no port of its own (``--once`` runs have no time
    to be scraped either): it records every pass in
    ``<state>/status/<label>.json`` (:class:`nubis.common.daemon.PassReport`)
    and a server of its node adds this collector to its registry, so one
    scrape of, e.g., the object server on 6200 shows its node's object
    daemons. Per daemon (labels ``daemon``, ``node``):

    - ``nubis_daemon_passes_total``, ``nubis_daemon_last_pass_start_seconds``,
      ``nubis_daemon_last_pass_duration_seconds``,
      ``nubis_daemon_last_pass_failed`` (0 or 1);
    - one counter per pass counter, named after the daemon:
      ``nubis_object_replicator_suffixes_synced_total``,
      ``nubis_object_auditor_quarantined_total``,
      ``nubis_object_updater_applied_total``,
      ``nubis_object_expirer_expired_total``, ...
    """

    def __init__(self, state_dir: str | Path, prefix: str, node: int | None) -> None:
        self.state_dir = Path(state_dir)
        self.prefix = prefix
        self.suffix = "" if node is None else f"-{node}"

    def reports(self) -> list[PassReport]:
        """Return the status of this collector's daemons."""
        return [r for r in read_reports(self.state_dir)
                if r.daemon.startswith(self.prefix) and r.label == r.daemon + self.suffix]

    def collect(self) -> Iterator[Metric]:
        """Yield the families (called by the registry on every scrape)."""
        labels = ["daemon", "node"]
        passes = CounterMetricFamily("nubis_daemon_passes", "Passes run by a background daemon",
                                     labels=labels)
        start = GaugeMetricFamily("nubis_daemon_last_pass_start_seconds",
                                  "When the last pass started (Unix time)", labels=labels)
        took = GaugeMetricFamily("nubis_daemon_last_pass_duration_seconds",
                                 "How long the last pass took", labels=labels)
        failed = GaugeMetricFamily("nubis_daemon_last_pass_failed",
                                   "1 when the last pass failed", labels=labels)
        counters: dict[str, CounterMetricFamily] = {}
        node = self.suffix[1:]
        for r in self.reports():
            values = [r.daemon, node]
            passes.add_metric(values, r.passes)
            start.add_metric(values, r.started)
            took.add_metric(values, r.duration)
            failed.add_metric(values, 1.0 if r.error else 0.0)
            base = "nubis_" + r.daemon.replace("-", "_")
            for key, total in sorted(r.totals.items()):
                name = f"{base}_{key}"
                if name not in counters:
                    counters[name] = CounterMetricFamily(
                        name, f"{r.daemon}: {key.replace('_', ' ')} (all passes)",
                        labels=["node"])
                counters[name].add_metric([node], total)
        yield from (passes, start, took, failed)
        yield from counters.values()
