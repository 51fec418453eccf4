"""The ``[storage]`` config section and the per-node settings derived from it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nubis.common.config import check, non_negative, port, positive

#: Environment variable naming the storage node a process serves (0-based).
NODE_ENV = "NUBIS_STORAGE_NODE"
#: Port distance between consecutive storage nodes on one host.
NODE_PORT_STEP = 10


@dataclass(frozen=True)
class StorageConfig:
    """Object, container and account server settings (``[storage]``)."""

    #: Address the storage servers bind to.
    bind_ip: str = "127.0.0.1"
    #: Object server port of node 0 (node i adds 10*i).
    object_port: int = field(default=6200, metadata=check(port))
    #: Container server port of node 0.
    container_port: int = field(default=6201, metadata=check(port))
    #: Account server port of node 0.
    account_port: int = field(default=6202, metadata=check(port))
    #: Devices directory; empty means ``<state_dir>/devices``.
    devices: str = ""
    #: Storage nodes on this host (SAIO style); node i uses ``<devices>/node<i>``.
    node_count: int = field(default=1, metadata=check(positive))
    #: Refuse devices that are not mount points (off for directory devices).
    mount_check: bool = False
    #: Objects up to this many bytes are stored inline in LMDB.
    inline_threshold: int = field(default=65536, metadata=check(non_negative))
    #: fsync data and commit LMDB synchronously before answering a write.
    fsync: bool = True
    #: Free space (percent of the device) kept in reserve: an object PUT that
    #: would leave less, and replication requests to such a device, are
    #: answered 507 before any body is read, so the proxy and the replicators
    #: use a handoff instead (Swift's ``fallocate_reserve``).
    reserve_percent: float = field(default=1.0, metadata=check(non_negative))
    #: fsync container/account database commits too. Off by default, like Swift
    #: (its SQLite runs with synchronous=OFF): object data and metadata are
    #: always fsync'd when ``fsync`` is on; listings are flushed every
    #: ``db_sync_interval`` seconds and survive a killed process either way.
    db_fsync: bool = False
    #: Seconds between background flushes of unsynced container/account DBs.
    db_sync_interval: float = field(default=1.0, metadata=check(positive))
    #: Milliseconds a group commit waits to gather more writes (0 = none).
    group_commit_ms: float = field(default=0.0, metadata=check(non_negative))
    #: Most writes folded into one LMDB transaction.
    group_commit_max: int = field(default=256, metadata=check(positive))
    #: LMDB map size per device environment, in MiB.
    lmdb_map_mib: int = field(default=16384, metadata=check(positive))
    #: Threads for blocking disk I/O per server.
    io_threads: int = field(default=8, metadata=check(positive))
    #: Most simultaneous client connections per server.
    max_connections: int = field(default=4096, metadata=check(positive))
    #: Seconds to wait for a container/account server when sending an update
    #: (after that the update stays queued for the object updater and the
    #: request is answered).
    update_timeout: float = field(default=1.0, metadata=check(positive))
    #: Seconds between account-update flushes in the container server.
    account_update_interval: float = field(default=0.5, metadata=check(positive))
    #: Largest number of listing entries one GET returns.
    listing_limit: int = field(default=10000, metadata=check(positive))


@dataclass(frozen=True)
class NodeSettings:
    """What one storage node serves: its ports and its devices directory."""

    index: int
    bind_ip: str
    object_port: int
    container_port: int
    account_port: int
    devices: Path


def devices_root(storage: StorageConfig, state_dir: str | Path) -> Path:
    """Return the configured devices directory (all nodes)."""
    return Path(storage.devices) if storage.devices else Path(state_dir) / "devices"


def node_settings(storage: StorageConfig, state_dir: str | Path, index: int) -> NodeSettings:
    """Return ports and devices directory of node ``index`` (0-based)."""
    if not 0 <= index < storage.node_count:
        raise ValueError(f"storage node {index} out of range 0..{storage.node_count - 1}")
    root = devices_root(storage, state_dir)
    devices = root if storage.node_count == 1 else root / f"node{index}"
    step = NODE_PORT_STEP * index
    return NodeSettings(index, storage.bind_ip, storage.object_port + step,
                        storage.container_port + step, storage.account_port + step, devices)


def node_from_env() -> int:
    """Return the node index from ``$NUBIS_STORAGE_NODE`` (default 0)."""
    raw = os.environ.get(NODE_ENV, "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{NODE_ENV} must be an integer (got {raw!r})") from None


@dataclass(frozen=True)
class ReplicatorConfig:
    """A replicator: ``[object_replicator]``, ``[container_replicator]``, ``[account_replicator]``.

    ``objects_per_second`` paces object pushes only.
    """

    #: Run under ``nubis up``.
    enabled: bool = True
    #: Seconds between the starts of two passes.
    interval: float = field(default=30.0, metadata=check(positive))
    #: Partitions synced at the same time.
    concurrency: int = field(default=4, metadata=check(positive))
    #: Most objects pushed per second (0 = unlimited).
    objects_per_second: float = field(default=0.0, metadata=check(non_negative))
    #: Seconds after which a tombstone is removed (Swift's default: one week).
    reclaim_age: float = field(default=604800.0, metadata=check(non_negative))
    #: Seconds to wait for another object server.
    http_timeout: float = field(default=30.0, metadata=check(positive))


@dataclass(frozen=True)
class AuditorConfig:
    """The object auditor (``[object_auditor]``)."""

    #: Run under ``nubis up``.
    enabled: bool = True
    #: Seconds between the starts of two passes (a pass reads every object).
    interval: float = field(default=300.0, metadata=check(positive))
    #: Most bytes read per second per device walk (0 = unlimited).
    bytes_per_second: float = field(default=10_000_000.0, metadata=check(non_negative))
    #: Most objects checked per second (0 = unlimited).
    objects_per_second: float = field(default=0.0, metadata=check(non_negative))


@dataclass(frozen=True)
class UpdaterConfig:
    """The object updater (``[object_updater]``): queued container updates."""

    #: Run under ``nubis up``.
    enabled: bool = True
    #: Seconds between the starts of two passes.
    interval: float = field(default=30.0, metadata=check(positive))
    #: Most queued updates read per device per batch.
    batch_size: int = field(default=1000, metadata=check(positive))
    #: Seconds to wait for a container server.
    http_timeout: float = field(default=10.0, metadata=check(positive))


@dataclass(frozen=True)
class ExpirerConfig:
    """The object expirer (``[object_expirer]``): deletes objects past ``X-Delete-At``."""

    #: Run under ``nubis up``.
    enabled: bool = True
    #: Seconds between the starts of two passes.
    interval: float = field(default=30.0, metadata=check(positive))
    #: Most objects deleted per device per pass.
    batch_size: int = field(default=1000, metadata=check(positive))
    #: Deletions sent at the same time.
    concurrency: int = field(default=8, metadata=check(positive))
    #: Seconds to wait for an object server.
    http_timeout: float = field(default=10.0, metadata=check(positive))
    #: Object records per device a pass checks against S3 lifecycle rules.
    lifecycle_batch: int = field(default=10000, metadata=check(positive))
    #: Seconds a container's lifecycle rules are trusted once read.
    lifecycle_cache: float = field(default=60.0, metadata=check(positive))
    #: An S3 lifecycle action is taken by the expirer of the record's first
    #: primary; the i-th primary's takes it over once it is due for i times this
    #: long and no earlier primary's device answers (their nodes are down).
    lifecycle_takeover: float = field(default=3600.0, metadata=check(positive))


@dataclass(frozen=True)
class ReconstructorConfig:
    """The object reconstructor (``[object_reconstructor]``): EC fragment archives."""

    #: Run under ``nubis up``.
    enabled: bool = True
    #: Seconds between the starts of two passes.
    interval: float = field(default=30.0, metadata=check(positive))
    #: Partitions handled at the same time.
    concurrency: int = field(default=4, metadata=check(positive))
    #: Most fragment archives rebuilt or reverted per second (0 = unlimited).
    objects_per_second: float = field(default=0.0, metadata=check(non_negative))
    #: Seconds to wait for another object server.
    http_timeout: float = field(default=30.0, metadata=check(positive))
