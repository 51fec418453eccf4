"""Erasure-coded storage policies on a real cloud (``nubis up``, four nodes).

python-swiftclient drives the proxy; faults are injected on the storage nodes'
devices (a fragment archive's record deleted, its bytes flipped) or by killing
a whole storage node, and every check reads back exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from nubis.common import backend as hdr
from nubis.daemons.storage.diskfile import ObjectRecord, object_key
from nubis.fastpath.hashpath import cluster_seed, hash_path_hex
from nubis.ring.ring import Ring
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually, start_cloud

pytestmark = pytest.mark.probe

DAEMON_SECTIONS = ("object_replicator", "object_auditor", "object_updater", "object_expirer",
                   "object_reconstructor")
NODES = 4
EC42 = 2  # policy index of ec42


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    extra = "".join(f"\n[{s}]\ninterval = 3600.0\n" for s in DAEMON_SECTIONS)
    c = start_cloud(tmp_path_factory.mktemp("nubis-ec"), extra_config=extra)
    try:
        yield c
    finally:
        c.down()


def connect(cloud: Cloud) -> sc.Connection:
    return sc.Connection(authurl=cloud.auth_url, user="test:tester",
                         key=cloud.config.tempauth.users["test:tester"].key, retries=0)


def account_of(conn: sc.Connection) -> str:
    return urllib.parse.unquote(conn.get_auth()[0].rsplit("/", 1)[1])


def once(cloud: Cloud, daemon: str, node: int) -> str:
    """Run one pass of ``daemon`` for ``node``; return its log."""
    env = {**os.environ, "NUBIS_STORAGE_NODE": str(node)}
    r = subprocess.run([sys.executable, "-m", "nubis", "daemon", daemon, "--once", "--config",
                        str(cloud.state / "nubis.toml")], capture_output=True, text=True,
                       timeout=300, check=False, env=env)
    assert r.returncode == 0, r.stderr
    return r.stderr


class Layout:
    """Where an EC object's fragment archives live."""

    def __init__(self, cloud: Cloud, policy: int = EC42) -> None:
        self.base_port = cloud.config.storage.object_port
        cl = cloud.config.cluster
        self.seed = int(cluster_seed(cl.hash_path_prefix.encode(), cl.hash_path_suffix.encode()))
        self.policy = policy
        self.ring = Ring(cloud.state / "rings" / f"object-{policy}.ring", seed=self.seed)
        self.devices = cloud.state / "devices"

    def hash(self, account: str, cont: str, name: str) -> str:
        return hash_path_hex(self.seed, f"/{account}/{cont}/{name}".encode())

    def node_of(self, dev: dict[str, Any]) -> int:
        return (int(dev["port"]) - self.base_port) // 10

    def device_dir(self, dev: dict[str, Any]) -> Path:
        return self.devices / f"node{self.node_of(dev)}" / str(dev["device"])

    def record(self, dev: dict[str, Any], hash_hex: str) -> ObjectRecord | None:
        env = lmdb.open(str(self.device_dir(dev) / "objects.lmdb"), max_dbs=8, readonly=True,
                        lock=False)
        try:
            meta = env.open_db(b"meta", create=False)
            with env.begin(db=meta) as txn:
                raw = txn.get(object_key(self.policy, hash_hex))
        finally:
            env.close()
        return None if raw is None else ObjectRecord.unpack(raw)

    def data_file(self, dev: dict[str, Any], part: int, hash_hex: str,
                  rec: ObjectRecord) -> Path:
        return (self.device_dir(dev) / f"objects-{self.policy}" / str(part) / hash_hex[-3:]
                / hash_hex / f"{rec.data_timestamp}.data")


def _info(cloud: Cloud) -> dict[str, Any]:
    with urllib.request.urlopen(f"{cloud.proxy_url}/info", timeout=10) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
    return doc


def test_info_announces_policies(cloud: Cloud) -> None:
    policies = _info(cloud)["swift"]["policies"]
    assert policies[0] == {"name": "rep3", "aliases": "rep3", "default": True}
    assert [p["name"] for p in policies] == ["rep3", "rep2", "ec42", "ec84"]


