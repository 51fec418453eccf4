"""Block storage volumes hot-plugged into a real guest (libvirt + QEMU TCG), with the CLI.

One guest serves every scenario (a TCG boot is the expensive part):

* ``openstack server add volume`` on the running guest: the volume goes ``in-use``,
  the guest's console lists the new virtio disk, the domain's persistent definition
  holds it, with the ``<iotune>`` of its type's front-end QoS spec, which the guest's
  QEMU enforces (``virDomainGetBlockIoTune``); an attached volume cannot be deleted;
  ``server remove volume`` unplugs it and the volume is ``available`` again;
* ``volume snapshot create --force`` (API 3.0) of the in-use volume goes through the
  guest's QEMU (the image is locked by it); a volume made from that snapshot is
  ``available``; ``volume set --size 2`` at volume API 3.42 grows the attached volume
  live (``virDomainBlockResize``): it stays ``in-use`` and the guest's disk has the
  new capacity;
* deleting the server releases the volume still attached to it.

Every wait is a bounded poll; everything made is removed.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from nubis.testimage.initramfs import DISKS_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(1500)]
GIB = 1024 ** 3
VM = "volvm"


def _show(compute: ComputeCloud, *what: str) -> dict[str, Any]:
    doc: dict[str, Any] = compute.osc(*what, "-f", "json", cloud="nubis-demo")
    return doc


def _volume(compute: ComputeCloud, name: str) -> dict[str, Any]:
    return _show(compute, "volume", "show", name)


def _gone(compute: ComputeCloud, *what: str) -> bool:
    return bool(compute.osc(*what, cloud="nubis-demo", check=False).returncode != 0)


def _console(compute: ComputeCloud) -> str:
    return str(compute.osc("console", "log", "show", VM, cloud="nubis-demo").stdout)


def _capacity(server_id: str, target: str) -> int:
    conn = libvirt.open("qemu:///system")
    try:
        return int(conn.lookupByUUIDString(server_id).blockInfo(target)[0])
    finally:
        conn.close()


def _attach_and_detach(compute: ComputeCloud, sid: str, vol: dict[str, Any]) -> None:
    compute.osc("server", "add", "volume", VM, "vol1", cloud="nubis-demo")
    shown = _volume(compute, "vol1")
    assert shown["status"] == "in-use"
    attachments = shown["attachments"]
    assert isinstance(attachments, list) and attachments[0]["server_id"] == sid
    assert attachments[0]["device"] == "/dev/vdb"
    wait_for(lambda: f"{DISKS_LINE} vda vdb" in _console(compute),
             "the hot-plugged disk on the console")
    listed = compute.osc("server", "volume", "list", VM, "-f", "json", cloud="nubis-demo")
    assert [v["Volume ID"] for v in listed] == [vol["id"]]
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByUUIDString(sid)
        persistent = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        live_limits = dom.blockIoTune("vdb", 0)  # what QEMU enforces now
    finally:
        conn.close()
    assert vol["id"][:20] in persistent
    # The volume type's front-end QoS spec: the disk's <iotune>, live in QEMU too.
    assert "<total_iops_sec>500</total_iops_sec>" in persistent
    assert live_limits["total_iops_sec"] == 500 and live_limits["read_bytes_sec"] == 0
    # An attached volume cannot be deleted (Cinder's 400).
    refused = compute.osc("volume", "delete", "vol1", cloud="nubis-demo", check=False)
    assert refused.returncode != 0
    compute.osc("server", "remove", "volume", VM, "vol1", cloud="nubis-demo")
    assert _volume(compute, "vol1")["status"] == "available"
    wait_for(lambda: _console(compute).rstrip().endswith(f"{DISKS_LINE} vda"),
             "the disk gone from the console")


def _forced_snapshot(compute: ComputeCloud) -> None:
    # A snapshot of the in-use volume needs --force, and is taken by the guest's QEMU.
    # (From 3.66 no force is needed; the CLI sends --force only below that.)
    refused = compute.osc("--os-volume-api-version", "3.0", "volume", "snapshot", "create",
                          "--volume", "vol1", "snap-no", cloud="nubis-demo", check=False)
    assert refused.returncode != 0 and "in-use" in refused.stderr
    compute.osc("--os-volume-api-version", "3.0", "volume", "snapshot", "create", "--volume",
                "vol1", "--force", "snap1", cloud="nubis-demo")
    wait_for(lambda: _show(compute, "volume", "snapshot", "show", "snap1")["status"]
             == "available", "the forced snapshot")
    compute.osc("volume", "create", "--snapshot", "snap1", "--size", "1", "fromsnap",
                cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "fromsnap")["status"] == "available",
             "a volume from the snapshot of an in-use volume")


def _online_extend(compute: ComputeCloud, sid: str) -> None:
    # Extending an attached volume: from volume API 3.42 (the functional tests check
    # the refusal below it), live.
    assert _capacity(sid, "vdb") == GIB
    compute.osc("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", "vol1",
                cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "vol1")["size"] == 2, "vol1 extended")
    assert _volume(compute, "vol1")["status"] == "in-use"
    assert _capacity(sid, "vdb") == 2 * GIB  # what the guest's disk now holds


def test_attach_snapshot_extend_and_release_on_a_running_server(
        compute: ComputeCloud) -> None:
    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--wait", VM, "-f", "json", cloud="nubis-demo")
    sid = server["id"]
    wait_for(lambda: f"{DISKS_LINE} vda" in _console(compute), "the boot-time disk list")
    spec = compute.osc("volume", "qos", "create", "--consumer", "front-end", "--property",
                       "total_iops_sec=500", "iops500", "-f", "json")
    compute.osc("volume", "type", "create", "limited")
    compute.osc("volume", "qos", "associate", "iops500", "limited")
    vol = compute.osc("volume", "create", "--size", "1", "--type", "limited", "vol1", "-f",
                      "json", cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "vol1")["status"] == "available", "vol1 available")
    _attach_and_detach(compute, sid, vol)
    # Attached again: changes to the in-use volume, then the server goes with it on.
    compute.osc("server", "add", "volume", VM, "vol1", cloud="nubis-demo")
    assert _volume(compute, "vol1")["status"] == "in-use"
    wait_for(lambda: f"{DISKS_LINE} vda vdb" in _console(compute), "vdb in the guest")
    _forced_snapshot(compute)
    _online_extend(compute, sid)
    compute.osc("volume", "snapshot", "delete", "snap1", cloud="nubis-demo")
    wait_for(lambda: _gone(compute, "volume", "snapshot", "show", "snap1"),
             "the snapshot deleted (through the guest's QEMU)")
    compute.osc("volume", "delete", "fromsnap", cloud="nubis-demo")
    # Deleting a server releases the volumes still attached to it.
    compute.osc("server", "delete", "--wait", VM, cloud="nubis-demo")
    wait_for(lambda: _volume(compute, "vol1")["status"] == "available",
             "vol1 released by the server delete")
    compute.osc("volume", "delete", vol["id"], cloud="nubis-demo")
    wait_for(lambda: _gone(compute, "volume", "show", vol["id"])
             and _gone(compute, "volume", "show", "fromsnap"), "the volumes deleted")
    compute.osc("volume", "qos", "delete", "--force", spec["id"])
    compute.osc("volume", "type", "delete", "limited")
