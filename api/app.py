"""``nubis api``: one ASGI process serving every control-plane API under a path prefix.

Each API is its own Falcon ASGI sub-application (own routes, own error format)
built by a factory ``create_app(prefix, services)``; :class:`PrefixRouter`
dispatches on the first path segment. Mounting a new API is one line in
:data:`SUBAPPS`. The process serves with uvicorn on uvloop + httptools.

Run directly (tests, development): ``python -m nubis.api.app CONFIG.toml``.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from nubis.api.services import ApiServices, build_services

if TYPE_CHECKING:
    from nubis.settings import Config

LOG = logging.getLogger("nubis.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: path prefix -> ``"module:factory"``; the factory is ``(prefix, services) -> ASGI app``.
SUBAPPS: dict[str, str] = {
    "/identity": "nubis.api.identity.app:create_app",
}


class PrefixRouter:
    """Dispatch ASGI requests to sub-applications by path prefix."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
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

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
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


def load_factory(target: str) -> Callable[[str, ApiServices], ASGIApp]:
    """Import ``"module:function"``."""
    module, _, func = target.partition(":")
    factory: Callable[[str, ApiServices], ASGIApp] = getattr(
        importlib.import_module(module), func)
    return factory


def create_app(config: Config) -> tuple[PrefixRouter, ApiServices]:
    """Build every mounted API for ``config``."""
    services = build_services(config)
    apps = {prefix: load_factory(target)(prefix, services) for prefix, target in SUBAPPS.items()}
    return PrefixRouter(apps), services


def run(config: Config, once: bool = False) -> int:
    """Serve the control-plane APIs until stopped (``once`` is ignored: a server)."""
    import uvicorn

    app, _services = create_app(config)
    uvicorn.run(app, host=config.api.resolved_bind_ip(config.cluster.bind_ip),
                port=config.api.port, loop="uvloop", http="httptools",
                log_level="warning", lifespan="on", access_log=False)
    return 0


def main(argv: list[str]) -> int:
    """Run ``nubis api`` from a config file path (development and tests)."""
    from nubis.settings import exit_on_config_error, load_config

    if len(argv) != 1:
        print("usage: python -m nubis.api.app CONFIG.toml", file=sys.stderr)
        return 2
    config = exit_on_config_error(lambda: load_config(argv[0]))
    logging.basicConfig(level=logging.WARNING)
    return run(config)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
