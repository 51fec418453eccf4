"""Boot the project's test image under libvirt (TCG) through the driver, end to end."""

from __future__ import annotations

import time
import uuid as uuidlib
from pathlib import Path

import libvirt
import pytest
from nubis.daemons.compute.configdrive import InstanceMetadata
from nubis.daemons.compute.driver import (
    DiskImage,
    InstanceSpec,
    LibvirtDriver,
    PowerState,
)
from nubis.daemons.compute.errors import InstanceNotFound
from nubis.daemons.compute.libvirthost import QEMU_LOG_DIR

from nubis.testimage import TestImageSet
from nubis.testimage.initramfs import BOOT_LINE, DISK_MARKER, READY_LINE

pytestmark = pytest.mark.probe
BOOT_BOUND = 120.0  # seconds; a bound on a loop, not a performance assertion


def wait_console(driver: LibvirtDriver, uuid: str, line: str, bound: float) -> str:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        text = driver.console_log(uuid).decode(errors="replace")
        if line in text:
            return text
        assert driver.power_state(uuid) == PowerState.RUNNING, text
        time.sleep(0.1)
    pytest.fail(f"{line!r} not on the console within {bound:.0f} s:\n"
                + driver.console_log(uuid).decode(errors="replace"))


def test_boot_config_drive_acpi_shutdown_delete(driver: LibvirtDriver,
                                                 test_image: TestImageSet) -> None:
    uuid = str(uuidlib.uuid4())
    token = uuidlib.uuid4().hex
    user_data = f"#!/bin/sh\necho user-data-token {token}\n".encode()
    md = InstanceMetadata(uuid=uuid, hostname="probe-vm", name="probe vm",
                          project_id="p" * 32, user_data=user_data,
                          public_keys={"k": "ssh-ed25519 AAAAC3Nza probe"})
    spec = InstanceSpec(uuid=uuid, name="probe vm", vcpus=1, memory_mib=128, root_gb=1,
                        disk=DiskImage(test_image.disk.sha512, "qcow2"),
                        kernel_sha512=test_image.kernel.sha512,
                        ramdisk_sha512=test_image.ramdisk.sha512,
                        cmdline=test_image.cmdline, metadata=md)
    started = time.monotonic()
    driver.spawn(spec)
    wait_console(driver, uuid, BOOT_LINE, BOOT_BOUND)
    booted = time.monotonic() - started
    text = wait_console(driver, uuid, READY_LINE, BOOT_BOUND)
    print(f"define -> '{BOOT_LINE}': {booted:.1f} s")  # reported, never asserted

    assert f"nubis-test-image uuid: {uuid}" in text
    assert "nubis-test-image hostname: probe-vm" in text
    assert f"echo user-data-token {token}" in text
    assert f"disk /dev/vda: {DISK_MARKER.decode().strip()}" in text
    assert driver.power_state(uuid) == PowerState.RUNNING
    assert uuid in driver.list_instances()

    inst = driver.instance_dir(uuid)
    assert sorted(p.name for p in inst.iterdir()) == ["console.log", "disk", "disk.config"]
    name = driver.domain_name(uuid)
    dom = driver.conn.lookupByUUIDString(uuid)
    assert dom.name() == name
    assert "<acpi/>" in dom.XMLDesc(0)

    driver.shutdown(uuid, timeout=60)
    assert driver.power_state(uuid) == PowerState.SHUTDOWN
    assert "power button pressed" in driver.console_log(uuid).decode(errors="replace")

    assert driver.delete(uuid) is True
    with pytest.raises(libvirt.libvirtError):
        driver.conn.lookupByUUIDString(uuid)
    with pytest.raises(InstanceNotFound):
        driver.power_state(uuid)
    assert uuid not in driver.list_instances()
    assert not inst.exists()
    assert list(driver.instances_dir.iterdir()) == []
    assert not list(QEMU_LOG_DIR.glob(f"{name}.log*"))
    assert not Path(f"/etc/libvirt/qemu/{name}.xml").exists()
    assert driver.delete(uuid) is False  # deleting twice is harmless
