"""Keystone tokens on the object proxy: a verifier for the proxy's auth chain.

Enabled by listing ``"nubis.api.swift_keystone:proxy_verifier"`` in
``[proxy] token_verifiers``. A project-scoped token carrying an operator role
(``admin`` or ``member``, implied roles included) owns account
``AUTH_<project_id>``; ``ResellerAdmin`` may act on every account; ACL groups
follow Swift's keystoneauth (``<project>:<user>`` by id or name, ``*``
wildcards). Tokens are verified locally (see :mod:`nubis.api.auth`); tempauth
keeps working beside it because the chain tries each verifier in turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nubis.api.auth import TokenRejectedError, TokenVerifier, swift_identity_fields
from nubis.api.services import make_verifier
from nubis.common.db import make_engine
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from nubis.api.proxy.auth import Identity

    from nubis.settings import Config

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
        from nubis.api.proxy.auth import Identity

        try:
            # PERF(bench identity: keystone vs tempauth GET): local verification, cached;
            # a revocation poll (one small SELECT) runs at most every poll interval.
            ctx = self.verifier.verify(token)
        except TokenRejectedError:
            return None
        fields: dict[str, Any] = swift_identity_fields(
            ctx, reseller_prefix=self.reseller_prefix, operator_roles=self.operator_roles)
        return Identity(**fields)


def proxy_verifier(config: Config) -> SwiftKeystoneVerifier:
    """Build the verifier from the whole config (the proxy's ``token_verifiers`` hook)."""
    state_dir = config.cluster.state_dir
    engine = make_engine(config.api.resolved_database_url(state_dir))
    verifier = make_verifier(config.identity, state_dir, engine)
    return SwiftKeystoneVerifier(verifier, config.tempauth.reseller_prefix)


@dataclass(frozen=True)
class Ec2Secret:
    """What an S3 signature check needs for one access key."""

    access: str
    secret: str
    user_id: str
    project_id: str
    role_names: frozenset[str]

    def owned_account(self, reseller_prefix: str = "AUTH_",
                      operator_roles: tuple[str, ...] = OPERATOR_ROLES) -> str | None:
        """Return the storage account this key may fully control, if any."""
        if self.role_names & set(operator_roles):
            return f"{reseller_prefix}{self.project_id}"
        return None


class Ec2Lookup:
    """Resolve EC2 access keys to secrets and roles from the identity database.

    For the proxy's S3 API: the signature is checked locally with the secret;
    results are cached for ``ttl`` seconds (the bound on how long a deleted key
    or a removed role keeps working).
    """

    def __init__(self, engine: Engine, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from nubis.api.identity.creds import IdentityStore
        from nubis.api.identity.passwords import PasswordHasher

        self.store = IdentityStore(engine, PasswordHasher())
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Ec2Secret | None]] = {}

    def lookup(self, access: str) -> Ec2Secret | None:
        """Return the credential for ``access`` (None if unknown or its user is disabled)."""
        hit = self._cache.get(access)
        now = self.clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        found = self._load(access)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[access] = (now + self.ttl, found)
        return found

    def _load(self, access: str) -> Ec2Secret | None:
        from nubis.api.errors import NotFoundError

        row = self.store.find_ec2(access)
        if row is None or not row.get("project_id"):
            return None
        try:
            user = self.store.get_user(row["user_id"])
            project = self.store.get_project(row["project_id"])
        except NotFoundError:
            return None
        if not user["enabled"] or not project["enabled"]:
            return None
        blob = json.loads(row["blob"])
        role_ids = self.store.effective_role_ids(user["id"], "project", project["id"])
        names = frozenset(name for _rid, name in self.store.role_refs(role_ids))
        return Ec2Secret(access, str(blob.get("secret", "")), user["id"], project["id"], names)


def ec2_lookup(config: Config) -> Ec2Lookup:
    """Build an :class:`Ec2Lookup` on the control-plane database of ``config``."""
    engine = make_engine(config.api.resolved_database_url(config.cluster.state_dir))
    return Ec2Lookup(engine)
