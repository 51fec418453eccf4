"""The libvirt driver: instances as libvirt domains with their files on this host.

One instance is one persistent libvirt domain (UUID = instance id, name
``nubis-<uuid>``) and one directory ``<compute state>/instances/<uuid>/``
holding everything made for it: ``disk`` (qcow2 overlay on a cached base),
``disk.config`` (config drive) and ``console.log`` (the serial console, written
by virtlogd). Kernels, ramdisks and base disks come from the host's image
cache (:class:`~nubis.daemons.compute.disks.ImageCache`). ``delete`` destroys
and undefines the domain and removes the directory and libvirt's per-domain
log, so nothing of the instance is left on the host.

libvirt-python is blocking; the compute daemon calls this from worker threads.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import time
import uuid as uuidlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import libvirt
from nubis.daemons.compute import configdrive, disks
from nubis.daemons.compute.domain import (
    DirectBoot,
    DomainSpec,
    DomainType,
    VolumeDisk,
    domain_xml,
)
from nubis.daemons.compute.errors import (
    ComputeError,
    ImageCacheError,
    InstanceExists,
    InstanceNotFound,
    LibvirtError,
    ShutdownTimeout,
)
from nubis.daemons.compute.libvirthost import (
    URI,
    check_reachable,
    connect,
    remove_qemu_logs,
)
from nubis.daemons.compute.vif import Vif

GIB = 1024 ** 3
#: Threads that write instance files beside the spawning thread (config drives).
_FILES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="instance-files")
_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                   | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                   | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


class PowerState(enum.IntEnum):
    """Nova's ``power_state`` codes."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


#: libvirt domain state -> Nova power state (as Nova's libvirt driver maps them).
LIBVIRT_POWER_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}


@dataclass(frozen=True)
class DriverConfig:
    """Where the driver keeps its files and how it runs guests."""

    #: ``<state>/compute``: ``images/`` (the cache) and ``instances/<uuid>/``.
    state_dir: Path
    domain_type: DomainType
    uri: str = URI
    name_prefix: str = "nubis-"
    #: Seconds between ACPI power-button presses while waiting for a shutdown.
    shutdown_retry_interval: float = 10.0
    #: At most this much of the console log is returned (Nova: 100 KiB).
    console_max_bytes: int = 100 * 1024


@dataclass(frozen=True)
class DiskImage:
    """A cached base image: its sha512 (Glance ``os_hash_value``) and disk format."""

    sha512: str
    disk_format: disks.DiskFormat = "qcow2"


@dataclass(frozen=True)
class InstanceSpec:
    """What to boot: sizes, images by sha512, and the config drive's metadata."""

    uuid: str
    #: Display name (recorded in the domain's metadata).
    name: str
    vcpus: int
    memory_mib: int
    project_id: str = ""
    #: Root disk image; the overlay grows to ``root_gb`` GiB when that is larger.
    disk: DiskImage | None = None
    root_gb: int = 0
    kernel_sha512: str | None = None
    ramdisk_sha512: str | None = None
    cmdline: str = ""
    #: When set, a config drive with this metadata is attached.
    metadata: configdrive.InstanceMetadata | None = None
    config_drive_bus: Literal["ide", "virtio"] = "ide"
    #: Guest NICs (their bridges must exist: ``vif.plug``).
    vifs: tuple[Vif, ...] = ()
    #: Root volume of a volume-backed instance (then ``disk`` is None).
    root_volume: VolumeDisk | None = None
    #: Further volumes of the block device mapping (``vdb``, ``vdc``, ...).
    volumes: tuple[VolumeDisk, ...] = ()


