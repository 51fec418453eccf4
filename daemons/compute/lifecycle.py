"""Instance actions beyond power: pause, suspend, rebuild, same-host resize, snapshot.

As Nova's libvirt driver does them:

* ``pause``/``unpause`` — ``virDomainSuspend``/``virDomainResume`` (the guest
  stays in memory, power state PAUSED);
* ``suspend``/``resume`` — a managed save (``virDomainManagedSave``: memory to
  disk, the domain shut off) and ``virDomainCreate`` which restores it;
* ``rebuild`` — the instance's disks and domain are made again from the
  (possibly new) image; a stopped instance is left stopped;
* ``resize`` on the same host — the guest is powered off, its overlay and
  domain XML are kept as ``disk.resize-backup``/``domain.resize-backup.xml``,
  the overlay grows to the new root size and the domain is redefined with the
  new vCPUs and memory; ``confirm`` drops the backup, ``revert`` puts it back;
* ``snapshot`` — the root overlay is flattened with ``qemu-img convert`` (the
  guest paused meanwhile, so the disk is consistent) and uploaded to the image
  service with the caller's token (``PUT /v2/images/{id}/file``).

:class:`Lifecycle` runs them under the service's per-instance lock; it is
called from the daemon's worker threads (libvirt-python is blocking).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
from nubis.daemons.compute import disks
from nubis.daemons.compute.driver import GIB, PowerState, _libvirt_errors, canonical_uuid
from nubis.daemons.compute.errors import ComputeError, DiskError, InstanceNotFound
from nubis.daemons.compute.service import (
    BadBuildRequestError,
    ComputeService,
    parse_build,
)

LOG = logging.getLogger("nubis.compute")
DISK_BACKUP = "disk.resize-backup"
XML_BACKUP = "domain.resize-backup.xml"


@dataclass(frozen=True)
class ResizeRequest:
    """The new sizes of a same-host resize and whether the guest runs afterwards."""

    vcpus: int
    memory_mb: int
    root_gb: int
    power_on: bool = True


@dataclass(frozen=True)
class SnapshotRequest:
    """Where a snapshot goes: an image record created (queued) by the compute API."""

    image_id: str
    image_url: str
    token: str


def _int(body: Mapping[str, Any], key: str, minimum: int) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadBuildRequestError(f"{key}: must be an integer >= {minimum}")
    return value


def _str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadBuildRequestError(f"{key}: must be a non-empty string")
    return value


def parse_resize(body: Any) -> ResizeRequest:
    """Validate a resize body; raise BadBuildRequestError on any problem."""
    if not isinstance(body, dict):
        raise BadBuildRequestError("body must be a JSON object")
    return ResizeRequest(_int(body, "vcpus", 1), _int(body, "memory_mb", 16),
                         _int(body, "root_gb", 0), bool(body.get("power_on", True)))


def parse_snapshot(body: Any) -> SnapshotRequest:
    """Validate a snapshot body; raise BadBuildRequestError on any problem."""
    if not isinstance(body, dict):
        raise BadBuildRequestError("body must be a JSON object")
    image_url = _str(body, "image_url")
    if not image_url.startswith("http://"):
        raise BadBuildRequestError("image_url: must be an http URL")
    return SnapshotRequest(_str(body, "image_id"), image_url, _str(body, "token"))


def resize_domain_xml(xml: str, vcpus: int, memory_mb: int) -> str:
    """Return the domain XML with new vCPU and memory sizes (everything else kept)."""
    root = ET.fromstring(xml)
    kib = str(memory_mb * 1024)
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is not None:
            el.text = kib
            el.set("unit", "KiB")
    vcpu = root.find("vcpu")
    if vcpu is None:
        raise ComputeError("domain XML has no <vcpu> element")
    vcpu.text = str(vcpus)
    return ET.tostring(root, encoding="unicode")


class Lifecycle:
    """Pause, suspend, rebuild, resize and snapshot instances of one host."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc
        self.driver = svc.driver

    def _locked(self, uuid: str) -> Any:
        return self.svc._lock(self.svc._instance_locks, canonical_uuid(uuid))

    def _state(self, uuid: str) -> int:
        return int(self.driver.power_state(uuid))

    # --- pause / suspend ---------------------------------------------------------------

    def _on_domain(self, uuid: str, what: str,
                   step: Callable[[libvirt.virDomain], object]) -> int:
        with self._locked(uuid):
            dom = self.driver._lookup(uuid)
            with _libvirt_errors(f"{what} instance {uuid}"):
                step(dom)
            return self._state(uuid)

    def pause(self, uuid: str) -> int:
        """Pause the running guest in memory."""
        return self._on_domain(uuid, "pause", lambda dom: dom.suspend())

    def unpause(self, uuid: str) -> int:
        """Let a paused guest run again."""
        return self._on_domain(uuid, "unpause", lambda dom: dom.resume())

    def suspend(self, uuid: str) -> int:
        """Save the guest's memory to disk and shut the domain off (managed save)."""
        return self._on_domain(uuid, "suspend", lambda dom: dom.managedSave(0))

    def resume(self, uuid: str) -> int:
        """Restore a suspended guest from its managed save."""
        return self._on_domain(uuid, "resume",
                               lambda dom: None if dom.isActive() else dom.create())

    # --- rebuild -----------------------------------------------------------------------

    def rebuild(self, body: Any) -> dict[str, Any]:
        """Remake the instance from the image in ``body`` (a build request)."""
        build = parse_build(body)
        power_on = not (isinstance(body, dict) and body.get("power_on") is False)
        with self._locked(build.uuid):
            if self.driver._find(build.uuid) is None:
                raise InstanceNotFound(f"instance {build.uuid}: no such domain")
            self.driver.delete(build.uuid)
        answer = self.svc.build(build)
        if not power_on:
            with self._locked(build.uuid):
                self.driver.destroy(build.uuid)
            answer["power_state"] = self._state(build.uuid)
        return answer

    # --- resize (same host) -------------------------------------------------------------

    def resize(self, uuid: str, req: ResizeRequest) -> int:
        """Power off, keep a backup, grow the disk, redefine with the new sizes."""
        with self._locked(uuid):
            inst = self.driver.instance_dir(uuid)
            if (inst / XML_BACKUP).exists():
                raise ComputeError(f"instance {uuid} has an unconfirmed resize")
            self._power_off(uuid)
            dom = self.driver._lookup(uuid)
            with _libvirt_errors(f"read instance {uuid}"):
                old_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            disk = inst / "disk"
            if disk.exists():
                shutil.copy2(disk, inst / DISK_BACKUP)
            (inst / XML_BACKUP).write_text(old_xml)
            try:
                if disk.exists():
                    self._grow(disk, req.root_gb)
                with _libvirt_errors(f"redefine instance {uuid}"):
                    self.driver.conn.defineXML(
                        resize_domain_xml(old_xml, req.vcpus, req.memory_mb))
            except BaseException:
                self._restore(uuid, power_on=False)
                raise
            if req.power_on:
                self.driver.start(uuid)
            return self._state(uuid)

    def confirm_resize(self, uuid: str) -> int:
        """Drop the resize backup (the new sizes stay)."""
        with self._locked(uuid):
            inst = self.driver.instance_dir(uuid)
            (inst / DISK_BACKUP).unlink(missing_ok=True)
            (inst / XML_BACKUP).unlink(missing_ok=True)
            return self._state(uuid)

    def revert_resize(self, uuid: str, power_on: bool = True) -> int:
        """Put the old disk and domain back; start the guest if it ran before."""
        with self._locked(uuid):
            if not (self.driver.instance_dir(uuid) / XML_BACKUP).exists():
                raise ComputeError(f"instance {uuid} has no resize to revert")
            self._power_off(uuid)
            self._restore(uuid, power_on)
            return self._state(uuid)

    def _power_off(self, uuid: str) -> None:
        if self._state(uuid) == PowerState.RUNNING:
            with contextlib.suppress(ComputeError):
                self.driver.shutdown(uuid, timeout=self.svc.cfg.shutdown_timeout)
        self.driver.destroy(uuid)

    @staticmethod
    def _grow(disk: Path, root_gb: int) -> None:
        info = disks.qemu_img(["info", "--output=json", "-U", str(disk)])
        import json

        virtual = int(json.loads(info)["virtual-size"])
        if root_gb * GIB > virtual:
            disks.qemu_img(["resize", "-q", str(disk), str(root_gb * GIB)])

    def _restore(self, uuid: str, power_on: bool) -> None:
        inst = self.driver.instance_dir(uuid)
        backup = inst / DISK_BACKUP
        if backup.exists():
            os.replace(backup, inst / "disk")
        xml_file = inst / XML_BACKUP
        if xml_file.exists():
            with _libvirt_errors(f"redefine instance {uuid}"):
                self.driver.conn.defineXML(xml_file.read_text())
            xml_file.unlink()
        if power_on:
            self.driver.start(uuid)

    # --- snapshot ----------------------------------------------------------------------

    def snapshot(self, uuid: str, req: SnapshotRequest) -> dict[str, Any]:
        """Flatten the root disk to qcow2 and upload it as image ``req.image_id``."""
        inst = self.driver.instance_dir(uuid)
        out = inst / f"snapshot-{canonical_uuid(req.image_id)}.qcow2"
        t0 = time.monotonic()
        try:
            with self._locked(uuid):
                self._convert(uuid, inst / "disk", out)
            t1 = time.monotonic()
            self._upload(out, req)
        except InstanceNotFound:
            raise
        except ValueError as exc:
            raise BadBuildRequestError(str(exc)) from None
        finally:
            out.unlink(missing_ok=True)
        return {"size": None, "timings": {"convert": round(t1 - t0, 4),
                                          "upload": round(time.monotonic() - t1, 4)}}

    def _convert(self, uuid: str, disk: Path, out: Path) -> None:
        if not disk.exists():
            raise DiskError(f"instance {uuid} has no root disk to snapshot")
        dom = self.driver._lookup(uuid)
        paused = False
        with _libvirt_errors(f"pause instance {uuid} for a snapshot"):
            if dom.isActive() and self._state(uuid) == PowerState.RUNNING:
                dom.suspend()
                paused = True
        try:
            # -U: QEMU holds the image's lock while the guest is defined and running
            disks.qemu_img(["convert", "-U", "-f", "qcow2", "-O", "qcow2", str(disk),
                            str(out)], timeout=600)
        finally:
            if paused:
                with _libvirt_errors(f"unpause instance {uuid} after a snapshot"):
                    dom.resume()

    def _upload(self, path: Path, req: SnapshotRequest) -> None:
        url = f"{req.image_url.rstrip('/')}/v2/images/{req.image_id}/file"
        size = path.stat().st_size
        with path.open("rb") as f:
            http = urllib.request.Request(url, data=f, method="PUT", headers={
                "X-Auth-Token": req.token, "Content-Type": "application/octet-stream",
                "Content-Length": str(size)})
            try:
                with urllib.request.urlopen(http, timeout=self.svc.cfg.download_timeout) as r:
                    r.read()
            except urllib.error.HTTPError as exc:
                raise ComputeError(f"snapshot upload of image {req.image_id} failed: "
                                   f"{exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise ComputeError(f"snapshot upload of image {req.image_id} failed: "
                                   f"{exc}") from None


