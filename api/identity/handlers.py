"""The non-generic Keystone resources: tokens, grants, membership, credentials."""

from __future__ import annotations

import json
import time
from typing import Any

import falcon
from nubis.api.identity import views
from nubis.api.identity.assign import ActorKind, Assignment, TargetKind
from nubis.api.identity.creds import new_secret
from nubis.api.identity.resources import IdentityContext, Req, Resp, auth_of, run
from nubis.api.shared.auth import TokenRejectedError
from nubis.api.shared.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    not_found,
)
from nubis.api.shared.tokens import TokenPayload


class Base:
    """A resource bound to the shared identity context."""

    def __init__(self, ctx: IdentityContext) -> None:
        self.ctx = ctx


# --- /v3/auth -----------------------------------------------------------------

class AuthTokens(Base):
    """``/v3/auth/tokens``: issue (public POST), validate, check, revoke."""

    public_methods = ("POST",)

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Authenticate and issue a token."""
        body = await self.ctx.body(req)
        payload = await self.ctx.authn.authenticate(body, req.remote_addr or "-")
        token = self.ctx.authn.verifier.codec.encode(payload)
        resp.status = falcon.HTTP_201
        resp.set_header("X-Subject-Token", token)
        resp.media = await run(self._render, payload, req.get_param("nocatalog") is None)

    def _render(self, payload: TokenPayload, with_catalog: bool) -> dict[str, Any]:
        store = self.ctx.store
        catalog = None
        if with_catalog:
            catalog = store.catalog(payload.project.id if payload.project else None)
        name = None
        if payload.app_cred_id is not None:
            name = store.get_app_cred(payload.app_cred_id)["name"]
        try:
            expiry = store.get_user(payload.user_id).get("password_expires_at")
        except NotFoundError:
            expiry = None
        return views.token(payload, catalog, name, expiry)

    def _subject(self, req: Req) -> TokenPayload:
        subject = req.get_header("X-Subject-Token")
        if not subject:
            raise NotFoundError("Could not find token: (missing X-Subject-Token).")
        allow_expired = views.query_true(req.get_param("allow_expired"))
        try:
            payload = self.ctx.authn.verifier.decode(subject, allow_expired=allow_expired)
        except TokenRejectedError:
            raise NotFoundError("Failed to validate token") from None
        return payload

    async def on_get(self, req: Req, resp: Resp) -> None:
        """Validate the X-Subject-Token and return its body."""
        payload = self._subject(req)
        self.ctx.enforce(req, "identity:validate_token", {"token_user_id": payload.user_id})
        resp.set_header("X-Subject-Token", req.get_header("X-Subject-Token") or "")
        resp.media = await run(self._render, payload, req.get_param("nocatalog") is None)

    async def on_head(self, req: Req, resp: Resp) -> None:
        """Check the X-Subject-Token."""
        payload = self._subject(req)
        self.ctx.enforce(req, "identity:validate_token", {"token_user_id": payload.user_id})
        resp.status = falcon.HTTP_200

    async def on_delete(self, req: Req, resp: Resp) -> None:
        """Revoke the X-Subject-Token (and every token rescoped from it)."""
        payload = self._subject(req)
        self.ctx.enforce(req, "identity:revoke_token", {"token_user_id": payload.user_id})
        store = self.ctx.store

        def revoke() -> None:
            with store.engine.begin() as conn:
                store.revoke(conn, audit_id=payload.audit_ids[0])

        await run(revoke)
        resp.status = falcon.HTTP_204


class AuthCatalog(Base):
    """``GET /v3/auth/catalog``."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """Return the caller's catalog."""
        ctx = auth_of(req)
        if ctx.project_id is None and ctx.domain_id is None and ctx.system_scope is None:
            raise ForbiddenError("The authenticated token is unscoped; a catalog needs a scope.")
        catalog = await run(self.ctx.store.catalog, ctx.project_id)
        resp.media = {"catalog": catalog,
                      "links": {"self": f"{self.ctx.base}/auth/catalog",
                                "previous": None, "next": None}}