def canonical_uuid(value: str) -> str:
    """Return ``value`` as a lowercase canonical UUID or raise InstanceNotFound."""
    try:
        parsed = str(uuidlib.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InstanceNotFound(f"instance id {value!r} is not a UUID") from None
    if parsed != value.lower():
        raise InstanceNotFound(f"instance id {value!r} is not a canonical UUID")
    return parsed


@contextlib.contextmanager
def _libvirt_errors(what: str) -> Iterator[None]:
    """Turn libvirt's exceptions into the compute tree (libvirt's text kept)."""
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise InstanceNotFound(f"{what}: no such domain") from exc
        raise LibvirtError(f"{what}: {exc.get_error_message() or exc}") from exc


class LibvirtDriver:
    """Boot, stop and delete instances on this host through libvirt."""

    def __init__(self, config: DriverConfig, conn: libvirt.virConnect | None = None) -> None:
        self.config = config
        self.state_dir = config.state_dir.absolute()  # libvirt needs absolute paths
        self.images = disks.ImageCache(self.state_dir / "images")
        self.instances_dir = self.state_dir / "instances"
        self._conn = conn
        #: (base path, format) -> virtual size, for bases ``check_base`` accepted.
        self._base_sizes: dict[tuple[str, str], int] = {}

    # --- set-up and lookup ---------------------------------------------------------

    def setup(self) -> None:
        """Create the state directories and check QEMU can reach them."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o711)
        self.images.setup()
        self.instances_dir.mkdir(exist_ok=True)
        os.chmod(self.instances_dir, 0o711)
        check_reachable(self.instances_dir / "x")

    @property
    def conn(self) -> libvirt.virConnect:
        """The libvirt connection, reopened if libvirtd went away."""
        if self._conn is None or not self._conn.isAlive():
            self._conn = connect(self.config.uri)
        return self._conn

    def domain_name(self, uuid: str) -> str:
        """Return the libvirt domain name of an instance."""
        return f"{self.config.name_prefix}{canonical_uuid(uuid)}"

    def instance_dir(self, uuid: str) -> Path:
        """Return the directory that holds an instance's files."""
        return self.instances_dir / canonical_uuid(uuid)

    def _lookup(self, uuid: str) -> libvirt.virDomain:
        with _libvirt_errors(f"instance {uuid}"):
            return self.conn.lookupByUUIDString(canonical_uuid(uuid))

    def _find(self, uuid: str) -> libvirt.virDomain | None:
        try:
            return self._lookup(uuid)
        except InstanceNotFound:
            return None

    def list_instances(self) -> list[str]:
        """Return the ids of every domain this driver defined (by name prefix)."""
        with _libvirt_errors("list domains"):
            domains = self.conn.listAllDomains(0)
        return sorted(d.UUIDString() for d in domains
                      if d.name().startswith(self.config.name_prefix))

    # --- spawn ---------------------------------------------------------------------

    def spawn(self, spec: InstanceSpec) -> None:
        """Make the instance's disks, define its domain and start it.

        On any failure everything made so far is removed again.

        Raises:
            InstanceExists: a domain with this id is already defined.
            ImageCacheError: an image it names is not in the cache.
            ComputeError: a disk, config drive or libvirt step failed.
        """
        try:
            uuid = canonical_uuid(spec.uuid)
        except InstanceNotFound as exc:
            raise ComputeError(str(exc)) from None
        if self._find(uuid) is not None:
            raise InstanceExists(f"instance {uuid} is already defined on this host")
        inst = self.instance_dir(uuid)
        shutil.rmtree(inst, ignore_errors=True)  # leftovers of an interrupted spawn
        inst.mkdir(mode=0o711)
        os.chmod(inst, 0o711)
        try:
            dspec = self._domain_spec(spec, inst)
            with _libvirt_errors(f"define instance {uuid}"):
                dom = self.conn.defineXML(domain_xml(dspec))
            with _libvirt_errors(f"start instance {uuid}"):
                dom.create()
        except BaseException:
            with contextlib.suppress(ComputeError):
                self._remove(uuid)
            raise

    def _base_size(self, base: Path, fmt: disks.DiskFormat) -> int:
        """Return the checked virtual size of a cached base (bases never change)."""
        key = (str(base), fmt)
        size = self._base_sizes.get(key)
        if size is None:
            size = disks.check_base(base, fmt)
            self._base_sizes[key] = size
        return size

    def _cached(self, sha512: str, what: str) -> Path:
        path = self.images.path(sha512)
        if not path.is_file():
            raise ImageCacheError(f"{what} image {sha512[:16]}… is not in this host's cache")
        return path

    def _domain_spec(self, spec: InstanceSpec, inst: Path) -> DomainSpec:
        """Create the instance's files and describe its domain."""
        # PERF (python -m nubis.bench boot --api): the config drive (genisoimage) is
        # written while qemu-img makes the overlay; the base's checks are cached.
        drive_job = None
        if spec.metadata is not None:
            drive_job = _FILES.submit(configdrive.build, spec.metadata, inst / "disk.config")
        try:
            root = None
            if spec.disk is not None:
                base = self._cached(spec.disk.sha512, "disk")
                virtual = self._base_size(base, spec.disk.disk_format)
                want = spec.root_gb * GIB
                root = inst / "disk"
                disks.create_overlay(base, root, spec.disk.disk_format,
                                     want if want > virtual else None)
            boot = None
            if spec.kernel_sha512 is not None:
                initrd = (self._cached(spec.ramdisk_sha512, "ramdisk")
                          if spec.ramdisk_sha512 is not None else None)
                boot = DirectBoot(self._cached(spec.kernel_sha512, "kernel"), initrd,
                                  spec.cmdline)
        finally:
            drive = drive_job.result() if drive_job is not None else None
        return DomainSpec(uuid=spec.uuid.lower(), name=self.domain_name(spec.uuid),
                          vcpus=spec.vcpus, memory_mib=spec.memory_mib,
                          domain_type=self.config.domain_type,
                          console_log=inst / "console.log", root_disk=root,
                          config_drive=drive, config_drive_bus=spec.config_drive_bus,
                          boot=boot, display_name=spec.name, project_id=spec.project_id,
                          vifs=spec.vifs, root_volume=spec.root_volume,
                          volumes=spec.volumes)

    # --- power ---------------------------------------------------------------------

    def power_state(self, uuid: str) -> PowerState:
        """Return the instance's power state (Nova's codes)."""
        dom = self._lookup(uuid)
        with _libvirt_errors(f"state of instance {uuid}"):
            state, _reason = dom.state()
        return LIBVIRT_POWER_STATE.get(state, PowerState.NOSTATE)

    def start(self, uuid: str) -> None:
        """Power on a stopped instance (no-op if it runs)."""
        dom = self._lookup(uuid)
        with _libvirt_errors(f"start instance {uuid}"):
            if not dom.isActive():
                dom.create()

    def shutdown(self, uuid: str, timeout: float = 60.0) -> None:
        """Press the ACPI power button until the guest powers off (clean shutdown).

        The button is pressed again every ``shutdown_retry_interval`` seconds, as
        a guest still booting may miss the first press.

        Raises:
            ShutdownTimeout: the guest still runs after ``timeout`` seconds.
        """
        dom = self._lookup(uuid)
        deadline = time.monotonic() + timeout
        next_press = 0.0
        while True:
            with _libvirt_errors(f"shut down instance {uuid}"):
                if not dom.isActive():
                    return
            now = time.monotonic()
            if now >= deadline:
                raise ShutdownTimeout(f"instance {uuid} did not power off within {timeout:.0f} s")
            if now >= next_press:
                self._press_power_button(dom)
                next_press = now + self.config.shutdown_retry_interval
            time.sleep(0.05)

    @staticmethod
    def _press_power_button(dom: libvirt.virDomain) -> None:
        try:
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # not running
                raise LibvirtError(f"ACPI shutdown: {exc.get_error_message()}") from exc

    def destroy(self, uuid: str) -> None:
        """Power the instance off at once (no-op if it is off)."""
        dom = self._lookup(uuid)
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise LibvirtError(f"destroy instance {uuid}: {exc.get_error_message()}") from exc

    # --- console and delete ----------------------------------------------------------

    def console_log(self, uuid: str, max_bytes: int | None = None) -> bytes:
        """Return the end of the instance's serial console log (at most ``max_bytes``)."""
        limit = self.config.console_max_bytes if max_bytes is None else max_bytes
        path = self.instance_dir(uuid) / "console.log"
        try:
            with path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - limit))
                return f.read(limit)
        except FileNotFoundError:
            if self._find(uuid) is None:
                raise InstanceNotFound(f"instance {uuid}: no such instance") from None
            return b""

    def delete(self, uuid: str) -> bool:
        """Destroy and undefine the domain and remove every file of the instance.

        Returns True if there was anything to remove (deleting twice is harmless).
        """
        uuid = canonical_uuid(uuid)
        dom = self._find(uuid)
        if dom is not None:
            self.destroy(uuid)
        return self._remove(uuid) or dom is not None

    def _remove(self, uuid: str) -> bool:
        dom = self._find(uuid)
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with _libvirt_errors(f"undefine instance {uuid}"):
                dom.undefineFlags(_UNDEFINE_FLAGS)
        inst = self.instance_dir(uuid)
        existed = inst.exists()
        shutil.rmtree(inst, ignore_errors=True)
        remove_qemu_logs(self.domain_name(uuid))
        if inst.exists():
            raise ComputeError(f"could not remove {inst}")
        return existed
