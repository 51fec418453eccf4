"""Changes to a volume a running guest holds open, made through the QEMU that holds it.

A running QEMU keeps a write lock on every image it has open, so ``qemu-img
resize`` or ``qemu-img snapshot`` on an attached volume's file fail. The volume
host is the host its guests run on (file volumes are local), so it asks the
local libvirtd which running domain has the file as a disk and lets that QEMU
do the change: ``virDomainBlockResize`` grows the image and tells the guest the
new capacity (what Nova's ``volume-extended`` event does), and QMP's
``blockdev-snapshot-internal-sync`` / ``-delete-internal-sync`` take and drop an
internal qcow2 snapshot of the open image (what Nova's assisted volume snapshots
do for Cinder's file drivers). A file no running guest holds is left to
``qemu-img``: each call answers whether it did the work.
"""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
from nubis.daemons.volume.errors import VolumeError

URI = "qemu:///system"


class OnlineError(VolumeError):
    """The running guest's QEMU refused a change to its open volume."""


def _silence(_ctx: object, _err: object) -> None:
    """Keep libvirt from printing errors it also raises."""


@contextlib.contextmanager
def _domain_of(path: Path) -> Iterator[tuple[libvirt.virDomain, str] | None]:
    """Yield the running domain that has ``path`` as a disk and the disk's target."""
    libvirt.registerErrorHandler(_silence, None)
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError:
        yield None  # no libvirtd on this host: no guest can hold the file
        return
    try:
        want = str(path.resolve())
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            for disk in ET.fromstring(dom.XMLDesc(0)).findall("./devices/disk"):
                source, target = disk.find("source"), disk.find("target")
                if source is None or target is None:
                    continue
                if str(Path(source.get("file", "")).resolve()) == want:
                    yield dom, str(target.get("dev"))
                    return
        yield None
    finally:
        conn.close()


def _qmp(dom: libvirt.virDomain, command: str, arguments: dict[str, Any]) -> Any:
    doc = json.dumps({"execute": command, "arguments": arguments})
    try:
        answer = json.loads(libvirt_qemu.qemuMonitorCommand(dom, doc, 0))
    except libvirt.libvirtError as exc:
        raise OnlineError(f"{command}: {exc.get_error_message()}") from None
    if "error" in answer:
        raise OnlineError(f"{command}: {answer['error'].get('desc')}")
    return answer.get("return")


def _node(dom: libvirt.virDomain, path: Path) -> str:
    """Return the block node (or device) name QEMU knows the open file by."""
    want = str(path.resolve())
    for dev in _qmp(dom, "query-block", {}) or []:
        inserted = dev.get("inserted") or {}
        if str(Path(str(inserted.get("file", ""))).resolve()) == want:
            return str(inserted.get("node-name") or dev.get("device"))
    raise OnlineError(f"the guest's QEMU does not show {path.name} as open")


def resize(path: Path, size_bytes: int) -> bool:
    """Grow the file through the guest holding it; False if no running guest does."""
    with _domain_of(path) as found:
        if found is None:
            return False
        dom, target = found
        try:
            dom.blockResize(target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        except libvirt.libvirtError as exc:
            raise OnlineError(f"block resize: {exc.get_error_message()}") from None
        return True


def _internal(path: Path, command: str, name: str) -> bool:
    with _domain_of(path) as found:
        if found is None:
            return False
        dom = found[0]
        _qmp(dom, command, {"device": _node(dom, path), "name": name})
        return True


def snapshot(path: Path, name: str) -> bool:
    """Take an internal snapshot through the guest holding the file (False: none does)."""
    return _internal(path, "blockdev-snapshot-internal-sync", name)


def delete_snapshot(path: Path, name: str) -> bool:
    """Drop an internal snapshot through the guest holding the file (False: none does)."""
    return _internal(path, "blockdev-snapshot-delete-internal-sync", name)
