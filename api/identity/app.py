"""The identity sub-application (Keystone v3) mounted under ``/identity``."""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon
import falcon.asgi
import sqlalchemy as sa
from nubis.api.identity import handlers as h
from nubis.api.identity import schema
from nubis.api.identity.authn import Authenticator
from nubis.api.identity.config import IdentityConfig
from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.ec2_api import add_signed_token_routes
from nubis.api.identity.limit_api import add_limit_routes
from nubis.api.identity.passwords import FailureLimiter, PasswordHasher
from nubis.api.identity.resources import Collection, IdentityContext, Item, entity_specs
from nubis.api.identity.trust_api import TrustItem, TrustRole, TrustRoles, Trusts
from nubis.api.shared.auth import FalconAuthMiddleware
from nubis.api.shared.errors import install_keystone_errors, keystone_body
from nubis.api.shared.policy import IDENTITY, Policy
from nubis.api.shared.services import ApiServices
from nubis.common.db import migrate

VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"
LOG = logging.getLogger("nubis.api")


def version_doc(url: str) -> dict[str, Any]:
    """Return the v3 version entry, linking to ``url`` (ending in ``/v3/``)."""
    return {"id": VERSION_ID, "status": "stable", "updated": VERSION_UPDATED,
            "links": [{"rel": "self", "href": url}],
            "media-types": [{"base": "application/json", "type": MEDIA_TYPE}]}


class Versions:
    """``GET /identity``: the version list (300 Multiple Choices, like Keystone)."""

    auth_required = False

    def __init__(self, v3_url: str) -> None:
        self.v3_url = v3_url

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List versions."""
        resp.status = falcon.HTTP_300
        resp.media = {"versions": {"values": [version_doc(self.v3_url)]}}


class V3:
    """``GET /identity/v3``: the v3 version document."""

    auth_required = False

    def __init__(self, v3_url: str) -> None:
        self.v3_url = v3_url

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Describe v3."""
        resp.media = {"version": version_doc(self.v3_url)}


def make_store(services: ApiServices, cfg: IdentityConfig) -> IdentityStore:
    """Migrate the identity schema and return a store on the shared engine."""
    migrate(services.engine, "identity", schema.MIGRATIONS)
    return IdentityStore(services.engine, PasswordHasher.from_config(cfg),
                         services.verifier.revocations, max_token_life=float(cfg.token_ttl),
                         config=cfg)


