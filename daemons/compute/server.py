"""``nubis daemon compute``: the internal HTTP API of one hypervisor host (port 8776).

Only the compute API calls it, with the shared service token in
``X-Service-Token`` (``/healthcheck`` is public):

* ``POST /v1/instances`` — build one instance (answers when it runs, 201);
* ``GET /v1/instances`` — this host's instances and power states;
* ``GET|DELETE /v1/instances/{uuid}`` — power state / destroy, undefine, remove files;
* ``POST /v1/instances/{uuid}/{action}`` — ``start``, ``stop``, ``reboot`` (``{"hard"}``),
  and (``lifecycle.py``) ``pause``, ``unpause``, ``suspend``, ``resume``, ``rebuild``,
  ``resize``, ``confirm_resize``, ``revert_resize``, ``snapshot``;
* ``GET /v1/instances/{uuid}/console`` — the serial console log (text);
* ``GET /v1/host`` — the hypervisor's facts and capacity.

Errors are ``{"computeFault": {"code", "message", "kind"}}`` with libvirt's text kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.rest import read_json
from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import KEEPALIVE_TIMEOUT
from nubis.common.net import http_base
from nubis.common.servicetoken import load_or_create
from nubis.daemons.compute.config import ComputeConfig
from nubis.daemons.compute.driver import DriverConfig, LibvirtDriver
from nubis.daemons.compute.errors import (
    ComputeError,
    InstanceExists,
    InstanceNotFound,
)
from nubis.daemons.compute.libvirthost import PROBE_CACHE, blocking_ancestor, ensure_libvirtd
from nubis.daemons.compute.lifecycle import LIFECYCLE_ACTIONS, Lifecycle, run_action
from nubis.daemons.compute.service import (
    BadBuildRequestError,
    ComputeService,
    Peers,
    parse_build,
)

LOG = logging.getLogger("nubis.compute")
_STATUS = {BadBuildRequestError: 400, InstanceNotFound: 404, InstanceExists: 409}


class Disabled:
    """Answer 503 on every route but ``/healthcheck`` while the host is disabled."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Raise 503 with the reason when libvirt or the state dir is unusable."""
        if self.svc.disabled_reason and req.path != "/healthcheck":
            raise falcon.HTTPServiceUnavailable(
                description=f"compute host disabled: {self.svc.disabled_reason}")


class Auth:
    """Require the shared service token on every route but ``/healthcheck``."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Raise 401 without the right ``X-Service-Token``."""
        if req.path == "/healthcheck":
            return
        given = (req.get_header("X-Service-Token") or "").encode()
        if not given or not hmac.compare_digest(given, self.token):
            raise falcon.HTTPUnauthorized(description="service token required")


class Health:
    """``/healthcheck``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Answer OK."""
        resp.content_type = "text/plain"
        resp.text = "OK"


class Instances:
    """``/v1/instances`` and ``/v1/instances/{uuid}[/{action}]``."""

    def __init__(self, svc: ComputeService, builds: asyncio.Semaphore) -> None:
        self.svc = svc
        self.builds = builds
        self.lifecycle = Lifecycle(svc)
        self.build_pool = ThreadPoolExecutor(max_workers=svc.cfg.max_concurrent_builds,
                                             thread_name_prefix="build")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List this host's instances."""
        resp.media = {"instances": await asyncio.to_thread(self.svc.instances)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Build one instance; answer when its domain runs."""
        build = parse_build(await read_json(req))
        async with self.builds:
            # PERF (python -m nubis.bench boot --api): builds get their own threads, so
            # ten at once do not queue behind asyncio's small default pool.
            resp.media = await asyncio.get_running_loop().run_in_executor(
                self.build_pool, self.svc.build, build)
        resp.status = 201

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         uuid: str) -> None:
        """Return the power state."""
        resp.media = {"power_state": await asyncio.to_thread(self.svc.power_state, uuid)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            uuid: str) -> None:
        """Destroy and remove the instance (204 also when it was gone)."""
        await asyncio.to_thread(self.svc.delete, uuid)
        resp.status = 204

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             uuid: str, action: str) -> None:
        """Run a power action."""
        body = await req.get_media(default_when_empty={})
        hard = bool(body.get("hard")) if isinstance(body, dict) else False
        if action == "start":
            state = await asyncio.to_thread(self.svc.start, uuid)
        elif action == "stop":
            state = await asyncio.to_thread(self.svc.stop, uuid, not hard)
        elif action == "reboot":
            state = await asyncio.to_thread(self.svc.reboot, uuid, hard)
        elif action in LIFECYCLE_ACTIONS:
            resp.media = await asyncio.to_thread(run_action, self.lifecycle, uuid, action, body)
            return
        else:
            raise falcon.HTTPNotFound(description=f"unknown action {action!r}")
        resp.media = {"power_state": state}

    async def on_get_console(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             uuid: str) -> None:
        """Return the serial console log."""
        resp.content_type = "text/plain; charset=utf-8"
        resp.data = await asyncio.to_thread(self.svc.console, uuid)


class Host:
    """``GET /v1/host``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return the hypervisor's facts."""
        resp.media = await asyncio.to_thread(self.svc.host_info)


def _fault(resp: falcon.asgi.Response, status: int, message: str, kind: str) -> None:
    resp.status = status
    resp.media = {"computeFault": {"code": status, "message": message, "kind": kind}}


async def _on_compute_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: ComputeError, params: dict[str, Any]) -> None:
    status = next((code for cls, code in _STATUS.items() if isinstance(ex, cls)), 500)
    _fault(resp, status, str(ex), type(ex).__name__)


