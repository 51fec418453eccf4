"""Block device mappings (``block_device_mapping_v2``): boot from volume, as Nova does it.

A create body's mappings are validated here with Nova's faults (schema errors,
``Block Device Mapping is Invalid: ...``, boot sequences). The mappings whose
destination is a volume are kept in ``compute_block_device_mapping`` (one row per
volume, with ``boot_index`` and ``delete_on_termination``); during the build
:func:`prepare` creates the volumes that come from an image, a snapshot or
nothing (Cinder, with the caller's token; bounded wait for ``available``) and
attaches every volume to the instance (a 3.44 attachment whose connection
names the volume's file); the compute daemon boots with the ``boot_index`` 0
volume as ``vda``. Deleting the server releases the attachments and deletes
the volumes marked ``delete_on_termination``.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from nubis.api.compute.cinder import CinderClient, CinderError
from nubis.api.compute.store import utcnow
from nubis.api.shared.errors import BadRequestError
from nubis.common.db import migrate
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

mappings = sa.Table(
    "compute_block_device_mapping", metadata,
    sa.Column("instance_uuid", sa.String(36), primary_key=True),
    sa.Column("volume_id", sa.String(36), primary_key=True),
    sa.Column("boot_index", sa.Integer, nullable=True),
    sa.Column("source_type", sa.String(20), nullable=False),
    sa.Column("delete_on_termination", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [_v1_create]
SOURCE_TYPES = ("volume", "image", "snapshot", "blank")
DESTINATION_TYPES = ("local", "volume")
#: Bound on a volume the build creates becoming ``available`` (a loop bound).
VOLUME_WAIT = 600.0


@dataclass(frozen=True)
class BlockDevice:
    """One validated entry of ``block_device_mapping_v2``."""

    source_type: str
    destination_type: str
    uuid: str | None
    boot_index: int | None
    volume_size: int | None
    delete_on_termination: bool
    volume_type: str | None = None


def _bad(field: str, value: Any, why: str) -> BadRequestError:
    return BadRequestError(f"Invalid input for field/attribute {field}. Value: {value}. {why}")


def invalid(details: str) -> BadRequestError:
    """Return Nova's ``InvalidBDMFormat`` fault."""
    return BadRequestError(f"Block Device Mapping is Invalid: {details}")