def create_app(prefix: str, services: ApiServices,
               cfg: IdentityConfig) -> falcon.asgi.App[Any, Any]:
    """Build the Keystone v3 application whose routes start with ``prefix``."""
    store = make_store(services, cfg)
    public = f"{services.public_url}{prefix}"
    authn = Authenticator(
        store, services.verifier, cfg.token_ttl,
        FailureLimiter(cfg.max_failures_per_user, cfg.lockout_seconds),
        FailureLimiter(cfg.max_failures_per_source, cfg.lockout_seconds), time.time)
    ctx = IdentityContext(store, Policy(IDENTITY), authn, f"{public}/v3",
                          services.api.max_body_bytes)
    app = falcon.asgi.App(middleware=[FalconAuthMiddleware(services.verifier)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    install_keystone_errors(app, f'Keystone uri="{public}"')
    app.add_error_handler(sa.exc.DataError, on_unstorable_value)
    add_routes(app, prefix, ctx)
    return app


async def on_unstorable_value(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                              ex: sa.exc.DataError, params: dict[str, Any]) -> None:
    """Answer 400 for a path or query value the database refuses to compare or store.

    PostgreSQL rejects what SQLite takes (a NUL character, a string longer than
    its column); that is the client's input, not a server fault.
    """
    LOG.info("refused a value on %s %s: %s", req.method, req.path, ex.orig)
    resp.status = 400
    resp.content_type = "application/json"
    resp.data = keystone_body(400, "Bad Request", "Invalid input: a value in the request "
                              "cannot be stored (NUL character or too long).")


def add_routes(app: falcon.asgi.App[Any, Any], prefix: str, ctx: IdentityContext) -> None:
    """Attach every Keystone resource under ``prefix``."""
    v3 = f"{prefix}/v3"
    app.add_route(prefix, Versions(f"{ctx.base}/"))
    app.add_route(v3, V3(f"{ctx.base}/"))
    for spec in entity_specs(ctx.store):
        app.add_route(f"{v3}/{spec.collection}", Collection(ctx, spec))
        app.add_route(f"{v3}/{spec.collection}/{{{spec.member}_id}}", Item(ctx, spec))
    app.add_route(f"{v3}/auth/tokens", h.AuthTokens(ctx))
    app.add_route(f"{v3}/auth/catalog", h.AuthCatalog(ctx))
    app.add_route(f"{v3}/auth/projects", h.AuthTargets(ctx, "project"))
    app.add_route(f"{v3}/auth/domains", h.AuthTargets(ctx, "domain"))
    app.add_route(f"{v3}/auth/system", h.AuthSystem(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/password", h.UserPassword(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/projects", h.UserProjects(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/groups", h.UserGroups(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/application_credentials", h.AppCreds(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/application_credentials/{{ident}}", h.AppCred(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/credentials/OS-EC2", h.Ec2Creds(ctx))
    app.add_route(f"{v3}/users/{{user_id}}/credentials/OS-EC2/{{access}}", h.Ec2Cred(ctx))
    app.add_route(f"{v3}/groups/{{group_id}}/users", h.GroupUsers(ctx))
    app.add_route(f"{v3}/groups/{{group_id}}/users/{{user_id}}", h.GroupUser(ctx))
    app.add_route(f"{v3}/role_assignments", h.RoleAssignments(ctx))
    app.add_route(f"{v3}/role_inferences", h.RoleInferences(ctx))
    app.add_route(f"{v3}/roles/{{role_id}}/implies/{{implied}}", h.ImpliedRole(ctx))
    app.add_route(f"{v3}/roles/{{role_id}}/implies", h.ImpliedRoles(ctx))
    for target in ("project", "domain"):
        for actor in ("user", "group"):
            base = f"{v3}/{target}s/{{{target}_id}}/{actor}s/{{{actor}_id}}/roles"
            app.add_route(base, h.Grants(ctx, target, actor))  # type: ignore[arg-type]
            app.add_route(f"{base}/{{role_id}}", h.Grant(ctx, target, actor))  # type: ignore[arg-type]
    for actor in ("user", "group"):
        base = f"{v3}/system/{actor}s/{{{actor}_id}}/roles"
        app.add_route(base, h.Grants(ctx, "system", actor))  # type: ignore[arg-type]
        app.add_route(f"{base}/{{role_id}}", h.Grant(ctx, "system", actor))  # type: ignore[arg-type]
    add_delegation_routes(app, v3, ctx)
    add_signed_token_routes(app, v3, ctx)


def add_delegation_routes(app: falcon.asgi.App[Any, Any], v3: str, ctx: IdentityContext) -> None:
    """Attach OS-INHERIT grants, OS-TRUST trusts and the unified limits."""
    for target in ("project", "domain"):
        for actor in ("user", "group"):
            base = (f"{v3}/OS-INHERIT/{target}s/{{{target}_id}}/{actor}s/{{{actor}_id}}/roles")
            app.add_route(f"{base}/inherited_to_projects",
                          h.Grants(ctx, target, actor, inherited=True))  # type: ignore[arg-type]
            app.add_route(f"{base}/{{role_id}}/inherited_to_projects",
                          h.Grant(ctx, target, actor, inherited=True))  # type: ignore[arg-type]
    app.add_route(f"{v3}/OS-TRUST/trusts", Trusts(ctx))
    app.add_route(f"{v3}/OS-TRUST/trusts/{{trust_id}}", TrustItem(ctx))
    app.add_route(f"{v3}/OS-TRUST/trusts/{{trust_id}}/roles", TrustRoles(ctx))
    app.add_route(f"{v3}/OS-TRUST/trusts/{{trust_id}}/roles/{{role_id}}", TrustRole(ctx))
    add_limit_routes(app, v3, ctx)
