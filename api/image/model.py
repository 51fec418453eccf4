"""Records of the image service: images and memberships (frozen, built by the store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Columns a client may change through PATCH (besides free-form properties and tags).
MUTABLE_COLUMNS = ("name", "visibility", "protected", "os_hidden", "owner", "disk_format",
                   "container_format", "min_disk", "min_ram")


@dataclass(frozen=True)
class Image:
    """One image row with its properties and tags."""

    id: str
    name: str | None
    status: str
    visibility: str
    protected: bool
    os_hidden: bool
    owner: str | None
    disk_format: str | None
    container_format: str | None
    size: int | None
    virtual_size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    min_disk: int
    min_ram: int
    created_at: datetime
    updated_at: datetime
    location: str | None = None
    segments: int = 0
    properties: Mapping[str, str | None] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def columns(self) -> dict[str, Any]:
        """Return the client-mutable columns as a dict."""
        return {name: getattr(self, name) for name in MUTABLE_COLUMNS}


@dataclass(frozen=True)
class Member:
    """One project an image is shared with, and whether it accepted."""

    image_id: str
    member_id: str
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ImageUpdate:
    """What a PATCH changes: columns, the whole property map and the tag list."""

    columns: dict[str, Any]
    properties: dict[str, str | None]
    tags: tuple[str, ...]
