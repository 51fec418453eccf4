"""Unit tests of the shared Prometheus metrics: tallies, text format, wrappers, passes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nubis.common.metrics import (
    Metrics,
    MetricsMiddleware,
    PassCollector,
    is_loopback,
)
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_and_histogram_by_method_and_status() -> None:
    m = Metrics("object-server")
    m.requests.observe("PUT", 201, 0.0004)
    m.requests.observe("PUT", 201, 0.003)
    m.requests.observe("GET", 404, 20.0)
    m.requests.observe("BREW", 405, 0.01)  # unknown methods share one label value
    samples = _samples(m.render().decode())
    put = (("method", "PUT"), ("server", "object-server"), ("status", "201"))
    assert samples[("nubis_http_requests_total", put)] == 2
    bucket = (("le", "0.001"), *put)
    assert samples[("nubis_http_request_duration_seconds_bucket",
                    tuple(sorted(bucket)))] == 1
    assert samples[("nubis_http_request_duration_seconds_count", put)] == 2
    assert samples[("nubis_http_request_duration_seconds_sum", put)] == pytest.approx(0.0034)
    slow = (("le", "+Inf"), ("method", "GET"), ("server", "object-server"), ("status", "404"))
    assert samples[("nubis_http_request_duration_seconds_bucket", slow)] == 1
    other = (("method", "other"), ("server", "object-server"), ("status", "405"))
    assert samples[("nubis_http_requests_total", other)] == 1


def test_daemon_counters_share_the_registry(tmp_path: Path) -> None:
    m = Metrics("replicator")
    synced = Counter("nubis_replicator_suffixes_synced", "Suffixes synced",
                     registry=m.registry)
    synced.inc(3)
    assert "nubis_replicator_suffixes_synced_total 3.0" in m.render().decode()
    m.write_textfile(tmp_path / "metrics" / "replicator.prom")
    assert "suffixes_synced_total 3.0" in (tmp_path / "metrics" / "replicator.prom").read_text()


def test_pass_collector_exports_the_node_daemons_totals(tmp_path: Path) -> None:
    from nubis.common.daemon import PassReport, status_path

    def save(label: str, report: PassReport) -> None:
        path = status_path(tmp_path, label)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(report.dumps())

    rep = PassReport("object-replicator", 0.0, 0.0, label="object-replicator-0")
    rep = rep.then(1700000000.0, 1.5, {"suffixes_synced": 4}, "")
    rep = rep.then(1700000100.0, 0.5, {"suffixes_synced": 2, "objects_pushed": 1}, "")
    save("object-replicator-0", rep)
    save("object-auditor-0", PassReport("object-auditor", 0.0, 0.0, label="object-auditor-0")
         .then(1700000001.0, 0.25, {}, "OSError: boom"))
    save("object-replicator-1", rep)  # another node's: not exported by node 0
    save("container-replicator-0", rep)  # another kind's
    (tmp_path / "status" / "broken.json").write_text("{")
    m = Metrics("object-server")
    m.registry.register(PassCollector(tmp_path, "object-", 0))
    text = m.render().decode()
    assert 'nubis_object_replicator_suffixes_synced_total{node="0"} 6.0' in text
    assert 'nubis_object_replicator_objects_pushed_total{node="0"} 1.0' in text
    assert 'nubis_daemon_passes_total{daemon="object-replicator",node="0"} 2.0' in text
    assert 'nubis_daemon_last_pass_duration_seconds{daemon="object-replicator",node="0"} 0.5' \
        in text
    assert 'nubis_daemon_last_pass_failed{daemon="object-auditor",node="0"} 1.0' in text
    assert 'node="1"' not in text and "container_replicator" not in text


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.9.9.9")
    assert not is_loopback("10.0.0.1") and not is_loopback(None) and not is_loopback("x")


async def _call(app: Any, path: str, client: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "client": (client, 5555)}
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), body


def test_asgi_middleware_counts_and_serves_loopback_only() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    m = Metrics("proxy")
    app = MetricsMiddleware(inner, m)
    assert asyncio.run(_call(app, "/v1/AUTH_a", "10.1.2.3")) == (401, b"no")
    assert asyncio.run(_call(app, "/metrics", "10.1.2.3")) == (401, b"no")
    status, body = asyncio.run(_call(app, "/metrics", "127.0.0.1"))
    assert status == 200
    labels = (("method", "GET"), ("server", "proxy"), ("status", "401"))
    assert _samples(body.decode())[("nubis_http_requests_total", labels)] == 2


def test_instrumented_httpserver_handler_counts_and_answers_metrics() -> None:
    from nubis.common.httpserver import HTTPServer, Request, Response, plain
    from nubis.common.metrics import instrument

    async def handler(req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("boom")
        return plain(404 if req.path == "/metrics" else 204)

    m = Metrics("object-server")

    async def get(port: int, path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    async def scenario(loopback_only: bool) -> tuple[int, bytes]:
        srv = HTTPServer(instrument(handler, m, loopback_only=loopback_only))
        port = await srv.start()
        try:
            assert (await get(port, "/a"))[0] == 204
            assert (await get(port, "/boom"))[0] == 500
            return await get(port, "/metrics")
        finally:
            await srv.close()

    status, body = asyncio.run(scenario(loopback_only=True))  # our peer is loopback
    assert status == 200
    samples = _samples(body.decode())
    ok = (("method", "GET"), ("server", "object-server"), ("status", "204"))
    failed = (("method", "GET"), ("server", "object-server"), ("status", "500"))
    assert samples[("nubis_http_requests_total", ok)] == 1
    assert samples[("nubis_http_requests_total", failed)] == 1