class AuthTargets(Base):
    """``GET /v3/auth/projects`` and ``/v3/auth/domains``: where the caller may scope."""

    def __init__(self, ctx: IdentityContext, kind: TargetKind) -> None:
        super().__init__(ctx)
        self.kind = kind

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List enabled targets the caller has a role on."""
        user_id = auth_of(req).user_id
        items = await run(self._targets, user_id)
        key = f"{self.kind}s"
        resp.media = views.collection(key, items, f"{self.ctx.base}/auth/{key}")

    def _targets(self, user_id: str) -> list[dict[str, Any]]:
        store = self.ctx.store
        out = []
        for tid in store.user_target_ids(user_id, self.kind):
            try:
                row = (store.get_project if self.kind == "project" else store.get_domain)(tid)
            except NotFoundError:
                continue
            if row["enabled"]:
                render = views.project if self.kind == "project" else views.domain
                out.append(render(row, self.ctx.base))
        return out


class AuthSystem(Base):
    """``GET /v3/auth/system``: whether the caller may scope to the system."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List the system scopes available to the caller."""
        user_id = auth_of(req).user_id
        roles = await run(self.ctx.store.effective_role_ids, user_id, "system", "system")
        resp.media = {"system": [{"all": True}] if roles else [],
                      "links": {"self": f"{self.ctx.base}/auth/system",
                                "previous": None, "next": None}}


# --- users ------------------------------------------------------------------------

class UserPassword(Base):
    """``POST /v3/users/{id}/password``: change one's own password (public, like Keystone)."""

    auth_required = False

    async def on_post(self, req: Req, resp: Resp, user_id: str) -> None:
        """Check the original password, then set the new one (revokes all tokens)."""
        spec = views.member(await self.ctx.body(req), "user")
        original = views.text(spec, "original_password", required=True, max_len=4096,
                              allow_empty=True)
        new = views.text(spec, "password", required=True, max_len=4096)
        try:
            await self.ctx.authn.check_password(user_id, str(original), req.remote_addr or "-")
        except UnauthorizedError as exc:
            if "locked" in exc.message:
                raise
            raise UnauthorizedError("The request you have made requires authentication.") from None
        await run(self.ctx.store.change_own_password, user_id, new)
        resp.status = falcon.HTTP_204


class UserProjects(Base):
    """``GET /v3/users/{id}/projects``."""

    async def on_get(self, req: Req, resp: Resp, user_id: str) -> None:
        """List the projects where the user has a role."""
        self.ctx.enforce(req, "identity:list_user_projects", {"user_id": user_id})
        store = self.ctx.store
        await run(store.get_user, user_id)
        ids = await run(store.user_target_ids, user_id, "project")
        rows = [await run(store.get_project, pid) for pid in ids]
        resp.media = views.collection("projects", [views.project(r, self.ctx.base)
                                                   for r in rows],
                                      f"{self.ctx.base}/users/{user_id}/projects")


class UserGroups(Base):
    """``GET /v3/users/{id}/groups``."""

    async def on_get(self, req: Req, resp: Resp, user_id: str) -> None:
        """List the user's groups."""
        self.ctx.enforce(req, "identity:list_groups_for_user", {"user_id": user_id})
        rows = await run(self.ctx.store.list_user_groups, user_id)
        resp.media = views.collection("groups", [views.group(r, self.ctx.base) for r in rows],
                                      f"{self.ctx.base}/users/{user_id}/groups")


class GroupUsers(Base):
    """``GET /v3/groups/{id}/users``."""

    async def on_get(self, req: Req, resp: Resp, group_id: str) -> None:
        """List the members of a group."""
        self.ctx.enforce(req, "identity:list_users_in_group", {"group_id": group_id})
        rows = await run(self.ctx.store.list_group_users, group_id)
        resp.media = views.collection("users", [views.user(r, self.ctx.base) for r in rows],
                                      f"{self.ctx.base}/groups/{group_id}/users")


