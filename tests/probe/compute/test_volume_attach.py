"""Block storage volumes hot-plugged into a real guest (libvirt + QEMU TCG).

``openstack server add volume`` on a running test-image guest: the volume goes
``in-use``, the guest's console lists the new virtio disk, the domain's
persistent definition holds it; ``server remove volume`` unplugs it and the
volume is ``available`` again. Every wait is a bounded poll; the server and the
volume are deleted at the end.
"""

from __future__ import annotations

import libvirt
import pytest

from nubis.testimage.initramfs import DISKS_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(900)]


def _volume(compute: ComputeCloud, name: str) -> dict[str, object]:
    doc: dict[str, object] = compute.osc("volume", "show", name, "-f", "json",
                                         cloud="nubis-demo")
    return doc


def _console(compute: ComputeCloud, name: str) -> str:
    return str(compute.osc("console", "log", "show", name, cloud="nubis-demo").stdout)


def test_add_and_remove_volume_on_a_running_server(compute: ComputeCloud) -> None:
    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--wait", "volvm", "-f", "json", cloud="nubis-demo")
    sid = server["id"]
    wait_for(lambda: f"{DISKS_LINE} vda" in _console(compute, "volvm"),
             "the boot-time disk list")
    vol = compute.osc("volume", "create", "--size", "1", "vol1", "-f", "json",
                      cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "vol1")["status"] == "available", "vol1 available")

    compute.osc("server", "add", "volume", "volvm", "vol1", cloud="nubis-demo")
    shown = _volume(compute, "vol1")
    assert shown["status"] == "in-use"
    attachments = shown["attachments"]
    assert isinstance(attachments, list) and attachments[0]["server_id"] == sid
    assert attachments[0]["device"] == "/dev/vdb"
    wait_for(lambda: f"{DISKS_LINE} vda vdb" in _console(compute, "volvm"),
             "the hot-plugged disk on the console")
    listed = compute.osc("server", "volume", "list", "volvm", "-f", "json",
                         cloud="nubis-demo")
    assert [v["Volume ID"] for v in listed] == [vol["id"]]
    conn = libvirt.open("qemu:///system")
    try:
        persistent = conn.lookupByUUIDString(sid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    assert vol["id"][:20] in persistent

    # An attached volume cannot be deleted (Cinder's 400).
    refused = compute.osc("volume", "delete", "vol1", cloud="nubis-demo", check=False)
    assert refused.returncode != 0

    compute.osc("server", "remove", "volume", "volvm", "vol1", cloud="nubis-demo")
    assert _volume(compute, "vol1")["status"] == "available"
    wait_for(lambda: _console(compute, "volvm").rstrip().endswith(f"{DISKS_LINE} vda"),
             "the disk gone from the console")
    # Deleting a server releases the volumes still attached to it.
    compute.osc("server", "add", "volume", "volvm", "vol1", cloud="nubis-demo")
    assert _volume(compute, "vol1")["status"] == "in-use"
    compute.osc("server", "delete", "--wait", "volvm", cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "vol1")["status"] == "available",
             "vol1 released by the server delete")
    compute.osc("volume", "delete", "vol1", cloud="nubis-demo")
