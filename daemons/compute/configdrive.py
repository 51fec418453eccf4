"""Config drives: the ISO 9660 image a guest reads its identity and user data from.

Laid out as Nova's ``ConfigDriveBuilder`` writes it, so cloud-init's and
glean's OpenStack config-drive readers work unchanged: volume label
``config-2``, Rock Ridge + Joliet, and under ``openstack/latest/``
``meta_data.json``, ``user_data`` (when given), ``network_data.json``,
``vendor_data.json`` and ``vendor_data2.json``. The ISO is written by
``genisoimage`` (Debian package ``genisoimage``) with an argv list.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nubis.daemons.compute.errors import ConfigDriveError

LABEL = "config-2"
PUBLISHER = "nubis compute"
#: Nova's limit on user data (bytes, after base64 decoding).
MAX_USER_DATA = 65535
MAX_METADATA_ITEMS = 128
#: RFC 1123 host name label (what Nova's sanitized ``hostname`` is).
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def _empty_network_data() -> dict[str, Any]:
    return {"links": [], "networks": [], "services": []}


@dataclass(frozen=True)
class InstanceMetadata:
    """What the guest learns from its config drive (Nova's ``InstanceMetadata``)."""

    uuid: str
    hostname: str
    name: str
    project_id: str
    availability_zone: str = "nova"
    launch_index: int = 0
    #: Key pair name -> public key (OpenSSH format).
    public_keys: Mapping[str, str] = field(default_factory=dict)
    #: Server metadata (``metadata`` of the create request).
    meta: Mapping[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    #: Neutron-style ``network_data.json`` (links, networks, services).
    network_data: Mapping[str, Any] = field(default_factory=_empty_network_data)
    #: Bytes of randomness for the guest's RNG (Nova sends 512).
    random_seed: bytes = b""

    def validate(self) -> None:
        """Raise ConfigDriveError if a field cannot go on a config drive."""
        try:
            uuidlib.UUID(self.uuid)
        except ValueError:
            raise ConfigDriveError(f"instance uuid {self.uuid!r} is not a UUID") from None
        if not _HOSTNAME.match(self.hostname):
            raise ConfigDriveError(f"hostname {self.hostname!r} is not a valid host name")
        if self.user_data is not None and len(self.user_data) > MAX_USER_DATA:
            raise ConfigDriveError(f"user_data is {len(self.user_data)} bytes; "
                                   f"the limit is {MAX_USER_DATA}")
        if len(self.meta) > MAX_METADATA_ITEMS:
            raise ConfigDriveError(f"more than {MAX_METADATA_ITEMS} metadata items")
        if self.launch_index < 0:
            raise ConfigDriveError("launch_index must not be negative")


def meta_data(md: InstanceMetadata) -> dict[str, Any]:
    """Return ``openstack/latest/meta_data.json`` as Nova writes it."""
    doc: dict[str, Any] = {
        "uuid": md.uuid,
        "meta": dict(md.meta),
        "hostname": md.hostname,
        "name": md.name,
        "launch_index": md.launch_index,
        "availability_zone": md.availability_zone,
        "project_id": md.project_id,
        "devices": [],
        "dedicated_cpus": [],
    }
    if md.random_seed:
        doc["random_seed"] = base64.b64encode(md.random_seed).decode()
    if md.public_keys:
        doc["public_keys"] = dict(md.public_keys)
        doc["keys"] = [{"name": name, "type": "ssh", "data": key}
                       for name, key in md.public_keys.items()]
    return doc


def files(md: InstanceMetadata) -> dict[str, bytes]:
    """Return every file of the drive, path relative to its root -> bytes."""
    md.validate()
    latest = "openstack/latest"
    out = {
        f"{latest}/meta_data.json": json.dumps(meta_data(md)).encode(),
        f"{latest}/network_data.json": json.dumps(dict(md.network_data)).encode(),
        f"{latest}/vendor_data.json": b"{}",
        f"{latest}/vendor_data2.json": b"{}",
    }
    if md.user_data is not None:
        out[f"{latest}/user_data"] = md.user_data
    return out


def build(md: InstanceMetadata, dest: Path) -> Path:
    """Write the config drive ISO for ``md`` to ``dest`` (replacing it) and return ``dest``.

    Raises:
        ConfigDriveError: the metadata is invalid or ``genisoimage`` failed.
    """
    contents = files(md)
    staging = Path(tempfile.mkdtemp(prefix=".configdrive-", dir=dest.parent))
    try:
        for rel, data in contents.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        tmp = dest.with_name(f".{dest.name}.tmp")
        _genisoimage(staging, tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _genisoimage(src: Path, out: Path) -> None:
    argv = ["genisoimage", "-o", str(out), "-ldots", "-allow-lowercase", "-allow-multidot",
            "-l", "-publisher", PUBLISHER, "-quiet", "-J", "-r", "-input-charset", "utf-8",
            "-V", LABEL, str(src)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise ConfigDriveError("genisoimage not found: install the genisoimage package") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigDriveError("genisoimage took longer than 60 s") from exc
    if done.returncode != 0:
        out.unlink(missing_ok=True)
        raise ConfigDriveError(f"genisoimage failed: {done.stderr.strip()[-500:]}")