class GroupUser(Base):
    """``PUT|HEAD|GET|DELETE /v3/groups/{g}/users/{u}``."""

    async def on_put(self, req: Req, resp: Resp, group_id: str, user_id: str) -> None:
        """Add a member."""
        self.ctx.enforce(req, "identity:add_user_to_group")
        await run(self.ctx.store.add_user_to_group, group_id, user_id)
        resp.status = falcon.HTTP_204

    async def on_head(self, req: Req, resp: Resp, group_id: str, user_id: str) -> None:
        """Check membership (404 if not a member)."""
        self.ctx.enforce(req, "identity:check_user_in_group")
        store = self.ctx.store
        await run(store.get_group, group_id)
        await run(store.get_user, user_id)
        if not await run(store.user_in_group, group_id, user_id):
            raise not_found("membership", f"{user_id} in {group_id}")
        resp.status = falcon.HTTP_204

    on_get = on_head

    async def on_delete(self, req: Req, resp: Resp, group_id: str, user_id: str) -> None:
        """Remove a member."""
        self.ctx.enforce(req, "identity:remove_user_from_group")
        await run(self.ctx.store.remove_user_from_group, group_id, user_id)
        resp.status = falcon.HTTP_204


# --- grants and assignments ------------------------------------------------------

class Grants(Base):
    """``GET /v3/{projects|domains}/{t}/{users|groups}/{a}/roles`` (and system)."""

    def __init__(self, ctx: IdentityContext, target: TargetKind, actor: ActorKind,
                 inherited: bool = False) -> None:
        super().__init__(ctx)
        self.target = target
        self.actor = actor
        self.inherited = inherited  # OS-INHERIT: .../roles/{id}/inherited_to_projects

    def _parties(self, params: dict[str, str]) -> tuple[ActorKind, str, TargetKind, str]:
        return (self.actor, params[f"{self.actor}_id"], self.target,
                params.get(f"{self.target}_id", "system"))

    async def on_get(self, req: Req, resp: Resp, **params: str) -> None:
        """List the roles granted directly (or for inheritance)."""
        self.ctx.enforce(req, "identity:list_grants")
        rows = await run(self.ctx.store.list_grants, *self._parties(params),
                         inherited=self.inherited)
        resp.media = views.collection("roles", [views.role(r, self.ctx.base) for r in rows],
                                      f"{self.ctx.base}{req.path.split('/v3', 1)[-1]}")


class Grant(Grants):
    """``PUT|HEAD|GET|DELETE .../roles/{role_id}``."""

    async def on_put(self, req: Req, resp: Resp, **params: str) -> None:
        """Grant the role."""
        self.ctx.enforce(req, "identity:create_grant")
        await run(self.ctx.store.grant, *self._parties(params), params["role_id"],
                  self.inherited)
        resp.status = falcon.HTTP_204

    async def on_head(self, req: Req, resp: Resp, **params: str) -> None:
        """Check the grant (404 if absent)."""
        self.ctx.enforce(req, "identity:check_grant")
        await run(self.ctx.store.check_grant, *self._parties(params), params["role_id"],
                  self.inherited)
        resp.status = falcon.HTTP_204

    on_get = on_head

    async def on_delete(self, req: Req, resp: Resp, **params: str) -> None:
        """Revoke the grant (kills the affected tokens)."""
        self.ctx.enforce(req, "identity:revoke_grant")
        await run(self.ctx.store.revoke_grant, *self._parties(params), params["role_id"],
                  self.inherited)
        resp.status = falcon.HTTP_204


