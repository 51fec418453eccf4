"""Unified limits: registered (default) limits and project/domain limits.

The "flat" enforcement model, as Keystone's default: a registered limit gives
the default for a (service, region, resource) and a limit overrides it for one
project or domain. Services read them with ``GET /v3/limits?project_id=...``
(a project-scoped token sees only its own project's limits) and
``GET /v3/registered_limits`` (readable by every token). Creation takes a list
and is all-or-nothing, as in Keystone.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.store import ResourceStore, Row, new_id
from nubis.api.shared.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from sqlalchemy.engine import Connection

MODEL = {"name": "flat", "description": "Limit enforcement and validation does not take "
                                        "project hierarchy into consideration."}


class LimitStore(ResourceStore):
    """Registered limits and limits."""

    # --- registered limits -----------------------------------------------------
    def create_registered_limits(self, items: list[Row]) -> list[Row]:
        """Create registered limits (all or none)."""
        rows = []
        for item in items:
            self._check_refs(item)
            rows.append({"id": new_id(), "service_id": item["service_id"],
                         "region_id": item.get("region_id") or "",
                         "resource_name": item["resource_name"],
                         "default_limit": item["default_limit"],
                         "description": item.get("description")})
        self._insert_all(s.registered_limits, rows, "registered_limit")
        return [self.get_registered_limit(r["id"]) for r in rows]

    def get_registered_limit(self, ident: str) -> Row:
        """Return a registered limit by id."""
        return self._one(s.registered_limits, ident, "registered limit")

    def list_registered_limits(self, **filters: Any) -> list[Row]:
        """List registered limits (filters: service_id, region_id, resource_name)."""
        return self._select(s.registered_limits, filters)

    def update_registered_limit(self, ident: str, values: Row) -> Row:
        """Update a registered limit; its key may not change while limits use it."""
        current = self.get_registered_limit(ident)
        key = ("service_id", "region_id", "resource_name")
        if any(k in values and (values[k] or "") != (current[k] or "") for k in key):
            if self._references(current):
                raise ForbiddenError(f"Unable to update or delete registered limit {ident} "
                                     "because there are project limits associated with it.")
            self._check_refs({**current, **values})
        if "region_id" in values:
            values["region_id"] = values["region_id"] or ""
        self._update_row(s.registered_limits, ident, values, "registered_limit")
        return self.get_registered_limit(ident)

    def delete_registered_limit(self, ident: str) -> None:
        """Delete a registered limit no limit refers to."""
        current = self.get_registered_limit(ident)
        if self._references(current):
            raise ForbiddenError(f"Unable to update or delete registered limit {ident} "
                                 "because there are project limits associated with it.")
        with self.engine.begin() as conn:
            conn.execute(s.registered_limits.delete().where(s.registered_limits.c.id == ident))

    def _references(self, reg: Row) -> bool:
        lim = s.limits
        with self.engine.connect() as conn:
            return conn.execute(sa.select(lim.c.id).where(
                (lim.c.service_id == reg["service_id"]) & (lim.c.region_id == reg["region_id"])
                & (lim.c.resource_name == reg["resource_name"])).limit(1)).first() is not None

    # --- limits ------------------------------------------------------------------
    def create_limits(self, items: list[Row]) -> list[Row]:
        """Create project or domain limits (all or none); each needs a registered limit."""
        rows = []
        for item in items:
            self._check_refs(item)
            if item.get("project_id"):
                self.get_project(item["project_id"])
                target, kind = item["project_id"], "project"
            else:
                self.get_domain(item["domain_id"])
                target, kind = item["domain_id"], "domain"
            region = item.get("region_id") or ""
            if not self.list_registered_limits(service_id=item["service_id"], region_id=region,
                                               resource_name=item["resource_name"]):
                raise ForbiddenError("Unable to create a limit that has no corresponding "
                                     "registered limit.")
            rows.append({"id": new_id(), "target_id": target, "target_kind": kind,
                         "service_id": item["service_id"], "region_id": region,
                         "resource_name": item["resource_name"],
                         "resource_limit": item["resource_limit"],
                         "description": item.get("description")})
        self._insert_all(s.limits, rows, "limit")
        return [self.get_limit(r["id"]) for r in rows]

    def get_limit(self, ident: str) -> Row:
        """Return a limit by id."""
        return _limit(self._one(s.limits, ident, "limit"))

    def list_limits(self, **filters: Any) -> list[Row]:
        """List limits (filters: service_id, region_id, resource_name, project_id, domain_id)."""
        where = dict(filters)
        for kind in ("project", "domain"):
            value = where.pop(f"{kind}_id", None)
            if value is not None:
                where["target_id"], where["target_kind"] = value, kind
        return [_limit(r) for r in self._select(s.limits, where)]

    def update_limit(self, ident: str, values: Row) -> Row:
        """Update a limit's value or description."""
        self.get_limit(ident)
        self._update_row(s.limits, ident, values, "limit")
        return self.get_limit(ident)

    def delete_limit(self, ident: str) -> None:
        """Delete a limit."""
        self.get_limit(ident)
        with self.engine.begin() as conn:
            conn.execute(s.limits.delete().where(s.limits.c.id == ident))

    # --- helpers -------------------------------------------------------------------
    def _one(self, table: sa.Table, ident: str, kind: str) -> Row:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == ident)).mappings().first()
        if row is None:
            raise NotFoundError(f"Could not find {kind} for {ident}.")
        return dict(row)

    def _check_refs(self, item: Row) -> None:
        with self.engine.connect() as conn:
            if not _exists(conn, s.services, item["service_id"]):
                raise BadRequestError(f"Invalid input for field 'service_id': service "
                                      f"{item['service_id']} does not exist.")
            region = item.get("region_id")
            if region and not _exists(conn, s.regions, region):
                raise BadRequestError(f"Invalid input for field 'region_id': region {region} "
                                      "does not exist.")

    def _select(self, table: sa.Table, filters: dict[str, Any]) -> list[Row]:
        stmt = sa.select(table).order_by(table.c.resource_name, table.c.id)
        for col, value in filters.items():
            if value is not None:
                stmt = stmt.where(table.c[col] == (value or "" if col == "region_id"
                                                   else value))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def _insert_all(self, table: sa.Table, rows: list[Row], kind: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), rows)
        except sa.exc.IntegrityError:
            raise ConflictError(f"Conflict occurred attempting to store {kind} - Duplicate "
                                "entry.") from None

    def _update_row(self, table: sa.Table, ident: str, values: Row, kind: str) -> None:
        if not values:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == ident).values(**values))
        except sa.exc.IntegrityError:
            raise ConflictError(f"Conflict occurred attempting to store {kind} - Duplicate "
                                "entry.") from None


def _exists(conn: Connection, table: sa.Table, ident: str) -> bool:
    return conn.execute(sa.select(table.c.id).where(table.c.id == ident)).first() is not None


def _limit(row: Row) -> Row:
    kind = row.pop("target_kind")
    target = row.pop("target_id")
    row["project_id"] = target if kind == "project" else None
    row["domain_id"] = target if kind == "domain" else None
    return row


def registered_limit_view(row: Row, base: str) -> dict[str, Any]:
    """Render a registered limit."""
    return {"id": row["id"], "service_id": row["service_id"],
            "region_id": row["region_id"] or None, "resource_name": row["resource_name"],
            "default_limit": row["default_limit"], "description": row.get("description"),
            "links": {"self": f"{base}/registered_limits/{row['id']}"}}


def limit_view(row: Row, base: str) -> dict[str, Any]:
    """Render a limit."""
    return {"id": row["id"], "project_id": row["project_id"], "domain_id": row["domain_id"],
            "service_id": row["service_id"], "region_id": row["region_id"] or None,
            "resource_name": row["resource_name"], "resource_limit": row["resource_limit"],
            "description": row.get("description"),
            "links": {"self": f"{base}/limits/{row['id']}"}}
