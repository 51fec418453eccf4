"""libvirt domain XML for one instance, from a typed description.

The XML follows what Nova's libvirt driver writes for a direct-kernel-boot
guest on an x86 ``pc`` machine: the domain UUID is the instance id, ``<acpi/>``
so a power-button press reaches the guest (clean shutdown), the root disk as
virtio ``vda``, the config drive as an IDE CD-ROM ``hdd`` (or a virtio disk),
and the first serial port logged to a file by ``virtlogd`` (which caps its
size), so the console log survives the guest and cannot fill the host's disk.
Every value is set through ElementTree, so names and paths are escaped.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nubis.daemons.compute.errors import ComputeError
from nubis.daemons.compute.vif import Vif, add_interfaces

DomainType = Literal["kvm", "qemu"]
#: XML namespace of nubis's own ``<metadata>`` element.
METADATA_NS = "https://nubis.dev/xmlns/libvirt/instance/1.0"
MAX_VCPUS = 64
MAX_MEMORY_MIB = 1024 * 1024
#: Volume serial numbers are cut to 20 characters, as virtio-blk reports them.
SERIAL_LEN = 20


@dataclass(frozen=True)
class DirectBoot:
    """Kernel, optional initrd and command line for direct kernel boot."""

    kernel: Path
    initrd: Path | None
    cmdline: str = ""


@dataclass(frozen=True)
class VolumeDisk:
    """A block storage volume file given to the guest as a virtio disk."""

    volume_id: str
    path: Path
    #: ``qcow2`` or ``raw``.
    fmt: str = "qcow2"
    #: The disk's I/O limits (``<iotune>``), from its type's front-end QoS specs.
    iotune: tuple[tuple[str, int], ...] = ()


#: The QoS keys Nova's libvirt volume driver turns into ``<iotune>`` elements.
IOTUNE_KEYS = ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec", "total_iops_sec",
               "read_iops_sec", "write_iops_sec", "size_iops_sec")


def add_iotune(disk: ET.Element, iotune: tuple[tuple[str, int], ...]) -> None:
    """Add a disk's ``<iotune>`` (nothing when it has no limits)."""
    if iotune:
        tune = ET.SubElement(disk, "iotune")
        for key, value in iotune:
            ET.SubElement(tune, key).text = str(value)


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML is built from."""

    #: Instance id; also the libvirt domain UUID.
    uuid: str
    #: libvirt domain name (unique on the host).
    name: str
    vcpus: int
    memory_mib: int
    domain_type: DomainType
    #: File the first serial port is logged to.
    console_log: Path
    #: qcow2 root disk (the instance's overlay), attached as virtio ``vda``.
    root_disk: Path | None = None
    #: The root volume of a volume-backed instance (``vda`` instead of ``root_disk``).
    root_volume: VolumeDisk | None = None
    #: Further volumes of the block device mapping, as ``vdb``, ``vdc``, ... in order.
    volumes: tuple[VolumeDisk, ...] = ()
    #: Config drive ISO; ``ide`` CD-ROM as Nova attaches it, or a read-only virtio disk.
    config_drive: Path | None = None
    config_drive_bus: Literal["ide", "virtio"] = "ide"
    boot: DirectBoot | None = None
    #: Shown in ``<metadata>`` (the server's display name and owner).
    display_name: str = ""
    project_id: str = ""
    machine: str = "pc"
    arch: str = "x86_64"
    #: Guest NICs, each on its network's bridge.
    vifs: tuple[Vif, ...] = ()

    def validate(self) -> None:
        """Raise ComputeError if the spec cannot describe a domain."""
        try:
            if str(uuidlib.UUID(self.uuid)) != self.uuid.lower():
                raise ValueError(self.uuid)
        except ValueError:
            raise ComputeError(f"instance id {self.uuid!r} is not a canonical UUID") from None
        if not self.name or len(self.name) > 200 or "/" in self.name:
            raise ComputeError(f"bad domain name {self.name!r}")
        if not 1 <= self.vcpus <= MAX_VCPUS:
            raise ComputeError(f"vcpus must be 1..{MAX_VCPUS}, not {self.vcpus}")
        if not 16 <= self.memory_mib <= MAX_MEMORY_MIB:
            raise ComputeError(f"memory must be 16..{MAX_MEMORY_MIB} MiB, not {self.memory_mib}")
        if self.root_disk is not None and self.root_volume is not None:
            raise ComputeError("a domain has either a root disk or a root volume")
        if len(self.volumes) > 24:
            raise ComputeError("at most 24 volumes can be given at boot")
        if self.root_disk is None and self.root_volume is None and self.boot is None:
            raise ComputeError("a domain needs a root disk or a kernel to boot")
        for path in self._paths():
            if not path.is_absolute():
                raise ComputeError(f"domain file paths must be absolute: {path}")

    def _paths(self) -> list[Path]:
        paths = [self.console_log]
        paths += [p for p in (self.root_disk, self.config_drive) if p is not None]
        paths += [v.path for v in (self.root_volume, *self.volumes) if v is not None]
        if self.boot is not None:
            paths += [p for p in (self.boot.kernel, self.boot.initrd) if p is not None]
        return paths


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _os(root: ET.Element, spec: DomainSpec) -> None:
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=spec.arch, machine=spec.machine)
    if spec.boot is not None:
        _sub(os_el, "kernel", str(spec.boot.kernel))
        if spec.boot.initrd is not None:
            _sub(os_el, "initrd", str(spec.boot.initrd))
        if spec.boot.cmdline:
            _sub(os_el, "cmdline", spec.boot.cmdline)
    else:
        _sub(os_el, "boot", dev="hd")


def _disk(devices: ET.Element, path: Path, fmt: str, device: str, target: str,
          bus: str, readonly: bool) -> ET.Element:
    disk = _sub(devices, "disk", type="file", device=device)
    _sub(disk, "driver", name="qemu", type=fmt)
    _sub(disk, "source", file=str(path))
    _sub(disk, "target", dev=target, bus=bus)
    if readonly:
        _sub(disk, "readonly")
    return disk


def _volume(devices: ET.Element, vol: VolumeDisk, target: str) -> None:
    """Add a volume as a virtio disk whose serial is its id (cut to 20, as virtio)."""
    disk = _disk(devices, vol.path, vol.fmt, "disk", target, "virtio", readonly=False)
    disk.find("driver").set("cache", "none")  # type: ignore[union-attr]
    _sub(disk, "serial", vol.volume_id[:SERIAL_LEN])
    add_iotune(disk, vol.iotune)


def _devices(root: ET.Element, spec: DomainSpec) -> None:
    devices = _sub(root, "devices")
    if spec.root_disk is not None:
        _disk(devices, spec.root_disk, "qcow2", "disk", "vda", "virtio", readonly=False)
    if spec.root_volume is not None:
        _volume(devices, spec.root_volume, "vda")
    for letter, vol in zip("bcdefghijklmnopqrstuvwxy", spec.volumes, strict=False):
        _volume(devices, vol, f"vd{letter}")
    if spec.config_drive is not None:
        if spec.config_drive_bus == "ide":
            _disk(devices, spec.config_drive, "raw", "cdrom", "hdd", "ide", readonly=True)
        else:
            _disk(devices, spec.config_drive, "raw", "disk", "vdz", "virtio", readonly=True)
    add_interfaces(devices, spec.vifs)
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=str(spec.console_log), append="off")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "controller", type="usb", model="none")
    _sub(devices, "memballoon", model="none")


def _metadata(root: ET.Element, spec: DomainSpec) -> None:
    md = _sub(root, "metadata")
    inst = _sub(md, f"{{{METADATA_NS}}}instance")
    _sub(inst, f"{{{METADATA_NS}}}name", spec.display_name)
    _sub(inst, f"{{{METADATA_NS}}}project", spec.project_id)


def domain_xml(spec: DomainSpec) -> str:
    """Return the libvirt domain XML for ``spec``.

    Raises:
        ComputeError: the spec is invalid (bad UUID, sizes, relative paths).
    """
    spec.validate()
    ET.register_namespace("nubis", METADATA_NS)
    root = ET.Element("domain", type=spec.domain_type)
    _sub(root, "name", spec.name)
    _sub(root, "uuid", spec.uuid.lower())
    _metadata(root, spec)
    _sub(root, "memory", str(spec.memory_mib * 1024), unit="KiB")
    _sub(root, "vcpu", str(spec.vcpus))
    _os(root, spec)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.domain_type == "kvm":
        _sub(root, "cpu", mode="host-passthrough")
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    _devices(root, spec)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")
