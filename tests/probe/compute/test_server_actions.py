"""Pause, suspend, resize, rebuild and snapshot real TCG guests with the ``openstack`` CLI.

One guest (a module fixture) goes through every action, test by test in file
order (boots are the slow part); the snapshot is booted once to show the
uploaded image is a working disk. Every wait is a bounded poll.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import libvirt
import pytest
import requests

from nubis.testimage.initramfs import BOOT_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for
from tests.probe.compute.test_server_flow import assert_gone, status

pytestmark = pytest.mark.probe


def domain_memory_mib(server_id: str) -> int:
    conn = libvirt.open("qemu:///system")
    try:
        return int(conn.lookupByUUIDString(server_id).maxMemory()) // 1024
    finally:
        conn.close()


def allocations(compute: ComputeCloud, consumer: str) -> dict[str, Any]:
    """Return a consumer's allocations from Placement (admin token)."""
    token, _ = compute.login("nubis-admin")
    cfg = compute.cloud.config
    url = f"http://{cfg.cluster.bind_ip}:{cfg.scheduler.port}/placement/allocations/{consumer}"
    r = requests.get(url, headers={"X-Auth-Token": token,
                                   "OpenStack-API-Version": "placement 1.12"}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json()["allocations"])


def resources(compute: ComputeCloud, consumer: str) -> dict[str, int]:
    allocs = allocations(compute, consumer)
    return dict(next(iter(allocs.values()))["resources"]) if allocs else {}


def wait_status(compute: ComputeCloud, name: str, want: str) -> None:
    wait_for(lambda: status(compute, name) == want, f"{name} {want}")


@pytest.fixture(scope="module")
def act1(compute: ComputeCloud) -> Iterator[str]:
    """The server every test of this module acts on (deleted at the end)."""
    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--wait", "act1", "-f", "json")
    assert server["status"] == "ACTIVE"
    sid = str(server["id"])
    yield sid
    compute.osc("server", "delete", "--wait", sid)
    assert_gone(compute, sid)
    assert allocations(compute, sid) == {}


def test_pause_and_suspend(compute: ComputeCloud, act1: str) -> None:
    compute.osc("server", "pause", "act1")
    wait_status(compute, "act1", "PAUSED")
    assert compute.osc("server", "show", "act1", "-f", "json")[
        "OS-EXT-STS:power_state"] in (3, "Paused")
    compute.osc("server", "unpause", "act1")
    wait_status(compute, "act1", "ACTIVE")
    compute.osc("server", "suspend", "act1")
    wait_status(compute, "act1", "SUSPENDED")
    compute.osc("server", "resume", "act1")
    wait_status(compute, "act1", "ACTIVE")
    # an action the state does not allow is Nova's 409
    assert compute.osc("server", "unpause", "act1", check=False).returncode != 0


def test_resize_revert_then_confirm(compute: ComputeCloud, act1: str) -> None:
    assert resources(compute, act1)["MEMORY_MB"] == 128
    compute.osc("server", "resize", "--flavor", "m1.micro", "--wait", "act1")
    assert status(compute, "act1") == "VERIFY_RESIZE"
    assert domain_memory_mib(act1) == 192
    assert resources(compute, act1)["MEMORY_MB"] == 192
    compute.osc("server", "resize", "revert", "act1")
    wait_status(compute, "act1", "ACTIVE")
    shown = compute.osc("server", "show", "act1", "-f", "json")
    assert "m1.nano" in str(shown["flavor"])
    assert domain_memory_mib(act1) == 128
    assert resources(compute, act1)["MEMORY_MB"] == 128
    compute.osc("server", "resize", "--flavor", "m1.micro", "--wait", "act1")
    assert status(compute, "act1") == "VERIFY_RESIZE"
    compute.osc("server", "resize", "confirm", "act1")
    wait_status(compute, "act1", "ACTIVE")
    assert "m1.micro" in str(compute.osc("server", "show", "act1", "-f", "json")["flavor"])
    assert domain_memory_mib(act1) == 192
    assert resources(compute, act1)["MEMORY_MB"] == 192
    wait_for(lambda: (lambda t: BOOT_LINE in t)(
        str(compute.osc("console", "log", "show", "act1").stdout)), "boot line after resize")


def test_rebuild(compute: ComputeCloud, act1: str) -> None:
    compute.osc("server", "rebuild", "--image", "nubis-test", "--wait", "act1")
    assert status(compute, "act1") == "ACTIVE"
    wait_for(lambda: (lambda t: BOOT_LINE in t and act1 in t)(
        str(compute.osc("console", "log", "show", "act1").stdout)), "boot line after rebuild")


def test_snapshot_boots(compute: ComputeCloud, act1: str) -> None:
    compute.osc("server", "image", "create", "--name", "act1-snap", "--wait", "act1")
    image = compute.osc("image", "show", "act1-snap", "-f", "json")
    assert image["status"] == "active" and image["disk_format"] == "qcow2"
    assert image["size"] > 0
    assert status(compute, "act1") == "ACTIVE"
    snap = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "act1-snap",
                       "--nic", "none", "--wait", "from-snap", "-f", "json")
    assert snap["status"] == "ACTIVE"
    wait_for(lambda: (lambda t: BOOT_LINE in t and snap["id"] in t)(
        str(compute.osc("console", "log", "show", "from-snap").stdout)),
        "the snapshot's boot line")
    compute.osc("server", "delete", "--wait", "from-snap")
    compute.osc("image", "delete", "act1-snap")
    assert_gone(compute, snap["id"])


def test_every_action_is_recorded(compute: ComputeCloud, act1: str) -> None:
    events = {e["Action"] for e in compute.osc("server", "event", "list", "act1", "-f",
                                                "json")}
    assert {"create", "pause", "unpause", "suspend", "resume", "resize", "revertResize",
            "confirmResize", "rebuild", "createImage"} <= events