async def _on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         ex: falcon.HTTPError, params: dict[str, Any]) -> None:
    _fault(resp, ex.status_code, str(ex.description or ex.title), "HTTPError")


async def _on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         ex: Exception, params: dict[str, Any]) -> None:
    LOG.exception("unexpected error on %s %s", req.method, req.path)
    _fault(resp, 500, f"unexpected error: {type(ex).__name__}", "Unexpected")


def build_app(svc: ComputeService, token: str) -> falcon.asgi.App[Any, Any]:
    """Return the compute daemon's ASGI app."""
    if not token:
        raise ValueError("refusing to serve without a service token")
    from nubis.api.shared.errors import ApiError

    middleware: list[Any] = [Auth(token), Disabled(svc)]
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _on_unexpected)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(ComputeError, _on_compute_error)

    async def on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           ex: ApiError, params: dict[str, Any]) -> None:
        _fault(resp, ex.status, ex.message, type(ex).__name__)
    app.add_error_handler(ApiError, on_api_error)
    inst = Instances(svc, asyncio.Semaphore(svc.cfg.max_concurrent_builds))
    app.add_route("/healthcheck", Health())
    app.add_route("/v1/host", Host(svc))
    app.add_route("/v1/instances", inst)
    app.add_route("/v1/instances/{uuid}", inst, suffix="one")
    app.add_route("/v1/instances/{uuid}/console", inst, suffix="console")
    app.add_route("/v1/instances/{uuid}/{action}", inst, suffix="action")
    from nubis.daemons.compute.volumes import VolumeRoutes

    vols = VolumeRoutes(svc.driver)
    app.add_route("/v1/instances/{uuid}/volumes", vols)
    app.add_route("/v1/instances/{uuid}/volumes/{volume_id}", vols, suffix="one")
    return app


def domain_type(cfg: ComputeConfig, state: Path) -> str:
    """Return the guests' domain type: forced, else the cached probe result, else TCG."""
    if cfg.domain_type != "auto":
        return cfg.domain_type
    import json

    try:
        doc = json.loads((state / PROBE_CACHE).read_text())
        if doc.get("domain_type") in ("kvm", "qemu"):
            return str(doc["domain_type"])
    except (OSError, ValueError, AttributeError):
        pass
    return "qemu"


def compute_state_dir(cfg: ComputeConfig, state_dir: Path) -> Path:
    """Return where instance files live: ``instances_path``, the state dir, or /var/lib.

    QEMU runs as its own user and must search every directory above its files; a
    state dir under ``/root`` (mode 0700) is not reachable, so the files go to a
    per-state-dir directory under ``/var/lib/nubis`` instead.
    """
    if cfg.instances_path:
        return Path(cfg.instances_path).absolute()
    if blocking_ancestor(state_dir / "compute") is None:
        return state_dir / "compute"
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path("/var/lib/nubis") / f"compute-{digest}"


def service_token(cfg: ComputeConfig, state_dir: Path) -> str:
    """Return the configured service token, or the state dir's (created on first use)."""
    return cfg.service_token or load_or_create(state_dir / "compute" / "service_token")


def run(cfg: ComputeConfig, cluster: ClusterConfig, peers: Peers | None,
        once: bool = False) -> int:
    """Start libvirtd if needed, reconcile, report to the scheduler and serve."""
    import uvicorn

    state_dir = Path(cluster.state_dir).resolve()
    disabled = ""
    try:
        ensure_libvirtd()
    except (ComputeError, OSError) as exc:
        disabled = str(exc)
    compute_dir = compute_state_dir(cfg, state_dir)
    driver = LibvirtDriver(DriverConfig(state_dir=compute_dir,
                                        domain_type=domain_type(  # type: ignore[arg-type]
                                            cfg, compute_dir)))
    host_ip = cfg.bind_ip or cluster.bind_ip
    svc = ComputeService(cfg, driver, cfg.host or socket.gethostname(),
                         http_base(host_ip, cfg.port), peers)
    try:
        if disabled:
            raise ComputeError(disabled)
        driver.setup()
    except (ComputeError, OSError) as exc:
        # Serve anyway (the rest of the cloud works); report nothing, refuse builds.
        svc.disabled_reason = str(exc)
        LOG.error("compute host disabled: %s", exc)
        print(f"compute: host disabled: {exc}", file=sys.stderr)
    removed = [] if svc.disabled_reason else svc.reconcile()
    if removed:
        LOG.warning("removed %d half-built instances: %s", len(removed), removed)
    app = build_app(svc, service_token(cfg, state_dir))
    if once:
        if not svc.disabled_reason:
            svc.report()
        return 0
    stop = threading.Event()
    if not svc.disabled_reason:
        threading.Thread(target=svc.report_forever, args=(stop,), daemon=True,
                         name="resource-tracker").start()
    server = uvicorn.Server(uvicorn.Config(app, host=host_ip, port=cfg.port, loop="uvloop",
                                           http="httptools", lifespan="off",
                                           log_level="warning", access_log=False,
                                           timeout_keep_alive=KEEPALIVE_TIMEOUT))
    try:
        server.run()
    finally:
        stop.set()
    return 0
