"""Boot from volume with the ``openstack`` CLI: a real guest (libvirt + QEMU TCG).

``server create --boot-from-volume 1 --image nubis-test`` makes the compute API
create a 1 GB volume from the image (Cinder converts it), attach it and boot
the guest with it as ``vda``; a second ``--block-device`` maps an existing
volume with ``delete_on_termination=true`` as ``vdb``. The console shows the
boot line, the image's disk marker read from ``vda`` and both disks. The root
volume cannot be detached; deleting the server leaves the root volume
``available`` (not marked) and deletes the other one. One guest; every wait is
a bounded poll; everything made is removed.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from nubis.testimage.initramfs import BOOT_LINE, DISK_MARKER, DISKS_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(1200)]


def _volume(compute: ComputeCloud, ident: str) -> dict[str, Any]:
    doc: dict[str, Any] = compute.osc("volume", "show", ident, "-f", "json",
                                      cloud="nubis-demo")
    return doc


def _console(compute: ComputeCloud, name: str) -> str:
    return str(compute.osc("console", "log", "show", name, cloud="nubis-demo").stdout)


def _gone(compute: ComputeCloud, ident: str) -> bool:
    shown = compute.osc("volume", "show", ident, cloud="nubis-demo", check=False)
    return bool(shown.returncode != 0)


def test_boot_from_volume_with_a_second_volume(compute: ComputeCloud) -> None:
    data = compute.osc("volume", "create", "--size", "1", "bfv-data", "-f", "json",
                       cloud="nubis-demo")
    wait_for(lambda: _volume(compute, data["id"])["status"] == "available",
             "bfv-data available")
    server = compute.osc(
        "server", "create", "--flavor", "m1.nano", "--boot-from-volume", "1",
        "--image", "nubis-test", "--block-device",
        f"source_type=volume,uuid={data['id']},destination_type=volume,"
        "delete_on_termination=true", "--nic", "none", "--wait", "bfvvm", "-f", "json",
        cloud="nubis-demo")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    assert "booted from volume" in str(server["image"]).lower() or not server["image"]

    attached = compute.osc("server", "volume", "list", "bfvvm", "-f", "json",
                           cloud="nubis-demo")
    by_device = {a["Device"]: a["Volume ID"] for a in attached}
    assert set(by_device) == {"/dev/vda", "/dev/vdb"}, attached
    assert by_device["/dev/vdb"] == data["id"]
    root_id = by_device["/dev/vda"]
    root = _volume(compute, root_id)
    assert root["status"] == "in-use" and str(root["bootable"]).lower() == "true"
    assert root["size"] == 1
    assert root["volume_image_metadata"]["image_name"] == "nubis-test"

    wait_for(lambda: BOOT_LINE in _console(compute, "bfvvm"), "the boot line")
    console = _console(compute, "bfvvm")
    assert f"disk /dev/vda: {DISK_MARKER.decode().strip()}" in console
    assert f"{DISKS_LINE} vda vdb" in console
    conn = libvirt.open("qemu:///system")
    try:
        xml = conn.lookupByUUIDString(sid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    assert root_id[:20] in xml and data["id"][:20] in xml
    assert not (compute.instance_dir(sid) / "disk").exists()  # no image overlay

    # The root volume stays with the server; an attached volume cannot be deleted.
    refused = compute.osc("server", "remove", "volume", "bfvvm", root_id,
                          cloud="nubis-demo", check=False)
    assert refused.returncode != 0 and "root device" in refused.stderr
    assert compute.osc("volume", "delete", root_id, cloud="nubis-demo",
                       check=False).returncode != 0

    compute.osc("server", "delete", "--wait", "bfvvm", cloud="nubis-demo")
    wait_for(lambda: _volume(compute, root_id)["status"] == "available",
             "the root volume released (delete_on_termination false)")
    wait_for(lambda: _gone(compute, data["id"]),
             "bfv-data deleted with the server (delete_on_termination true)")
    compute.osc("volume", "delete", root_id, cloud="nubis-demo")
    wait_for(lambda: _gone(compute, root_id), "the root volume deleted")
