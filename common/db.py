"""The control-plane database engine and a tiny versioned migration runner.

SQLAlchemy 2 Core. SQLite (a file in the state dir) by default, PostgreSQL when
the config gives a ``postgresql://`` URL; the same schema runs on both.

Each component keeps an ordered list of migration steps; :func:`migrate` applies
the ones not yet recorded in ``nubis_schema_versions`` for that component, each
in its own transaction, so start-up is idempotent and concurrent starts are safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from nubis.common.errors import NubisError
from sqlalchemy.engine import Connection, Engine

Migration = Callable[[Connection], None]

_versions = sa.Table(
    "nubis_schema_versions",
    sa.MetaData(),
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


class DatabaseError(NubisError):
    """The control-plane database is unreachable or its schema is too new."""


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings nubis relies on.

    SQLite gets WAL journaling, foreign keys and a busy timeout so several
    processes can share one file; PostgreSQL gets a pre-ping pool.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def sqlite_url(path: str) -> str:
    """Return the SQLAlchemy URL of the SQLite file at ``path``."""
    return f"sqlite:///{path}"


def schema_version(engine: Engine, component: str) -> int:
    """Return the applied migration count for ``component`` (0 if none)."""
    with engine.begin() as conn:
        _versions.create(conn, checkfirst=True)
        row = conn.execute(
            sa.select(_versions.c.version).where(_versions.c.component == component)
        ).first()
    return int(row[0]) if row else 0


def migrate(engine: Engine, component: str, steps: Sequence[Migration]) -> int:
    """Apply the migrations of ``component`` not applied yet; return the new version."""
    current = schema_version(engine, component)
    if current > len(steps):
        raise DatabaseError(
            f"database schema of {component} is version {current}, "
            f"newer than this nubis knows ({len(steps)})")
    for version in range(current + 1, len(steps) + 1):
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(_versions.c.version)
                .where(_versions.c.component == component)
                .with_for_update()
            ).first()
            done = int(row[0]) if row else 0
            if done >= version:
                continue
            steps[version - 1](conn)
            if row is None:
                conn.execute(_versions.insert().values(component=component, version=version))
            else:
                conn.execute(_versions.update()
                             .where(_versions.c.component == component)
                             .values(version=version))
    return len(steps)