def test_policy_chosen_per_container(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "pol-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    assert conn.head_container(cont)["x-storage-policy"] == "ec42"
    with pytest.raises(ClientException) as bad:
        conn.put_container("x" + cont, headers={"X-Storage-Policy": "nope"})
    assert bad.value.http_status == 400
    with pytest.raises(ClientException) as change:
        conn.put_container(cont, headers={"X-Storage-Policy": "rep2"})
    assert change.value.http_status == 409


def test_account_usage_per_policy(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "usage-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "rep2"})
    conn.put_object(cont, "a", b"x" * 1000)

    def check() -> None:
        head = conn.head_account()
        assert int(head["x-account-storage-policy-rep2-container-count"]) >= 1
        assert int(head["x-account-storage-policy-rep2-bytes-used"]) >= 1000
        assert int(head["x-account-storage-policy-rep2-object-count"]) >= 1

    eventually(check, timeout=20)


@pytest.mark.parametrize("policy", ["ec42", "ec84"])
def test_five_mib_round_trip(cloud: Cloud, policy: str) -> None:
    conn = connect(cloud)
    cont = f"{policy}-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": policy})
    body = os.urandom(5 * 1024 * 1024 + 123)
    etag = conn.put_object(cont, "big", body)
    assert etag == hashlib.md5(body).hexdigest()
    headers, got = conn.get_object(cont, "big")
    assert got == body
    assert int(headers["content-length"]) == len(body)
    assert headers["etag"] == etag
    # a streamed (chunked) upload takes the other path
    conn.put_object(cont, "chunked", iter([body[:3_000_000], body[3_000_000:]]))
    assert conn.get_object(cont, "chunked")[1] == body
    # ranges and conditionals
    part = conn.get_object(cont, "big", headers={"Range": "bytes=1048570-2097160"})[1]
    assert part == body[1048570:2097161]
    with pytest.raises(ClientException) as nm:
        conn.get_object(cont, "big", headers={"If-None-Match": etag})
    assert nm.value.http_status == 304
    listing = conn.get_container(cont)[1]
    sizes = {o["name"]: (o["bytes"], o["hash"]) for o in listing}
    assert sizes["big"] == (len(body), etag)
    conn.copy_object(cont, "big", f"/{cont}/copy")
    assert conn.get_object(cont, "copy")[1] == body
    assert int(conn.head_object(cont, "copy")["content-length"]) == len(body)