#: Actions the daemon's ``POST /v1/instances/{uuid}/{action}`` hands to :func:`run_action`.
LIFECYCLE_ACTIONS = frozenset({"pause", "unpause", "suspend", "resume", "rebuild", "resize",
                               "confirm_resize", "revert_resize", "snapshot"})


def run_action(life: Lifecycle, uuid: str, action: str, body: Any) -> dict[str, Any]:
    """Run one lifecycle action (blocking); return the daemon's JSON answer."""
    uuid = canonical_uuid(uuid)
    simple = {"pause": life.pause, "unpause": life.unpause, "suspend": life.suspend,
              "resume": life.resume, "confirm_resize": life.confirm_resize}
    if action in simple:
        return {"power_state": simple[action](uuid)}
    if action == "rebuild":
        if not isinstance(body, dict) or str(body.get("uuid", "")).lower() != uuid:
            raise BadBuildRequestError("rebuild: the body's uuid must be the instance's")
        return life.rebuild(body)
    if action == "resize":
        return {"power_state": life.resize(uuid, parse_resize(body))}
    if action == "revert_resize":
        power_on = not (isinstance(body, dict) and body.get("power_on") is False)
        return {"power_state": life.revert_resize(uuid, power_on)}
    return life.snapshot(uuid, parse_snapshot(body))
