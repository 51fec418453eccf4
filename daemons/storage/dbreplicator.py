"""The container and account replicators: every primary holds every database row.

One pass, for each container (account) database of each device of the node
(:mod:`nubis.daemons.storage.dbsync` says what is compared and sent):

1. row tombstones, and a deleted record, older than ``reclaim_age`` are removed;
2. each scope's digest is sent to the other primaries of its partition
   (``POST /<dev>/_dbsync``, :data:`~dbsync.SYNC_BATCH` scopes per request);
3. a scope a primary does not hold as it is here is pushed whole
   (``POST /<dev>/_dbmerge`` chunks) and merged there by timestamp;
4. a scope on a handoff device (not a primary of its partition) is pushed to
   every primary and, once all of them took it, removed here -- only if its
   digest did not change meanwhile.

Like Swift's db replicator it only pushes, so a primary that lost its rows
(a wiped device, a server that was down) is repaired by the others' passes.
``nubis daemon container-replicator`` / ``account-replicator`` run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import lmdb
import msgpack
from nubis.common.cluster import ClusterConfig
from nubis.common.httpclient import HTTPClientError
from nubis.daemons.storage import dbsync
from nubis.daemons.storage.accountdb import DBS as ACCOUNT_DBS
from nubis.daemons.storage.accountdb import AccountDB
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import NodeSettings, ReplicatorConfig, StorageConfig
from nubis.daemons.storage.containerdb import DBS as CONTAINER_DBS
from nubis.daemons.storage.containerdb import ContainerDB
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env
from nubis.daemons.storage.protocol import Timestamp
from nubis.ring.ring import DevDict

LOG = logging.getLogger(__name__)

#: Scopes pushed to one node at the same time.
PUSHES_IN_FLIGHT = 8

NodeKey = tuple[str, int, str]


@dataclass
class Scope:
    """One database (a container or an account) of a device, as this pass sees it."""

    key: bytes
    names: list[str]
    digest: str
    targets: list[DevDict]
    handoff: bool
    in_sync: int = 0
    failed: bool = False


@dataclass
class _Plan:
    scopes: list[Scope] = field(default_factory=list)
    #: Per target node, the scopes it is asked about.
    by_node: dict[NodeKey, tuple[DevDict, list[Scope]]] = field(default_factory=dict)


def _node_key(node: DevDict) -> NodeKey:
    return (str(node["ip"]), int(node["port"]), str(node["device"]))


class DatabaseReplicator(NodeDaemon):
    """Sync this node's container (or account) databases with their other primaries."""

    counters = ("databases", "databases_pushed", "rows_pushed", "push_failures", "failures",
                "errors", "handoffs_removed", "tombstones_reclaimed", "digests_reused")
    #: Ring name, server port and LMDB environment of the databases.
    kind: ClassVar[str]
    env_name: ClassVar[str]
    dbs: ClassVar[tuple[str, ...]]

    def __init__(self, section: ReplicatorConfig, storage: StorageConfig,
                 cluster: ClusterConfig, ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.conf = section
        self.db_executor = ThreadPoolExecutor(2, thread_name_prefix=f"{self.name}-db")
        self.opened: dict[str, Any] = {}
        #: Per device: LMDB's last transaction id when the digests were taken.
        self._digest_cache: dict[str, tuple[int, dict[bytes, str | None]]] = {}

    def make_db(self, env: Any, committer: GroupCommitter) -> Any:
        """Wrap an environment in the database type."""
        raise NotImplementedError

    def databases(self) -> list[tuple[str, Any]]:
        """Open and return ``(device, db)`` for every device holding this kind of database."""
        try:
            names = sorted(p.name for p in self.node.devices.iterdir()
                           if (p / self.env_name).is_dir())
        except FileNotFoundError:
            return []
        s = self.storage
        for name in names:
            if name not in self.opened:
                durable = s.fsync and s.db_fsync
                env = open_env(self.node.devices / name / self.env_name, self.dbs,
                               map_mib=s.lmdb_map_mib, sync=durable)
                self.opened[name] = self.make_db(
                    env, GroupCommitter(env, self.db_executor, in_loop=not durable))
        return [(n, self.opened[n]) for n in names]

    async def run_once(self) -> dict[str, int]:
        """Replicate every database of every device of this node once."""
        stats: Counter[str] = Counter()
        for device, db in self.databases():
            try:
                await self.replicate_device(device, db, stats)
                await db.committer.sync()
            except Exception:  # one bad device (full, failing) must not stop the others
                stats["errors"] += 1
                LOG.exception("replicating %s databases of %s failed", self.kind, device)
        return dict(stats)

    async def replicate_device(self, device: str, db: Any, stats: Counter[str]) -> None:
        """Reclaim, compare and push every database of one device."""
        ring = self.ring(self.kind)
        if ring is None:
            return
        cutoff = Timestamp.parse(f"{max(time.time() - self.conf.reclaim_age, 0):.5f}").internal
        plan = _Plan()
        scopes = db.scopes()
        for key, _names in scopes:
            stats["tombstones_reclaimed"] += await db.reclaim(key, cutoff)
        digests = await self._digests(device, db, [key for key, _ in scopes], stats)
        for key, names in scopes:
            digest = digests.get(key)
            if digest is None:
                continue  # the whole record was reclaimed
            primaries = ring.get_part_nodes(ring.get_part(*names))
            targets = [n for n in primaries if not self.is_local(n, device)]
            scope = Scope(key, names, digest, targets, len(targets) == len(primaries))
            plan.scopes.append(scope)
            for node in targets:
                plan.by_node.setdefault(_node_key(node), (node, []))[1].append(scope)
        stats["databases"] += len(plan.scopes)
        sem = asyncio.Semaphore(self.conf.concurrency)
        await asyncio.gather(*(self._sync_node(db, node, scopes, sem, stats)
                               for node, scopes in plan.by_node.values()))
        for scope in plan.scopes:
            done = scope.handoff and scope.targets and scope.in_sync == len(scope.targets)
            if done and await db.remove(scope.key, scope.digest):
                stats["handoffs_removed"] += 1

    async def _digests(self, device: str, db: Any, keys: list[bytes],
                       stats: Counter[str]) -> dict[bytes, str | None]:
        """Return every scope's digest, reusing the last pass's if nothing was written.

        PERF: a digest walks every row of its database; LMDB's last
        transaction id (shared by every process writing the environment)
        tells whether anything changed since the last pass, so an idle pass
        hashes nothing.
        """
        txnid = int(db.env.info()["last_txnid"])
        cached = self._digest_cache.get(device)
        if cached is not None and cached[0] == txnid and set(cached[1]) >= set(keys):
            stats["digests_reused"] += len(keys)
            return {k: cached[1][k] for k in keys}
        loop = asyncio.get_running_loop()

        def compute() -> dict[bytes, str | None]:
            return {k: db.digest(k) for k in keys}

        digests = await loop.run_in_executor(self.db_executor, compute)
        self._digest_cache[device] = (txnid, digests)
        return digests

    async def _sync_node(self, db: Any, node: DevDict, scopes: list[Scope],
                         sem: asyncio.Semaphore, stats: Counter[str]) -> None:
        """Compare ``scopes`` with one node and push those that differ."""
        for i in range(0, len(scopes), dbsync.SYNC_BATCH):
            batch = scopes[i:i + dbsync.SYNC_BATCH]
            async with sem:
                try:
                    same = await self._ask(node, batch)
                except (HTTPClientError, OSError, ValueError) as exc:
                    stats["failures"] += 1
                    LOG.info("%s sync with %s:%s/%s: %s", self.kind, node["ip"], node["port"],
                             node["device"], exc)
                    continue
            differ = [s for s, ok in zip(batch, same, strict=True) if not ok]
            for s, ok in zip(batch, same, strict=True):
                s.in_sync += ok
            await self._push_all(db, node, differ, stats)

    async def _push_all(self, db: Any, node: DevDict, scopes: list[Scope],
                        stats: Counter[str]) -> None:
        """Push ``scopes`` to one node, :data:`PUSHES_IN_FLIGHT` at a time."""
        sem = asyncio.Semaphore(PUSHES_IN_FLIGHT)

        async def push(scope: Scope) -> None:
            async with sem:
                if await self._push(db, node, scope, stats):
                    scope.in_sync += 1
                    stats["databases_pushed"] += 1
                else:
                    stats["push_failures"] += 1

        await asyncio.gather(*(push(s) for s in scopes))

    async def _ask(self, node: DevDict, batch: list[Scope]) -> list[bool]:
        """Return, per scope, whether ``node`` holds it as it is here."""
        body = dbsync.packb([[*s.names, s.digest] for s in batch])
        resp = await self.client.fetch(node["ip"], int(node["port"]), "POST",
                                       f"/{quote(str(node['device']))}{dbsync.SYNC_SUFFIX}",
                                       {"Content-Type": "application/x-msgpack"}, body)
        if resp.status != 200:
            raise ValueError(f"status {resp.status}")
        answer = msgpack.unpackb(resp.body, raw=False)
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise ValueError("bad answer")
        return [bool(x) for x in answer]

    async def _push(self, db: Any, node: DevDict, scope: Scope, stats: Counter[str]) -> bool:
        """Send one scope to ``node`` in merge chunks; True when every chunk was taken."""
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(self.db_executor, db.export, scope.key)
        path = f"/{quote(str(node['device']))}{dbsync.MERGE_SUFFIX}"
        for chunk in chunks:
            try:
                resp = await self.client.fetch(node["ip"], int(node["port"]), "POST", path,
                                               {"Content-Type": "application/x-msgpack"},
                                               dbsync.packb(chunk))
            except (HTTPClientError, OSError) as exc:
                LOG.info("%s push to %s:%s/%s: %s", self.kind, node["ip"], node["port"],
                         node["device"], exc)
                return False
            if resp.status != 204:
                LOG.info("%s push to %s:%s/%s: status %d", self.kind, node["ip"],
                         node["port"], node["device"], resp.status)
                return False
            stats["rows_pushed"] += len(chunk["rows"]) + len(chunk["deleted"])
        return True

    async def close(self) -> None:
        """Flush and close the databases, then what every node daemon holds."""
        for db in self.opened.values():
            with contextlib.suppress(lmdb.Error, OSError):  # a full device: nothing to keep
                await db.committer.close()
                db.env.sync(True)
            db.env.close()
        self.opened.clear()
        self.db_executor.shutdown(wait=True)
        await super().close()


class ContainerReplicator(DatabaseReplicator):
    """Replicate container databases (records and object rows)."""

    name = "container-replicator"
    kind = "container"
    port_name = "container_port"
    env_name = "containers.lmdb"
    dbs = CONTAINER_DBS

    def make_db(self, env: Any, committer: GroupCommitter) -> ContainerDB:
        """Wrap a device's container environment."""
        return ContainerDB(env, committer)


class AccountReplicator(DatabaseReplicator):
    """Replicate account databases (records and container rows)."""

    name = "account-replicator"
    kind = "account"
    port_name = "account_port"
    env_name = "accounts.lmdb"
    dbs = ACCOUNT_DBS

    def make_db(self, env: Any, committer: GroupCommitter) -> AccountDB:
        """Wrap a device's account environment."""
        return AccountDB(env, committer)


def run_container(section: ReplicatorConfig, storage: StorageConfig, cluster: ClusterConfig,
                  ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon container-replicator``)."""
    return run_node_daemon(ContainerReplicator, section, storage, cluster, ring_dir, once)


def run_account(section: ReplicatorConfig, storage: StorageConfig, cluster: ClusterConfig,
                ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon account-replicator``)."""
    return run_node_daemon(AccountReplicator, section, storage, cluster, ring_dir, once)
