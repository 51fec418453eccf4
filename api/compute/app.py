"""The compute sub-application (Nova v2.1) mounted under ``/compute`` in ``nubis api``.

A sibling service: it authenticates with the shared local token verification,
keeps its records in the control-plane database, and reaches the scheduler, the
image service and the compute daemons over HTTP (:mod:`nubis.api.compute.clients`).
It imports no other service.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi
from nubis.api.compute.actions import Action, Limits, QuotaSets
from nubis.api.compute.admin import (
    AvailabilityZones,
    Hypervisors,
    InstanceActions,
    ServerGroups,
)
from nubis.api.compute.aggregates import Aggregates
from nubis.api.compute.build import Builder
from nubis.api.compute.clients import ComputeClient, ImageClient, SchedulerClient
from nubis.api.compute.config import ComputeApiConfig
from nubis.api.compute.errors import Microversions, install_nova_errors
from nubis.api.compute.metadata import MetadataService
from nubis.api.compute.netclient import NetworkClient
from nubis.api.compute.os_services import Services
from nubis.api.compute.resources import (
    ExtraSpecs,
    FlavorAccess,
    Flavors,
    Keypairs,
    Versions,
)
from nubis.api.compute.servers import Metadata, ServerItem, Servers, Tags
from nubis.api.compute.service import ComputeService
from nubis.api.compute.store import ComputeStore
from nubis.api.compute.usage import TenantUsage
from nubis.api.compute.volumes import VolumeAttachments
from nubis.api.shared.auth import FalconAuthMiddleware
from nubis.api.shared.services import ApiServices
from nubis.common.httpclient import HTTPClient


class SyncStarter:
    """Start the power-state sync loop with the first request (the loop must be running)."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder
        self.started = False

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Spawn the loop once."""
        if not self.started:
            self.started = True
            self.svc.spawn(self.builder.sync_forever(self.svc.cfg.sync_power_state_interval,
                                                      self.svc.cfg.instance_build_timeout),
                           "power-state sync")


def build_service(services: ApiServices, cfg: ComputeApiConfig, prefix: str) -> ComputeService:
    """Create the store (migrating it) and the peer clients of the compute API."""
    if not cfg.scheduler_url or not cfg.scheduler_token or not cfg.compute_token:
        raise ValueError("[compute_api] peers must be resolved before mounting")
    store = ComputeStore(services.engine)
    store.migrate()
    http = HTTPClient(timeout=cfg.build_timeout)
    image_url = cfg.image_url or f"{services.public_url}/image"
    return ComputeService(
        cfg, store, f"{services.public_url}{prefix}",
        SchedulerClient(http, cfg.scheduler_url, cfg.scheduler_token),
        ImageClient(http, image_url),
        ComputeClient(http, cfg.compute_token, cfg.build_timeout, cfg.action_timeout),
        NetworkClient(http, f"{services.public_url}/network"))


def create_app(prefix: str, services: ApiServices,
               section: ComputeApiConfig) -> falcon.asgi.App[Any, Any]:
    """Build the Nova v2.1 application whose routes start with ``prefix``."""
    svc = build_service(services, section, prefix)
    builder = Builder(svc)
    middleware: list[Any] = [Microversions(prefix), FalconAuthMiddleware(services.verifier),
                             SyncStarter(svc, builder)]
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    install_nova_errors(app)
    add_routes(app, prefix, svc, builder)
    return app


def add_routes(app: falcon.asgi.App[Any, Any], prefix: str, svc: ComputeService,
               builder: Builder) -> None:
    """Attach every compute resource under ``prefix``."""
    v = f"{prefix}/v2.1"
    app.add_route(prefix, Versions(svc, single=False))
    app.add_route(v, Versions(svc, single=True))
    flavors = Flavors(svc)
    app.add_route(f"{v}/flavors", flavors)
    app.add_route(f"{v}/flavors/detail", flavors, suffix="detail")
    app.add_route(f"{v}/flavors/{{flavor_id}}", flavors, suffix="one")
    specs = ExtraSpecs(svc)
    app.add_route(f"{v}/flavors/{{flavor_id}}/os-extra_specs", specs)
    app.add_route(f"{v}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", specs, suffix="one")
    access = FlavorAccess(svc)
    app.add_route(f"{v}/flavors/{{flavor_id}}/os-flavor-access", access)
    app.add_route(f"{v}/flavors/{{flavor_id}}/action", access, suffix="action")
    keypairs = Keypairs(svc)
    app.add_route(f"{v}/os-keypairs", keypairs)
    app.add_route(f"{v}/os-keypairs/{{name}}", keypairs, suffix="one")
    app.add_route(f"{v}/limits", Limits(svc))
    quotas = QuotaSets(svc)
    app.add_route(f"{v}/os-quota-sets/{{project_id}}", quotas)
    app.add_route(f"{v}/os-quota-sets/{{project_id}}/defaults", quotas, suffix="defaults")
    app.add_route(f"{v}/os-quota-sets/{{project_id}}/detail", quotas, suffix="detail")
    servers = Servers(svc, builder)
    app.add_route(f"{v}/servers", servers)
    app.add_route(f"{v}/servers/detail", servers, suffix="detail")
    app.add_route(f"{v}/servers/{{server_id}}", ServerItem(svc, builder))
    app.add_route(f"{v}/servers/{{server_id}}/action", Action(svc, builder))
    actions = InstanceActions(svc)
    app.add_route(f"{v}/servers/{{server_id}}/os-instance-actions", actions)
    app.add_route(f"{v}/servers/{{server_id}}/os-instance-actions/{{request_id}}", actions,
                  suffix="one")
    hvs = Hypervisors(svc)
    app.add_route(f"{v}/os-hypervisors", hvs)
    app.add_route(f"{v}/os-hypervisors/detail", hvs, suffix="detail")
    app.add_route(f"{v}/os-hypervisors/statistics", hvs, suffix="statistics")
    app.add_route(f"{v}/os-hypervisors/{{hypervisor_id}}", hvs, suffix="one")
    os_services = Services(svc)
    app.add_route(f"{v}/os-services", os_services)
    app.add_route(f"{v}/os-services/{{service_id}}", os_services, suffix="one")
    zones = AvailabilityZones(svc)
    app.add_route(f"{v}/os-availability-zone", zones)
    app.add_route(f"{v}/os-availability-zone/detail", zones, suffix="detail")
    tags = Tags(svc)
    app.add_route(f"{v}/servers/{{server_id}}/tags", tags)
    app.add_route(f"{v}/servers/{{server_id}}/tags/{{tag}}", tags, suffix="one")
    groups = ServerGroups(svc)
    app.add_route(f"{v}/os-server-groups", groups)
    app.add_route(f"{v}/os-server-groups/{{group_id}}", groups, suffix="one")
    vols = VolumeAttachments(svc, builder)
    app.add_route(f"{v}/servers/{{server_id}}/os-volume_attachments", vols)
    app.add_route(f"{v}/servers/{{server_id}}/os-volume_attachments/{{volume_id}}", vols,
                  suffix="one")
    mds = MetadataService(svc)
    app.add_route(f"{prefix}/metadata", mds)
    app.add_route(f"{prefix}/metadata/{{path:path}}", mds)
    aggs = Aggregates(svc)
    app.add_route(f"{v}/os-aggregates", aggs)
    app.add_route(f"{v}/os-aggregates/{{agg_id}}", aggs, suffix="one")
    app.add_route(f"{v}/os-aggregates/{{agg_id}}/action", aggs, suffix="action")
    usage = TenantUsage(svc)
    app.add_route(f"{v}/os-simple-tenant-usage", usage)
    app.add_route(f"{v}/os-simple-tenant-usage/{{tenant_id}}", usage, suffix="one")
    meta = Metadata(svc)
    app.add_route(f"{v}/servers/{{server_id}}/metadata", meta)
    app.add_route(f"{v}/servers/{{server_id}}/metadata/{{key}}", meta, suffix="one")
