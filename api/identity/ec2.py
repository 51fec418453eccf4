"""EC2-style credentials resolved for S3 signature checks (identity's side of S3).

:class:`Ec2Lookup` reads an access key's secret, user, project and effective
roles from the identity database, so a signature can be checked locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.awssig import S3Credential
from nubis.api.shared.config import TokenSettings
from nubis.api.shared.errors import NotFoundError
from nubis.common.db import make_engine
from sqlalchemy.engine import Engine

#: Roles that own the project's storage account (Swift keystoneauth's operator_roles).
OPERATOR_ROLES = ("admin", "member")


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


class ProxyCredentials:
    """The S3 API's credential source (``[proxy] s3_credentials`` hook) over :class:`Ec2Lookup`.

    A credential whose user may not own the project's account is still
    returned: the proxy's ACL checks then decide what it may touch.
    """

    def __init__(self, lookup: Ec2Lookup) -> None:
        self.ec2 = lookup

    def lookup(self, access: str) -> S3Credential | None:
        """Return the credential of ``access`` (None: unknown, disabled or deleted)."""
        found = self.ec2.lookup(access)
        if found is None:
            return None
        return S3Credential(found.access, found.secret, found.user_id, found.project_id,
                            found.role_names)


def proxy_lookup(tokens: TokenSettings) -> ProxyCredentials:
    """Build the proxy's S3 credential source on the control-plane database."""
    return ProxyCredentials(Ec2Lookup(make_engine(tokens.database_url)))
