"""The control-plane database engine and a tiny versioned migration runner.

SQLAlchemy 2 Core. SQLite (a file in the state dir) by default, PostgreSQL when
the config gives a ``postgresql://`` URL (driven by psycopg 3); the same schema
runs on both (``tests/pg.py`` runs the functional suites on a real server).

Each component keeps an ordered list of migration steps; :func:`migrate` applies
the ones not yet recorded in ``nubis_schema_versions`` for that component, each
in its own transaction, so start-up is idempotent and concurrent starts are safe
(on PostgreSQL under an advisory lock).
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


#: ``pg_advisory_xact_lock`` key that serializes migrations on PostgreSQL ("nubis").
MIGRATION_LOCK = 0x6E75626973


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
    return sa.create_engine(postgres_url(url), echo=echo, pool_pre_ping=True)


def postgres_url(url: str) -> str:
    """Return ``url`` with psycopg 3 as the driver when it names PostgreSQL without one.

    SQLAlchemy maps a bare ``postgresql://`` to psycopg2, which nubis does not
    install; ``postgres://`` (libpq's spelling) is accepted as well.
    """
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False)
    return url


def schema_version(engine: Engine, component: str) -> int:
    """Return the applied migration count for ``component`` (0 if none)."""
    with engine.begin() as conn:
        _serialize(conn)
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
            _serialize(conn)
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


def _serialize(conn: Connection) -> None:
    """Hold the migration lock until ``conn``'s transaction ends.

    On PostgreSQL two starting processes would otherwise both see no table and
    both ``CREATE`` it (a unique violation on ``pg_type``), or both run a step; the
    row lock of ``SELECT ... FOR UPDATE`` cannot cover a row that does not exist
    yet. SQLite serializes writers on the file itself.
    """
    advisory_lock(conn, MIGRATION_LOCK)


def advisory_lock(conn: Connection, key: int) -> None:
    """Take PostgreSQL's transaction-scoped advisory lock ``key`` (no-op on SQLite).

    The lock is held until ``conn``'s transaction commits or rolls back; on
    SQLite every write transaction already excludes the others.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


#: SQLSTATEs of a transaction that lost a race and may simply be retried:
#: serialization failure, deadlock detected, lock not available.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_busy(exc: BaseException) -> bool:
    """Tell whether ``exc`` means "lost a race with another writer; retry".

    SQLite says "database is locked"/"busy"; PostgreSQL reports a deadlock or a
    serialization failure by SQLSTATE. Accepts SQLAlchemy's wrapper or the
    driver's own exception.
    """
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    name = type(orig).__name__
    return name == "OperationalError" and ("locked" in str(orig) or "busy" in str(orig))
