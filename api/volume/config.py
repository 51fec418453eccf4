"""The ``[volume_api]`` section: the Cinder v3 API under ``nubis api``."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, positive


@dataclass(frozen=True)
class VolumeApiConfig:
    """Peers of the volume API and its default quotas (Cinder's ``[DEFAULT]`` names)."""

    #: Base URL of the volume daemon; empty: the local one (resolved by the CLI layer).
    volume_url: str = ""
    #: Shared service token of the volume daemons (resolved by the CLI layer when empty).
    volume_token: str = ""
    #: Object store base (``http://host:port/v1``) backups go to; resolved when empty.
    object_store_url: str = ""
    #: Image service base URL (``.../image``); empty means this process's ``/image``.
    image_url: str = ""
    #: Container backups go to when the request names none (``backup_swift_container``).
    backup_container: str = "volumebackups"
    #: Seconds one daemon call (create, backup, restore) may take.
    operation_timeout: float = field(default=3600.0, metadata=check(positive))
    #: Most records one list page returns (``osapi_max_limit``).
    max_limit: int = field(default=1000, metadata=check(positive))
    #: Default quotas per project (``quota_*``).
    volumes: int = field(default=10, metadata=check(positive))
    gigabytes: int = field(default=1000, metadata=check(positive))
    snapshots: int = field(default=10, metadata=check(positive))
    backups: int = field(default=10, metadata=check(positive))
    backup_gigabytes: int = field(default=1000, metadata=check(positive))
    #: Availability zone of the volumes (``storage_availability_zone``).
    availability_zone: str = "nova"
