"""Image byte helpers: virtual size, error pages, the service password."""

from __future__ import annotations

import json
import struct

from nubis.api.image.config import ImageConfig
from nubis.api.image.data import virtual_size
from nubis.api.image.errors import render


def test_virtual_size_from_the_qcow2_header() -> None:
    header = b"QFI\xfb" + struct.pack(">IQII", 3, 0, 0, 16) + struct.pack(">Q", 5 << 30)
    assert virtual_size("qcow2", header, 1234) == 5 << 30
    assert virtual_size("qcow2", b"not a qcow2 header at all, no...", 99) is None
    assert virtual_size("raw", b"", 4096) == 4096
    assert virtual_size("iso", b"", 4096) is None


def test_error_pages_follow_accept() -> None:
    kind, body = render(404, "No image found with ID x", "application/json")
    assert kind == "application/json"
    doc = json.loads(body)
    assert doc["code"] == "404 Not Found" and doc["message"].startswith("No image found")
    kind, body = render(409, "a <b>", "*/*")
    assert kind.startswith("text/html") and b"<h1>409 Conflict</h1>" in body
    assert b"a &lt;b&gt;" in body
    kind, body = render(400, "bad", "text/plain")
    assert kind.startswith("text/plain") and body.startswith(b"400 Bad Request\n\nbad")
    assert render(400, "x", "text/html;q=0.1, application/json")[0] == "application/json"


def test_service_password_is_derived_from_the_cluster_secrets() -> None:
    cfg = ImageConfig()
    one = cfg.resolved_service_password("a", "b")
    assert one == cfg.resolved_service_password("a", "b") and len(one) == 64
    assert one != cfg.resolved_service_password("a", "c")
    assert ImageConfig(service_password="set").resolved_service_password("a", "b") == "set"