def _int_or_none(raw: Any, field: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw.lstrip("-").isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise _bad(field, raw, f"{raw!r} is not of type 'integer', 'string', 'null'")
    return raw


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise _bad("delete_on_termination", raw, f"{raw!r} is not of type 'boolean'")


def _uuid(raw: Any) -> str | None:
    if raw is None:
        return None
    try:
        return str(uuidlib.UUID(str(raw)))
    except ValueError:
        raise _bad("uuid", raw, "Does not match pattern of a UUID") from None


def parse_one(raw: Any) -> BlockDevice:
    """Validate one mapping (Nova's JSON-schema and ``BlockDeviceDict`` checks)."""
    if not isinstance(raw, dict):
        raise _bad("block_device_mapping_v2", raw, "is not of type 'object'")
    source = raw.get("source_type")
    if source not in SOURCE_TYPES:
        raise _bad("source_type", source, f"{source!r} is not one of {list(SOURCE_TYPES)}")
    dest = raw.get("destination_type", "volume" if source == "volume" else "local")
    if dest not in DESTINATION_TYPES:
        raise _bad("destination_type", dest,
                   f"{dest!r} is not one of {list(DESTINATION_TYPES)}")
    size = _int_or_none(raw.get("volume_size"), "volume_size")
    if size is not None and size < 0:
        raise _bad("volume_size", size, "must be >= 0")
    vtype = raw.get("volume_type")
    if vtype is not None and (not isinstance(vtype, str) or len(vtype) > 255):
        raise _bad("volume_type", vtype, "must be a string of at most 255 characters")
    bdm = BlockDevice(
        source_type=str(source), destination_type=str(dest), uuid=_uuid(raw.get("uuid")),
        boot_index=_int_or_none(raw.get("boot_index"), "boot_index"), volume_size=size,
        delete_on_termination=_bool(raw.get("delete_on_termination", dest == "local")),
        volume_type=vtype)
    _check_combination(bdm)
    return bdm


def _check_combination(bdm: BlockDevice) -> None:
    if bdm.source_type != "blank" and bdm.uuid is None:
        raise invalid("Missing device UUID.")
    if bdm.source_type == "volume" and bdm.destination_type != "volume":
        raise invalid("Mapping a volume to local is not supported.")
    if bdm.destination_type == "local" and bdm.source_type != "image":
        raise BadRequestError("Block device mappings with a local destination other than "
                              "the boot image (ephemeral or swap disks) are not supported "
                              "on this cloud.")
    if bdm.destination_type == "local" and bdm.boot_index != 0:
        raise invalid("Mapping image to local is not supported.")
    if bdm.source_type in ("image", "blank") and bdm.destination_type == "volume" and (
            not bdm.volume_size):
        raise invalid("Images with destination_type 'volume' need to have a non-zero "
                      "size specified")


def parse(raw: Any, count: int = 1) -> tuple[BlockDevice, ...]:
    """Validate ``block_device_mapping_v2`` and its boot sequence."""
    if not isinstance(raw, list):
        raise _bad("block_device_mapping_v2", raw, "is not of type 'array'")
    bdms = tuple(parse_one(item) for item in raw)
    indexes = sorted(b.boot_index for b in bdms if b.boot_index is not None
                     and b.boot_index >= 0)
    if bdms and indexes != list(range(len(indexes))):
        raise BadRequestError("Block Device Mapping is Invalid: Boot sequence for the "
                              "instance and image/block device mapping combination is not "
                              "valid.")
    volumes = [b.uuid for b in bdms if b.source_type == "volume"]
    if len(set(volumes)) != len(volumes):
        raise invalid("Duplicate volume in the block device mapping.")
    if count > 1 and volumes:
        raise BadRequestError("Cannot attach one or more volumes to multiple instances")
    return bdms


def boot_image(bdms: tuple[BlockDevice, ...]) -> str | None:
    """Return the image of a local image boot (``source_type`` image, ``boot_index`` 0)."""
    for bdm in bdms:
        if bdm.boot_index == 0 and bdm.destination_type == "local":
            return bdm.uuid
    return None


def root_volume(bdms: tuple[BlockDevice, ...]) -> BlockDevice | None:
    """Return the mapping the instance boots from when it is volume-backed."""
    for bdm in bdms:
        if bdm.boot_index == 0 and bdm.destination_type == "volume":
            return bdm
    return None


# --- the records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """A volume of an instance as recorded (``compute_block_device_mapping``)."""

    instance_uuid: str
    volume_id: str
    boot_index: int | None
    source_type: str
    delete_on_termination: bool


class MappingStore:
    """The block device mapping rows (their own table and migration line)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._migrated = False

    def _ready(self) -> None:
        if not self._migrated:
            migrate(self.engine, "compute_block_device_mapping", MIGRATIONS)
            self._migrated = True

    def add(self, rows: list[Mapping]) -> None:
        """Record volumes of instances."""
        self._ready()
        if not rows:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(mappings.insert(), [{**r.__dict__, "created_at": now} for r in rows])

    def of(self, instance_uuid: str) -> list[Mapping]:
        """Return an instance's volumes, boot volume first."""
        self._ready()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(mappings).where(
                mappings.c.instance_uuid == instance_uuid)).mappings().all()
        found = [Mapping(r["instance_uuid"], r["volume_id"], r["boot_index"],
                         r["source_type"], bool(r["delete_on_termination"])) for r in rows]
        return sorted(found, key=lambda m: (m.boot_index is None or m.boot_index < 0,
                                            m.boot_index or 0))

    def remove(self, instance_uuid: str, volume_id: str | None = None) -> None:
        """Forget one volume of an instance (or all of them)."""
        self._ready()
        where = mappings.c.instance_uuid == instance_uuid
        if volume_id is not None:
            where = sa.and_(where, mappings.c.volume_id == volume_id)
        with self.engine.begin() as conn:
            conn.execute(mappings.delete().where(where))


# --- checks at the API, volumes during the build ---------------------------------------


async def check_volume(cinder: CinderClient, token: str, volume_id: str) -> dict[str, Any]:
    """Return an existing ``available`` volume (Nova's 400s otherwise)."""
    try:
        doc = await cinder.request(token, "GET", f"/volumes/{volume_id}")
    except CinderError as exc:
        if exc.status in (0, 404):
            raise BadRequestError(f"Block Device Mapping is Invalid: failed to get volume "
                                  f"{volume_id}.") from None
        raise BadRequestError(f"Invalid volume: {exc}") from None
    vol: dict[str, Any] = doc["volume"]
    if vol.get("status") != "available":
        raise BadRequestError(f"Invalid volume: volume '{volume_id}' status must be "
                              f"'available'. Currently in '{vol.get('status')}'")
    return vol


async def check_snapshot(cinder: CinderClient, token: str,
                         snapshot_id: str) -> dict[str, Any]:
    """Return an ``available`` snapshot (400 if it does not exist or is not)."""
    try:
        doc = await cinder.request(token, "GET", f"/snapshots/{snapshot_id}")
    except CinderError:
        raise BadRequestError(f"Block Device Mapping is Invalid: failed to get snapshot "
                              f"{snapshot_id}.") from None
    if doc["snapshot"].get("status") != "available":
        raise BadRequestError(f"Invalid snapshot: snapshot {snapshot_id} is not available.")
    snap: dict[str, Any] = doc["snapshot"]
    return snap


def image_of_volume(vol: dict[str, Any]) -> dict[str, Any]:
    """Return the image a volume was made from, as an image record (for kernel boot)."""
    meta = dict(vol.get("volume_image_metadata") or {})
    return {**meta, "id": meta.get("image_id") or "",
            "disk_format": meta.get("disk_format") or "raw", "status": "active"}


