"""``POST /v3/auth/tokens``: authenticate a method, resolve the scope, mint a payload.

Methods: ``password`` (user by id, or by name + domain), ``token`` (rescope an
existing token; the new one keeps the old expiry and chains its audit id) and
``application_credential`` (scope and roles fixed by the credential). Failed
password/secret checks are counted per user and per source address; once
either limit is reached further attempts are refused with 401 — Keystone's
"account is locked" answer — without computing a hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.passwords import FailureLimiter
from nubis.api.identity.store import Row
from nubis.api.identity.views import member, text
from nubis.api.shared.auth import TokenRejectedError, TokenVerifier
from nubis.api.shared.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from nubis.api.shared.tokens import ProjectRef, TokenPayload, TrustRef, new_audit_id


@dataclass
class Principal:
    """Who authenticated, and what the method constrains."""

    user: Row
    methods: tuple[str, ...]
    parent: TokenPayload | None = None
    app_cred: Row | None = None


class Authenticator:
    """Turn an auth request body into a token payload."""

    def __init__(self, store: IdentityStore, verifier: TokenVerifier, token_ttl: int,
                 per_user: FailureLimiter, per_source: FailureLimiter,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.verifier = verifier
        self.token_ttl = token_ttl
        self.per_user = per_user
        self.per_source = per_source
        self.clock = clock
        self._dummy_hash: str | None = None

    async def authenticate(self, body: Any, source: str) -> TokenPayload:
        """Authenticate ``body`` (``{"auth": {...}}``) and return the new token's payload."""
        auth = member(body, "auth")
        identity = member(auth, "identity")
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(
                isinstance(m, str) for m in methods):
            raise BadRequestError("Invalid input for field 'identity/methods': must be a "
                             "non-empty list of strings.")
        principal = await self._principal(identity, methods, source)
        self._check_enabled(principal.user)
        return await asyncio.to_thread(self._issue, principal, auth.get("scope"))

    # --- methods -----------------------------------------------------------
    async def _principal(self, identity: dict[str, Any], methods: list[str],
                         source: str) -> Principal:
        method = methods[0]
        if len(set(methods)) != 1 or method not in (
                "password", "token", "application_credential"):
            raise UnauthorizedError(f"Attempted to authenticate with an unsupported method: "
                               f"{sorted(set(methods))}.")
        data = member(identity, method)
        if method == "password":
            return Principal(await self._password(data, source), ("password",))
        if method == "token":
            return self._token(data)
        return await self._app_cred(data, source)

    async def check_password(self, user_id: str, password: str, source: str) -> Row:
        """Verify a user's current password (self-service change: expiry not enforced)."""
        return await self._password({"user": {"id": user_id, "password": password}}, source,
                                    check_expiry=False)

    async def _password(self, data: dict[str, Any], source: str,
                        check_expiry: bool = True) -> Row:
        spec = member(data, "user")
        password = text(spec, "password", required=True, max_len=4096, allow_empty=True)
        user = await asyncio.to_thread(self._lookup_user, spec)
        key = user["id"] if user else _unknown_user_key(spec)
        rules = self.store.passwords
        if user is not None:
            await asyncio.to_thread(rules.check_locked, self.store.engine, user)
        try:
            await self._check_secret(key, source, user["password_hash"] if user else None,
                                     str(password))
        except UnauthorizedError:
            if user is not None:
                await asyncio.to_thread(rules.failed, self.store.engine, user["id"])
            raise
        assert user is not None
        await asyncio.to_thread(rules.succeeded, self.store.engine, user["id"])
        if check_expiry:
            await asyncio.to_thread(rules.check_expired, self.store.engine, user)
        return user

    def _token(self, data: dict[str, Any]) -> Principal:
        token_id = text(data, "id", required=True, max_len=4096)
        try:
            parent = self.verifier.decode(str(token_id))
        except TokenRejectedError:
            raise UnauthorizedError("Could not validate the token.") from None
        if parent.trust is not None:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "rescope a trust token.")
        try:
            user = self.store.get_user(parent.user_id)
        except NotFoundError:
            raise UnauthorizedError() from None
        methods = tuple(dict.fromkeys((*parent.methods, "token")))
        return Principal(user, methods, parent=parent)

    async def _app_cred(self, data: dict[str, Any], source: str) -> Principal:
        secret = text(data, "secret", required=True, max_len=4096)
        cred = await asyncio.to_thread(self._lookup_app_cred, data)
        key = f"appcred:{cred['id'] if cred else data.get('id') or data.get('name')}"
        await self._check_secret(key, source, cred["secret_hash"] if cred else None,
                                 str(secret))
        assert cred is not None
        expires = cred.get("expires_at")
        if expires is not None and expires <= self.clock():
            raise UnauthorizedError("Application credential has expired.")
        user = self.store.get_user(cred["user_id"])
        return Principal(user, ("application_credential",), app_cred=cred)

    async def _check_secret(self, key: str, source: str, encoded: str | None,
                            secret: str) -> None:
        ukey, skey = f"user:{key}", f"src:{source}"
        if self.per_user.blocked(ukey) or self.per_source.blocked(skey):
            raise UnauthorizedError("The account is locked for user: "
                                    f"{key if encoded else 'unknown'}.")
        # A missing user still pays for one hash so timing does not reveal it.
        encoded = encoded or self._dummy()
        ok = await asyncio.to_thread(self.store.hasher.verify, encoded, secret)
        if not ok or encoded is self._dummy_hash:
            self.per_user.fail(ukey)
            self.per_source.fail(skey)
            raise UnauthorizedError()
        self.per_user.reset(ukey)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.store.hasher.hash("nubis-no-such-user")
        return self._dummy_hash

    # --- lookups -----------------------------------------------------------
    def _lookup_user(self, spec: dict[str, Any]) -> Row | None:
        if spec.get("id") is not None:
            try:
                return self.store.get_user(str(text(spec, "id")))
            except NotFoundError:
                return None
        name = text(spec, "name", required=True)
        domain = self._domain_ref(spec)
        return None if domain is None else self.store.find_user(str(name), domain["id"])

    def _lookup_app_cred(self, data: dict[str, Any]) -> Row | None:
        try:
            if data.get("id") is not None:
                return self.store.get_app_cred(str(text(data, "id")))
            name = text(data, "name", required=True)
            user = self._lookup_user(member(data, "user"))
        except NotFoundError:
            return None
        return None if user is None else self.store.find_app_cred(user["id"], str(name))

    def _domain_ref(self, spec: dict[str, Any]) -> Row | None:
        ref = member(spec, "domain")
        try:
            if ref.get("id") is not None:
                return self.store.get_domain(str(text(ref, "id")))
        except NotFoundError:
            return None
        return self.store.find_domain(str(text(ref, "name", required=True)))

    def _check_enabled(self, user: Row) -> None:
        if not user["enabled"]:
            raise UnauthorizedError(f"User {user['id']} is disabled.")
        if not self.store.get_domain(user["domain_id"])["enabled"]:
            raise UnauthorizedError(f"Domain {user['domain_id']} is disabled.")

    # --- scope and payload -------------------------------------------------
    def _issue(self, who: Principal, scope: Any) -> TokenPayload:
        now = self.clock()
        user_domain = self.store.get_domain(who.user["domain_id"])
        expires = now + self.token_ttl
        audit: tuple[str, ...] = (new_audit_id(),)
        if who.parent is not None:
            expires = who.parent.expires_at
            audit = (audit[0], who.parent.audit_ids[-1])
        project: ProjectRef | None = None
        domain: tuple[str, str] | None = None
        system: str | None = None
        trust: TrustRef | None = None
        role_ids: list[str] = []
        user = who.user
        if isinstance(scope, dict) and "OS-TRUST:trust" in scope:
            if who.app_cred is not None or len(scope) != 1:
                raise BadRequestError("Invalid input for field 'scope': a trust scope stands "
                                      "alone.")
            user, project, trust, role_ids, trust_expiry = self._trust_scope(who.user, scope)
            if trust_expiry is not None:
                expires = min(expires, trust_expiry)
            user_domain = self.store.get_domain(user["domain_id"])
        elif who.app_cred is not None:
            project, role_ids = self._app_cred_scope(who.app_cred, scope)
            if who.app_cred.get("expires_at") is not None:
                expires = min(expires, float(who.app_cred["expires_at"]))
        elif who.parent is not None and who.parent.app_cred_id is not None:
            raise UnauthorizedError("A token created with an application credential "
                               "cannot be rescoped.")
        else:
            project, domain, system, role_ids = self._scope(who.user, scope)
        return TokenPayload(
            user_id=user["id"], user_name=user["name"],
            user_domain_id=user_domain["id"], user_domain_name=user_domain["name"],
            methods=who.methods, issued_at=now, expires_at=expires, audit_ids=audit,
            roles=tuple(self.store.role_refs(role_ids, global_only=True)), project=project,
            domain=domain, system=system,
            app_cred_id=who.app_cred["id"] if who.app_cred else None, trust=trust)

    def _trust_scope(self, trustee: Row, scope: dict[str, Any]) -> tuple[
            Row, ProjectRef | None, TrustRef, list[str], float | None]:
        """Resolve ``scope: {"OS-TRUST:trust": {"id": ...}}`` for the authenticated trustee.

        An unknown, expired or used-up trust is a 401 (Keystone turns the lookup's
        TrustNotFound into Unauthorized); a caller who is not the trustee, a
        disabled trustor or a trustor who lost a delegated role is a 403.
        """
        ref = member(scope, "OS-TRUST:trust")
        trust_id = str(text(ref, "id", required=True, max_len=64))
        try:
            trust = self.store.get_trust(trust_id)
        except NotFoundError:
            raise UnauthorizedError() from None
        if trustee["id"] != trust["trustee_user_id"]:
            raise ForbiddenError("User is not a trustee.")
        try:
            trustor = self.store.get_user(trust["trustor_user_id"])
        except NotFoundError:
            raise UnauthorizedError() from None
        if not trustor["enabled"] or not self.store.get_domain(trustor["domain_id"])["enabled"]:
            raise ForbiddenError("Trustor is disabled.")
        project = None
        if trust.get("project_id"):
            project = self._project_scope(trustor, {"id": trust["project_id"]})
        role_ids = self.store.trust_roles_now(trust)
        self.store.consume_trust(trust_id)
        impersonation = bool(trust["impersonation"])
        ref_out = TrustRef(trust_id, trustor["id"], trustee["id"], impersonation)
        return (trustor if impersonation else trustee), project, ref_out, role_ids, \
            trust.get("expires_at")

    def _scope(self, user: Row, scope: Any) -> tuple[ProjectRef | None, tuple[str, str] | None,
                                                    str | None, list[str]]:
        if scope is None or scope == "unscoped":
            default = user.get("default_project_id")
            if default:
                try:
                    return self._project_scope(user, {"id": default}), None, None, \
                        self.store.effective_role_ids(user["id"], "project", default)
                except (UnauthorizedError, NotFoundError):
                    pass
            return None, None, None, []
        if not isinstance(scope, dict) or len(scope) != 1:
            raise BadRequestError("Invalid input for field 'scope': specify exactly one of "
                             "project, domain or system.")
        if "project" in scope:
            ref = self._project_scope(user, member(scope, "project"))
            return ref, None, None, self._roles(user, "project", ref.id)
        if "domain" in scope:
            dom = self._domain_ref({"domain": member(scope, "domain")})
            if dom is None or not dom["enabled"]:
                raise UnauthorizedError("Could not find the domain to scope to.")
            return None, (dom["id"], dom["name"]), None, self._roles(user, "domain", dom["id"])
        if "system" in scope:
            if member(scope, "system").get("all") is not True:
                raise BadRequestError("Invalid input for field 'scope/system': only "
                                 "{\"all\": true} is supported.")
            return None, None, "all", self._roles(user, "system", "system")
        raise BadRequestError("Invalid input for field 'scope': unknown scope.")

    def _project_scope(self, user: Row, ref: dict[str, Any]) -> ProjectRef:
        try:
            if ref.get("id") is not None:
                proj: Row | None = self.store.get_project(str(text(ref, "id")))
            else:
                dom = self._domain_ref(ref)
                proj = None if dom is None else self.store.find_project(
                    str(text(ref, "name", required=True)), dom["id"])
        except NotFoundError:
            proj = None
        if proj is None:
            raise UnauthorizedError("Could not find the project to scope to.")
        pdom = self.store.get_domain(proj["domain_id"])
        if not proj["enabled"] or not pdom["enabled"]:
            raise UnauthorizedError(f"Project {proj['id']} is disabled.")
        return ProjectRef(proj["id"], proj["name"], pdom["id"], pdom["name"])

    def _roles(self, user: Row, target: str, target_id: str) -> list[str]:
        roles = self.store.effective_role_ids(user["id"], target, target_id)  # type: ignore[arg-type]
        if not roles:
            raise UnauthorizedError(f"User {user['id']} has no access to {target} {target_id}.")
        return roles

    def _app_cred_scope(self, cred: Row, scope: Any) -> tuple[ProjectRef, list[str]]:
        ref = self._project_scope(cred, {"id": cred["project_id"]})
        if scope not in (None, "unscoped") and not (
                isinstance(scope, dict) and isinstance(scope.get("project"), dict)
                and scope["project"].get("id") == ref.id):
            raise UnauthorizedError("Application credentials cannot request a scope.")
        current = set(self.store.effective_role_ids(cred["user_id"], "project", ref.id))
        granted = [r for r in self.store.expand_roles(cred["role_ids"]) if r in current]
        if not granted:
            raise UnauthorizedError("The application credential's roles are no longer "
                               "assigned to its user.")
        return ref, granted



def _unknown_user_key(spec: dict[str, Any]) -> str:
    """Return a limiter key for a user that does not exist (never includes the password)."""
    domain = spec.get("domain")
    dom = domain.get("id") or domain.get("name") if isinstance(domain, dict) else None
    return f"{spec.get('id') or spec.get('name')}@{dom}"
