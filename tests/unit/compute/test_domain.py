"""Domain XML: what Nova's libvirt driver writes for a direct-kernel-boot guest."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nubis.daemons.compute import volumes
from nubis.daemons.compute.domain import METADATA_NS, DirectBoot, DomainSpec, domain_xml
from nubis.daemons.compute.errors import ComputeError

UUID = "6f2a0c4e-6a1b-4bb0-9d53-3c1d1f0a9e11"
INST = Path("/srv/compute/instances") / UUID


def spec(**kw: object) -> DomainSpec:
    base = DomainSpec(uuid=UUID, name=f"nubis-{UUID}", vcpus=2, memory_mib=192,
                      domain_type="qemu", console_log=INST / "console.log",
                      root_disk=INST / "disk", config_drive=INST / "disk.config",
                      boot=DirectBoot(Path("/srv/images/k"), Path("/srv/images/r"),
                                      "console=ttyS0 quiet"),
                      display_name="web <1> & co", project_id="p1")
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def parse(s: DomainSpec) -> ET.Element:
    return ET.fromstring(domain_xml(s))


def test_identity_sizes_and_features() -> None:
    root = parse(spec())
    assert root.get("type") == "qemu"
    assert root.findtext("uuid") == UUID and root.findtext("name") == f"nubis-{UUID}"
    assert root.find("memory").get("unit") == "KiB" and root.findtext("memory") == "196608"
    assert root.findtext("vcpu") == "2"
    assert root.find("features/acpi") is not None
    assert root.find("cpu") is None  # TCG: QEMU's default CPU model
    assert root.findtext("on_poweroff") == "destroy"
    md = root.find(f"metadata/{{{METADATA_NS}}}instance")
    assert md.findtext(f"{{{METADATA_NS}}}name") == "web <1> & co"  # escaped, round-trips


def test_direct_kernel_boot() -> None:
    os_el = parse(spec()).find("os")
    assert os_el.find("type").attrib == {"arch": "x86_64", "machine": "pc"}
    assert os_el.findtext("kernel") == "/srv/images/k"
    assert os_el.findtext("initrd") == "/srv/images/r"
    assert os_el.findtext("cmdline") == "console=ttyS0 quiet"
    assert os_el.find("boot") is None
    disk_boot = parse(spec(boot=None)).find("os")
    assert disk_boot.find("kernel") is None and disk_boot.find("boot").get("dev") == "hd"


def test_disks_config_drive_and_console() -> None:
    devices = parse(spec()).find("devices")
    root_disk, cd = devices.findall("disk")
    assert root_disk.get("device") == "disk"
    assert root_disk.find("driver").attrib == {"name": "qemu", "type": "qcow2"}
    assert root_disk.find("source").get("file") == str(INST / "disk")
    assert root_disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert cd.get("device") == "cdrom" and cd.find("readonly") is not None
    assert cd.find("target").attrib == {"dev": "hdd", "bus": "ide"}
    assert cd.find("driver").get("type") == "raw"
    serial = devices.find("serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").attrib == {"file": str(INST / "console.log"), "append": "off"}
    assert devices.find("console/target").get("type") == "serial"
    assert devices.find("memballoon").get("model") == "none"
    virtio_cd = parse(spec(config_drive_bus="virtio")).find("devices").findall("disk")[1]
    assert virtio_cd.get("device") == "disk"
    assert virtio_cd.find("target").attrib == {"dev": "vdz", "bus": "virtio"}
    assert len(parse(spec(config_drive=None)).find("devices").findall("disk")) == 1


def test_kvm_uses_the_host_cpu() -> None:
    root = parse(spec(domain_type="kvm"))
    assert root.get("type") == "kvm" and root.find("cpu").get("mode") == "host-passthrough"


@pytest.mark.parametrize("bad", [
    {"uuid": "not-a-uuid"}, {"uuid": UUID[:-1]}, {"name": ""}, {"name": "a/b"},
    {"vcpus": 0}, {"vcpus": 65}, {"memory_mib": 8}, {"root_disk": None, "boot": None},
    {"console_log": Path("relative.log")}, {"root_disk": Path("disk")},
])
def test_invalid_specs(bad: dict[str, object]) -> None:
    with pytest.raises(ComputeError):
        domain_xml(spec(**bad))


def test_volume_backed_domain_boots_from_its_volume() -> None:
    from nubis.daemons.compute.domain import VolumeDisk

    root_vol = VolumeDisk("0f6ee1b6-8f93-4f6b-9a5b-2a3f6d8e1c55", Path("/srv/v/root"))
    data = VolumeDisk("5b0e2f7c-2b6a-47f4-8f0d-2f1e9c7d3a10", Path("/srv/v/data"), "raw")
    root = parse(spec(root_disk=None, root_volume=root_vol, volumes=(data,)))
    disks = {d.find("target").get("dev"): d for d in root.findall("devices/disk")}
    assert disks["vda"].find("source").get("file") == "/srv/v/root"
    assert disks["vda"].findtext("serial") == root_vol.volume_id[:20]
    assert disks["vdb"].find("driver").get("type") == "raw"
    assert disks["vdb"].find("driver").get("cache") == "none"
    assert disks["vdb"].findtext("serial") == data.volume_id[:20]
    with pytest.raises(ComputeError):
        domain_xml(spec(root_volume=root_vol))  # a root disk and a root volume
    with pytest.raises(ComputeError):
        domain_xml(spec(root_disk=None, root_volume=dataclasses.replace(
            root_vol, path=Path("rel/path"))))


def test_front_end_qos_becomes_the_disks_iotune() -> None:
    """Nova's libvirt volume driver: the seven QoS keys, in ``<iotune>``; others skipped."""
    conn = {"driver_volume_type": "file", "data": {
        "path": "/srv/v/data", "format": "qcow2", "qos_specs": {
            "total_iops_sec": "500", "read_bytes_sec": 10485760, "write_iops_sec": "0",
            "consumer_note": "not a limit"}}}
    vid = "5b0e2f7c-2b6a-47f4-8f0d-2f1e9c7d3a10"
    vol = volumes.file_connection(vid, conn)
    assert vol.iotune == (("read_bytes_sec", 10485760), ("total_iops_sec", 500))
    for disk in (ET.fromstring(volumes.disk_xml(vol, "vdb")),
                 parse(spec(volumes=(vol,))).findall("./devices/disk")[1]):
        tune = disk.find("iotune")
        assert tune is not None
        assert {e.tag: e.text for e in tune} == {"read_bytes_sec": "10485760",
                                                 "total_iops_sec": "500"}
    plain = volumes.file_connection(vid, {**conn, "data": {"path": "/srv/v/data",
                                                           "qos_specs": None}})
    assert ET.fromstring(volumes.disk_xml(plain, "vdb")).find("iotune") is None
    for bad in ({"total_iops_sec": "fast"}, {"read_bytes_sec": "-1"}, ["total_iops_sec"]):
        with pytest.raises(volumes.VolumeAttachError):
            volumes.file_connection(vid, {**conn, "data": {"path": "/srv/v/data",
                                                           "qos_specs": bad}})
