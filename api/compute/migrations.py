"""Resize migrations: Nova's ``migrations`` record, kept while a resize awaits its verdict.

A same-host resize creates one row (``status`` ``pre-migrating`` → ``finished``
when the guest runs with the new flavor → ``confirmed`` or ``reverted``). The
row keeps both flavors and the allocation the instance had before, which
Placement holds under the migration's uuid until the resize is confirmed
(released) or reverted (given back to the instance), as Nova does it. Its own
table and migration line (``compute_migration``), so it evolves apart from the
other compute tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from nubis.api.compute.clients import PeerError, SchedulerClient, call
from nubis.api.compute.store import utcnow
from nubis.common.db import migrate
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

migrations = sa.Table(
    "compute_migration", metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
    sa.Column("migration_type", sa.String(40), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("source_compute", sa.String(255), nullable=True),
    sa.Column("dest_compute", sa.String(255), nullable=True),
    sa.Column("old_flavor", sa.Text, nullable=False),
    sa.Column("new_flavor", sa.Text, nullable=False),
    #: The instance's allocations before the resize ({provider: {resources}}).
    sa.Column("old_allocations", sa.Text, nullable=False, default="{}"),
    #: Whether the guest ran when the resize started (a revert powers it on again).
    sa.Column("was_running", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [_v1_create]
#: Placement microversion of the allocation calls (dict form, no consumer generations).
PLACEMENT_VERSION = "placement 1.12"
#: A resize that has not been confirmed or reverted.
OPEN = ("pre-migrating", "migrating", "finished")


@dataclass(frozen=True)
class Migration:
    """One resize of one instance."""

    uuid: str
    instance_uuid: str
    status: str
    source_compute: str | None
    old_flavor: dict[str, Any]
    new_flavor: dict[str, Any]
    old_allocations: dict[str, Any]
    was_running: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Migration:
        """Build from a ``compute_migration`` row."""
        return cls(row["uuid"], row["instance_uuid"], row["status"], row["source_compute"],
                   json.loads(row["old_flavor"]), json.loads(row["new_flavor"]),
                   json.loads(row["old_allocations"] or "{}"), bool(row["was_running"]),
                   row["created_at"])


class MigrationStore:
    """Rows of ``compute_migration`` on the control-plane engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._migrated = False

    def _ready(self) -> None:
        if not self._migrated:
            migrate(self.engine, "compute_migration", MIGRATIONS)
            self._migrated = True

    def create(self, uuid: str, instance_uuid: str, host: str | None,
               old_flavor: dict[str, Any], new_flavor: dict[str, Any],
               was_running: bool) -> None:
        """Record a resize that is starting."""
        self._ready()
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(migrations.insert().values(
                uuid=uuid, instance_uuid=instance_uuid, migration_type="resize",
                status="pre-migrating", source_compute=host, dest_compute=host,
                old_flavor=json.dumps(old_flavor), new_flavor=json.dumps(new_flavor),
                old_allocations="{}", was_running=was_running, created_at=now,
                updated_at=now))

    def update(self, uuid: str, status: str, old_allocations: dict[str, Any] | None = None
               ) -> None:
        """Move a resize to ``status`` (and record the allocations it holds)."""
        self._ready()
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if old_allocations is not None:
            values["old_allocations"] = json.dumps(old_allocations)
        with self.engine.begin() as conn:
            conn.execute(migrations.update().where(migrations.c.uuid == uuid).values(**values))

    def open_for(self, instance_uuid: str) -> Migration | None:
        """Return the instance's unfinished resize, if any."""
        self._ready()
        t = migrations
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(
                t.c.instance_uuid == instance_uuid, t.c.status.in_(OPEN)).order_by(
                    t.c.created_at.desc())).mappings().first()
        return None if row is None else Migration.from_row(row)


def placement_headers() -> dict[str, str]:
    """Return the headers of the resize's Placement calls."""
    return {"OpenStack-API-Version": PLACEMENT_VERSION}


async def placement_call(scheduler: SchedulerClient, method: str, consumer: str,
                         body: Any = None) -> tuple[int, Any]:
    """Call ``/placement/allocations/{consumer}``; return (status, decoded body or None)."""
    status, raw = await call(scheduler.http, scheduler.url, method,
                             f"/placement/allocations/{consumer}",
                             {**scheduler.headers, **placement_headers()}, body)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


async def release_open_resize(store: MigrationStore, scheduler: SchedulerClient,
                              instance_uuid: str) -> None:
    """Release what an unfinished resize holds (the instance is being deleted)."""
    migration = store.open_for(instance_uuid)
    if migration is None:
        return
    try:
        await placement_call(scheduler, "DELETE", migration.uuid)
    except PeerError:
        return  # the scheduler is down: the delete's own release reports it
    store.update(migration.uuid, "deleted")
