"""Volumes hot-plugged into running guests: a qcow2 file as a virtio-blk disk.

The volume API hands the compute API a connection (``driver_volume_type`` ``file``:
the volume's path and format on this host); :func:`attach` picks the next free
``vdX`` target, adds the ``<disk>`` to the live domain and to its persistent
definition (``VIR_DOMAIN_AFFECT_LIVE | CONFIG``; only the definition when the
guest is off), with the volume id as the disk's ``<serial>`` so :func:`detach`
finds it again, and the connection's front-end QoS limits as its ``<iotune>``. The
HTTP routes (``POST /v1/instances/{uuid}/volumes``, ``DELETE
/v1/instances/{uuid}/volumes/{volume_id}``) live in :class:`VolumeRoutes`.
"""

from __future__ import annotations

import asyncio
import string
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import libvirt
from nubis.api.shared.rest import read_json
from nubis.daemons.compute.domain import IOTUNE_KEYS, SERIAL_LEN, VolumeDisk, add_iotune
from nubis.daemons.compute.driver import LibvirtDriver
from nubis.daemons.compute.errors import ComputeError, LibvirtError

_FORMATS = ("qcow2", "raw")


class VolumeAttachError(ComputeError):
    """A volume could not be attached or detached (bad request or libvirt refused)."""


