"""Changes to a volume attached to a running guest (libvirt + QEMU TCG), with the CLI.

``volume snapshot create --force`` (API 3.0) of an in-use volume goes through the guest's
QEMU (the image is locked by it); a volume made from that snapshot is
``available``; ``volume set --size 2`` at volume API 3.42 grows the attached
volume live (``virDomainBlockResize``): the volume stays ``in-use`` and the
guest's disk has the new capacity.
One guest; every wait is a bounded poll; everything made is removed.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from nubis.testimage.initramfs import DISKS_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(1200)]
GIB = 1024 ** 3


def _show(compute: ComputeCloud, *what: str) -> dict[str, Any]:
    doc: dict[str, Any] = compute.osc(*what, "-f", "json", cloud="nubis-demo")
    return doc


def _gone(compute: ComputeCloud, *what: str) -> bool:
    return bool(compute.osc(*what, cloud="nubis-demo", check=False).returncode != 0)


def _capacity(server_id: str, target: str) -> int:
    conn = libvirt.open("qemu:///system")
    try:
        return int(conn.lookupByUUIDString(server_id).blockInfo(target)[0])
    finally:
        conn.close()


def test_forced_snapshot_and_online_extend(compute: ComputeCloud) -> None:
    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--wait", "onvm", "-f", "json", cloud="nubis-demo")
    vol = compute.osc("volume", "create", "--size", "1", "onv", "-f", "json",
                      cloud="nubis-demo")
    wait_for(lambda: _show(compute, "volume", "show", "onv")["status"] == "available",
             "onv available")
    compute.osc("server", "add", "volume", "onvm", "onv", cloud="nubis-demo")
    assert _show(compute, "volume", "show", "onv")["status"] == "in-use"
    wait_for(lambda: f"{DISKS_LINE} vda vdb" in str(compute.osc(
        "console", "log", "show", "onvm", cloud="nubis-demo").stdout), "vdb in the guest")

    # A snapshot of the in-use volume needs --force, and is taken by the guest's QEMU.
    # (From 3.66 no force is needed; the CLI sends --force only below that.)
    refused = compute.osc("--os-volume-api-version", "3.0", "volume", "snapshot", "create",
                          "--volume", "onv", "snap-no", cloud="nubis-demo", check=False)
    assert refused.returncode != 0 and "in-use" in refused.stderr
    compute.osc("--os-volume-api-version", "3.0", "volume", "snapshot", "create", "--volume",
                "onv", "--force", "snap1", cloud="nubis-demo")
    wait_for(lambda: _show(compute, "volume", "snapshot", "show", "snap1")["status"]
             == "available", "the forced snapshot")
    compute.osc("volume", "create", "--snapshot", "snap1", "--size", "1", "fromsnap",
                cloud="nubis-demo")
    wait_for(lambda: _show(compute, "volume", "show", "fromsnap")["status"] == "available",
             "a volume from the snapshot of an in-use volume")

    # Extending an attached volume: from volume API 3.42 (the functional tests check
    # the refusal below it), live.
    assert _capacity(server["id"], "vdb") == GIB
    compute.osc("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", "onv",
                cloud="nubis-demo")
    wait_for(lambda: _show(compute, "volume", "show", "onv")["size"] == 2,
             "onv extended")
    shown = _show(compute, "volume", "show", "onv")
    assert shown["status"] == "in-use"
    assert _capacity(server["id"], "vdb") == 2 * GIB  # what the guest's disk now holds

    compute.osc("volume", "snapshot", "delete", "snap1", cloud="nubis-demo")
    wait_for(lambda: _gone(compute, "volume", "snapshot", "show", "snap1"),
             "the snapshot deleted (through the guest's QEMU)")
    compute.osc("volume", "delete", "fromsnap", cloud="nubis-demo")
    compute.osc("server", "remove", "volume", "onvm", "onv", cloud="nubis-demo")
    compute.osc("server", "delete", "--wait", "onvm", cloud="nubis-demo")
    compute.osc("volume", "delete", vol["id"], cloud="nubis-demo")
    wait_for(lambda: _gone(compute, "volume", "show", vol["id"])
             and _gone(compute, "volume", "show", "fromsnap"), "the volumes deleted")
