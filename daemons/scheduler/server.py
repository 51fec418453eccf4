"""``nubis scheduler``: the select-destinations API, host reports, metrics and placement.

One Falcon ASGI app served by uvicorn (uvloop, httptools) on 127.0.0.1:8775:

* ``POST /v1/select_destinations`` — a request spec in, hosts + alternates out
  (claimed atomically), or 409 ``noValidHost`` with the per-filter counts;
* ``PUT /v1/hosts/{name}`` — a compute daemon's report (inventories, traits, facts);
  ``GET /v1/hosts`` — every host and its usage;
* ``PUT|DELETE /v1/aggregates/{uuid}`` — Nova host aggregates (AZs, metadata);
* ``DELETE /v1/instances/{uuid}`` — release an instance's allocations;
* ``GET /metrics`` (Prometheus text), ``GET /healthcheck`` (public);
* ``/placement/...`` — the Placement REST subset (:mod:`nubis.daemons.scheduler.placement`).

Authentication: a Keystone token (verified locally) carrying the ``admin`` or
``service`` role, or the shared service token of ``[scheduler] service_token``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import sqlalchemy as sa
from nubis.api.shared.auth import make_verifier
from nubis.api.shared.config import TokenSettings
from nubis.api.shared.errors import ApiError
from nubis.api.shared.rest import MAX_BODY, error_body, read_json
from nubis.common.cluster import ClusterConfig
from nubis.common.db import is_busy
from nubis.common.errors import ConfigError
from nubis.common.httpserver import KEEPALIVE_TIMEOUT
from nubis.common.servicetoken import load_or_create
from nubis.daemons.scheduler import placement
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine
from nubis.daemons.scheduler.errors import BadRequest, NoValidHost, SchedulerError
from nubis.daemons.scheduler.request import parse_request_spec
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import open_engine

LOG = logging.getLogger(__name__)
PREFIX = "/placement"


class AuthMiddleware:
    """Require the service token or an admin/service Keystone token (except public routes)."""

    def __init__(self, service_token: str, verifier: Any | None) -> None:
        self.service_token = service_token.encode()
        self.verifier = verifier

    async def process_resource(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, params: dict[str, Any]) -> None:
        """Raise 401/403 unless the caller may use the scheduler."""
        if resource is None or getattr(resource, "auth_required", True) is False:
            return
        if req.content_length is not None and req.content_length > MAX_BODY:
            raise falcon.HTTPPayloadTooLarge(description="request body too large")
        for header in ("X-Service-Token", "X-Auth-Token"):
            token = req.get_header(header)
            if token and self.service_token and hmac.compare_digest(
                    token.encode(), self.service_token):
                return
        token = req.get_header("X-Auth-Token")
        if not token:
            raise falcon.HTTPUnauthorized(
                description="The request you have made requires authentication.")
        if self.verifier is None:
            raise falcon.HTTPUnauthorized(description="Invalid service token.")
        try:
            ctx = self.verifier.verify(token)
        except Exception:
            raise falcon.HTTPUnauthorized(
                description="The request you have made requires authentication.") from None
        if not (ctx.has_role("admin") or ctx.has_role("service")):
            raise falcon.HTTPForbidden(description="Access is denied: admin role required.")


class Public:
    """Base of unauthenticated resources."""

    auth_required = False


class Health(Public):
    """``/healthcheck``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Answer OK."""
        resp.content_type = "text/plain"
        resp.text = "OK"


class Select:
    """``POST /v1/select_destinations``."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Place and claim the request's instances."""
        data = await read_json(req)
        if isinstance(data, dict) and "request_spec" in data:
            data = data["request_spec"]
        spec = parse_request_spec(data)
        dests = await asyncio.to_thread(self.svc.select_destinations, spec)
        resp.media = {"destinations": dests}


class Hosts:
    """``/v1/hosts``, ``/v1/hosts/{name}`` and ``/v1/hosts/{name}/service``."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List hosts with capacity and usage."""
        resp.media = {"hosts": await asyncio.to_thread(self.svc.host_summary)}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         name: str) -> None:
        """Take a compute daemon's report."""
        data = await _json_object(req, "report")
        resp.media = await asyncio.to_thread(self.svc.report_host, name, data)

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            name: str) -> None:
        """Forget a compute host (409 while instances hold allocations there)."""
        await asyncio.to_thread(self.svc.delete_host, name)
        resp.status = falcon.HTTP_204

    async def on_put_service(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             name: str) -> None:
        """Set the status an operator gave the host's compute service."""
        data = await _json_object(req, "service status")
        resp.media = await asyncio.to_thread(self.svc.set_service, name, data)


