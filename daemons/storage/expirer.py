"""The object expirer: deletes objects whose ``X-Delete-At`` has passed (and S3 lifecycle's).

Reads already refuse such objects (404); the expirer makes the deletion
real. Each device keeps an ``expiry`` index (``delete_at`` + object key)
updated in the same transaction as the records, so a pass reads the due
entries of each device of the node (oldest first, at most ``batch_size``)
and, for each, sends a DELETE with ``X-If-Delete-At`` (a newer write without
that ``X-Delete-At`` wins: 412) to every primary of the object and to this
node's own device, with the container-update headers of the container ring
-- as Swift's expirer does through its internal client. The DELETE's
timestamp is ``X-Delete-At`` itself (Swift's choice), or just after the
record's own timestamp when that is later. An entry stays in the index until
this device's DELETE succeeded (the tombstone's commit removes it), so a
failed deletion is retried by the next pass.

Each pass also walks a slice of each device's records for what an S3 bucket
lifecycle rule made due (:mod:`nubis.daemons.storage.lifecycle`): a plain
object of a never-versioned bucket is deleted the same way, at a timestamp
just after the record's; the rest (delete markers, noncurrent versions,
segments, upload parts) goes to the daemon's :class:`Actions`, the S3 API's
own code run in process (``nubis.expirerboot`` wires it). Lifecycle time is
the daemon's ``clock`` (``$NUBIS_LIFECYCLE_NOW``, epoch seconds, sets it for a
test run: rules are judged as at that moment).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nubis.common import backend as hdr
from nubis.common.cluster import ClusterConfig
from nubis.common.httpclient import HTTPClientError
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import ExpirerConfig, NodeSettings, StorageConfig
from nubis.daemons.storage.diskfile import ObjectDevice, ObjectRecord
from nubis.daemons.storage.lifecycle import Actions, Due, LifecycleScanner
from nubis.daemons.storage.protocol import Timestamp
from nubis.ring.ring import DevDict

#: Answers that settle a deletion on one node.
_SETTLED = (204, 404, 409, 412)


class ObjectExpirer(NodeDaemon):
    """Delete expired objects on all their nodes, in bounded batches."""

    name = "object-expirer"
    counters = ("due", "expired", "failures", "lifecycle_scanned", "lifecycle_expired")

    def __init__(self, section: ExpirerConfig, storage: StorageConfig, cluster: ClusterConfig,
                 ring_dir: Path, node: NodeSettings, actions: Actions | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.conf = section
        self.actions = actions
        self.clock = clock
        self.lifecycle = LifecycleScanner(self, self.client, section.lifecycle_batch,
                                          section.lifecycle_cache)

    async def run_once(self) -> dict[str, int]:
        """Delete up to ``batch_size`` due objects per device."""
        stats: Counter[str] = Counter()
        sem = asyncio.Semaphore(self.conf.concurrency)
        now = int(time.time())
        for device in self.devices.all():

            async def one(delete_at: int, key: bytes, device: ObjectDevice = device) -> None:
                async with sem:
                    rec = device.get(key[0], key[1:].hex())
                    if rec is None or rec.deleted:
                        return
                    ok = await self.expire(device, key[0], rec, delete_at)
                    stats["expired" if ok else "failures"] += 1

            due = device.expiring(now, self.conf.batch_size)
            stats["due"] += len(due)
            await asyncio.gather(*(one(at, key) for at, key in due))
            await self._lifecycle(device, sem, stats)
        return dict(stats)

    async def _lifecycle(self, device: ObjectDevice, sem: asyncio.Semaphore,
                         stats: Counter[str]) -> None:
        """Delete the objects of the device's next slice that S3 lifecycle rules expired."""
        now = self.clock()
        seen, due = await self.lifecycle.due(device, now)
        stats["lifecycle_scanned"] += seen

        async def one(item: Due) -> None:
            async with sem:
                if item.simple or self.actions is None:
                    if item.kind != "current":
                        return
                    ok = await self.expire(device, item.policy, item.record, None)
                elif await self._leads(device, item, now):
                    ok = await self.actions.apply(item, now)
                else:
                    return
                stats["lifecycle_expired" if ok else "failures"] += 1

        await asyncio.gather(*(one(d) for d in due))

    async def _leads(self, device: ObjectDevice, item: Due, now: float) -> bool:
        """Tell whether this device's expirer takes the S3 action of ``item`` now.

        An S3 action (a delete marker, an abort) goes through the proxy and is not
        idempotent, and every replica's expirer finds the record: the first
        primary's acts (two acting at once would stack a second delete marker).
        The i-th primary's takes over only when the action has been due for i
        times ``lifecycle_takeover`` *and* no earlier primary's device answers
        (its node is down): a rule that made an old object due long ago must
        not set every replica's expirer acting at once. The re-check before
        acting (``Actions.apply``) then finds nothing left to do when an earlier
        primary acted before it went down. Handoffs never act.
        """
        ring = self.object_ring(item.policy)
        if ring is None:
            return True
        nodes = list(ring.get_part_nodes(item.record.part))
        for i, node in enumerate(nodes):
            if self.is_local(node, device.name):
                if i == 0:
                    return True
                if now - item.since < i * self.conf.lifecycle_takeover:
                    return False
                alive = await asyncio.gather(*(self._serves(n, item) for n in nodes[:i]))
                return not any(alive)
        return False

    async def _serves(self, node: DevDict, item: Due) -> bool:
        """Tell whether ``node``'s device answers for the record (its expirer would act)."""
        path = quote(f"/{node['device']}/{item.record.part}{item.record.name}")
        headers = {hdr.X_POLICY_INDEX: str(item.policy), "User-Agent": "nubis-object-expirer"}
        try:
            resp = await self.client.fetch(node["ip"], int(node["port"]), "HEAD", path,
                                           headers)
        except (HTTPClientError, OSError):
            return False
        return resp.status < 500

    async def expire(self, device: ObjectDevice, policy: int, rec: ObjectRecord,
                     delete_at: int | None) -> bool:
        """Send the DELETE to the object's primaries and this device; True when settled.

        ``delete_at`` None: a lifecycle expiration, timed just after the record.
        """
        ring = self.object_ring(policy)
        cring = self.ring("container")
        _, account, container, _obj = rec.name.split("/", 3)
        nodes: list[DevDict] = list(ring.get_part_nodes(rec.part)) if ring is not None else []
        if not any(self.is_local(n, device.name) for n in nodes):
            nodes.append({"ip": self.node.bind_ip, "port": self.node.object_port,
                          "device": device.name})
        mine = Timestamp.parse(rec.ts)
        ts = Timestamp.parse(str(delete_at)) if delete_at is not None else mine
        if (mine.ticks, mine.offset) >= (ts.ticks, ts.offset):
            ts = Timestamp(mine.ticks, mine.offset + 1)
        headers = {"X-Timestamp": ts.internal, hdr.X_POLICY_INDEX: str(policy),
                   "User-Agent": "nubis-object-expirer"}
        if delete_at is not None:
            headers["X-If-Delete-At"] = str(delete_at)
        updates: list[dict[str, str]] = [{} for _ in nodes]
        if cring is not None:
            cpart, cnodes = cring.get_nodes(account, container)
            for i, upd in enumerate(updates):
                cn = cnodes[i % len(cnodes)]
                upd.update({hdr.X_CONTAINER_HOST: f"{cn['ip']}:{cn['port']}",
                            hdr.X_CONTAINER_PARTITION: str(cpart),
                            hdr.X_CONTAINER_DEVICE: str(cn["device"])})
        path = quote(f"/{rec.part}{rec.name}")
        results = await asyncio.gather(*(self._delete(n, path, {**headers, **u})
                                         for n, u in zip(nodes, updates, strict=True)))
        return all(results)

    async def _delete(self, node: dict[str, Any], path: str, headers: dict[str, str]) -> bool:
        try:
            resp = await self.client.fetch(node["ip"], int(node["port"]), "DELETE",
                                           f"/{quote(str(node['device']))}{path}", headers)
        except (HTTPClientError, OSError):
            return False
        return resp.status in _SETTLED


def lifecycle_clock() -> Callable[[], float]:
    """Return the lifecycle clock: ``$NUBIS_LIFECYCLE_NOW`` when set, else the real time."""
    fixed = os.environ.get("NUBIS_LIFECYCLE_NOW", "").strip()
    if not fixed:
        return time.time
    value = float(fixed)
    return lambda: value


def run(section: ExpirerConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, once: bool = False,
        actions: Callable[[], Actions | None] | None = None) -> int:
    """Daemon entry point (``nubis daemon object-expirer``); node from the environment.

    ``actions`` builds the S3 lifecycle actions in the daemon's process (None: a
    lifecycle pass only deletes plain objects of unversioned buckets).
    """
    clock = lifecycle_clock()

    class Expirer(ObjectExpirer):
        def __init__(self, section: ExpirerConfig, storage: StorageConfig,
                     cluster: ClusterConfig, ring_dir: Path, node: NodeSettings) -> None:
            super().__init__(section, storage, cluster, ring_dir, node,
                             actions() if actions else None, clock)

    return run_node_daemon(Expirer, section, storage, cluster, ring_dir, once)