async def check_sources(cinder: CinderClient, token: str,
                        bdms: tuple[BlockDevice, ...]) -> str | dict[str, Any] | None:
    """Check every volume and snapshot a create names; return the boot source.

    That is the image id of an image-to-volume boot, the image record of a
    bootable volume (its ``volume_image_metadata``), or None for a local image boot.
    """
    boot: str | dict[str, Any] | None = None
    for b in bdms:
        if b.source_type == "volume" and b.uuid:
            vol = await check_volume(cinder, token, b.uuid)
            if b.boot_index == 0:
                if str(vol.get("bootable")).lower() != "true":
                    raise BadRequestError(f"Block Device {b.uuid} is not bootable.")
                boot = image_of_volume(vol)
        elif b.source_type == "snapshot" and b.uuid:
            snap = await check_snapshot(cinder, token, b.uuid)
            if b.boot_index == 0:
                src = await cinder.request(token, "GET", f"/volumes/{snap['volume_id']}")
                boot = image_of_volume(src["volume"])
        elif b.source_type == "image" and b.destination_type == "volume" and (
                b.boot_index == 0):
            boot = b.uuid
    return boot


@dataclass(frozen=True)
class Attached:
    """A volume attached to an instance being built."""

    volume_id: str
    attachment_id: str
    boot_index: int | None
    connection_info: dict[str, Any]

    def for_host(self) -> dict[str, Any]:
        """Return what the compute daemon's build takes."""
        return {"volume_id": self.volume_id, "boot_index": self.boot_index,
                "connection_info": self.connection_info}


async def _wait_available(cinder: CinderClient, token: str, volume_id: str) -> None:
    deadline = time.monotonic() + VOLUME_WAIT
    delay = 0.2
    while True:
        vol = (await cinder.request(token, "GET", f"/volumes/{volume_id}"))["volume"]
        if vol["status"] == "available":
            return
        if vol["status"].startswith("error"):
            raise CinderError(f"volume {volume_id} went to {vol['status']}", 500)
        if time.monotonic() > deadline:
            raise CinderError(f"volume {volume_id} not available after {VOLUME_WAIT:.0f} s",
                              504)
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 2.0)


async def create_volume(cinder: CinderClient, token: str, inst_name: str,
                        bdm: BlockDevice) -> str:
    """Create the volume a mapping asks for (from an image, a snapshot, or empty)."""
    body: dict[str, Any] = {"size": bdm.volume_size, "name": f"{inst_name}-volume"}
    if bdm.source_type == "image":
        body["imageRef"] = bdm.uuid
    elif bdm.source_type == "snapshot":
        body["snapshot_id"] = bdm.uuid
        if not bdm.volume_size:
            body.pop("size")
    if bdm.volume_type:
        body["volume_type"] = bdm.volume_type
    made = await cinder.request(token, "POST", "/volumes", {"volume": body})
    volume_id = str(made["volume"]["id"])
    await _wait_available(cinder, token, volume_id)
    return volume_id


async def attach(cinder: CinderClient, token: str, instance_uuid: str, host: str,
                 volume_id: str, boot_index: int | None) -> Attached:
    """Create a (connected) attachment of a volume to the instance on ``host``."""
    connector = {"host": host, "mountpoint": None, "platform": "x86_64"}
    made = await cinder.request(token, "POST", "/attachments", {"attachment": {
        "volume_uuid": volume_id, "instance_uuid": instance_uuid, "connector": connector}})
    att = made["attachment"]
    return Attached(volume_id, str(att["id"]), boot_index, dict(att["connection_info"]))


async def complete(cinder: CinderClient, token: str, host: str,
                   attached: list[Attached]) -> None:
    """Record each volume's device and complete its attachment (``in-use``)."""
    others = iter("bcdefghijklmnopqrstuvwxy")
    for att in attached:
        device = "/dev/vda" if att.boot_index == 0 else f"/dev/vd{next(others)}"
        await cinder.request(token, "PUT", f"/attachments/{att.attachment_id}", {
            "attachment": {"connector": {"host": host, "mountpoint": device,
                                         "platform": "x86_64"}}})
        await cinder.request(token, "POST", f"/attachments/{att.attachment_id}/action",
                             {"os-complete": None})


async def release(cinder: CinderClient, store: MappingStore, token: str,
                  instance_uuid: str) -> list[str]:
    """Detach every volume of a gone instance; delete those marked so; return them."""
    await cinder.release(token, instance_uuid)
    deleted = []
    for m in store.of(instance_uuid):
        if m.delete_on_termination:
            try:
                await cinder.request(token, "DELETE", f"/volumes/{m.volume_id}")
                deleted.append(m.volume_id)
            except CinderError as exc:
                if exc.status != 404:
                    raise
    store.remove(instance_uuid)
    return deleted
