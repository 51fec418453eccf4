"""EC2-style credentials resolved for S3 signature checks (identity's side of S3).

:class:`Ec2Lookup` reads an access key's secret, user, project and effective
roles from the identity database, so a signature can be checked locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.creds import IdentityStore, ec2_credential_id
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.awssig import S3Credential
from nubis.api.shared.config import TokenSettings
from nubis.api.shared.errors import NotFoundError
from nubis.api.shared.revoke import revocation_events
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

    For the proxy's S3 API: the signature is checked locally with the secret.
    A result is trusted for ``ttl`` seconds (the bound on how long a deleted
    key, a disabled user or a removed role keeps working); past it, a cheap
    check (:meth:`_unchanged`: the key's credential row and a stamp of the
    identity state, i.e. the last revocation event and the sizes of the grant
    tables) renews it, and only a changed stamp, a changed row or ``max_age``
    reloads it in full (a dozen queries: user, project, groups, grants,
    implied roles).
    """

    def __init__(self, engine: Engine, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, max_age: float = 60.0) -> None:
        self.store = IdentityStore(engine, PasswordHasher())
        self.engine = engine
        self.ttl = ttl
        self.max_age = max_age
        self.clock = clock
        #: access -> (trusted until, loaded at, stamp, credential row, result)
        self._cache: dict[str, tuple[float, float, tuple[Any, ...], tuple[Any, ...],
                                     Ec2Secret | None]] = {}

    def lookup(self, access: str) -> Ec2Secret | None:
        """Return the credential for ``access`` (None if unknown or its user is disabled).

        PERF: bench s3 -- a full reload every ``ttl`` cost ~70 ms of the proxy's
        event loop under load; now one small query renews an unchanged answer.
        """
        hit = self._cache.get(access)
        now = self.clock()
        if hit is not None and hit[0] > now:
            return hit[4]
        stamp, row = self._state(access)
        if hit is not None and hit[4] is not None and now - hit[1] < self.max_age \
                and hit[2] == stamp and hit[3] == row:
            self._cache[access] = (now + self.ttl, hit[1], stamp, row, hit[4])
            return hit[4]
        found = self._load(access) if row else None
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[access] = (now + self.ttl, now, stamp, row, found)
        return found

    def _state(self, access: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Return the identity-state stamp and the key's credential row (empty: none).

        Every revocation (user disabled or deleted, grant, group membership,
        role or implied role removed, project or domain disabled) adds an event;
        a grant, membership or implied role added changes a table's size.
        """
        ev, cred = revocation_events, s.credentials
        stamp = sa.select(
            sa.select(sa.func.max(ev.c.id)).scalar_subquery(),
            *(sa.select(sa.func.count()).select_from(t).scalar_subquery()
              for t in (s.assignments, s.memberships, s.implied_roles, s.roles)))
        with self.engine.connect() as conn:
            values = tuple(conn.execute(stamp).one())
            found = conn.execute(sa.select(cred.c.blob, cred.c.user_id, cred.c.project_id)
                                 .where((cred.c.id == ec2_credential_id(access))
                                        & (cred.c.type == "ec2"))).first()
        return values, tuple(found) if found is not None else ()

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
        #: access -> (the lookup's answer, its credential), while the lookup returns it.
        self._made: dict[str, tuple[Ec2Secret, S3Credential]] = {}

    def lookup(self, access: str) -> S3Credential | None:
        """Return the credential of ``access`` (None: unknown, disabled or deleted).

        PERF: bench s3 -- the same credential object is returned as long as the
        lookup's cached answer is the same object (no new record per request).
        """
        found = self.ec2.lookup(access)
        if found is None:
            return None
        made = self._made.get(access)
        if made is not None and made[0] is found:
            return made[1]
        cred = S3Credential(found.access, found.secret, found.user_id, found.project_id,
                            found.role_names)
        if len(self._made) > 10000:
            self._made.clear()
        self._made[access] = (found, cred)
        return cred


def proxy_lookup(tokens: TokenSettings) -> ProxyCredentials:
    """Build the proxy's S3 credential source on the control-plane database."""
    return ProxyCredentials(Ec2Lookup(make_engine(tokens.database_url)))
