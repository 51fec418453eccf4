"""S3 lifecycle expiration for the object expirer: which local objects a bucket rule made due.

A bucket's rules live in its container's sysmeta
(:data:`nubis.api.shared.s3lifecycle.SYSMETA`, set by the S3 API). Each
expirer pass walks a bounded slice (``lifecycle_batch`` records) of every
device's object records from where the previous pass stopped, wrapping
around at the end, so a full walk of a device spans several passes and a pass
costs the same however large the device. For each live record it asks the
container's replicas for the rules (cached ``lifecycle_cache`` seconds per
container) and yields it when an enabled rule's time has come; the expirer
then deletes it on all its primaries at a timestamp just after the record's
own, so a newer write of the same name wins over the expiration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from nubis.api.shared.s3lifecycle import SYSMETA, TAGGING_META, Rule, decode, due_at, object_tags
from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.daemons.storage.diskfile import ObjectDevice, ObjectRecord
from nubis.daemons.storage.protocol import Timestamp
from nubis.ring.ring import Ring

#: Stored size of a large object's manifest (the object's real size).
_SLO_SIZE = "x-object-sysmeta-slo-size"
_MAX_CACHED = 10000


class RingSource(Protocol):
    """What the scanner needs of its daemon: rings by kind."""

    def ring(self, kind: str) -> Ring | None:
        """Return the ring ``kind`` (None when it does not exist)."""


@dataclass(frozen=True)
class Due:
    """An object a lifecycle rule expires now."""

    policy: int
    record: ObjectRecord


class LifecycleScanner:
    """Find the objects of a node's devices whose bucket lifecycle rules say they expired."""

    def __init__(self, rings: RingSource, client: HTTPClient, batch: int, cache_ttl: float
                 ) -> None:
        self.rings = rings
        self.client = client
        self.batch = batch
        self.cache_ttl = cache_ttl
        self._cursors: dict[str, bytes] = {}
        self._rules: dict[tuple[str, str], tuple[float, list[Rule]]] = {}

    async def due(self, device: ObjectDevice, now: float) -> tuple[int, list[Due]]:
        """Walk the device's next slice of records; return (records seen, those due)."""
        after = self._cursors.get(device.name, b"")
        got: list[tuple[bytes, ObjectRecord]] = await device.run(device.records, after,
                                                                 self.batch)
        self._cursors[device.name] = got[-1][0] if len(got) >= self.batch else b""
        out: list[Due] = []
        for key, rec in got:
            if rec.deleted or rec.name.count("/") < 3:
                continue
            _, account, container, obj = rec.name.split("/", 3)
            if account.startswith("."):
                continue
            rules = await self.rules(account, container)
            if rules and self._expired(rules, obj, rec, now):
                out.append(Due(key[0], rec))
        return len(got), out

    @staticmethod
    def _expired(rules: list[Rule], obj: str, rec: ObjectRecord, now: float) -> bool:
        size = rec.size
        if rec.meta.get(_SLO_SIZE, "").isdigit():
            size = int(rec.meta[_SLO_SIZE])
        created = Timestamp.parse(rec.data_timestamp).ticks / 100000
        when = due_at(rules, obj, object_tags(rec.meta.get(TAGGING_META)), size, created)
        return when is not None and when <= now

    async def rules(self, account: str, container: str) -> list[Rule]:
        """Return a container's lifecycle rules (cached; empty when none or unreachable)."""
        key = (account, container)
        hit = self._rules.get(key)
        mono = time.monotonic()
        if hit is not None and hit[0] > mono:
            return hit[1]
        stored = await self._head(account, container)
        if stored is None:
            return hit[1] if hit is not None else []
        rules = decode(stored)
        if len(self._rules) >= _MAX_CACHED:
            self._rules.clear()
        self._rules[key] = (mono + self.cache_ttl, rules)
        return rules

    async def _head(self, account: str, container: str) -> str | None:
        """Return the container's lifecycle sysmeta ('' none; None: no replica answered)."""
        ring = self.rings.ring("container")
        if ring is None:
            return ""
        part, nodes = ring.get_nodes(account, container)
        path = "/" + "/".join(quote(p) for p in (str(part), account, container))
        for node in nodes:
            try:
                resp = await self.client.fetch(node["ip"], int(node["port"]), "HEAD",
                                               f"/{quote(str(node['device']))}{path}", {})
            except (HTTPClientError, OSError):
                continue
            if resp.status == 404:
                return ""
            if 200 <= resp.status < 300:
                return {k.lower(): v for k, v in resp.headers.items()}.get(SYSMETA, "")
        return None
