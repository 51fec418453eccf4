"""Volume data access (SQLAlchemy Core): resources, quotas, type access lists."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nubis.api.volume import schema as s
from nubis.common.db import migrate
from sqlalchemy.engine import Engine

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (how the tables store it)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Record:
    """One Cinder resource row: its columns and its JSON document."""

    id: str
    kind: str
    project_id: str
    name: str | None
    status: str
    created_at: datetime
    updated_at: datetime | None
    doc: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> Record:
        """Build from a ``volume_resource`` row."""
        return cls(row["id"], row["kind"], row["project_id"], row["name"], row["status"],
                   row["created_at"], row["updated_at"], json.loads(row["doc"]))

    def get(self, key: str, default: Any = None) -> Any:
        """Return one field of the document."""
        return self.doc.get(key, default)


class _LostRaceError(Exception):
    """A concurrent writer changed what a transaction expected (it is rolled back)."""


class VolumeStore:
    """Rows of the volume API on the shared control-plane engine."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def migrate(self) -> None:
        """Create or upgrade the volume tables."""
        migrate(self.engine, "volume", s.MIGRATIONS)

    # --- resources ----------------------------------------------------------------------

    def insert(self, kind: str, ident: str, project_id: str, name: str | None, status: str,
               doc: Mapping[str, Any]) -> Record:
        """Insert one resource and return it."""
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(s.resources.insert().values(
                id=ident, kind=kind, project_id=project_id, name=name, status=status,
                created_at=now, updated_at=None, doc=json.dumps(dict(doc))))
        return Record(ident, kind, project_id, name, status, now, None, dict(doc))

    def get(self, kind: str, ident: str) -> Record | None:
        """Return one resource of ``kind``, or None."""
        t = s.resources
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == ident, t.c.kind == kind)
                               ).mappings().first()
        return None if row is None else Record.from_row(row)

    def select(self, kind: str, project_id: str | None = None,
             ids: Iterable[str] | None = None) -> list[Record]:
        """Return the resources of ``kind`` (of one project when given), oldest first."""
        t = s.resources
        q = sa.select(t).where(t.c.kind == kind)
        if project_id is not None:
            q = q.where(t.c.project_id == project_id)
        if ids is not None:
            q = q.where(t.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.created_at, t.c.id)).mappings().all()
        return [Record.from_row(r) for r in rows]

    def update(self, rec: Record, *, status: str | None = None, name: Any = ...,
               expected: Iterable[str] | None = None, **changes: Any) -> Record | None:
        """Change a resource (document keys in ``changes``).

        With ``expected``, only when its status is one of them (compare and swap);
        returns the new record, or None when the status had moved on.
        """
        t = s.resources
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == rec.id)).mappings().first()
            if row is None:
                return None
            cur = Record.from_row(row)
            if expected is not None and cur.status not in set(expected):
                return None
            doc = {**cur.doc, **changes}
            values: dict[str, Any] = {"doc": json.dumps(doc), "updated_at": self.clock()}
            if status is not None:
                values["status"] = status
            if name is not ...:
                values["name"] = name
            q = t.update().where(t.c.id == rec.id)
            if expected is not None:
                q = q.where(t.c.status == cur.status)
            if conn.execute(q.values(**values)).rowcount != 1:
                return None
        return Record(cur.id, cur.kind, cur.project_id,
                      values.get("name", cur.name), values.get("status", cur.status),
                      cur.created_at, values["updated_at"], doc)

    def hand_over(self, transfer: Record, volume: Record, snapshots: Iterable[Record],
                  project_id: str, user_id: str) -> bool:
        """Accept a transfer in one transaction: the volume (and ``snapshots``) change owner.

        False, with nothing changed, when the transfer is gone or the volume no
        longer awaits it (a concurrent accept or delete won).
        """
        t = s.resources
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                gone = conn.execute(t.delete().where(t.c.id == transfer.id,
                                                     t.c.kind == "transfer")).rowcount
                moved = conn.execute(t.update().where(
                    t.c.id == volume.id, t.c.status == "awaiting-transfer").values(
                    project_id=project_id, status="available", updated_at=now,
                    doc=json.dumps({**volume.doc, "user_id": user_id}))).rowcount
                if gone != 1 or moved != 1:
                    raise _LostRaceError  # rolls the transaction back
                for snap in snapshots:
                    conn.execute(t.update().where(t.c.id == snap.id).values(
                        project_id=project_id, updated_at=now,
                        doc=json.dumps({**snap.doc, "user_id": user_id})))
        except _LostRaceError:
            return False
        return True

    def delete(self, ident: str) -> None:
        """Delete one resource row."""
        with self.engine.begin() as conn:
            conn.execute(s.resources.delete().where(s.resources.c.id == ident))
            conn.execute(s.type_access.delete().where(s.type_access.c.type_id == ident))

    def count(self, kind: str, project_id: str, size_key: str | None = None,
              exclude: str | None = None) -> tuple[int, int]:
        """Return how many resources of ``kind`` a project has and their summed size."""
        n, total = 0, 0
        for rec in self.select(kind, project_id):
            if rec.id == exclude:
                continue
            n += 1
            total += int(rec.get(size_key) or 0) if size_key else 0
        return n, total

    # --- quotas and type access ---------------------------------------------------------

    def quotas(self, project_id: str) -> dict[str, int]:
        """Return a project's quota overrides."""
        t = s.quotas
        with self.engine.connect() as conn:
            return {r.resource: int(r.hard_limit) for r in conn.execute(
                sa.select(t).where(t.c.project_id == project_id))}

    def set_quotas(self, project_id: str, limits: Mapping[str, int]) -> None:
        """Create or replace quota overrides."""
        t = s.quotas
        with self.engine.begin() as conn:
            for resource, limit in limits.items():
                conn.execute(t.delete().where(t.c.project_id == project_id,
                                              t.c.resource == resource))
                conn.execute(t.insert().values(project_id=project_id, resource=resource,
                                               hard_limit=limit))

    def delete_quotas(self, project_id: str) -> None:
        """Drop a project's overrides (back to the defaults)."""
        with self.engine.begin() as conn:
            conn.execute(s.quotas.delete().where(s.quotas.c.project_id == project_id))

    def type_access(self, type_id: str) -> list[str]:
        """Return the projects a private volume type is shared with."""
        t = s.type_access
        with self.engine.connect() as conn:
            return sorted(r.project_id for r in conn.execute(
                sa.select(t.c.project_id).where(t.c.type_id == type_id)))

    def set_type_access(self, type_id: str, project_id: str, allow: bool) -> bool:
        """Add or remove a project's access; return whether anything changed."""
        t = s.type_access
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(t).where(t.c.type_id == type_id,
                                                     t.c.project_id == project_id)).first()
            if allow and exists is None:
                conn.execute(t.insert().values(type_id=type_id, project_id=project_id))
                return True
            if not allow and exists is not None:
                conn.execute(t.delete().where(t.c.type_id == type_id,
                                              t.c.project_id == project_id))
                return True
            return False
