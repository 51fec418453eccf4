"""Names at Swift's limits (1,024-byte objects, 256-byte containers) through python-swiftclient.

LMDB keys hold at most 511 bytes; the container rows key long names by a head
and a hash (``daemons/storage/listing.py``). These tests check that every
allowed name is stored, listed in exact byte order in every format and with
``prefix``/``delimiter``/``marker``, and read back.
"""

from __future__ import annotations

import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest

from tests.functional.proxy.cloud import Cloud, eventually
from tests.functional.proxy.test_core import conn_for

pytestmark = pytest.mark.functional


def test_1024_byte_object_name_round_trips(cloud: Cloud) -> None:
    conn = conn_for(cloud)
    cont = f"long-{uuid.uuid4().hex[:8]}"
    conn.put_container(cont)
    head = "d/" + "é" * 300  # 602 bytes: past the short-key limit, multi-byte UTF-8
    names = [head + "x" * (1024 - len(head.encode())),
             head + "w" * (1024 - len(head.encode())),
             head + "x" * (1000 - len(head.encode())),
             "a" * 1024, "plain"]
    assert all(len(n.encode()) <= 1024 for n in names)
    for i, name in enumerate(names):
        conn.put_object(cont, name, f"body {i}".encode())
    expected = sorted(names, key=lambda n: n.encode())

    def listed() -> None:
        _, rows = conn.get_container(cont)
        assert [r["name"] for r in rows] == expected
    eventually(listed)
    _, rows = conn.get_container(cont, full_listing=True)
    assert {r["name"]: r["bytes"] for r in rows}[names[0]] == len(b"body 0")
    # reverse, prefix, delimiter, marker (a long marker inside the shared head)
    _, rows = conn.get_container(cont, query_string="reverse=on")
    assert [r["name"] for r in rows] == expected[::-1]
    _, rows = conn.get_container(cont, prefix=head)
    assert [r["name"] for r in rows] == [n for n in expected if n.startswith(head)]
    _, rows = conn.get_container(cont, delimiter="/")
    assert [r.get("subdir", r.get("name")) for r in rows] == ["a" * 1024, "d/", "plain"]
    _, rows = conn.get_container(cont, marker=names[2])
    assert [r["name"] for r in rows] == expected[expected.index(names[2]) + 1:]
    _, rows = conn.get_container(cont, marker=names[1], end_marker=names[0])
    assert [r["name"] for r in rows] == [n for n in expected if names[1] < n < names[0]]
    for name in names:
        _, data = conn.get_object(cont, name)
        assert data == f"body {names.index(name)}".encode()


def test_long_names_in_plain_and_xml_listings(cloud: Cloud) -> None:
    conn = conn_for(cloud)
    cont = "c" * 250 + uuid.uuid4().hex[:6]  # 256 bytes: the longest container name
    conn.put_container(cont)
    name = "o" * 1024
    conn.put_object(cont, name, b"x")
    url, token = conn.get_auth()

    def listed(fmt: str) -> bytes:
        req = urllib.request.Request(f"{url}/{cont}?format={fmt}",
                                     headers={"X-Auth-Token": token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return bytes(r.read())

    def plain() -> None:
        assert listed("plain") == name.encode() + b"\n"
    eventually(plain)
    root = ET.fromstring(listed("xml"))
    assert [e.text for e in root.iter("name")] == [name]
    _, containers = conn.get_account(prefix=cont)
    assert [c["name"] for c in containers] == [cont]
    conn.delete_object(cont, name)

    def emptied() -> None:
        _, rows = conn.get_container(cont)
        assert rows == []
    eventually(emptied)
    conn.delete_container(cont)
