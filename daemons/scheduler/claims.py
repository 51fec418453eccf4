"""The scheduler's hot claim path: one dedicated DB-API connection, no ORM layer.

Split from :mod:`nubis.daemons.scheduler.store` (the Placement model), which it
writes to with the same tables and the same compare-and-swap on generations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nubis.common import db
from nubis.daemons.scheduler.errors import CapacityExceeded, ConcurrentUpdate
from sqlalchemy.engine import Engine

#: Page cache (KiB) of the claim writer's SQLite connection.
_CLAIM_CACHE_KIB = 65536
#: Most allocation rows one INSERT statement carries (SQLite's parameter limit).
_INSERT_ROWS = 200
#: A scheduler claim row: (consumer, project, user, provider id, resources).
ClaimItem = tuple[str, str, str, int, Mapping[str, int]]


class ClaimWriter:
    """The scheduler's claims on one dedicated DB-API connection (callers serialize).

    PERF: ``python -m nubis.bench scheduler``: no SQLAlchemy statement or result
    machinery per claim; the driver's own prepared-statement cache; one
    transaction per claim; one multi-row INSERT for the allocations and one
    capacity query per provider. The checks:
    compare-and-swap on every touched provider's generation, brand-new consumers
    only, and the summed usage of every claimed class re-checked against the
    inventory before commit, so the database never overcommits.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"UPDATE placement_resource_providers SET generation = {mark} "
            f"WHERE id = {mark} AND generation = {mark}",
            "INSERT INTO placement_consumers (uuid, project_id, user_id, generation) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            "INSERT INTO placement_allocations (consumer_uuid, rp_id, resource_class, used) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            "SELECT i.resource_class, i.total, i.reserved, i.allocation_ratio, "
            "(SELECT SUM(a.used) FROM placement_allocations a WHERE a.rp_id = i.rp_id "
            "AND a.resource_class = i.resource_class) "
            f"FROM placement_inventories i WHERE i.rp_id = {mark}")
        self._row = f"({mark}, {mark}, {mark}, {mark})"
        #: Multi-row allocation INSERTs by row count (at most _INSERT_ROWS rows).
        self._inserts: dict[int, str] = {}
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            fairy = self.engine.raw_connection()
            raw: Any = fairy.driver_connection
            fairy.detach()  # ours alone: its transaction mode never leaks into the pool
            if self.sqlite:
                raw.isolation_level = None  # explicit BEGIN/COMMIT
                # PERF (``python -m nubis.bench scheduler``): keep the placement pages
                # this connection touches in its own cache instead of re-reading them
                # through the OS after every commit.
                raw.execute(f"PRAGMA cache_size = -{_CLAIM_CACHE_KIB}")
            self._conn = raw
        return self._conn

    def close(self) -> None:
        """Close the connection (a later claim opens a new one)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def claim(self, items: list[ClaimItem], expected: Mapping[int, int]) -> dict[int, int]:
        """Claim for brand-new consumers at ``expected`` generations; return the new ones.

        Raises ConcurrentUpdate (a generation moved, a consumer exists, the database
        is busy) or CapacityExceeded; nothing is written then.
        """
        dbapi: Any = self.engine.dialect.dbapi
        conn = self._connection()
        cur = conn.cursor()
        try:
            if self.sqlite:
                cur.execute("BEGIN IMMEDIATE")
            gens = self._claim(cur, items, expected)
            if self.sqlite:
                cur.execute("COMMIT")
            else:
                conn.commit()
            return gens
        except BaseException as exc:
            self._rollback(conn, cur)
            if isinstance(exc, dbapi.IntegrityError):
                raise ConcurrentUpdate("consumer generation conflict - expected null") from None
            if isinstance(exc, dbapi.Error) and db.is_busy(exc):  # locked, deadlock
                raise ConcurrentUpdate("database busy; retry") from None
            if isinstance(exc, dbapi.Error):
                self.close()
            raise
        finally:
            cur.close()

    def claim_many(self, claims: list[tuple[list[ClaimItem], Mapping[int, int]]],
                   ) -> list[dict[int, int] | ConcurrentUpdate | CapacityExceeded]:
        """Run several claims in one transaction, each all-or-nothing on its own.

        PERF: one commit per batch (``python -m nubis.bench scheduler``). Each claim
        runs inside a savepoint; a lost race (ConcurrentUpdate, CapacityExceeded)
        rolls back that claim alone and is returned in its place. Later claims see
        the earlier ones, so the capacity re-check covers the whole batch.
        """
        if len(claims) == 1:
            try:
                return [self.claim(*claims[0])]
            except (ConcurrentUpdate, CapacityExceeded) as exc:
                return [exc]
        dbapi: Any = self.engine.dialect.dbapi
        conn = self._connection()
        cur = conn.cursor()
        out: list[dict[int, int] | ConcurrentUpdate | CapacityExceeded] = []
        try:
            if self.sqlite:
                cur.execute("BEGIN IMMEDIATE")
            for items, expected in claims:
                cur.execute("SAVEPOINT nubis_claim")
                try:
                    out.append(self._claim(cur, items, expected))
                except (ConcurrentUpdate, CapacityExceeded, dbapi.IntegrityError) as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT nubis_claim")
                    out.append(exc if not isinstance(exc, dbapi.IntegrityError) else
                               ConcurrentUpdate("consumer generation conflict - expected null"))
                cur.execute("RELEASE SAVEPOINT nubis_claim")
            if self.sqlite:
                cur.execute("COMMIT")
            else:
                conn.commit()
            return out
        except BaseException as exc:
            self._rollback(conn, cur)
            if isinstance(exc, dbapi.Error) and db.is_busy(exc):  # locked, deadlock
                return [ConcurrentUpdate("database busy; retry") for _ in claims]
            if isinstance(exc, dbapi.Error):
                self.close()
            raise
        finally:
            cur.close()

    def _rollback(self, conn: Any, cur: Any) -> None:
        try:
            if self.sqlite:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:  # the connection is unusable: start afresh next time
            self.close()

    def _claim(self, cur: Any, items: list[ClaimItem],
               expected: Mapping[int, int]) -> dict[int, int]:
        gens = {}
        for rp_id, gen in sorted(expected.items()):  # one lock order for every writer
            cur.execute(self.sql[0], (gen + 1, rp_id, gen))
            if cur.rowcount != 1:
                raise ConcurrentUpdate(f"resource provider {rp_id} changed since generation "
                                       f"{gen}")
            gens[rp_id] = gen + 1
        if len(items) == 1:
            c, p, u, _, _ = items[0]
            cur.execute(self.sql[1], (c, p, u, 1))
        else:
            cur.executemany(self.sql[1], [(c, p, u, 1) for c, p, u, _, _ in items])
        rows = [(c, rp_id, rc, amount) for c, _, _, rp_id, res in items
                for rc, amount in res.items()]
        for start in range(0, len(rows), _INSERT_ROWS):
            chunk = rows[start:start + _INSERT_ROWS]
            cur.execute(self._insert(len(chunk)), [v for row in chunk for v in row])
        claimed: dict[int, set[str]] = {}
        for _, _, _, rp_id, res in items:
            claimed.setdefault(rp_id, set()).update(res)
        for rp_id, classes in claimed.items():
            # belt and braces: the database itself must not overcommit
            cur.execute(self.sql[3], (rp_id,))
            for rc, total, reserved, ratio, used in cur.fetchall():
                classes.discard(rc)
                if used is not None and used > int((total - reserved) * ratio):
                    raise CapacityExceeded(f"claim would exceed {rc} on provider {rp_id}")
            if classes:
                raise CapacityExceeded(f"provider {rp_id} has no inventory of "
                                       f"{sorted(classes)[0]}")
        return gens

    def _insert(self, count: int) -> str:
        """Return the allocation INSERT of ``count`` rows."""
        sql = self._inserts.get(count)
        if sql is None:
            sql = self._inserts[count] = (
                "INSERT INTO placement_allocations (consumer_uuid, rp_id, resource_class, "
                f"used) VALUES {', '.join([self._row] * count)}")
        return sql
