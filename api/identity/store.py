"""Identity data access: domains, projects, users, groups (SQLAlchemy Core).

Rows travel as plain dicts with the ``extra`` JSON already merged in. Every
write that collides with a unique constraint becomes a Keystone 409; every
lookup of a missing id a Keystone 404. Writes that must kill tokens record
revocation events in the same transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.compliance import PasswordRules
from nubis.api.identity.config import IdentityConfig
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.errors import BadRequestError, ConflictError, ForbiddenError, not_found
from nubis.api.shared.revoke import RevocationEvent, RevocationList, prune_events, record_event
from nubis.common.db import advisory_lock
from sqlalchemy.engine import Connection, Engine

Row = dict[str, Any]

DEFAULT_DOMAIN_ID = "default"
#: Advisory lock key serializing revocation-event writers on PostgreSQL ("revoke").
REVOCATION_LOCK = 0x7265766F6B65
#: Keys added to rows when they are read, never stored as ``extra``.
DERIVED_KEYS = frozenset({"password_expires_at"})


def new_id() -> str:
    """Return a new entity id (32 hex characters, like Keystone's)."""
    return uuid.uuid4().hex


def _row(m: Any) -> Row:
    out = dict(m)
    extra = out.pop("extra", None)
    if extra:
        for key, value in json.loads(extra).items():
            out.setdefault(key, value)
    return out


class StoreBase:
    """Shared plumbing: engine, hasher, clock, revocation hook, generic CRUD."""

    def __init__(self, engine: Engine, hasher: PasswordHasher,
                 revocations: RevocationList | None = None,
                 clock: Callable[[], float] = time.time,
                 max_token_life: float = 86400.0,
                 config: IdentityConfig | None = None) -> None:
        self.engine = engine
        self.hasher = hasher
        self.revocations = revocations
        self.clock = clock
        self.max_token_life = max_token_life
        self.config = config or IdentityConfig()
        self.passwords = PasswordRules(self.config.security_compliance, hasher, clock)

    def revoke(self, conn: Connection, **fields: str | None) -> None:
        """Record a revocation event for tokens issued up to now (and prune dead events)."""
        # Verifiers poll "id > last seen": event ids must become visible in id order,
        # which PostgreSQL's sequences alone do not promise across transactions.
        advisory_lock(conn, REVOCATION_LOCK)
        now = self.clock()
        event = RevocationEvent(issued_before=now, **fields)
        prune_events(conn, now - self.max_token_life - 60)
        record_event(conn, event)
        if self.revocations is not None:
            self.revocations.add(event)

    def _get(self, table: sa.Table, ident: str, kind: str) -> Row:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == ident)).mappings().first()
        if row is None:
            raise not_found(kind, ident)
        return _row(row)

    def _find(self, table: sa.Table, **where: Any) -> Row | None:
        stmt = sa.select(table)
        for col, value in where.items():
            stmt = stmt.where(table.c[col] == value)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _row(row)

    def _list(self, table: sa.Table, filters: Mapping[str, Any]) -> list[Row]:
        stmt = sa.select(table)
        for col, value in filters.items():
            if value is not None:
                stmt = stmt.where(table.c[col] == value)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(table.c[_order_col(table)])).mappings().all()
        return [_row(r) for r in rows]

    def _insert(self, table: sa.Table, values: Row, conflict: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert().values(**values))
        except sa.exc.IntegrityError:
            raise ConflictError(conflict) from None

    def _update(self, table: sa.Table, ident: str, kind: str, values: Row,
                conflict: str = "") -> Row:
        current = self._get(table, ident, kind)
        if not values:
            return current
        values = _split_extra(table, {**_extra_of(table, current), **values})
        try:
            with self.engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == ident).values(**values))
        except sa.exc.IntegrityError:
            message = conflict or f"Conflict occurred attempting to store {kind}."
            raise ConflictError(message) from None
        return self._get(table, ident, kind)


def _order_col(table: sa.Table) -> str:
    return "name" if "name" in table.c else "id"


def _extra_of(table: sa.Table, row: Row) -> Row:
    """Return the keys of ``row`` that are not real columns of ``table``."""
    return {k: v for k, v in row.items() if k not in table.c and k not in DERIVED_KEYS}


def _split_extra(table: sa.Table, values: Row) -> Row:
    """Move keys that are not columns of ``table`` into its ``extra`` JSON."""
    if "extra" not in table.c:
        return {k: v for k, v in values.items() if k in table.c}
    cols = {k: v for k, v in values.items() if k in table.c and k != "extra"}
    extra = {k: v for k, v in values.items() if k not in table.c}
    cols["extra"] = json.dumps(extra, sort_keys=True)
    return cols


