"""Keystone tokens on the object proxy: a verifier for the proxy's auth chain.

Swift's keystoneauth middleware, for nubis. Enabled by listing
``"nubis.api.proxy.keystoneauth:proxy_verifier"`` in ``[proxy] token_verifiers``.
A project-scoped token carrying an operator role (``admin`` or ``member``,
implied roles included) owns account ``AUTH_<project_id>`` (and the project's
account under every other reseller prefix, subject to its required service role);
``ResellerAdmin`` may act on every account; ACL groups follow Swift's keystoneauth
(``<project>:<user>`` by id, or by name inside the default domain; ``*``
wildcards). Tokens are verified
locally (see :mod:`nubis.api.shared.auth`); tempauth keeps working beside it
because the chain tries each verifier in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nubis.api.proxy.auth import DEFAULT_DOMAIN_ID, Identity
from nubis.api.proxy.config import TempAuthConfig
from nubis.api.shared.auth import AuthContext, TokenRejectedError, TokenVerifier, make_verifier
from nubis.api.shared.config import TokenSettings

#: Roles that own the project's storage account (Swift keystoneauth's operator_roles).
OPERATOR_ROLES = ("admin", "member")


class SwiftKeystoneVerifier:
    """Adapt :class:`TokenVerifier` to the proxy chain's ``async verify(token)``."""

    def __init__(self, verifier: TokenVerifier, reseller_prefix: str = "AUTH_",
                 operator_roles: tuple[str, ...] = OPERATOR_ROLES,
                 reseller_prefixes: tuple[str, ...] = ()) -> None:
        self.verifier = verifier
        self.reseller_prefix = reseller_prefix
        self.operator_roles = operator_roles
        self.reseller_prefixes = reseller_prefixes or (reseller_prefix,)

    async def verify(self, token: str) -> Identity | None:
        """Return the proxy identity of a valid Keystone token, else None."""
        try:
            # PERF(bench identity: keystone vs tempauth GET): local verification, cached;
            # a revocation poll (one small SELECT) runs at most every poll interval.
            ctx = self.verifier.verify(token)
        except TokenRejectedError:
            return None
        fields: dict[str, Any] = swift_identity_fields(
            ctx, reseller_prefix=self.reseller_prefix, operator_roles=self.operator_roles,
            reseller_prefixes=self.reseller_prefixes)
        return Identity(**fields)


def proxy_verifier(tokens: TokenSettings, tempauth: TempAuthConfig) -> SwiftKeystoneVerifier:
    """Build the verifier (the proxy's ``token_verifiers`` hook)."""
    return SwiftKeystoneVerifier(make_verifier(tokens), tempauth.reseller_prefix,
                                 reseller_prefixes=tuple(tempauth.reseller_prefixes))


def swift_identity_fields(ctx: AuthContext, *, reseller_prefix: str = "AUTH_",
                          operator_roles: Iterable[str] = ("admin", "member"),
                          reseller_admin_role: str = "ResellerAdmin",
                          reseller_prefixes: Iterable[str] = ()) -> dict[str, Any]:
    """Map a Keystone context to the object proxy's identity fields.

    A project-scoped token owns ``<prefix><project_id>`` under every reseller prefix
    when it carries an operator role (a prefix's required service role is checked
    later, by ``auth.gated``). Its ACL groups follow Swift's keystoneauth:
    ``project:user`` with ``*`` wildcards, by id always and by name only where
    :func:`nubis.api.proxy.auth.names_allowed` says (names are unique only
    within a domain).

    Returns:
        keyword arguments for ``nubis.api.proxy.auth.Identity``.
    """
    uid, uname = ctx.user_id, ctx.user_name
    groups = {f"*:{uid}", "*:*"}
    names = {f"*:{uname}"}
    owned: set[str] = set()
    accounts: set[str] = set()
    if ctx.project_id is not None:
        pid, pname = ctx.project_id, ctx.project_name or ctx.project_id
        groups |= {f"{pid}:{uid}", f"{pid}:*"}
        names |= {f"{pname}:{uname}", f"{pname}:*", f"{pid}:{uname}", f"{pname}:{uid}"}
        accounts = {f"{p}{pid}" for p in (*reseller_prefixes, reseller_prefix)}
        if any(r in ctx.roles for r in operator_roles):
            owned = set(accounts)  # a prefix's service roles are checked by auth.gated
    default = DEFAULT_DOMAIN_ID
    return {"user": uid, "groups": frozenset(groups),
            "owned_accounts": frozenset(owned),
            "reseller_admin": reseller_admin_role in ctx.roles,
            "expires": ctx.expires_at,
            "name_groups": frozenset(names - groups),
            "project_accounts": frozenset(accounts),
            "project_domain_id": ctx.project_domain_id,
            "roles": ctx.roles,
            "default_domain": ctx.user_domain_id == default
            and ctx.project_domain_id in (None, default)}
