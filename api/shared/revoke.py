"""Token revocation events: a table in the shared database, polled by every verifier.

A revocation event says "every token matching these fields and issued at or
before ``issued_before`` is dead". The identity API writes one when a token is
deleted (``audit_id``), a user is disabled/deleted or changes password
(``user_id``), a role assignment is removed (``user_id`` + ``project_id`` or
``domain_id``), a project/domain is disabled or deleted, a role is deleted
(``role_id``), an application credential is deleted (``app_cred_id``) or a trust
is deleted (``trust_id``). A ``user_id`` event also matches trust-scoped tokens
whose trustor or trustee is that user, as in Keystone.

Each :class:`RevocationList` (one per verifier, i.e. per process) pulls the new
rows (``id > last seen``) at most every ``poll_seconds``, so a revocation takes
effect everywhere within that bound; events older than the longest token life
are pruned. Lookups are dictionary hits, not scans.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from nubis.api.shared.tokens import TokenPayload
from sqlalchemy.engine import Connection, Engine

LOG = logging.getLogger("nubis.api.shared.revoke")

metadata = sa.MetaData()

revocation_events = sa.Table(
    "identity_revocation_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), nullable=True),
    sa.Column("project_id", sa.String(64), nullable=True),
    sa.Column("domain_id", sa.String(64), nullable=True),
    sa.Column("role_id", sa.String(64), nullable=True),
    sa.Column("audit_id", sa.String(64), nullable=True, index=True),
    sa.Column("app_cred_id", sa.String(64), nullable=True),
    sa.Column("trust_id", sa.String(64), nullable=True),
    sa.Column("issued_before", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=False),
)

_FIELDS = ("user_id", "project_id", "domain_id", "role_id", "audit_id", "app_cred_id",
           "trust_id")


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One revocation rule; ``None`` fields match anything."""

    issued_before: float
    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    role_id: str | None = None
    audit_id: str | None = None
    app_cred_id: str | None = None
    trust_id: str | None = None

    def matches(self, p: TokenPayload) -> bool:
        """Return whether this event revokes the token with payload ``p``."""
        if p.issued_at > self.issued_before:
            return False
        if self.user_id is not None and self.user_id not in _token_users(p):
            return False
        if self.trust_id is not None and (p.trust is None or self.trust_id != p.trust.id):
            return False
        if self.audit_id is not None and self.audit_id not in p.audit_ids:
            return False
        if self.app_cred_id is not None and self.app_cred_id != p.app_cred_id:
            return False
        if self.project_id is not None and (p.project is None
                                            or p.project.id != self.project_id):
            return False
        if self.domain_id is not None and self.domain_id not in _token_domains(p):
            return False
        return self.role_id is None or any(r[0] == self.role_id for r in p.roles)


def _token_users(p: TokenPayload) -> tuple[str, ...]:
    """Return the users a token acts for: its user, and a trust's trustor and trustee.

    As in Keystone, revoking a user's tokens also kills the trust-scoped tokens in
    which that user is the trustor or the trustee.
    """
    if p.trust is None:
        return (p.user_id,)
    return (p.user_id, p.trust.trustor_id, p.trust.trustee_id)


def _token_domains(p: TokenPayload) -> set[str]:
    out = {p.user_domain_id}
    if p.project is not None:
        out.add(p.project.domain_id)
    if p.domain is not None:
        out.add(p.domain[0])
    return out


def record_event(conn: Connection, event: RevocationEvent) -> None:
    """Insert ``event`` (inside the caller's transaction)."""
    values = {f: getattr(event, f) for f in _FIELDS}
    conn.execute(revocation_events.insert().values(
        issued_before=event.issued_before, revoked_at=time.time(), **values))


def prune_events(conn: Connection, older_than: float) -> None:
    """Delete events that can no longer match a live token."""
    conn.execute(revocation_events.delete().where(
        revocation_events.c.issued_before < older_than))


class RevocationList:
    """The in-memory, periodically refreshed set of revocation events.

    Events are indexed by the most selective field they carry (audit id, then
    user, project, domain, role, application credential), so a check costs a
    handful of dictionary lookups whatever the number of events.
    """

    def __init__(self, engine: Engine | None, poll_seconds: float, max_token_life: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.max_token_life = max_token_life
        self.clock = clock
        self._last_id = 0
        self._next_poll = 0.0
        self._index: dict[str, dict[str, list[RevocationEvent]]] = {
            f: defaultdict(list) for f in _FIELDS}

    def add(self, event: RevocationEvent) -> None:
        """Apply ``event`` locally right away (the writer's own process)."""
        for field in _FIELDS:
            key = getattr(event, field)
            if key is not None:
                self._index[field][key].append(event)
                return

    def refresh(self, force: bool = False) -> None:
        """Pull new events from the database if the poll interval has passed."""
        now = self.clock()
        if self.engine is None or (not force and now < self._next_poll):
            return
        self._next_poll = now + self.poll_seconds
        t = revocation_events
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(t).where(t.c.id > self._last_id)
                                    .order_by(t.c.id)).mappings().all()
        except sa.exc.DBAPIError as exc:
            # Keep the events already known; retry at the next poll.
            LOG.warning("cannot read revocation events: %s", exc.orig)
            return
        for row in rows:
            self._last_id = max(self._last_id, int(row["id"]))
            self.add(RevocationEvent(issued_before=float(row["issued_before"]),
                                     **{f: row[f] for f in _FIELDS}))
        self._prune(now - self.max_token_life)

    def _prune(self, horizon: float) -> None:
        for index in self._index.values():
            for key in [k for k, evs in index.items()
                        if all(e.issued_before < horizon for e in evs)]:
                del index[key]

    def is_revoked(self, p: TokenPayload) -> bool:
        """Return whether any known event revokes ``p``."""
        idx = self._index
        for audit_id in p.audit_ids:
            if any(e.matches(p) for e in idx["audit_id"].get(audit_id, ())):
                return True
        candidates: list[RevocationEvent] = []
        for uid in _token_users(p):
            candidates += idx["user_id"].get(uid, ())
        if p.project is not None:
            candidates += idx["project_id"].get(p.project.id, ())
        for dom in _token_domains(p):
            candidates += idx["domain_id"].get(dom, ())
        for rid, _name in p.roles:
            candidates += idx["role_id"].get(rid, ())
        if p.app_cred_id is not None:
            candidates += idx["app_cred_id"].get(p.app_cred_id, ())
        if p.trust is not None:
            candidates += idx["trust_id"].get(p.trust.id, ())
        return any(e.matches(p) for e in candidates)