async def _json_object(req: falcon.asgi.Request, what: str) -> dict[str, Any]:
    """Return the request's JSON object body (400 when it is something else)."""
    data = await read_json(req)
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return data


class Aggregates:
    """``/v1/aggregates/{uuid}``."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Create or replace a host aggregate."""
        data = await read_json(req)
        if not isinstance(data, dict):
            raise BadRequest("aggregate must be a JSON object")
        resp.media = await asyncio.to_thread(self.svc.set_aggregate, uuid, data)

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str) -> None:
        """Delete a host aggregate."""
        await asyncio.to_thread(self.svc.delete_aggregate, uuid)
        resp.status = 204


class Instances:
    """``DELETE /v1/instances/{uuid}``: release the instance's allocations."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str) -> None:
        """Release (idempotent: 204 either way)."""
        await asyncio.to_thread(self.svc.release, uuid)
        resp.status = 204


class Metrics:
    """``GET /metrics`` in Prometheus text format."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Export counters and latency quantiles."""
        m = self.svc.metrics
        st = self.svc.state
        lines = [
            "# TYPE nubis_scheduler_requests_total counter",
            f"nubis_scheduler_requests_total {m.requests}",
            "# TYPE nubis_scheduler_instances_placed_total counter",
            f"nubis_scheduler_instances_placed_total {m.placed}",
            "# TYPE nubis_scheduler_no_valid_host_total counter",
            f"nubis_scheduler_no_valid_host_total {m.no_valid_host}",
            "# TYPE nubis_scheduler_claim_conflicts_total counter",
            f"nubis_scheduler_claim_conflicts_total {m.conflicts}",
            "# TYPE nubis_scheduler_host_reports_total counter",
            f"nubis_scheduler_host_reports_total {m.reports}",
            "# TYPE nubis_scheduler_hosts gauge",
            f"nubis_scheduler_hosts {int((~st.retired[: st.n]).sum())}",
        ]
        if m.seconds:
            qs = statistics.quantiles(m.seconds, n=100) if len(m.seconds) > 1 else [
                m.seconds[0]] * 99
            lines += ["# TYPE nubis_scheduler_select_seconds summary",
                      f'nubis_scheduler_select_seconds{{quantile="0.5"}} {qs[49]:.6f}',
                      f'nubis_scheduler_select_seconds{{quantile="0.99"}} {qs[98]:.6f}']
        resp.content_type = "text/plain; version=0.0.4"
        resp.text = "\n".join(lines) + "\n"


def _is_placement(req: falcon.asgi.Request) -> bool:
    return req.path.startswith(PREFIX)


def _render(req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int, title: str,
            detail: str, code: str, extra: dict[str, Any] | None = None) -> None:
    resp.status = status
    if _is_placement(req):
        resp.media = error_body(status, title, detail, code)
        return
    key = "noValidHost" if code == "scheduler.no_valid_host" else "error"
    resp.media = {key: {"code": status, "title": title, "message": detail, **(extra or {})}}


async def _on_scheduler_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                              ex: SchedulerError, params: dict[str, Any]) -> None:
    extra = None
    if isinstance(ex, NoValidHost):
        extra = {"filters": [{"name": n, "removed": r, "entered": e} for n, r, e in ex.counts]}
    title = {400: "Bad Request", 404: "Not Found", 406: "Not Acceptable",
             409: "Conflict"}.get(ex.status, "Error")
    _render(req, resp, ex.status, title, str(ex), ex.code, extra)


async def _on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        ex: ApiError, params: dict[str, Any]) -> None:
    _render(req, resp, ex.status, ex.title, ex.message, SchedulerError.code)


async def _on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         ex: falcon.HTTPError, params: dict[str, Any]) -> None:
    _render(req, resp, ex.status_code, ex.title or "Error", ex.description or ex.title or "",
            "placement.undefined_code")
    headers: Any = ex.headers or {}
    for name, value in (headers.items() if isinstance(headers, dict) else headers):
        resp.set_header(name, value)


