"""What a compute daemon does: build, power and delete instances; report the host.

:class:`ComputeService` wraps the blocking :class:`LibvirtDriver` (the HTTP
layer calls it from worker threads). A build request names its images by id and
sha512 (Glance ``os_hash_value``); a missing base image is downloaded once from
the image service with the caller's token, verified and cached per host. The
resource tracker (:meth:`ComputeService.report`) sends this host's inventory and
facts to the scheduler; :meth:`ComputeService.reconcile` removes the leftovers of
builds interrupted by a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nubis.daemons.compute import configdrive, vif
from nubis.daemons.compute.config import ComputeConfig
from nubis.daemons.compute.domain import VolumeDisk
from nubis.daemons.compute.driver import (
    DiskImage,
    InstanceSpec,
    LibvirtDriver,
    PowerState,
    canonical_uuid,
)
from nubis.daemons.compute.errors import (
    ComputeError,
    ImageCacheError,
    InstanceNotFound,
    ShutdownTimeout,
)
from nubis.daemons.compute.volumes import VolumeAttachError, boot_volumes

LOG = logging.getLogger("nubis.compute")
_SHA512 = re.compile(r"^[0-9a-f]{128}$")
_DISK_FORMATS = ("qcow2", "raw")


class BadBuildRequestError(ComputeError):
    """A build request is malformed (400)."""


@dataclass(frozen=True)
class ImageRef:
    """An image the build needs: its id in the image service and its sha512."""

    id: str
    sha512: str
    disk_format: str = "qcow2"


@dataclass(frozen=True)
class BuildRequest:
    """One instance to build, as the compute API sends it."""

    uuid: str
    name: str
    hostname: str
    project_id: str
    vcpus: int
    memory_mb: int
    root_gb: int
    image: ImageRef | None
    kernel: ImageRef | None
    ramdisk: ImageRef | None
    cmdline: str
    #: Base URL of the image service (``.../image``) and the token to read with.
    image_url: str
    token: str
    config_drive: bool = True
    user_data: bytes | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    public_keys: Mapping[str, str] = field(default_factory=dict)
    availability_zone: str = "nova"
    launch_index: int = 0
    #: Guest NICs (ports on tenant networks).
    vifs: tuple[vif.Vif, ...] = ()
    #: Root volume of a volume-backed instance (``image`` is then None).
    root_volume: VolumeDisk | None = None
    #: Further volumes of the block device mapping.
    volumes: tuple[VolumeDisk, ...] = ()


def _field(d: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadBuildRequestError(f"{key}: must be {kind.__name__}")
    return value


def _image_ref(d: Mapping[str, Any], key: str) -> ImageRef | None:
    raw = d.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadBuildRequestError(f"{key}: must be an object")
    sha = _field(raw, "sha512", str, "")
    fmt = _field(raw, "disk_format", str, "qcow2")
    if not _SHA512.match(sha):
        raise BadBuildRequestError(f"{key}.sha512: must be a lowercase hex sha512")
    return ImageRef(str(_field(raw, "id", str, "")), sha, fmt)


def _str_map(d: Mapping[str, Any], key: str) -> dict[str, str]:
    raw = d.get(key) or {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise BadBuildRequestError(f"{key}: must map strings to strings")
    return dict(raw)


def parse_build(data: Any) -> BuildRequest:
    """Validate a build request body; raise BadBuildRequestError on any problem."""
    if not isinstance(data, dict):
        raise BadBuildRequestError("body must be a JSON object")
    try:
        uuid = canonical_uuid(_field(data, "uuid", str, ""))
    except InstanceNotFound as exc:
        raise BadBuildRequestError(str(exc)) from None
    user_data = None
    if data.get("user_data") is not None:
        try:
            user_data = base64.b64decode(_field(data, "user_data", str, ""), validate=True)
        except (binascii.Error, ValueError):
            raise BadBuildRequestError("user_data: must be base64") from None
    image = _image_ref(data, "image")
    if image is not None and image.disk_format not in _DISK_FORMATS:
        raise BadBuildRequestError(f"image disk_format {image.disk_format!r} cannot boot here")
    return BuildRequest(
        uuid=uuid, name=_field(data, "name", str, ""),
        hostname=_field(data, "hostname", str, "") or "server",
        project_id=_field(data, "project_id", str, ""),
        vcpus=_field(data, "vcpus", int, 1), memory_mb=_field(data, "memory_mb", int, 128),
        root_gb=_field(data, "root_gb", int, 0), image=image,
        kernel=_image_ref(data, "kernel"), ramdisk=_image_ref(data, "ramdisk"),
        cmdline=_field(data, "cmdline", str, ""), image_url=_field(data, "image_url", str, ""),
        token=_field(data, "token", str, ""),
        config_drive=bool(data.get("config_drive", True)), user_data=user_data,
        meta=_str_map(data, "metadata"), public_keys=_str_map(data, "public_keys"),
        availability_zone=_field(data, "availability_zone", str, "nova"),
        launch_index=_field(data, "launch_index", int, 0), vifs=_vifs(data),
        **_volumes(data, image))


def _volumes(data: Mapping[str, Any], image: ImageRef | None) -> dict[str, Any]:
    try:
        root, others = boot_volumes(data.get("volumes"))
    except VolumeAttachError as exc:
        raise BadBuildRequestError(str(exc)) from None
    if root is not None and image is not None:
        raise BadBuildRequestError("a root volume and a root image exclude each other")
    return {"root_volume": root, "volumes": others}


def _vifs(data: Mapping[str, Any]) -> tuple[vif.Vif, ...]:
    try:
        return vif.parse_vifs(data.get("vifs"))
    except vif.VifError as exc:
        raise BadBuildRequestError(str(exc)) from None


@dataclass(frozen=True)
class Peers:
    """Where the scheduler is and how to authenticate to it."""

    scheduler_url: str
    scheduler_token: str


class ComputeService:
    """The compute host: instances through libvirt, images through the cache."""

    def __init__(self, cfg: ComputeConfig, driver: LibvirtDriver, host: str, url: str,
                 peers: Peers | None) -> None:
        self.cfg = cfg
        self.driver = driver
        self.host = host
        self.url = url
        self.peers = peers
        #: Why this host cannot run guests (libvirt down, state dir unreachable), if so.
        self.disabled_reason = ""
        self._image_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._instance_locks: dict[str, threading.Lock] = {}

    # --- images ----------------------------------------------------------------------

    def _lock(self, table: dict[str, threading.Lock], key: str) -> threading.Lock:
        with self._locks_lock:
            return table.setdefault(key, threading.Lock())

    def ensure_image(self, ref: ImageRef, image_url: str, token: str) -> Path:
        """Return the cached base of ``ref``, downloading and verifying it once per host.

        Raises:
            ImageCacheError: the download failed or the bytes do not match ``sha512``.
        """
        with self._lock(self._image_locks, ref.sha512):
            path = self.driver.images.path(ref.sha512)
            if path.is_file():
                return path
            if not image_url:
                raise ImageCacheError(f"image {ref.id} is not cached and no image URL was given")
            url = f"{image_url.rstrip('/')}/v2/images/{ref.id}/file"
            req = urllib.request.Request(url, headers={"X-Auth-Token": token})
            started = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.download_timeout) as resp:
                    self.driver.images.add_stream(iter(lambda: resp.read(1 << 20), b""),
                                                  ref.sha512)
            except urllib.error.HTTPError as exc:
                raise ImageCacheError(f"image {ref.id} download failed: "
                                      f"{exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise ImageCacheError(f"image {ref.id} download failed: {exc}") from None
            LOG.info("cached image %s in %.2f s", ref.id, time.monotonic() - started)
            return path

    # --- instances -------------------------------------------------------------------

    def build(self, req: BuildRequest) -> dict[str, Any]:
        """Fetch the images, make the disks and config drive, define and start.

        Returns a timing breakdown (seconds) for the benchmark.
        """
        with self._lock(self._instance_locks, req.uuid):
            t0 = time.monotonic()
            for ref in (req.image, req.kernel, req.ramdisk):
                if ref is not None:
                    self.ensure_image(ref, req.image_url, req.token)
            t1 = time.monotonic()
            md = None
            if req.config_drive:
                md = configdrive.InstanceMetadata(
                    uuid=req.uuid, hostname=req.hostname, name=req.name,
                    project_id=req.project_id, availability_zone=req.availability_zone,
                    launch_index=req.launch_index, public_keys=req.public_keys,
                    meta=req.meta, user_data=req.user_data, random_seed=os.urandom(512))
            spec = InstanceSpec(
                uuid=req.uuid, name=req.name, vcpus=req.vcpus, memory_mib=req.memory_mb,
                project_id=req.project_id,
                disk=DiskImage(req.image.sha512, req.image.disk_format)  # type: ignore[arg-type]
                if req.image is not None else None,
                root_gb=req.root_gb,
                kernel_sha512=req.kernel.sha512 if req.kernel else None,
                ramdisk_sha512=req.ramdisk.sha512 if req.ramdisk else None,
                cmdline=req.cmdline, metadata=md, vifs=req.vifs,
                root_volume=req.root_volume, volumes=req.volumes)
            vif.plug(req.vifs)
            self.driver.spawn(spec)
            t2 = time.monotonic()
        return {"power_state": int(self.driver.power_state(req.uuid)),
                "timings": {"image": round(t1 - t0, 4), "spawn": round(t2 - t1, 4)}}

    def power_state(self, uuid: str) -> int:
        """Return the instance's power state (404 if this host has no such instance)."""
        return int(self.driver.power_state(uuid))

    def stop(self, uuid: str, clean: bool = True) -> int:
        """Power off: ACPI first (bounded by ``shutdown_timeout``), then destroy."""
        with self._lock(self._instance_locks, canonical_uuid(uuid)):
            if clean:
                try:
                    self.driver.shutdown(uuid, timeout=self.cfg.shutdown_timeout)
                except ShutdownTimeout:
                    LOG.warning("instance %s ignored ACPI shutdown; destroying it", uuid)
            self.driver.destroy(uuid)
            return int(self.driver.power_state(uuid))

    def start(self, uuid: str) -> int:
        """Power on."""
        with self._lock(self._instance_locks, canonical_uuid(uuid)):
            self.driver.start(uuid)
            return int(self.driver.power_state(uuid))

    def reboot(self, uuid: str, hard: bool) -> int:
        """Reboot: SOFT is a clean shutdown then start (hard if that times out)."""
        self.stop(uuid, clean=not hard)
        return self.start(uuid)

    def delete(self, uuid: str) -> bool:
        """Destroy, undefine and remove every file of the instance (idempotent)."""
        with self._lock(self._instance_locks, canonical_uuid(uuid)):
            return self.driver.delete(uuid)

    def console(self, uuid: str, max_bytes: int | None = None) -> bytes:
        """Return the end of the serial console log."""
        return self.driver.console_log(uuid, max_bytes)

    def instances(self) -> dict[str, int]:
        """Return this host's instances (by instance directory) and their power states."""
        out: dict[str, int] = {}
        for uuid in self._instance_dirs():
            try:
                out[uuid] = int(self.driver.power_state(uuid))
            except InstanceNotFound:
                out[uuid] = int(PowerState.NOSTATE)
        return out

    def _instance_dirs(self) -> list[str]:
        try:
            names = sorted(p.name for p in self.driver.instances_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                out.append(canonical_uuid(name))
            except InstanceNotFound:
                continue
        return out

    def reconcile(self) -> list[str]:
        """Remove half-built instances (a directory without a domain); return their ids.

        Only this state dir's instances are considered: other clouds on the same
        libvirtd keep theirs.
        """
        removed = []
        for uuid in self._instance_dirs():
            if self.driver._find(uuid) is None:
                shutil.rmtree(self.driver.instance_dir(uuid), ignore_errors=True)
                removed.append(uuid)
        return removed

    # --- resource tracker --------------------------------------------------------------

    def host_info(self) -> dict[str, Any]:
        """Return the hypervisor's facts and capacity (``os-hypervisors``)."""
        model, memory_mib, cpus, *_ = self.driver.conn.getInfo()
        disk = shutil.disk_usage(self.driver.state_dir)
        return {"host": self.host, "hypervisor_hostname": self.host,
                "hypervisor_type": "QEMU", "domain_type": self.driver.config.domain_type,
                "hypervisor_version": int(self.driver.conn.getVersion()),
                "cpu_arch": model, "vcpus": int(cpus), "memory_mb": int(memory_mib),
                "local_gb": int(disk.total // (1 << 30)),
                "free_disk_gb": int(disk.free // (1 << 30)), "url": self.url,
                "running_vms": sum(1 for s in self.instances().values()
                                   if s == PowerState.RUNNING)}

    def inventory_report(self) -> dict[str, Any]:
        """Return this host's report for the scheduler (Placement inventories + facts)."""
        info = self.host_info()
        cfg = self.cfg
        reserved_disk = -(-cfg.reserved_host_disk_mb // 1024)
        return {
            "inventories": {
                "VCPU": {"total": info["vcpus"], "allocation_ratio": cfg.cpu_allocation_ratio},
                "MEMORY_MB": {"total": info["memory_mb"],
                              "reserved": min(cfg.reserved_host_memory_mb,
                                              info["memory_mb"] - 1),
                              "allocation_ratio": cfg.ram_allocation_ratio},
                "DISK_GB": {"total": max(1, info["local_gb"]),
                            "reserved": min(reserved_disk, max(0, info["local_gb"] - 1)),
                            "allocation_ratio": cfg.disk_allocation_ratio},
            },
            "hypervisor_hostname": self.host, "hypervisor_type": "QEMU",
            "hypervisor_version": info["hypervisor_version"],
            "supported_instances": [["x86_64", "qemu", "hvm"], ["x86_64", "kvm", "hvm"]],
            "stats": {"compute_url": self.url,
                      "domain_type": self.driver.config.domain_type},
        }

    def report(self) -> None:
        """Send the inventory report to the scheduler (``PUT /v1/hosts/<host>``)."""
        if self.peers is None:
            return
        body = json.dumps(self.inventory_report()).encode()
        url = f"{self.peers.scheduler_url.rstrip('/')}/v1/hosts/{self.host}"
        req = urllib.request.Request(url, data=body, method="PUT", headers={
            "Content-Type": "application/json",
            "X-Service-Token": self.peers.scheduler_token})
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def report_forever(self, stop: threading.Event) -> None:
        """Report every ``report_interval`` seconds until ``stop`` is set (errors logged)."""
        while not stop.is_set():
            wait = self.cfg.report_interval
            try:
                self.report()
            except (OSError, ComputeError) as exc:
                LOG.warning("inventory report to the scheduler failed: %s", exc)
                wait = min(wait, 1.0)  # the scheduler may still be starting
            stop.wait(wait)
