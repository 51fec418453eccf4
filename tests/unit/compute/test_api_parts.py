"""Pure parts of the compute API and daemon: microversions, states, parsing, messages."""

from __future__ import annotations

import base64
import uuid

import pytest
from nubis.api.compute.clients import no_valid_host_message
from nubis.api.compute.errors import MAX_VERSION, fault_body, requested_version
from nubis.api.compute.model import server_status
from nubis.api.compute.servers import check_networks, parse_create, sanitize_hostname
from nubis.api.shared.errors import BadRequestError, NotAcceptableError
from nubis.daemons.compute.service import BadBuildRequestError, parse_build


def test_microversion_headers() -> None:
    assert requested_version(None, None) == (2, 1)
    assert requested_version("compute 2.47", None) == (2, 47)
    assert requested_version("placement 1.2, compute 2.60", "2.3") == (2, 60)
    assert requested_version(None, "2.10") == (2, 10)
    assert requested_version("compute latest", None) == MAX_VERSION
    for bad in ("compute 2.97", "compute 3.0", "compute 2.0"):
        with pytest.raises(NotAcceptableError):
            requested_version(bad, None)
    with pytest.raises(BadRequestError):
        requested_version("compute two", None)


def test_status_follows_nova() -> None:
    assert server_status("building", "scheduling") == "BUILD"
    assert server_status("active", None) == "ACTIVE"
    assert server_status("active", "rebooting") == "REBOOT"
    assert server_status("active", "rebooting_hard") == "HARD_REBOOT"
    assert server_status("active", "powering-off") == "ACTIVE"
    assert server_status("stopped", None) == "SHUTOFF"
    assert server_status("error", "deleting") == "ERROR"


def test_fault_names() -> None:
    assert fault_body(404, "gone") == b'{"itemNotFound": {"code": 404, "message": "gone"}}'
    assert b"conflictingRequest" in fault_body(409, "x")
    assert b"computeFault" in fault_body(406, "x")
    assert b'"error"' in fault_body(401, "x")


def test_networks_rules() -> None:
    assert check_networks(None, (2, 36), present=False) == "none"  # below 2.37
    assert check_networks("none", (2, 37), present=True) == "none"
    assert check_networks("auto", (2, 37), present=True) == "auto"
    assert check_networks([], (2, 1), present=True) == []
    net = str(uuid.uuid4())
    assert check_networks([{"uuid": net, "fixed_ip": "10.0.0.5"}], (2, 37), present=True) == [
        {"uuid": net, "fixed_ip": "10.0.0.5"}]
    with pytest.raises(BadRequestError):
        check_networks(None, (2, 37), present=False)
    with pytest.raises(BadRequestError):
        check_networks([{"port": net, "uuid": net}], (2, 37), present=True)
    with pytest.raises(BadRequestError):
        check_networks("auto", (2, 36), present=True)


def test_parse_create() -> None:
    body = {"server": {"name": "My VM_1", "imageRef": "http://x/images/abc",
                       "flavorRef": "42", "networks": "none", "min_count": "2",
                       "user_data": base64.b64encode(b"#!/bin/sh").decode()}}
    req, hints = parse_create(body, (2, 37))
    assert (req.image_ref, req.flavor_ref, req.min_count, req.max_count) == (
        "abc", "42", 2, 2)
    assert hints == {}
    with pytest.raises(BadRequestError):
        parse_create({"server": {**body["server"], "user_data": "%%"}}, (2, 37))
    with pytest.raises(BadRequestError):
        parse_create({"server": {**body["server"], "name": "  "}}, (2, 37))
    assert sanitize_hostname("My VM_1", "fallback") == "my-vm-1"
    assert sanitize_hostname("!!!", "server-x") == "server-x"


def test_parse_create_destination() -> None:
    server = {"name": "vm", "imageRef": "abc", "flavorRef": "42", "networks": "none"}

    def parse(mv: tuple[int, int], **extra: str):  # type: ignore[no-untyped-def]
        return parse_create({"server": {**server, **extra}}, mv)[0]

    req = parse((2, 37), availability_zone="zone-a:host1")
    assert req.availability_zone == "zone-a" and req.destination is not None
    assert (req.destination.hosts, req.destination.forced) == (("host1",), True)
    req = parse((2, 37), availability_zone=":host1:host1")  # no zone, host and node
    assert req.availability_zone is None and req.destination is not None
    assert req.destination.hosts == ("host1",)
    req = parse((2, 37), availability_zone="zone-a")
    assert req.availability_zone == "zone-a" and req.destination is None
    req = parse((2, 74), host="h2", hypervisor_hostname="h2")
    assert req.destination is not None and req.destination.hosts == ("h2",)
    assert not req.destination.forced
    req = parse((2, 74), host="h2", hypervisor_hostname="h3")
    assert req.destination is not None and req.destination.mismatched
    assert req.destination.hosts == ()  # never "any host": the API refuses the pair
    with pytest.raises(BadRequestError, match="'host' was unexpected"):
        parse((2, 73), host="h2")
    with pytest.raises(BadRequestError, match="cannot be combined"):
        parse((2, 74), host="h2", availability_zone="nova:h1")


def test_no_valid_host_message() -> None:
    text = no_valid_host_message({"message": "No valid host was found. RamFilter-equivalent: "
                                  "1 of 1 removed", "filters": [
                                      {"name": "RamFilter-equivalent", "removed": 1,
                                       "entered": 1}]})
    assert text.count("No valid host") == 1 and "RamFilter-equivalent" in text
    text = no_valid_host_message({"message": "", "filters": [
        {"name": "ComputeFilter", "removed": 2, "entered": 2}]})
    assert text == "No valid host was found. (ComputeFilter removed 2 of 2 hosts)"


def test_parse_build() -> None:
    sha = "a" * 128
    good = {"uuid": str(uuid.uuid4()), "vcpus": 1, "memory_mb": 128,
            "image": {"id": "i", "sha512": sha, "disk_format": "qcow2"},
            "kernel": {"id": "k", "sha512": sha}, "user_data": base64.b64encode(b"x").decode()}
    req = parse_build(good)
    assert req.image is not None and req.image.sha512 == sha and req.user_data == b"x"
    for bad in ({**good, "uuid": "nope"}, {**good, "vcpus": True},
                {**good, "image": {"id": "i", "sha512": "short"}},
                {**good, "image": {"id": "i", "sha512": sha, "disk_format": "vmdk"}},
                {**good, "user_data": "%%"}, [1]):
        with pytest.raises(BadBuildRequestError):
            parse_build(bad)
