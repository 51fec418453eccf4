"""``nubis api``: one ASGI process serving every control-plane API under a path prefix.

Each API is its own Falcon ASGI sub-application (own routes, own error format)
built by a factory ``create_app(prefix, services, section)`` from its
:class:`Mount`; :class:`PrefixRouter` dispatches on the first path segment. The
mounts (which APIs, with which config section) come from the CLI layer
(``nubis.registry.API_MOUNTS``): mounting a new API is one line there. The
process serves with uvicorn on uvloop + httptools.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from nubis.api.shared.config import ApiConfig, Mount, TokenSettings
from nubis.api.shared.services import ApiServices, build_services
from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import KEEPALIVE_TIMEOUT
from nubis.common.metrics import Metrics, MetricsMiddleware

LOG = logging.getLogger("nubis.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Factory = Callable[[str, ApiServices, Any], ASGIApp]


class PrefixRouter:
    """Dispatch ASGI requests to sub-applications by path prefix.

    The process's ASGI lifespan is answered here; at its startup, every
    sub-application with an ``on_startup()`` (a plain callable, run in the
    serving event loop) is told, e.g. to start its background sweeps.
    """

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send, self._started)
            return
        path: str = scope.get("path", "/")
        if path == "/healthcheck":
            await _plain(send, 200, b"OK")
            return
        for prefix, app in self.apps.items():
            if path == prefix or path.startswith(prefix + "/"):
                await app(scope, receive, send)
                return
        await self._not_found(scope, send)

    def _started(self) -> None:
        for app in self.apps.values():
            hook = getattr(app, "on_startup", None)
            if callable(hook):
                hook()

    @staticmethod
    async def _lifespan(receive: Receive, send: Send, started: Callable[[], None]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _not_found(scope: Scope, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps({"error": {"code": 404, "title": "Not Found",
                                     "message": "The resource could not be found."}}).encode()
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def load_factory(target: str) -> Factory:
    """Import ``"module:function"``."""
    module, _, func = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module), func)
    return factory


def create_app(api: ApiConfig, cluster: ClusterConfig, tokens: TokenSettings,
               mounts: Sequence[Mount]) -> tuple[PrefixRouter, ApiServices]:
    """Build every mounted API."""
    services = build_services(api, cluster, tokens)
    apps = {m.prefix: load_factory(m.factory)(m.prefix, services, m.section) for m in mounts}
    return PrefixRouter(apps), services


def run(api: ApiConfig, cluster: ClusterConfig, tokens: TokenSettings,
        mounts: Sequence[Mount], once: bool = False) -> int:
    """Serve the control-plane APIs until stopped (``once`` is ignored: a server)."""
    import uvicorn

    del once
    app, _services = create_app(api, cluster, tokens, mounts)
    uvicorn.run(MetricsMiddleware(app, Metrics("api")),
                host=api.resolved_bind_ip(cluster.bind_ip), port=api.port, loop="uvloop",
                http="httptools", log_level="warning", lifespan="on", access_log=False,
                timeout_keep_alive=KEEPALIVE_TIMEOUT)
    return 0