def duplicate(kind: str, name: str, domain_id: str | None = None) -> str:
    """Return Keystone's duplicate-entry message."""
    where = f" at domain ID {domain_id}" if domain_id else ""
    return (f"Conflict occurred attempting to store {kind} - "
            f"Duplicate entry found with name {name}{where}.")


class ResourceStore(StoreBase):
    """Domains, projects, users, groups and group membership."""

    # --- domains -----------------------------------------------------------
    def create_domain(self, values: Row) -> Row:
        """Create a domain."""
        values = {"id": values.pop("id", None) or new_id(), "description": "",
                  "enabled": True, **values}
        self._insert(s.domains, _split_extra(s.domains, values),
                     duplicate("domain", values["name"]))
        return self.get_domain(values["id"])

    def get_domain(self, ident: str) -> Row:
        """Return a domain by id."""
        return self._get(s.domains, ident, "domain")

    def find_domain(self, name: str) -> Row | None:
        """Return a domain by name, or None."""
        return self._find(s.domains, name=name)

    def list_domains(self, **filters: Any) -> list[Row]:
        """List domains matching column filters."""
        return self._list(s.domains, filters)

    def update_domain(self, ident: str, values: Row) -> Row:
        """Update a domain; disabling it revokes the tokens of its users and projects."""
        row = self._update(s.domains, ident, "domain", values,
                           duplicate("domain", str(values.get("name"))))
        if values.get("enabled") is False:
            with self.engine.begin() as conn:
                self.revoke(conn, domain_id=ident)
        return row

    def delete_domain(self, ident: str) -> None:
        """Delete a disabled domain and everything in it."""
        dom = self.get_domain(ident)
        if dom["enabled"]:
            raise ForbiddenError("Cannot delete a domain that is enabled, please disable it first.")
        with self.engine.begin() as conn:
            for table in (s.projects, s.users, s.groups):
                ids = [r[0] for r in conn.execute(
                    sa.select(table.c.id).where(table.c.domain_id == ident))]
                self._purge_targets(conn, ids)
                conn.execute(table.delete().where(table.c.domain_id == ident))
            conn.execute(s.roles.delete().where(s.roles.c.domain_id == ident))
            self._purge_targets(conn, [ident])
            conn.execute(s.domains.delete().where(s.domains.c.id == ident))
            self.revoke(conn, domain_id=ident)

    def _purge_targets(self, conn: Connection, ids: list[str]) -> None:
        """Drop assignments, memberships and credentials that mention ``ids``."""
        if not ids:
            return
        a = s.assignments
        conn.execute(a.delete().where(a.c.actor_id.in_(ids) | a.c.target_id.in_(ids)))
        m = s.memberships
        conn.execute(m.delete().where(m.c.user_id.in_(ids) | m.c.group_id.in_(ids)))
        ac = s.app_creds
        conn.execute(ac.delete().where(ac.c.user_id.in_(ids) | ac.c.project_id.in_(ids)))
        c = s.credentials
        conn.execute(c.delete().where(c.c.user_id.in_(ids) | c.c.project_id.in_(ids)))
        t = s.trusts
        gone = sa.select(t.c.id).where(t.c.trustor_user_id.in_(ids)
                                       | t.c.trustee_user_id.in_(ids) | t.c.project_id.in_(ids))
        conn.execute(s.trust_roles.delete().where(s.trust_roles.c.trust_id.in_(gone)))
        conn.execute(t.delete().where(t.c.trustor_user_id.in_(ids)
                                      | t.c.trustee_user_id.in_(ids) | t.c.project_id.in_(ids)))
        conn.execute(s.limits.delete().where(s.limits.c.target_id.in_(ids)))
        self.passwords.forget(conn, ids)

    # --- projects ----------------------------------------------------------
    def create_project(self, values: Row) -> Row:
        """Create a project (checks domain and parent)."""
        parent_id = values.get("parent_id")
        domain_id = values.get("domain_id")
        if parent_id:
            parent = self.get_project(parent_id)
            if domain_id and domain_id != parent["domain_id"]:
                raise BadRequestError("Cannot create project, the parent project "
                                 "must be in the same domain.")
            domain_id = parent["domain_id"]
            depth = len(self.project_parents(parent_id)) + 2
            if depth > self.config.max_project_tree_depth:
                raise ForbiddenError(f"Max hierarchy depth reached for {parent_id} branch.")
        domain_id = domain_id or DEFAULT_DOMAIN_ID
        self.get_domain(domain_id)
        values = {"description": "", "enabled": True, "tags": [], **values,
                  "id": values.get("id") or new_id(), "domain_id": domain_id,
                  "parent_id": parent_id or None}
        self._insert(s.projects, _split_extra(s.projects, values),
                     duplicate("project", values["name"], domain_id))
        return self.get_project(values["id"])

    def get_project(self, ident: str) -> Row:
        """Return a project by id."""
        return self._get(s.projects, ident, "project")

    def project_parents(self, ident: str) -> list[Row]:
        """Return the ancestors of a project, nearest first (its domain excluded)."""
        out: list[Row] = []
        seen = {ident}
        row = self.get_project(ident)
        while row.get("parent_id") and row["parent_id"] not in seen:
            seen.add(row["parent_id"])
            row = self.get_project(row["parent_id"])
            out.append(row)
        return out

    def project_subtree(self, ident: str) -> list[Row]:
        """Return every descendant of a project, level by level (one query per level)."""
        out: list[Row] = []
        level = [ident]
        seen = {ident}
        p = s.projects
        with self.engine.connect() as conn:
            while level:
                rows = [_row(r) for r in conn.execute(
                    sa.select(p).where(p.c.parent_id.in_(level)).order_by(p.c.name)).mappings()]
                rows = [r for r in rows if r["id"] not in seen]
                seen.update(r["id"] for r in rows)
                out.extend(rows)
                level = [r["id"] for r in rows]
        return out

    def find_project(self, name: str, domain_id: str) -> Row | None:
        """Return a project by name within a domain, or None."""
        return self._find(s.projects, name=name, domain_id=domain_id)

    def list_projects(self, **filters: Any) -> list[Row]:
        """List projects matching column filters."""
        return self._list(s.projects, filters)

    def update_project(self, ident: str, values: Row) -> Row:
        """Update a project; disabling it revokes its tokens."""
        current = self.get_project(ident)
        if "domain_id" in values and values["domain_id"] != current["domain_id"]:
            raise BadRequestError("Update of `domain_id` is not allowed.")
        if "parent_id" in values and values["parent_id"] != current["parent_id"]:
            raise ForbiddenError("Update of `parent_id` is not allowed.")
        row = self._update(s.projects, ident, "project", values,
                           duplicate("project", str(values.get("name")), current["domain_id"]))
        if values.get("enabled") is False:
            with self.engine.begin() as conn:
                self.revoke(conn, project_id=ident)
        return row

    def delete_project(self, ident: str) -> None:
        """Delete a leaf project, its grants and credentials; revoke its tokens."""
        self.get_project(ident)
        if self.list_projects(parent_id=ident):
            raise ForbiddenError(f"Cannot delete the project {ident} since it is not a "
                            "leaf in the hierarchy. Use the cascade option if you want "
                            "to delete a whole subtree.")
        with self.engine.begin() as conn:
            self._purge_targets(conn, [ident])
            conn.execute(s.projects.delete().where(s.projects.c.id == ident))
            self.revoke(conn, project_id=ident)

    # --- users -------------------------------------------------------------
    def create_user(self, values: Row) -> Row:
        """Create a user, hashing its password."""
        domain_id = values.get("domain_id") or DEFAULT_DOMAIN_ID
        self.get_domain(domain_id)
        password = values.pop("password", None)
        if password:
            self.passwords.check_strength(password)
        encoded = self.hasher.hash(password) if password else None
        values = {"enabled": True, **values, "id": values.get("id") or new_id(),
                  "domain_id": domain_id, "created_at": self.clock(),
                  "password_hash": encoded}
        try:
            with self.engine.begin() as conn:
                conn.execute(s.users.insert().values(**_split_extra(s.users, values)))
                if encoded:
                    self.passwords.record(conn, values, encoded, by_admin=True)
        except sa.exc.IntegrityError:
            raise ConflictError(duplicate("user", values["name"], domain_id)) from None
        return self.get_user(values["id"])

    def get_user(self, ident: str) -> Row:
        """Return a user by id (with its password hash and ``password_expires_at``)."""
        return self._with_expiry([self._get(s.users, ident, "user")])[0]

    def _with_expiry(self, rows: list[Row]) -> list[Row]:
        with self.engine.connect() as conn:
            expiry = self.passwords.expiry_of(conn, [r["id"] for r in rows])
        for row in rows:
            row["password_expires_at"] = expiry.get(row["id"])
        return rows

    def find_user(self, name: str, domain_id: str) -> Row | None:
        """Return a user by name within a domain, or None."""
        return self._find(s.users, name=name, domain_id=domain_id)

    def list_users(self, **filters: Any) -> list[Row]:
        """List users matching column filters."""
        return self._with_expiry(self._list(s.users, filters))

    def update_user(self, ident: str, values: Row, *, by_admin: bool = True) -> Row:
        """Update a user; disabling it or changing its password revokes its tokens.

        A new password is checked against ``password_regex`` and the password
        history first; re-enabling a user clears its lockout.
        """
        current = self.get_user(ident)
        if "domain_id" in values and values["domain_id"] != current["domain_id"]:
            raise BadRequestError("Update of `domain_id` is not allowed.")
        password = values.pop("password", None)
        if password is not None:
            self.passwords.check_strength(password)
            with self.engine.connect() as conn:
                self.passwords.check_history(conn, ident, password)
            values["password_hash"] = self.hasher.hash(password)
        row = self._update(s.users, ident, "user", values,
                           duplicate("user", str(values.get("name")), current["domain_id"]))
        with self.engine.begin() as conn:
            if password is not None:
                self.passwords.record(conn, row, values["password_hash"], by_admin=by_admin)
            if values.get("enabled") is True:
                self.passwords.unlock(conn, ident)
            if password is not None or values.get("enabled") is False:
                self.revoke(conn, user_id=ident)
        return self.get_user(ident)

    def set_password(self, ident: str, password: str, *, by_admin: bool = True) -> None:
        """Replace a user's password and revoke every token it holds."""
        self.update_user(ident, {"password": password}, by_admin=by_admin)

    def change_own_password(self, ident: str, password: str) -> None:
        """Self-service password change: the minimum-age rule applies, expiry restarts."""
        with self.engine.connect() as conn:
            self.passwords.check_minimum_age(conn, ident)
        self.set_password(ident, password, by_admin=False)

    def delete_user(self, ident: str) -> None:
        """Delete a user with its grants and credentials; revoke its tokens."""
        self.get_user(ident)
        with self.engine.begin() as conn:
            self._purge_targets(conn, [ident])
            conn.execute(s.users.delete().where(s.users.c.id == ident))
            self.passwords.forget(conn, [ident])
            self.revoke(conn, user_id=ident)

    # --- groups ------------------------------------------------------------
    def create_group(self, values: Row) -> Row:
        """Create a group."""
        domain_id = values.get("domain_id") or DEFAULT_DOMAIN_ID
        self.get_domain(domain_id)
        values = {"description": "", **values, "id": values.get("id") or new_id(),
                  "domain_id": domain_id}
        self._insert(s.groups, _split_extra(s.groups, values),
                     duplicate("group", values["name"], domain_id))
        return self.get_group(values["id"])

    def get_group(self, ident: str) -> Row:
        """Return a group by id."""
        return self._get(s.groups, ident, "group")

    def list_groups(self, **filters: Any) -> list[Row]:
        """List groups matching column filters."""
        return self._list(s.groups, filters)

    def update_group(self, ident: str, values: Row) -> Row:
        """Update a group."""
        current = self.get_group(ident)
        return self._update(s.groups, ident, "group", values,
                            duplicate("group", str(values.get("name")), current["domain_id"]))

    def delete_group(self, ident: str) -> None:
        """Delete a group; revoke the tokens of its members."""
        members = self.list_group_users(ident)
        with self.engine.begin() as conn:
            self._purge_targets(conn, [ident])
            conn.execute(s.groups.delete().where(s.groups.c.id == ident))
            for user in members:
                self.revoke(conn, user_id=user["id"])

    def add_user_to_group(self, group_id: str, user_id: str) -> None:
        """Make ``user_id`` a member of ``group_id`` (idempotent)."""
        self.get_group(group_id)
        self.get_user(user_id)
        if self.user_in_group(group_id, user_id):
            return
        self._insert(s.memberships, {"user_id": user_id, "group_id": group_id},
                     "Conflict occurred attempting to store membership.")

    def remove_user_from_group(self, group_id: str, user_id: str) -> None:
        """Remove a membership (404 if absent) and revoke the user's tokens."""
        self.get_group(group_id)
        self.get_user(user_id)
        m = s.memberships
        with self.engine.begin() as conn:
            gone = conn.execute(m.delete().where(
                (m.c.group_id == group_id) & (m.c.user_id == user_id))).rowcount
            if not gone:
                raise not_found("membership", f"{user_id} in {group_id}")
            self.revoke(conn, user_id=user_id)

    def user_in_group(self, group_id: str, user_id: str) -> bool:
        """Return whether the user is a member of the group."""
        return self._find(s.memberships, group_id=group_id, user_id=user_id) is not None

    def list_group_users(self, group_id: str) -> list[Row]:
        """List the users of a group."""
        self.get_group(group_id)
        m, u = s.memberships, s.users
        stmt = (sa.select(u).join(m, m.c.user_id == u.c.id)
                .where(m.c.group_id == group_id).order_by(u.c.name))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt).mappings()]

    def list_user_groups(self, user_id: str) -> list[Row]:
        """List the groups a user belongs to."""
        self.get_user(user_id)
        m, g = s.memberships, s.groups
        stmt = (sa.select(g).join(m, m.c.group_id == g.c.id)
                .where(m.c.user_id == user_id).order_by(g.c.name))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt).mappings()]

    def user_group_ids(self, user_id: str) -> list[str]:
        """Return the ids of the groups a user belongs to."""
        m = s.memberships
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                sa.select(m.c.group_id).where(m.c.user_id == user_id))]
