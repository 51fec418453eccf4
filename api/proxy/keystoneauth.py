"""Keystone tokens on the object proxy: a verifier for the proxy's auth chain.

Swift's keystoneauth middleware, for nubis. Enabled by listing
``"nubis.api.proxy.keystoneauth:proxy_verifier"`` in ``[proxy] token_verifiers``.
A project-scoped token carrying an operator role (``admin`` or ``member``,
implied roles included) owns account ``AUTH_<project_id>``; ``ResellerAdmin``
may act on every account; ACL groups follow Swift's keystoneauth
(``<project>:<user>`` by id or name, ``*`` wildcards). Tokens are verified
locally (see :mod:`nubis.api.shared.auth`); tempauth keeps working beside it
because the chain tries each verifier in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nubis.api.proxy.auth import Identity
from nubis.api.proxy.config import TempAuthConfig
from nubis.api.shared.auth import AuthContext, TokenRejectedError, TokenVerifier, make_verifier
from nubis.api.shared.config import TokenSettings

#: Roles that own the project's storage account (Swift keystoneauth's operator_roles).
OPERATOR_ROLES = ("admin", "member")


class SwiftKeystoneVerifier:
    """Adapt :class:`TokenVerifier` to the proxy chain's ``async verify(token)``."""

    def __init__(self, verifier: TokenVerifier, reseller_prefix: str = "AUTH_",
                 operator_roles: tuple[str, ...] = OPERATOR_ROLES) -> None:
        self.verifier = verifier
        self.reseller_prefix = reseller_prefix
        self.operator_roles = operator_roles

    async def verify(self, token: str) -> Identity | None:
        """Return the proxy identity of a valid Keystone token, else None."""
        try:
            # PERF(bench identity: keystone vs tempauth GET): local verification, cached;
            # a revocation poll (one small SELECT) runs at most every poll interval.
            ctx = self.verifier.verify(token)
        except TokenRejectedError:
            return None
        fields: dict[str, Any] = swift_identity_fields(
            ctx, reseller_prefix=self.reseller_prefix, operator_roles=self.operator_roles)
        return Identity(**fields)


def proxy_verifier(tokens: TokenSettings, tempauth: TempAuthConfig) -> SwiftKeystoneVerifier:
    """Build the verifier (the proxy's ``token_verifiers`` hook)."""
    return SwiftKeystoneVerifier(make_verifier(tokens), tempauth.reseller_prefix)


def swift_identity_fields(ctx: AuthContext, *, reseller_prefix: str = "AUTH_",
                          operator_roles: Iterable[str] = ("admin", "member"),
                          reseller_admin_role: str = "ResellerAdmin") -> dict[str, Any]:
    """Map a Keystone context to the object proxy's identity fields.

    A project-scoped token owns account ``<reseller_prefix><project_id>`` when it
    carries an operator role; its ACL groups follow Swift's keystoneauth
    (``project:user`` by id and by name, with ``*`` wildcards).

    Returns:
        keyword arguments for ``nubis.api.proxy.auth.Identity``.
    """
    groups = {ctx.user_id, ctx.user_name, f"*:{ctx.user_id}", f"*:{ctx.user_name}", "*:*"}
    owned: set[str] = set()
    if ctx.project_id is not None:
        pid, pname = ctx.project_id, ctx.project_name or ctx.project_id
        groups |= {f"{pid}:{ctx.user_id}", f"{pname}:{ctx.user_name}", f"{pid}:*",
                   f"{pname}:*", f"{pid}:{ctx.user_name}", f"{pname}:{ctx.user_id}"}
        if any(r in ctx.roles for r in operator_roles):
            owned.add(f"{reseller_prefix}{pid}")
    return {"user": ctx.user_id, "groups": frozenset(groups),
            "owned_accounts": frozenset(owned),
            "reseller_admin": reseller_admin_role in ctx.roles,
            "expires": ctx.expires_at}
