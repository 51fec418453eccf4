"""The volume sub-application (Cinder v3) mounted under ``/volume`` in ``nubis api``.

A sibling service: it authenticates with the shared local token verification,
keeps its records in the control-plane database, and reaches the volume daemon
and the image service over HTTP (:mod:`nubis.api.volume.clients`). It imports
no other service.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi
from nubis.api.shared.auth import FalconAuthMiddleware
from nubis.api.shared.rest import MicroversionMiddleware
from nubis.api.shared.services import ApiServices
from nubis.api.volume.actions import Attachments, VolumeActions
from nubis.api.volume.backups import Backups
from nubis.api.volume.clients import ImageClient, VolumeDaemonClient
from nubis.api.volume.config import VolumeApiConfig
from nubis.api.volume.errors import install_cinder_errors
from nubis.api.volume.qos import QosSpecs
from nubis.api.volume.reconcile import Reconciler
from nubis.api.volume.resources import (
    Limits,
    Messages,
    Quotas,
    Services,
    Snapshots,
    Types,
    Versions,
    Zones,
)
from nubis.api.volume.service import MAX_VERSION, MIN_VERSION, VolumeService
from nubis.api.volume.store import VolumeStore
from nubis.api.volume.transfers import Transfers
from nubis.api.volume.volumes import VolumeMetadata, Volumes
from nubis.common.httpclient import HTTPClient


def build_service(services: ApiServices, cfg: VolumeApiConfig, prefix: str) -> VolumeService:
    """Create the store (migrating it) and the peer clients of the volume API."""
    if not cfg.volume_url or not cfg.volume_token:
        raise ValueError("[volume_api] peers must be resolved before mounting")
    store = VolumeStore(services.engine)
    store.migrate()
    http = HTTPClient(timeout=cfg.operation_timeout)
    image_url = cfg.image_url or f"{services.public_url}/image"
    return VolumeService(cfg, store, f"{services.public_url}{prefix}",
                         VolumeDaemonClient(http, cfg.volume_url, cfg.volume_token,
                                            cfg.operation_timeout),
                         ImageClient(http, image_url, {}))


def create_app(prefix: str, services: ApiServices,
               section: VolumeApiConfig) -> falcon.asgi.App[Any, Any]:
    """Build the Cinder v3 application whose routes start with ``prefix``."""
    svc = build_service(services, section, prefix)
    middleware: list[Any] = [
        MicroversionMiddleware("volume", f"{prefix}/v3", MIN_VERSION, MAX_VERSION),
        FalconAuthMiddleware(services.verifier), Reconciler(svc)]
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    install_cinder_errors(app)
    add_routes(app, prefix, svc, section.object_store_url)
    return app


def add_routes(app: falcon.asgi.App[Any, Any], prefix: str, svc: VolumeService,
               storage_url: str) -> None:
    """Attach every volume resource under ``prefix``."""
    v = f"{prefix}/v3"
    app.add_route(prefix, Versions(svc, single=False))
    app.add_route(v, Versions(svc, single=True))
    vols = Volumes(svc)
    app.add_route(f"{v}/volumes", vols)
    app.add_route(f"{v}/volumes/detail", vols, suffix="detail")
    app.add_route(f"{v}/volumes/summary", vols, suffix="summary")
    app.add_route(f"{v}/volumes/{{volume_id}}", vols, suffix="one")
    app.add_route(f"{v}/volumes/{{volume_id}}/action", VolumeActions(svc))
    meta = VolumeMetadata(svc)
    app.add_route(f"{v}/volumes/{{volume_id}}/metadata", meta)
    app.add_route(f"{v}/volumes/{{volume_id}}/metadata/{{key}}", meta, suffix="one")
    types = Types(svc)
    app.add_route(f"{v}/types", types)
    app.add_route(f"{v}/types/{{type_id}}", types, suffix="one")
    app.add_route(f"{v}/types/{{type_id}}/extra_specs", types, suffix="specs")
    app.add_route(f"{v}/types/{{type_id}}/extra_specs/{{key}}", types, suffix="spec")
    app.add_route(f"{v}/types/{{type_id}}/os-volume-type-access", types, suffix="access")
    app.add_route(f"{v}/types/{{type_id}}/action", types, suffix="action")
    snaps = Snapshots(svc)
    app.add_route(f"{v}/snapshots", snaps)
    app.add_route(f"{v}/snapshots/detail", snaps, suffix="detail")
    app.add_route(f"{v}/snapshots/{{snapshot_id}}", snaps, suffix="one")
    app.add_route(f"{v}/snapshots/{{snapshot_id}}/action", snaps, suffix="action")
    backups = Backups(svc, storage_url)
    app.add_route(f"{v}/backups", backups)
    app.add_route(f"{v}/backups/detail", backups, suffix="detail")
    app.add_route(f"{v}/backups/{{backup_id}}", backups, suffix="one")
    app.add_route(f"{v}/backups/{{backup_id}}/restore", backups, suffix="restore")
    atts = Attachments(svc)
    app.add_route(f"{v}/attachments", atts)
    app.add_route(f"{v}/attachments/detail", atts, suffix="detail")
    app.add_route(f"{v}/attachments/{{attachment_id}}", atts, suffix="one")
    app.add_route(f"{v}/attachments/{{attachment_id}}/action", atts, suffix="action")
    quotas = Quotas(svc)
    for collection in ("os-volume-transfer", "volume-transfers"):
        xfers = Transfers(svc, collection)
        app.add_route(f"{v}/{collection}", xfers)
        app.add_route(f"{v}/{collection}/detail", xfers, suffix="detail")
        app.add_route(f"{v}/{collection}/{{transfer_id}}", xfers, suffix="one")
        app.add_route(f"{v}/{collection}/{{transfer_id}}/accept", xfers, suffix="accept")
    specs = QosSpecs(svc)
    app.add_route(f"{v}/qos-specs", specs)
    app.add_route(f"{v}/qos-specs/{{qos_id}}", specs, suffix="one")
    for sub in ("delete_keys", "associations", "associate", "disassociate",
                "disassociate_all"):
        app.add_route(f"{v}/qos-specs/{{qos_id}}/{sub}", specs, suffix=sub)
    app.add_route(f"{v}/os-quota-sets/{{project_id}}", quotas)
    app.add_route(f"{v}/os-quota-sets/{{project_id}}/defaults", quotas, suffix="defaults")
    app.add_route(f"{v}/limits", Limits(svc))
    app.add_route(f"{v}/os-availability-zone", Zones(svc))
    app.add_route(f"{v}/os-services", Services(svc))
    msgs = Messages(svc)
    app.add_route(f"{v}/messages", msgs)
    app.add_route(f"{v}/messages/{{message_id}}", msgs, suffix="one")