def _flags(dom: libvirt.virDomain) -> int:
    flags = int(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    if dom.isActive():
        flags |= int(libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return flags


def _disks(dom: libvirt.virDomain, flags: int = 0) -> list[ET.Element]:
    return ET.fromstring(dom.XMLDesc(flags)).findall("./devices/disk")


def free_target(used: set[str]) -> str:
    """Return the first ``vdX`` not in ``used`` (``vdz`` is left to config drives)."""
    for letter in string.ascii_lowercase[:-1]:
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise VolumeAttachError("no free virtio disk name left on this instance")


def disk_xml(vol: VolumeDisk, target: str) -> str:
    """Return the ``<disk>`` element of a file volume."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=vol.fmt, cache="none")
    ET.SubElement(disk, "source", file=str(vol.path))
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    ET.SubElement(disk, "serial").text = vol.volume_id[:SERIAL_LEN]
    add_iotune(disk, vol.iotune)
    return ET.tostring(disk, encoding="unicode")


def _find(dom: libvirt.virDomain, volume_id: str, flags: int = 0) -> ET.Element | None:
    for disk in _disks(dom, flags):
        serial = disk.findtext("serial") or ""
        if serial and serial == volume_id[:SERIAL_LEN]:
            return disk
    return None


def attach(driver: LibvirtDriver, uuid: str, vol: VolumeDisk) -> str:
    """Hot-plug a volume file into an instance; return its device (``/dev/vdb``)."""
    volume_id = vol.volume_id
    dom = driver._lookup(uuid)
    existing = _find(dom, volume_id, int(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if existing is not None:
        return f"/dev/{existing.find('target').get('dev')}"  # type: ignore[union-attr]
    used = {d.find("target").get("dev", "") for d in _disks(dom)  # type: ignore[union-attr]
            if d.find("target") is not None}
    used |= {d.find("target").get("dev", "")  # type: ignore[union-attr]
             for d in _disks(dom, int(libvirt.VIR_DOMAIN_XML_INACTIVE))
             if d.find("target") is not None}
    target = free_target(used)
    try:
        dom.attachDeviceFlags(disk_xml(vol, target), _flags(dom))
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"attach volume {volume_id}: {exc.get_error_message()}") from exc
    return f"/dev/{target}"


def detach(driver: LibvirtDriver, uuid: str, volume_id: str, timeout: float = 30.0) -> bool:
    """Unplug a volume (live and persistent); return whether it was attached."""
    dom = driver._lookup(uuid)
    found = False
    live = _find(dom, volume_id) if dom.isActive() else None
    if live is not None:
        found = True
        _detach(dom, live, int(libvirt.VIR_DOMAIN_AFFECT_LIVE), volume_id)
        deadline = time.monotonic() + timeout
        while _find(dom, volume_id) is not None:
            if time.monotonic() > deadline:
                raise VolumeAttachError(f"the guest did not release volume {volume_id} "
                                        f"within {timeout:.0f} s")
            time.sleep(0.2)
    config = _find(dom, volume_id, int(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if config is not None:
        found = True
        _detach(dom, config, int(libvirt.VIR_DOMAIN_AFFECT_CONFIG), volume_id)
    return found


def _detach(dom: libvirt.virDomain, disk: ET.Element, flags: int, volume_id: str) -> None:
    try:
        dom.detachDeviceFlags(ET.tostring(disk, encoding="unicode"), flags)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"detach volume {volume_id}: {exc.get_error_message()}") from exc


def _volume_id(value: Any) -> str:
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        raise VolumeAttachError(f"not a volume id: {value!r}") from None


def file_connection(volume_id: Any, conn: Any) -> VolumeDisk:
    """Return the volume a Cinder ``file`` connection names (VolumeAttachError if bad)."""
    vid = _volume_id(volume_id)
    data = conn.get("data") if isinstance(conn, dict) else None
    if not isinstance(data, dict) or conn.get("driver_volume_type") != "file":
        raise VolumeAttachError("only file volumes can be attached")
    path, fmt = data.get("path"), data.get("format", "qcow2")
    if not isinstance(path, str) or not path.startswith("/") or fmt not in _FORMATS:
        raise VolumeAttachError("bad connection info")
    return VolumeDisk(vid, Path(path), fmt, _iotune(data.get("qos_specs")))


def _iotune(specs: Any) -> tuple[tuple[str, int], ...]:
    """Return the ``<iotune>`` limits of front-end QoS specs (Nova's keys; others skipped).

    A limit of 0 means none, as in libvirt; a value that is not a count is refused.
    """
    if specs is None:
        return ()
    if not isinstance(specs, dict):
        raise VolumeAttachError("bad connection info: qos_specs must be an object")
    out = []
    for key in IOTUNE_KEYS:
        if key not in specs:
            continue
        value = str(specs[key])
        if not value.isdigit() or not value.isascii() or len(value) > 19:
            raise VolumeAttachError(f"bad connection info: qos_specs {key}={value[:40]!r}")
        if int(value):
            out.append((key, int(value)))
    return tuple(out)


def boot_volumes(raw: Any) -> tuple[VolumeDisk | None, tuple[VolumeDisk, ...]]:
    """Return the root volume (``boot_index`` 0) and the others of a build request.

    ``raw`` is a list of ``{volume_id, boot_index, connection_info}`` in device order.
    """
    if raw is None:
        return None, ()
    if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
        raise VolumeAttachError("volumes: must be a list of objects")
    root, others = None, []
    for item in raw:
        disk = file_connection(item.get("volume_id"), item.get("connection_info"))
        if item.get("boot_index") == 0:
            if root is not None:
                raise VolumeAttachError("volumes: only one can have boot_index 0")
            root = disk
        else:
            others.append(disk)
    return root, tuple(others)


class VolumeRoutes:
    """``/v1/instances/{uuid}/volumes[/{volume_id}]`` of the compute daemon."""

    def __init__(self, driver: LibvirtDriver) -> None:
        self.driver = driver

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      uuid: str) -> None:
        """Attach ``{volume_id, connection_info}``; answer the device."""
        doc = await read_json(req)
        if not isinstance(doc, dict):
            raise falcon.HTTPBadRequest(description="a JSON object is required")
        try:
            disk = file_connection(doc.get("volume_id"), doc.get("connection_info") or {})
        except VolumeAttachError as exc:
            raise falcon.HTTPBadRequest(description=str(exc)) from None
        device = await asyncio.to_thread(attach, self.driver, uuid, disk)
        resp.media = {"device": device}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            uuid: str, volume_id: str) -> None:
        """Detach a volume (204 also when it was not attached)."""
        await asyncio.to_thread(detach, self.driver, uuid, _volume_id(volume_id))
        resp.status = 204