async def _on_database_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             ex: sa.exc.DBAPIError, params: dict[str, Any]) -> None:
    """Answer what the database refused: a value it cannot hold is 400, a lost race 409.

    PostgreSQL refuses what SQLite takes (a NUL character, a string wider than its
    column) and may abort a transaction that deadlocked; neither is a server fault.
    """
    if isinstance(ex, sa.exc.DataError):
        LOG.info("refused a value on %s %s: %s", req.method, req.path, ex.orig)
        _render(req, resp, 400, "Bad Request", "A value in the request cannot be stored "
                "(NUL character or too long).", "placement.undefined_code")
    elif is_busy(ex):
        _render(req, resp, 409, "Conflict", "Concurrent update; retry.",
                "placement.concurrent_update")
    else:
        await _on_unexpected(req, resp, ex, params)


async def _on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         ex: Exception, params: dict[str, Any]) -> None:
    LOG.exception("unexpected error on %s %s", req.method, req.path)
    _render(req, resp, 500, "Internal Server Error",
            "The server has either erred or is incapable of performing the requested "
            "operation.", "placement.undefined_code")


def build_app(svc: SchedulerService, service_token: str,
              verifier: Any | None = None) -> falcon.asgi.App[Any, Any]:
    """Return the scheduler's ASGI app (scheduler API + placement under /placement)."""
    if not service_token and verifier is None:
        raise ValueError("refusing to serve without any authentication")
    middleware: list[Any] = [placement.microversions(PREFIX),
                             AuthMiddleware(service_token, verifier)]
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _on_unexpected)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(SchedulerError, _on_scheduler_error)
    app.add_error_handler(ApiError, _on_api_error)
    app.add_error_handler(sa.exc.DBAPIError, _on_database_error)
    app.add_route("/healthcheck", Health())
    app.add_route("/metrics", Metrics(svc))
    app.add_route("/v1/select_destinations", Select(svc))
    hosts = Hosts(svc)
    app.add_route("/v1/hosts", hosts)
    app.add_route("/v1/hosts/{name}", hosts, suffix="one")
    app.add_route("/v1/hosts/{name}/service", hosts, suffix="service")
    app.add_route("/v1/aggregates/{uuid}", Aggregates(svc))
    app.add_route("/v1/instances/{uuid}", Instances(svc))
    placement.add_routes(app, svc, PREFIX)
    return app


def service_token_for(cfg: SchedulerConfig, state_dir: Path) -> str:
    """Return the configured service token, or the state dir's (created on first use)."""
    return cfg.service_token or load_or_create(state_dir / "scheduler" / "service_token")


def database_url(cfg: SchedulerConfig, state_dir: Path) -> str:
    """Return the scheduler's database URL (default: a SQLite file in the state dir)."""
    return cfg.database_url or f"sqlite:///{state_dir.resolve() / 'scheduler.sqlite'}"


def run(cfg: SchedulerConfig, cluster: ClusterConfig, tokens: TokenSettings | None,
        once: bool = False) -> int:
    """Serve the scheduler until stopped (``once``: set up, check, exit).

    ``tokens`` enables Keystone tokens; without them only the service token works.
    """
    import uvicorn

    try:
        Engine(cfg)  # unknown filter/weigher names: a clear start-up error, exit 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return ConfigError.exit_code
    state_dir = Path(cluster.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    svc = SchedulerService(cfg, open_engine(database_url(cfg, state_dir)))
    verifier = None if tokens is None else make_verifier(tokens)
    app = build_app(svc, service_token_for(cfg, state_dir), verifier)
    if once:
        return 0
    # PERF: the loaded host state is long-lived; keep it out of the cyclic GC's
    # full collections (``python -m nubis.bench scheduler``).
    gc.collect()
    gc.freeze()
    host = cfg.bind_ip or cluster.bind_ip
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=cfg.port, loop="uvloop",
                                           http="httptools", lifespan="off",
                                           log_level="warning", access_log=False,
                                           timeout_keep_alive=KEEPALIVE_TIMEOUT))
    server.run()
    return 0
