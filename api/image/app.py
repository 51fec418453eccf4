"""The image sub-application (Glance v2) mounted under ``/image`` in ``nubis api``.

A sibling service: it authenticates with the shared local token verification,
keeps its records in the control-plane database, and reaches the object store
over HTTP as its own service account. It imports no other service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import falcon.asgi
from nubis.api.image import handlers as h
from nubis.api.image import imports
from nubis.api.image.config import ImageConfig
from nubis.api.image.data import too_large
from nubis.api.image.errors import install_glance_errors, render
from nubis.api.image.jsonschemas import ImageValidator
from nubis.api.image.members import MemberItem, Members
from nubis.api.image.policy import ImagePolicy
from nubis.api.image.recovery import ImportRecovery
from nubis.api.image.service import ImageService
from nubis.api.image.store import ImageStore
from nubis.api.image.swift import ServiceAuth, ServiceCredentials, SwiftClient
from nubis.api.image.tasks import ImageTasks, Tasks, TaskStore
from nubis.api.image.transfer import BODY_STATE, BodyState, ImageFile
from nubis.api.shared.auth import FalconAuthMiddleware
from nubis.api.shared.services import ApiServices
from nubis.common.httpclient import HTTPClient

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyWatch:
    """Record in the scope whether a request body arrived whole; refuse oversized ones.

    Falcon's request stream ends quietly when the client disconnects; an
    upload must know the difference between "the body ended" and "the client
    went away" so a cut upload never becomes an image. Falcon also awaits the
    first piece of the body before a handler runs (and uvicorn answers
    ``Expect: 100-continue`` then), so an announced length over the size cap is
    refused here, before the client is invited to send it.
    """

    def __init__(self, app: Any, size_cap: int,
                 on_call: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.size_cap = size_cap
        self.on_call = on_call

    def on_startup(self) -> None:
        """Start the app's background work (``nubis api``'s lifespan startup)."""
        self.on_call()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a watched ``receive``."""
        self.on_call()
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._over_cap(scope):
            await self._refuse(scope, send)
            return
        state = BodyState()
        scope[BODY_STATE] = state

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                state.complete = True
            elif message["type"] == "http.disconnect":
                state.disconnected = True
            return message

        await self.app(scope, watched, send)

    def _over_cap(self, scope: Scope) -> bool:
        if scope.get("method") != "PUT" or not str(scope.get("path", "")).endswith("/file"):
            return False
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                return int(value) > self.size_cap
        return False

    async def _refuse(self, scope: Scope, send: Send) -> None:
        accept = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k == b"accept"), "")
        content_type, body = render(413, too_large(self.size_cap).message, accept)
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def build_service(services: ApiServices, cfg: ImageConfig) -> ImageService:
    """Create the store (migrating it), policy and object-store client of the image API.

    ``cfg`` is the ``[image]`` section with its service password resolved
    (:meth:`ImageConfig.for_cluster`, done by the CLI layer's mount).
    """
    if not cfg.service_password:
        raise ValueError("[image] service_password must be resolved before mounting")
    store = ImageStore(services.engine)
    store.migrate()
    creds = ServiceCredentials(
        auth_url=f"{services.public_url}/identity/v3", user=cfg.service_user,
        password=cfg.service_password, project=cfg.service_project, swift_url=cfg.swift_url)
    http = HTTPClient(timeout=cfg.swift_timeout)
    swift = SwiftClient(http, ServiceAuth(http, creds), cfg.container)
    return ImageService(cfg, store, ImagePolicy(), swift, ImageValidator(),
                        services.api.max_body_bytes)


def create_app(prefix: str, services: ApiServices, section: ImageConfig) -> BodyWatch:
    """Build the Glance v2 application whose routes start with ``prefix``."""
    svc = build_service(services, section)
    app = falcon.asgi.App(middleware=[FalconAuthMiddleware(services.verifier)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    app.req_options.default_media_type = "application/json"
    install_glance_errors(app)
    records = add_routes(app, prefix, f"{services.public_url}{prefix}/v2/", svc)
    # the sweep for abandoned imports starts with the process (``on_startup``), or
    # with the first call where no lifespan startup came (an in-process test app)
    recovery = ImportRecovery(svc.config, svc.store, records, svc.swift)
    return BodyWatch(app, svc.config.size_cap, recovery.ensure_running)


def add_routes(app: falcon.asgi.App[Any, Any], prefix: str, v2_url: str,
               svc: ImageService) -> TaskStore:
    """Attach every Glance resource under ``prefix``; return the import task store."""
    v2 = f"{prefix}/v2"
    app.add_route(prefix, h.Versions(v2_url, 300))
    app.add_route(f"{prefix}/versions", h.Versions(v2_url, 200))
    app.add_route(v2, h.Versions(v2_url, 300))
    app.add_route(f"{v2}/schemas/{{name}}", h.Schema())
    app.add_route(f"{v2}/info/import", imports.ImportInfo(svc.config.import_methods))
    app.add_route(f"{v2}/images", h.Images(svc))
    app.add_route(f"{v2}/images/{{image_id}}", h.ImageItem(svc))
    app.add_route(f"{v2}/images/{{image_id}}/file", ImageFile(svc))
    app.add_route(f"{v2}/images/{{image_id}}/stage", imports.ImageStage(svc))
    records = TaskStore(svc.store.engine, svc.store.clock)
    app.add_route(f"{v2}/images/{{image_id}}/import", imports.ImageImport(svc, records))
    app.add_route(f"{v2}/images/{{image_id}}/tasks", ImageTasks(svc, records))
    task_routes = Tasks(svc, records)
    app.add_route(f"{v2}/tasks", task_routes)
    app.add_route(f"{v2}/tasks/{{task_id}}", task_routes, suffix="one")
    app.add_route(f"{v2}/images/{{image_id}}/actions/{{action}}", h.Action(svc))
    app.add_route(f"{v2}/images/{{image_id}}/tags/{{tag}}", h.Tag(svc))
    app.add_route(f"{v2}/images/{{image_id}}/members", Members(svc))
    app.add_route(f"{v2}/images/{{image_id}}/members/{{member_id}}", MemberItem(svc))
    return records