def test_range_reads_of_a_large_object(cloud: Cloud) -> None:
    """A range GET opens the archives at its segments; every range reads exact bytes."""
    conn = connect(cloud)
    cont = "ecrange-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    mib = 1024 * 1024
    body = os.urandom(3 * mib + mib // 2 + 17)
    conn.put_object(cont, "big", body)
    n = len(body)
    for spec, want in (("0-9", body[0:10]), (f"{mib}-{mib + 24}", body[mib:mib + 25]),
                       (f"{2 * mib - 6}-{2 * mib + 4}", body[2 * mib - 6:2 * mib + 5]),
                       (f"{3 * mib}-", body[3 * mib:]), (f"{n - 5}-{n + 100}", body[n - 5:]),
                       ("-100", body[-100:]), (f"{mib + 1}-{3 * mib + 2}",
                                               body[mib + 1:3 * mib + 3]),
                       # suffixes: reopened at their segments past the first one
                       (f"-{2 * mib + 3}", body[-(2 * mib + 3):]), (f"-{n - mib}", body[mib:]),
                       (f"-{n - mib + 1}", body[mib - 1:]), (f"-{n}", body),
                       (f"-{n + 9}", body)):
        headers, got = conn.get_object(cont, "big", headers={"Range": f"bytes={spec}"})
        assert got == want, spec
        assert headers["content-range"].endswith(f"/{n}"), (spec, headers["content-range"])
    with pytest.raises(ClientException) as beyond:
        conn.get_object(cont, "big", headers={"Range": f"bytes={n}-"})
    assert beyond.value.http_status == 416
    headers, got = conn.get_object(cont, "big",
                                   headers={"Range": f"bytes=10-19,{2 * mib}-{2 * mib + 9}"})
    assert headers["content-type"].startswith("multipart/byteranges")
    assert body[10:20] in got and body[2 * mib:2 * mib + 10] in got
    # a link to it (zero bytes itself) and a manifest over it read whole, then ranged
    conn.put_object(cont, "link", b"", headers={"X-Symlink-Target": f"{cont}/big"})
    assert conn.get_object(cont, "link", headers={"Range": f"bytes={2 * mib}-{2 * mib + 9}"})[
        1] == body[2 * mib:2 * mib + 10]
    manifest = json.dumps([{"path": f"/{cont}/big"}, {"path": f"/{cont}/big"}])
    conn.put_object(cont, "slo", manifest, query_string="multipart-manifest=put")
    start = n + mib + 3
    assert conn.get_object(cont, "slo", headers={"Range": f"bytes={start}-{start + 9}"})[
        1] == (body + body)[start:start + 10]


def test_small_objects_and_delete(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "small-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    for size in (0, 1, 4096, 1024 * 1024, 1024 * 1024 + 1):
        body = os.urandom(size)
        conn.put_object(cont, f"o{size}", body)
        assert conn.get_object(cont, f"o{size}")[1] == body
    conn.delete_object(cont, "o4096")
    with pytest.raises(ClientException) as gone:
        conn.get_object(cont, "o4096")
    assert gone.value.http_status == 404


def _fragments(layout: Layout, account: str, cont: str,
               name: str) -> tuple[int, list[dict[str, Any]], str]:
    part, nodes = layout.ring.get_nodes(account, cont, name)
    return part, nodes, layout.hash(account, cont, name)


def _flip(layout: Layout, node: dict[str, Any], part: int, hash_hex: str, at: int) -> bytes:
    """Flip one byte of a fragment archive on disk; return its original bytes."""
    rec = layout.record(node, hash_hex)
    assert rec is not None
    path = layout.data_file(node, part, hash_hex, rec)
    original = path.read_bytes()
    data = bytearray(original)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def test_deleted_fragment_is_rebuilt(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "rebuild-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    body = os.urandom(3 * 1024 * 1024 + 77)
    conn.put_object(cont, "obj", body)
    layout = Layout(cloud)
    part, nodes, hash_hex = _fragments(layout, account, cont, "obj")
    victim = nodes[1]  # a data fragment's holder
    before = layout.record(victim, hash_hex)
    assert before is not None and before.meta[hdr.EC_FRAG_INDEX] == "1"
    original = layout.data_file(victim, part, hash_hex, before).read_bytes()
    _drop_record(layout, victim, hash_hex)
    assert layout.record(victim, hash_hex) is None
    assert conn.get_object(cont, "obj")[1] == body  # decoded from the others
    log = once(cloud, "object-reconstructor", layout.node_of(victim))
    assert "rebuilt=" in log, log
    after = layout.record(victim, hash_hex)
    assert after is not None and after.meta[hdr.EC_FRAG_INDEX] == "1"
    assert layout.data_file(victim, part, hash_hex, after).read_bytes() == original
    assert conn.get_object(cont, "obj")[1] == body


def test_corrupt_fragment_quarantined_and_rebuilt(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "corrupt-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    layout = Layout(cloud)
    bodies, victims = {}, {}
    for name in ("read", "audit"):
        bodies[name] = os.urandom(2 * 1024 * 1024 + 5)
        conn.put_object(cont, name, bodies[name])
        part, nodes, hash_hex = _fragments(layout, account, cont, name)
        victim = nodes[0] if name == "read" else nodes[2]
        original = _flip(layout, victim, part, hash_hex, 1000)
        victims[name] = (victim, part, hash_hex, original)
    # a GET meets the bad archive: its server refuses it, the proxy decodes from others
    assert conn.get_object(cont, "read")[1] == bodies["read"]
    log = once(cloud, "object-auditor", layout.node_of(victims["audit"][0]))
    assert "quarantined=" in log, log
    for name, (victim, _, hash_hex, _) in victims.items():
        assert layout.record(victim, hash_hex) is None, name
        qdir = layout.device_dir(victim) / "quarantined"
        assert any(p.name.startswith(hash_hex) for p in qdir.rglob("*")), f"{name} kept aside"
    assert conn.get_object(cont, "audit")[1] == bodies["audit"]
    for node in sorted({layout.node_of(v[0]) for v in victims.values()}):
        assert "rebuilt=" in once(cloud, "object-reconstructor", node)
    for name, (victim, part, hash_hex, original) in victims.items():
        after = layout.record(victim, hash_hex)
        assert after is not None, name
        assert layout.data_file(victim, part, hash_hex, after).read_bytes() == original, name
        assert conn.get_object(cont, name)[1] == bodies[name]


def test_an_archive_failing_mid_stream_is_replaced(cloud: Cloud) -> None:
    """A data archive whose later chunk is bad: its server cuts the GET; a parity one goes on."""
    conn = connect(cloud)
    cont = "midway-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    mib = 1024 * 1024
    body = os.urandom(5 * mib + 11)
    conn.put_object(cont, "obj", body)
    layout = Layout(cloud)
    part, nodes, hash_hex = _fragments(layout, account_of(conn), cont, "obj")
    # in data archive 1, past its first 1 MiB chunk (checked before the answer starts):
    # in the fragment of the 5th segment, so the server cuts the GET mid-stream
    _flip(layout, nodes[1], part, hash_hex, mib + 100)
    assert conn.get_object(cont, "obj")[1] == body
    got = conn.get_object(cont, "obj", headers={"Range": f"bytes={2 * mib + 5}-"})[1]
    assert got == body[2 * mib + 5:]


def test_storage_node_down_during_ec_gets(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "down-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    bodies = {f"o{i}": os.urandom(100_000 + i * 300_000) for i in range(6)}
    for name, body in bodies.items():
        conn.put_object(cont, name, body)
    labels = [f"{kind}-server-1" for kind in ("object", "container", "account")]
    for label in labels:
        cloud.kill(label)  # held down: a whole storage node is gone
    try:
        for name, body in bodies.items():
            assert conn.get_object(cont, name)[1] == body, name
            assert int(conn.head_object(cont, name)["content-length"]) == len(body)
    finally:
        for label in labels:
            (cloud.state / "run" / f"{label}.hold").unlink(missing_ok=True)
        cloud.up()


def test_fragments_parked_on_handoffs_are_reverted(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "revert-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Storage-Policy": "ec42"})
    layout = Layout(cloud)
    cloud.kill("object-server-1")
    try:
        body = os.urandom(1_500_000)
        conn.put_object(cont, "obj", body)  # node 1's fragments land on handoffs
        assert conn.get_object(cont, "obj")[1] == body
    finally:
        (cloud.state / "run" / "object-server-1.hold").unlink(missing_ok=True)
        cloud.up()
    _, nodes, hash_hex = _fragments(layout, account, cont, "obj")
    down = [(i, n) for i, n in enumerate(nodes) if layout.node_of(n) == 1]
    assert down, "node 1 holds no fragment of this object"
    primaries = {(n["port"], n["device"]) for n in nodes}
    parked = [d for d in layout.ring.devs if d is not None
              and (d["port"], d["device"]) not in primaries
              and layout.record(d, hash_hex) is not None]
    assert len(parked) == len(down)
    for node in range(NODES):
        once(cloud, "object-reconstructor", node)
    for i, n in down:
        rec = layout.record(n, hash_hex)
        assert rec is not None and rec.meta[hdr.EC_FRAG_INDEX] == str(i)
    assert all(layout.record(d, hash_hex) is None for d in parked)
    assert conn.get_object(cont, "obj")[1] == body


def _drop_record(layout: Layout, dev: dict[str, Any], hash_hex: str) -> None:
    """Delete one archive's record (its files stay: as good as lost to the server)."""
    env = lmdb.open(str(layout.device_dir(dev) / "objects.lmdb"), max_dbs=8, lock=True)
    try:
        meta = env.open_db(b"meta", create=False)
        parts = env.open_db(b"parts", create=False)
        with env.begin(write=True) as txn:
            assert txn.delete(object_key(layout.policy, hash_hex), db=meta)
            cur = txn.cursor(db=parts)
            drop = [k for k, _ in cur if k.endswith(bytes.fromhex(hash_hex))]
            for k in drop:
                txn.delete(k, db=parts)
    finally:
        env.close()