class RoleAssignments(Base):
    """``GET /v3/role_assignments`` with all of Keystone's filters.

    ``effective``, ``include_names``, ``include_subtree`` and
    ``scope.OS-INHERIT:inherited_to`` as Keystone reads them.
    """

    FILTERS = ("user.id", "group.id", "role.id", "scope.project.id", "scope.domain.id",
               "scope.system", "scope.OS-INHERIT:inherited_to")

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List assignments."""
        p = {k: req.get_param(k) for k in self.FILTERS}
        effective = views.query_true(req.get_param("effective")) \
            if "effective" in req.params else False
        names = "include_names" in req.params and views.query_true(
            req.get_param("include_names") or "true")
        subtree = "include_subtree" in req.params and views.query_true(
            req.get_param("include_subtree") or "true")
        _check_assignment_filters(p, effective, subtree)
        self.ctx.enforce(req, "identity:list_role_assignments", p)
        items = await run(self._build, p, effective, names, subtree)
        url = f"{self.ctx.base}/role_assignments"
        page, truncated, _ = paginate_plain(items, self.ctx.store.config.list_limit)
        resp.media = views.collection("role_assignments", page, url, truncated=truncated)

    def _build(self, p: dict[str, str | None], effective: bool, names: bool,
               subtree: bool) -> list[dict[str, Any]]:
        store = self.ctx.store
        actors = None
        if p["user.id"]:
            actors = [p["user.id"]]
            if effective:
                actors += store.user_group_ids(p["user.id"])
        elif p["group.id"]:
            actors = [p["group.id"]]
        found = store.direct_assignments(actor_ids=actors, role_id=None if effective
                                         else p["role.id"])
        if effective:
            found = store.effective_assignments(found)
            if p["user.id"]:
                found = [a for a in found if a.actor_id == p["user.id"]]
        found = [a for a in found if self._in_scope(a, p, subtree, effective)]
        if p["role.id"]:
            found = [a for a in found if a.role_id == p["role.id"]]
        if effective:  # Keystone drops domain-specific roles from effective listings
            keep = {rid for rid, _ in store.role_refs({a.role_id for a in found},
                                                      global_only=True)}
            found = [a for a in found if a.role_id in keep]
        found = list(dict.fromkeys(found))
        found.sort(key=lambda a: (a.target, a.target_id, a.actor_id, a.role_id, a.inherited))
        return [self._format(a, names) for a in found]

    def _in_scope(self, a: Assignment, p: dict[str, str | None], subtree: bool,
                  effective: bool) -> bool:
        if p["scope.OS-INHERIT:inherited_to"] and not a.inherited:
            return False
        if p["scope.project.id"]:
            targets = {p["scope.project.id"]}
            if subtree:
                targets |= {x["id"] for x in self.ctx.store.project_subtree(
                    p["scope.project.id"])}
            return a.target == "project" and a.target_id in targets
        if p["scope.domain.id"]:
            return a.target == "domain" and a.target_id == p["scope.domain.id"]
        if p["scope.system"]:
            return a.target == "system"
        return True

    def _format(self, a: Assignment, names: bool) -> dict[str, Any]:
        store, base = self.ctx.store, self.ctx.base
        scope: dict[str, Any]
        if a.target == "system":
            scope = {"system": {"all": True}}
        else:
            ref: dict[str, Any] = {"id": a.target_id}
            if names:
                ref.update(self._named(a.target, a.target_id))
            scope = {a.target: ref}
        if a.inherited:
            scope["OS-INHERIT:inherited_to"] = "projects"
        actor: dict[str, Any] = {"id": a.actor_id}
        if names:
            actor.update(self._named(a.actor, a.actor_id))
        role: dict[str, Any] = {"id": a.role_id}
        if names:
            role_row = _safe(store.get_role, a.role_id)
            role["name"] = role_row.get("name")
            if role_row.get("domain_id"):
                role["domain"] = {"id": role_row["domain_id"],
                                  "name": _safe(store.get_domain,
                                                role_row["domain_id"]).get("name")}
        out: dict[str, Any] = {"scope": scope, a.actor: actor, "role": role,
                               "links": {"assignment": base + a.grant_path()}}
        if a.via_group:
            out["links"]["membership"] = f"{base}/groups/{a.via_group}/users/{a.actor_id}"
        if a.via_role:
            out["links"]["prior_role"] = f"{base}/roles/{a.via_role}"
        return out

    def _named(self, kind: str, ident: str) -> dict[str, Any]:
        store = self.ctx.store
        getter = {"user": store.get_user, "group": store.get_group,
                  "project": store.get_project, "domain": store.get_domain}[kind]
        row = _safe(getter, ident)
        out: dict[str, Any] = {"name": row.get("name")}
        if kind != "domain" and row.get("domain_id"):
            dom = _safe(store.get_domain, row["domain_id"])
            out["domain"] = {"id": row["domain_id"], "name": dom.get("name")}
        return out


def paginate_plain(items: list[dict[str, Any]], list_limit: int
                   ) -> tuple[list[dict[str, Any]], bool, None]:
    """Apply ``list_limit`` to a listing that has no ``marker`` (role assignments)."""
    if list_limit and len(items) > list_limit:
        return items[:list_limit], True, None
    return items, False, None


def _safe(getter: Any, ident: str) -> dict[str, Any]:
    try:
        row: dict[str, Any] = getter(ident)
        return row
    except NotFoundError:
        return {}


def _check_assignment_filters(p: dict[str, str | None], effective: bool,
                              subtree: bool = False) -> None:
    pairs = [("scope.domain.id", "scope.project.id", "Specify a domain or project, not both"),
             ("scope.domain.id", "scope.system", "Specify system or domain, not both"),
             ("scope.project.id", "scope.system", "Specify system or project, not both"),
             ("user.id", "group.id", "Specify a user or group, not both")]
    for a, b, msg in pairs:
        if p[a] and p[b]:
            raise BadRequestError(msg)
    if effective and p["group.id"]:
        raise BadRequestError("Combining effective and group filter will always result in an "
                              "empty list.")
    if subtree and not p["scope.project.id"]:
        raise BadRequestError("scope.project.id must be specified if include_subtree is also "
                              "specified")
    inherited = p["scope.OS-INHERIT:inherited_to"]
    if inherited is not None and inherited != "projects":
        raise BadRequestError("Invalid input for field 'scope.OS-INHERIT:inherited_to': "
                              f"{inherited!r} is not 'projects'.")


class ImpliedRole(Base):
    """``PUT|GET|HEAD|DELETE /v3/roles/{prior}/implies/{implied}``."""

    def _doc(self, prior: dict[str, Any], implied: dict[str, Any]) -> dict[str, Any]:
        def ref(r: dict[str, Any]) -> dict[str, Any]:
            return {"id": r["id"], "name": r["name"],
                    "links": {"self": f"{self.ctx.base}/roles/{r['id']}"}}
        return {"role_inference": {"prior_role": ref(prior), "implies": ref(implied)},
                "links": {"self": f"{self.ctx.base}/roles/{prior['id']}/implies/"
                                  f"{implied['id']}"}}

    async def on_put(self, req: Req, resp: Resp, role_id: str, implied: str) -> None:
        """Create the rule."""
        self.ctx.enforce(req, "identity:create_implied_role")
        store = self.ctx.store
        await run(store.add_implied_role, role_id, implied)
        resp.status = falcon.HTTP_201
        resp.media = self._doc(await run(store.get_role, role_id),
                               await run(store.get_role, implied))

    async def on_get(self, req: Req, resp: Resp, role_id: str, implied: str) -> None:
        """Show the rule."""
        self.ctx.enforce(req, "identity:get_implied_role")
        store = self.ctx.store
        if not await run(store.implies, role_id, implied):
            raise not_found("implied role", f"{role_id} -> {implied}")
        resp.media = self._doc(await run(store.get_role, role_id),
                               await run(store.get_role, implied))

    async def on_head(self, req: Req, resp: Resp, role_id: str, implied: str) -> None:
        """Check the rule."""
        await self.on_get(req, resp, role_id, implied)
        resp.media = None
        resp.status = falcon.HTTP_204

    async def on_delete(self, req: Req, resp: Resp, role_id: str, implied: str) -> None:
        """Delete the rule."""
        self.ctx.enforce(req, "identity:delete_implied_role")
        await run(self.ctx.store.delete_implied_role, role_id, implied)
        resp.status = falcon.HTTP_204


class ImpliedRoles(Base):
    """``GET|HEAD /v3/roles/{prior}/implies``: the roles one role implies directly."""

    async def on_get(self, req: Req, resp: Resp, role_id: str) -> None:
        """List the implied roles of ``role_id``."""
        self.ctx.enforce(req, "identity:list_implied_roles")
        store = self.ctx.store
        prior = await run(store.get_role, role_id)
        implied = [await run(store.get_role, rid) for rid in await run(store.implied_by, role_id)]

        def ref(r: dict[str, Any]) -> dict[str, Any]:
            return {"id": r["id"], "name": r["name"],
                    "links": {"self": f"{self.ctx.base}/roles/{r['id']}"}}
        resp.media = {"role_inference": {"prior_role": ref(prior),
                                         "implies": [ref(r) for r in implied]},
                      "links": {"self": f"{self.ctx.base}/roles/{role_id}/implies"}}

    async def on_head(self, req: Req, resp: Resp, role_id: str) -> None:
        """Check the list."""
        await self.on_get(req, resp, role_id)
        resp.media = None


class RoleInferences(Base):
    """``GET /v3/role_inferences``."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List every inference rule."""
        self.ctx.enforce(req, "identity:list_role_inference_rules")
        store = self.ctx.store
        rules = await run(store.inference_rules)
        roles = {r["id"]: r for r in await run(store.list_roles)}

        def ref(rid: str) -> dict[str, Any]:
            return {"id": rid, "name": roles.get(rid, {}).get("name"),
                    "links": {"self": f"{self.ctx.base}/roles/{rid}"}}
        items = [{"prior_role": ref(p), "implies": [ref(i) for i in imp]}
                 for p, imp in sorted(rules.items())]
        resp.media = {"role_inferences": items,
                      "links": {"self": f"{self.ctx.base}/role_inferences",
                                "previous": None, "next": None}}


