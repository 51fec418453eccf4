"""The classic flow with the real ``openstack`` CLI and openstacksdk, booting real guests.

Guests are the project's test image under QEMU TCG (``m1.nano``); every wait is a
bounded poll. Boots are few and reused across steps: the CLI flow boots one
guest, the SDK one, and the ``--min 3`` request three at once.
"""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from nubis.testimage.initramfs import BOOT_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = pytest.mark.probe


def status(compute: ComputeCloud, name: str) -> str:
    shown = compute.osc("server", "show", name, "-f", "json")
    return str(shown["status"])


def assert_gone(compute: ComputeCloud, server_id: str) -> None:
    """No domain, no instance files, no allocation left for the server."""
    conn = libvirt.open("qemu:///system")
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(server_id)
    finally:
        conn.close()
    assert not compute.instance_dir(server_id).exists()


def test_cli_classic_flow(compute: ComputeCloud, tmp_path: Path) -> None:
    token = compute.osc("token", "issue", "-f", "json")
    assert token["id"] and token["project_id"]
    flavors = {f["Name"]: f for f in compute.osc("flavor", "list", "-f", "json")}
    assert {"m1.nano", "m1.micro", "m1.tiny", "m1.small", "m1.medium"} <= set(flavors)
    assert (flavors["m1.nano"]["VCPUs"], flavors["m1.nano"]["RAM"],
            flavors["m1.nano"]["Disk"]) == (1, 128, 1)
    images = {i["Name"] for i in compute.osc("image", "list", "-f", "json")}
    assert "nubis-test" in images
    key = compute.osc("keypair", "create", "k", check=True).stdout
    assert "PRIVATE KEY" in key
    (tmp_path / "k.pem").write_text(key)

    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--key-name", "k", "--wait", "vm1", "-f", "json")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:power_state"] in (1, "Running")
    assert server["key_name"] == "k"

    def console() -> str:
        return str(compute.osc("console", "log", "show", "vm1").stdout)
    text = wait_for(lambda: (lambda t: t if BOOT_LINE in t and sid in t else "")(console()),
                    "the boot line and the server id on the console")
    assert f"nubis-test-image uuid: {sid}" in text
    assert compute.instance_dir(sid).is_dir()

    compute.osc("server", "stop", "vm1")
    wait_for(lambda: status(compute, "vm1") == "SHUTOFF", "vm1 SHUTOFF")
    shown = compute.osc("server", "show", "vm1", "-f", "json")
    assert shown["OS-EXT-STS:power_state"] in (4, "Shutdown")
    compute.osc("server", "start", "vm1")
    wait_for(lambda: status(compute, "vm1") == "ACTIVE", "vm1 ACTIVE again")
    compute.osc("server", "reboot", "--wait", "vm1")
    assert status(compute, "vm1") == "ACTIVE"
    compute.osc("server", "reboot", "--hard", "--wait", "vm1")
    assert status(compute, "vm1") == "ACTIVE"

    # a guest powered off behind the API's back: the power-state sync records SHUTOFF
    conn = libvirt.open("qemu:///system")
    try:
        conn.lookupByUUIDString(sid).destroy()
    finally:
        conn.close()
    wait_for(lambda: status(compute, "vm1") == "SHUTOFF", "the sync to see vm1 off", bound=90)
    compute.osc("server", "start", "vm1")
    wait_for(lambda: status(compute, "vm1") == "ACTIVE", "vm1 ACTIVE after the sync")

    compute.osc("server", "delete", "--wait", "vm1")
    assert compute.osc("server", "show", "vm1", check=False).returncode != 0
    assert_gone(compute, sid)


def test_sdk_create_server_wait(compute: ComputeCloud) -> None:
    conn = compute.sdk("nubis-demo")
    image = conn.image.find_image("nubis-test", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.nano", ignore_missing=False)
    # The cloud layer's create_server asks for ``networks: auto`` (2.37+) and, with
    # wait=True, waits for ACTIVE and an address: the project's network serves both.
    server = conn.create_server(name="sdk-vm", image=image.id, flavor=flavor.id,
                                meta={"purpose": "probe"}, wait=True, timeout=240)
    assert server.status == "ACTIVE" and server.metadata == {"purpose": "probe"}
    assert server.addresses, "create_server(wait=True) returned a server without addresses"
    assert server.flavor.original_name == "m1.nano"
    assert server.id in {s.id for s in conn.compute.servers()}
    out = wait_for(lambda: (lambda t: t if BOOT_LINE in t and server.id in t else "")(
        conn.compute.get_server_console_output(server)["output"]), "SDK console boot line")
    assert f"nubis-test-image uuid: {server.id}" in out
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=240)
    assert_gone(compute, server.id)


def test_min_count_three(compute: ComputeCloud) -> None:
    compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                "--nic", "none", "--min", "3", "--max", "3", "--wait", "trio",
                cloud="nubis-demo")
    listed = compute.osc("server", "list", "--name", "^trio-", "-f", "json",
                         cloud="nubis-demo")
    assert sorted(s["Name"] for s in listed) == ["trio-1", "trio-2", "trio-3"]
    assert all(s["Status"] == "ACTIVE" for s in listed)
    ids = [s["ID"] for s in listed]
    compute.osc("server", "delete", "--wait", *ids, cloud="nubis-demo")
    for sid in ids:
        assert_gone(compute, sid)
