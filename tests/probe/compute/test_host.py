"""libvirtd bring-up and the domain-type probe on the real host."""

from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest
from nubis.daemons.compute import libvirthost
from nubis.daemons.compute.driver import DiskImage, InstanceSpec, LibvirtDriver
from nubis.daemons.compute.errors import ImageCacheError

from nubis.testimage import TestImageSet
from nubis.testimage.initramfs import BOOT_LINE, POWEROFF_ARG

pytestmark = pytest.mark.probe


def test_bring_up_is_idempotent(libvirt_host: libvirthost.HostStatus) -> None:
    again = libvirthost.ensure_libvirtd()
    assert again.started == ()
    assert again.libvirt_version == libvirt_host.libvirt_version >= 9_000_000
    conn = libvirthost.connect()
    try:
        caps = conn.getCapabilities()
    finally:
        conn.close()
    assert "<domain type='qemu'" in caps


def test_probe_boot_and_domain_type_choice(libvirt_host: libvirthost.HostStatus,
                                           compute_dir: Path, test_image: TestImageSet) -> None:
    conn = libvirthost.connect()
    cmdline = f"{test_image.cmdline} {POWEROFF_ARG}"
    kernel, initrd = test_image.kernel.path, test_image.ramdisk.path
    # the probe mechanism itself, under TCG: boots, prints, powers itself off
    tcg = libvirthost.probe_boot(conn, compute_dir, kernel, initrd, domain_type="qemu",
                                 cmdline=cmdline, expect=BOOT_LINE, bound=120)
    assert tcg.ok, tcg.detail
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(tcg.name)
    assert not list(libvirthost.QEMU_LOG_DIR.glob(f"{tcg.name}.log*"))

    choice = libvirthost.choose_domain_type(conn, compute_dir, kernel, initrd,
                                            cmdline=cmdline, expect=BOOT_LINE)
    assert choice.domain_type in ("kvm", "qemu") and choice.reason
    cached = json.loads((compute_dir / libvirthost.PROBE_CACHE).read_text())
    assert cached["domain_type"] == choice.domain_type
    assert libvirthost.choose_domain_type(None, compute_dir, kernel, initrd,
                                          cmdline=cmdline, expect=BOOT_LINE) == choice
    assert sorted(p.name for p in compute_dir.iterdir()) == [libvirthost.PROBE_CACHE]
    conn.close()


def test_failed_spawn_leaves_nothing(driver: LibvirtDriver) -> None:
    uuid = "3e0c2f59-1111-4c1e-9a57-0c3d2b1a0f00"
    spec = InstanceSpec(uuid=uuid, name="x", vcpus=1, memory_mib=128,
                        disk=DiskImage("0" * 128, "qcow2"))
    with pytest.raises(ImageCacheError, match="not in this host's cache"):
        driver.spawn(spec)
    assert not driver.instance_dir(uuid).exists()
    with pytest.raises(libvirt.libvirtError):
        driver.conn.lookupByUUIDString(uuid)
