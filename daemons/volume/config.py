"""The ``[volume]`` section: the volume daemon of one storage host (Cinder's volume service)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, non_negative, port, positive


def _compression(value: object) -> str | None:
    return None if value in ("zlib", "none") else "must be zlib or none"


@dataclass(frozen=True)
class VolumeConfig:
    """Settings of ``nubis daemon volume`` (Cinder's driver option names where they exist)."""

    port: int = field(default=8777, metadata=check(port))
    #: Empty: use ``[cluster] bind_ip``.
    bind_ip: str = ""
    #: This host's name (Cinder's ``host``); empty: the machine's host name.
    host: str = ""
    #: Where volume files live; empty: ``<state>/volume``, or a directory under
    #: ``/var/lib/nubis`` when QEMU's user cannot reach the state dir.
    volumes_path: str = ""
    #: Shared token callers present in ``X-Service-Token``; empty: a random one in
    #: ``<state>/volume/service_token``.
    service_token: str = ""
    #: Thin provisioning: the volumes may promise this many times the real space.
    max_over_subscription_ratio: float = field(default=20.0, metadata=check(positive))
    #: Percent of the filesystem kept free (Cinder's ``reserved_percentage``).
    reserved_percentage: int = field(default=0, metadata=check(non_negative))
    #: Bytes per backup chunk (Cinder's ``backup_swift_object_size``).
    backup_chunk_size: int = field(default=32 * 1024 * 1024, metadata=check(positive))
    #: How backup chunks are compressed (``backup_compression_algorithm``).
    backup_compression: str = field(default="zlib", metadata=check(_compression))
    #: Chunk uploads/downloads in flight per backup or restore.
    backup_concurrency: int = field(default=4, metadata=check(positive))
    #: Seconds an image download or one object request may take.
    transfer_timeout: float = field(default=600.0, metadata=check(positive))