# --- application and EC2 credentials --------------------------------------------

class AppCreds(Base):
    """``GET|POST /v3/users/{u}/application_credentials``."""

    async def on_get(self, req: Req, resp: Resp, user_id: str) -> None:
        """List the user's application credentials."""
        self.ctx.enforce(req, "identity:list_application_credentials", {"user_id": user_id})
        store = self.ctx.store
        rows = await run(store.list_app_creds, user_id, req.get_param("name"))
        items = [views.app_cred(r, self.ctx.base, await run(store.role_refs, r["role_ids"]))
                 for r in rows]
        resp.media = views.collection("application_credentials", items,
                                      f"{self.ctx.base}/users/{user_id}/"
                                      "application_credentials")

    async def on_post(self, req: Req, resp: Resp, user_id: str) -> None:
        """Create an application credential for the token's project and roles."""
        caller = auth_of(req)
        self.ctx.enforce(req, "identity:create_application_credential", {"user_id": user_id})
        if caller.project_id is None:
            raise BadRequestError("An application credential needs a project-scoped token.")
        if caller.app_cred_id is not None:
            raise ForbiddenError("An application credential cannot create another one.")
        spec = views.member(await self.ctx.body(req), "application_credential")
        name = views.text(spec, "name", required=True)
        secret = views.text(spec, "secret", max_len=4096) or new_secret()
        description = views.text(spec, "description", max_len=65535, allow_empty=True) or ""
        expires = views.parse_iso(spec.get("expires_at"), "expires_at")
        if expires is not None and expires <= time.time():
            raise BadRequestError("The 'expires_at' must not be before now. The server could "
                                  "not comply with the request since it is either malformed "
                                  "or otherwise incorrect. The client is assumed to be in "
                                  "error.")
        role_ids = await run(self._roles, spec.get("roles"), user_id, caller.project_id,
                             caller.role_ids)
        self._no_access_rules(spec.get("access_rules"))
        store = self.ctx.store
        row = await run(store.create_app_cred, user_id, caller.project_id, str(name), secret,
                        role_ids, description=description, expires_at=expires,
                        unrestricted=bool(views.flag(spec, "unrestricted")))
        out = views.app_cred(row, self.ctx.base, await run(store.role_refs, role_ids))
        out["secret"] = secret
        resp.status = falcon.HTTP_201
        resp.media = {"application_credential": out}

    @staticmethod
    def _no_access_rules(rules: Any) -> None:
        """Refuse access rules: they are not enforced, so a credential must not claim them."""
        if rules is None or rules == []:
            return
        if not isinstance(rules, list):
            raise BadRequestError("Invalid input for field 'access_rules': must be a list.")
        raise BadRequestError("Invalid input for field 'access_rules': access rules are not "
                              "supported by this deployment.")

    def _roles(self, requested: Any, user_id: str, project_id: str,
               token_roles: tuple[str, ...]) -> list[str]:
        """Check requested roles against the creator's assignments on the project.

        As Keystone does: direct, group-derived, inherited and implied roles all
        count, whatever the creator's current token carries.
        """
        if not requested:  # Keystone: no roles means all of the token's roles
            return list(token_roles)
        if not isinstance(requested, list):
            raise BadRequestError("Invalid input for field 'roles': must be a list.")
        store = self.ctx.store
        held = store.effective_role_ids(user_id, "project", project_id)
        by_name = {name: rid for rid, name in store.role_refs(held)}
        out = []
        for item in requested:
            if not isinstance(item, dict) or not item:
                raise BadRequestError("Invalid input for field 'roles': items must be objects.")
            rid = item.get("id") or by_name.get(str(item.get("name")))
            if rid not in held:
                raise ForbiddenError("You are not authorized to perform the requested action: "
                                     "Cannot create an application credential with a role "
                                     "that the user does not have.")
            out.append(str(rid))
        return list(dict.fromkeys(out))


