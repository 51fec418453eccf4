"""The network sub-application (Neutron v2.0) mounted under ``/network`` in ``nubis api``.

A sibling service: it authenticates with the shared local token verification and
keeps its records in the control-plane database; it imports no other service.
Version discovery (``GET /network``, ``GET /network/v2.0``) is public.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
from nubis.api.network.agentapi import AgentState
from nubis.api.network.config import NetworkApiConfig
from nubis.api.network.errors import bad_request, install_neutron_errors, policy_denied
from nubis.api.network.networks import Networks, Subnets
from nubis.api.network.ports import Ports
from nubis.api.network.routers import FloatingIPs, Routers
from nubis.api.network.secgroups import SecurityGroupRules, SecurityGroups
from nubis.api.network.service import NetworkService, auth, body_of, project_of
from nubis.api.network.store import NetworkStore
from nubis.api.shared.auth import FalconAuthMiddleware
from nubis.api.shared.rest import read_json
from nubis.api.shared.services import ApiServices

#: The extensions this API implements, exactly (clients probe ``/v2.0/extensions``).
EXTENSIONS: tuple[tuple[str, str, str], ...] = (
    ("security-group", "security-group", "The security groups extension."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external "
     "application"),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical "
     "networks"),
    ("external-net", "Neutron external network", "Adds external network attribute to "
     "network resource."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between "
     "L2 Neutron networks and access to external networks via a NAT gateway."),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a "
     "router on server side by atomically adding/removing extra routes"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the "
     "router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("quotas", "Quota management support", "Expose functions for quotas management per "
     "tenant"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id "
     "field is enabled."),
    ("standard-attr-description", "standard-attr-description", "Extension to add "
     "descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at "
     "fields to all Neutron resources that have Neutron standard attributes."),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display "
     "the revision number of neutron resources."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is "
     "enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security "
     "group is stateful or not"),
)
UPDATED = "2026-01-01T00:00:00-00:00"


def extension_doc(alias: str, name: str, description: str) -> dict[str, Any]:
    """Render one extension."""
    return {"alias": alias, "name": name, "description": description, "updated": UPDATED,
            "links": []}


class Versions:
    """``GET /network`` (the version list) and ``GET /network/v2.0`` (its resources)."""

    auth_required = False

    def __init__(self, svc: NetworkService, single: bool) -> None:
        self.svc = svc
        self.single = single

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Answer the version document."""
        if not self.single:
            resp.media = {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"href": f"{self.svc.base_url}/", "rel": "self"}]}]}
            return
        resp.media = {"resources": [
            {"name": name, "collection": coll,
             "links": [{"href": f"{self.svc.base_url}/{coll}", "rel": "self"}]}
            for name, coll in (("network", "networks"), ("subnet", "subnets"),
                               ("port", "ports"), ("security_group", "security-groups"),
                               ("security_group_rule", "security-group-rules"),
                               ("quota", "quotas"), ("router", "routers"),
                               ("floatingip", "floatingips"))]}


class Extensions:
    """``GET /v2.0/extensions`` and ``GET /v2.0/extensions/{alias}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the implemented extensions."""
        resp.media = {"extensions": [extension_doc(*e) for e in EXTENSIONS]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         alias: str) -> None:
        """Show one extension (404 for any other)."""
        for ext in EXTENSIONS:
            if ext[0] == alias:
                resp.media = {"extension": extension_doc(*ext)}
                return
        raise falcon.HTTPNotFound(description=f"Extension with alias {alias} does not exist")


class Quotas:
    """``/v2.0/quotas`` (admin), ``/v2.0/quotas/{project}`` and its ``/default``."""

    def __init__(self, svc: NetworkService) -> None:
        self.svc = svc

    def _check(self, req: falcon.asgi.Request, project_id: str) -> None:
        if not auth(req).is_admin and project_id != project_of(req):
            raise policy_denied("rule:get_quota")

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         project_id: str) -> None:
        """Show a project's quotas."""
        self._check(req, project_id)
        resp.media = {"quota": self.svc.quota_limits(project_id)}

    async def on_get_default(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             project_id: str) -> None:
        """Show the default quotas."""
        self._check(req, project_id)
        resp.media = {"quota": self.svc.quota_limits("")}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         project_id: str) -> None:
        """Set a project's quotas (admin)."""
        self.svc.require_admin(req, "update_quota")
        body = body_of(await read_json(req), "quota")
        known = self.svc.quota_limits(project_id)
        limits = {}
        for key, value in body.items():
            if key not in known:
                raise bad_request("quota", f"Unrecognized attribute(s) '{key}'")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise bad_request("quota", f"'{value}' is not an integer >= -1")
            limits[key] = value
        self.svc.store.set_quotas(project_id, limits)
        resp.media = {"quota": self.svc.quota_limits(project_id)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            project_id: str) -> None:
        """Revert a project to the default quotas (admin)."""
        self.svc.require_admin(req, "delete_quota")
        self.svc.store.delete_quotas(project_id)
        resp.status = falcon.HTTP_204


def build_service(services: ApiServices, cfg: NetworkApiConfig, prefix: str) -> NetworkService:
    """Create the store (migrating it) of the network API."""
    store = NetworkStore(services.engine, base_mac=cfg.base_mac)
    store.migrate()
    svc = NetworkService(cfg, store, f"{services.public_url}{prefix}")
    svc.l3.migrate()
    return svc


def create_app(prefix: str, services: ApiServices,
               section: NetworkApiConfig) -> falcon.asgi.App[Any, Any]:
    """Build the Neutron v2.0 application whose routes start with ``prefix``."""
    svc = build_service(services, section, prefix)
    app = falcon.asgi.App(middleware=[FalconAuthMiddleware(services.verifier)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    install_neutron_errors(app)
    add_routes(app, prefix, svc)
    app.add_route(f"{prefix}/agent/v1/state", AgentState(svc, section.agent_token))
    return app


def add_routes(app: falcon.asgi.App[Any, Any], prefix: str, svc: NetworkService) -> None:
    """Attach every network resource under ``prefix``."""
    v = f"{prefix}/v2.0"
    app.add_route(prefix, Versions(svc, single=False))
    app.add_route(v, Versions(svc, single=True))
    exts = Extensions()
    app.add_route(f"{v}/extensions", exts)
    app.add_route(f"{v}/extensions/{{alias}}", exts, suffix="one")
    for path, resource, key in (("networks", Networks(svc), "net_id"),
                                ("subnets", Subnets(svc), "subnet_id"),
                                ("ports", Ports(svc), "port_id"),
                                ("security-groups", SecurityGroups(svc), "sg_id"),
                                ("security-group-rules", SecurityGroupRules(svc), "rule_id"),
                                ("routers", Routers(svc), "router_id"),
                                ("floatingips", FloatingIPs(svc), "fip_id")):
        app.add_route(f"{v}/{path}", resource)
        app.add_route(f"{v}/{path}/{{{key}}}", resource, suffix="one")
    routers = Routers(svc)
    for action in ("add", "remove"):
        app.add_route(f"{v}/routers/{{router_id}}/{action}_router_interface", routers,
                      suffix=action)
        app.add_route(f"{v}/routers/{{router_id}}/{action}_extraroutes", routers,
                      suffix=f"{action}_extraroutes")
    quotas = Quotas(svc)
    app.add_route(f"{v}/quotas/{{project_id}}", quotas, suffix="one")
    app.add_route(f"{v}/quotas/{{project_id}}/default", quotas, suffix="default")