class AppCred(Base):
    """``GET|DELETE /v3/users/{u}/application_credentials/{id}``."""

    async def _load(self, req: Req, action: str, user_id: str, ident: str) -> dict[str, Any]:
        row: dict[str, Any] = await run(self.ctx.store.get_app_cred, ident)
        if row["user_id"] != user_id:
            raise not_found("application credential", ident)
        self.ctx.enforce(req, f"identity:{action}_application_credential", row)
        return row

    async def on_get(self, req: Req, resp: Resp, user_id: str, ident: str) -> None:
        """Show one."""
        row = await self._load(req, "get", user_id, ident)
        refs = await run(self.ctx.store.role_refs, row["role_ids"])
        resp.media = {"application_credential": views.app_cred(row, self.ctx.base, refs)}

    async def on_delete(self, req: Req, resp: Resp, user_id: str, ident: str) -> None:
        """Delete one (revokes the tokens it made)."""
        await self._load(req, "delete", user_id, ident)
        await run(self.ctx.store.delete_app_cred, ident)
        resp.status = falcon.HTTP_204


class Ec2Creds(Base):
    """``GET|POST /v3/users/{u}/credentials/OS-EC2``."""

    async def on_get(self, req: Req, resp: Resp, user_id: str) -> None:
        """List the user's EC2 credentials."""
        self.ctx.enforce(req, "identity:ec2_list_credentials", {"user_id": user_id})
        rows = await run(self.ctx.store.list_credentials, user_id=user_id, type="ec2")
        items = [views.ec2(r, self.ctx.base, json.loads(r["blob"])) for r in rows]
        resp.media = views.collection("credentials", items,
                                      f"{self.ctx.base}/users/{user_id}/credentials/OS-EC2")

    async def on_post(self, req: Req, resp: Resp, user_id: str) -> None:
        """Create an access/secret pair for ``tenant_id`` (a project the user has a role on)."""
        self.ctx.enforce(req, "identity:ec2_create_credential", {"user_id": user_id})
        spec = await self.ctx.body(req)
        project_id = views.text(spec if isinstance(spec, dict) else {}, "tenant_id",
                                required=True)
        store = self.ctx.store
        await run(store.get_user, user_id)
        await run(store.get_project, project_id)
        if not auth_of(req).is_admin and not await run(
                store.effective_role_ids, user_id, "project", project_id):
            raise ForbiddenError("The user has no role on the project.")
        row = await run(store.create_ec2, user_id, str(project_id))
        resp.status = falcon.HTTP_201
        resp.media = {"credential": views.ec2(row, self.ctx.base, json.loads(row["blob"]))}


class Ec2Cred(Base):
    """``GET|DELETE /v3/users/{u}/credentials/OS-EC2/{access}``."""

    async def on_get(self, req: Req, resp: Resp, user_id: str, access: str) -> None:
        """Show one."""
        self.ctx.enforce(req, "identity:ec2_get_credential", {"user_id": user_id})
        row = await run(self.ctx.store.get_ec2, user_id, access)
        resp.media = {"credential": views.ec2(row, self.ctx.base, json.loads(row["blob"]))}

    async def on_delete(self, req: Req, resp: Resp, user_id: str, access: str) -> None:
        """Delete one."""
        self.ctx.enforce(req, "identity:ec2_delete_credential", {"user_id": user_id})
        row = await run(self.ctx.store.get_ec2, user_id, access)
        await run(self.ctx.store.delete_credential, row["id"])
        resp.status = falcon.HTTP_204
