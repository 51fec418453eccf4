"""Fault tests: the object-side background daemons repair what faults left behind.

A real four-node cloud (``nubis up``, three replicas); the daemons run under
``nubis up`` with a long interval, and each test drives passes itself with
``nubis daemon NAME --once`` per node. Every check reads back exact bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lmdb
import pytest
from nubis.daemons.storage.diskfile import ObjectRecord, object_key
from nubis.fastpath.hashpath import cluster_seed, hash_path_hex
from nubis.ring.ring import Ring
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually, start_cloud

pytestmark = pytest.mark.probe

DAEMON_SECTIONS = ("object_replicator", "object_auditor", "object_updater", "object_expirer",
                   "container_replicator", "account_replicator")
NODES = 4


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    extra = "".join(f"\n[{s}]\ninterval = 3600.0\n" for s in DAEMON_SECTIONS)
    c = start_cloud(tmp_path_factory.mktemp("nubis-durability"), extra_config=extra)
    try:
        yield c
    finally:
        c.down()


def connect(cloud: Cloud) -> sc.Connection:
    return sc.Connection(authurl=cloud.auth_url, user="test:tester",
                         key=cloud.config.tempauth.users["test:tester"].key, retries=0)


def once(cloud: Cloud, daemon: str, node: int) -> str:
    """Run one pass of ``daemon`` for ``node``; return its log."""
    env = {**os.environ, "NUBIS_STORAGE_NODE": str(node)}
    r = nubis_env(env, "daemon", daemon, "--once", "--config", str(cloud.state / "nubis.toml"))
    assert r.returncode == 0, r.stderr
    return r.stderr


def nubis_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubis", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def every_node(cloud: Cloud, daemon: str) -> str:
    return "".join(once(cloud, daemon, n) for n in range(NODES))


class Layout:
    """Where an object lives: its partition, primaries and the device directories."""

    def __init__(self, cloud: Cloud) -> None:
        self.base_port = cloud.config.storage.object_port
        cl = cloud.config.cluster
        self.seed = int(cluster_seed(cl.hash_path_prefix.encode(), cl.hash_path_suffix.encode()))
        self.ring = Ring(cloud.state / "rings" / "object.ring", seed=self.seed)
        self.cring = Ring(cloud.state / "rings" / "container.ring", seed=self.seed)
        self.devices = cloud.state / "devices"

    def hash(self, account: str, cont: str, name: str) -> str:
        return hash_path_hex(self.seed, f"/{account}/{cont}/{name}".encode())

    def primaries(self, account: str, cont: str, name: str) -> tuple[int, list[dict[str, Any]]]:
        return self.ring.get_nodes(account, cont, name)

    def device_dir(self, dev: dict[str, Any]) -> Path:
        node = (int(dev["port"]) - self.base_port) // 10
        return self.devices / f"node{node}" / str(dev["device"])

    def record(self, dev: dict[str, Any], hash_hex: str) -> ObjectRecord | None:
        env = lmdb.open(str(self.device_dir(dev) / "objects.lmdb"), max_dbs=8, readonly=True,
                        lock=False)
        try:
            meta = env.open_db(b"meta", create=False)
            with env.begin(db=meta) as txn:
                raw = txn.get(object_key(0, hash_hex))
        finally:
            env.close()
        return None if raw is None else ObjectRecord.unpack(raw)


def backend_get(dev: dict[str, Any], part: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(dev["ip"], int(dev["port"]), timeout=10)
    try:
        conn.request("GET", f"/{dev['device']}/{part}{urllib.parse.quote(path)}")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def account_of(conn: sc.Connection) -> str:
    return urllib.parse.unquote(conn.get_auth()[0].rsplit("/", 1)[1])


def test_background_daemons_run_under_nubis_up(cloud: Cloud) -> None:
    labels = {p.stem for p in (cloud.state / "run").glob("*.pid")}
    for daemon in ("object-replicator", "object-auditor", "object-updater", "object-expirer",
                   "container-replicator", "account-replicator"):
        assert {f"{daemon}-{n}" for n in range(NODES)} <= labels, labels

    def passed() -> None:
        assert (cloud.state / "status" / "object-replicator-0.json").is_file()
    eventually(passed, timeout=60)


def test_container_server_down_updater_fixes_listings(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "upd-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    layout = Layout(cloud)
    cpart, cnodes = layout.cring.get_nodes(account, cont)
    victim = cnodes[0]
    node = (int(victim["port"]) - cloud.config.storage.container_port) // 10
    cloud.kill(f"container-server-{node}")
    bodies = {f"o{i}": os.urandom(64 + i) for i in range(10)}
    try:
        for name, data in bodies.items():
            conn.put_object(cont, name, data)
        for name, data in bodies.items():  # readable at once
            assert conn.get_object(cont, name)[1] == data
    finally:
        r = cloud.up()
        assert r.returncode == 0, r.stderr
    status, listing = backend_get(victim, cpart, f"/{account}/{cont}")
    assert status in (200, 204) and set(listing.decode().split()) < set(bodies)
    for _ in range(3):  # a send that timed out on a loaded machine waits for the next pass
        log = every_node(cloud, "object-updater")
        status, listing = backend_get(victim, cpart, f"/{account}/{cont}")
        if status == 200 and set(listing.decode().split()) == set(bodies):
            break
    else:
        raise AssertionError(f"listing never complete: {listing!r}\n{log}")
    assert "applied=" in log
    # The object servers counted the updates they left queued; the updaters'
    # totals are exported by their nodes' object servers.
    ports = [cloud.config.storage.object_port + 10 * n for n in range(NODES)]
    assert sum(_metric(p, "nubis_object_async_pendings_queued_total") for p in ports) >= 1
    assert sum(_metric(p, "nubis_object_updater_applied_total", f'{{node="{n}"}}')
               for n, p in enumerate(ports)) >= 1


def _metric(port: int, name: str, labels: str = "") -> float:
    """Return one sample of a server's ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + labels + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _listing(dev: dict[str, Any], part: int, path: str) -> set[str]:
    status, body = backend_get(dev, part, path)
    assert status in (200, 204), (status, body)
    return set(body.decode().split())


def test_container_server_down_replication_brings_rows_up_to_date(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "crep-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    layout = Layout(cloud)
    cpart, cnodes = layout.cring.get_nodes(account, cont)
    victim = cnodes[1]
    node = (int(victim["port"]) - cloud.config.storage.container_port) // 10
    cloud.kill(f"container-server-{node}")
    bodies = {f"o{i}": os.urandom(32 + i) for i in range(12)}
    try:
        for name, data in bodies.items():
            conn.put_object(cont, name, data)
    finally:
        r = cloud.up()
        assert r.returncode == 0, r.stderr
    assert _listing(victim, cpart, f"/{account}/{cont}") < set(bodies)
    for _ in range(3):  # a push that timed out on a loaded machine waits for the next pass
        log = every_node(cloud, "container-replicator")
        if _listing(victim, cpart, f"/{account}/{cont}") == set(bodies):
            break
    else:
        raise AssertionError(f"rows never replicated\n{log}")
    assert "databases_pushed=" in log, log
    for dev in cnodes:  # every replica lists the same rows
        assert _listing(dev, cpart, f"/{account}/{cont}") == set(bodies)


def _backend(dev: dict[str, Any], method: str, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection(dev["ip"], int(dev["port"]), timeout=10)
    try:
        conn.request(method, f"/{dev['device']}{urllib.parse.quote(path)}", b"", headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_handoff_container_is_pushed_to_primaries_then_removed(cloud: Cloud) -> None:
    account = account_of(connect(cloud))
    cont = "hand-" + uuid.uuid4().hex[:6]
    layout = Layout(cloud)
    cpart, cnodes = layout.cring.get_nodes(account, cont)
    handoff = next(iter(layout.cring.get_more_nodes(cpart)))
    now = time.time()
    assert _backend(handoff, "PUT", f"/{cpart}/{account}/{cont}",
                    {"X-Timestamp": f"{now:.5f}"}) == 201
    names = {f"h{i}" for i in range(5)}
    for i, name in enumerate(sorted(names)):
        assert _backend(handoff, "PUT", f"/{cpart}/{account}/{cont}/{name}",
                        {"X-Timestamp": f"{now + 1 + i:.5f}", "X-Size": "3",
                         "X-Content-Type": "text/plain", "X-Etag": "e" * 32}) == 201
    node = (int(handoff["port"]) - cloud.config.storage.container_port) // 10
    for _ in range(3):
        log = once(cloud, "container-replicator", node)
        if "handoffs_removed=" in log:
            break
    else:
        raise AssertionError(f"the handoff copy was never removed\n{log}")
    for dev in cnodes:
        assert _listing(dev, cpart, f"/{account}/{cont}") == names
    assert backend_get(handoff, cpart, f"/{account}/{cont}")[0] == 404


def test_wiped_container_and_account_device_is_restored(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "wipe-" + uuid.uuid4().hex[:6]
    conn.put_container(cont, headers={"X-Container-Meta-Kept": "yes"})
    names = {f"w{i}" for i in range(20)}
    for name in names:
        conn.put_object(cont, name, b"x")
    layout = Layout(cloud)
    aring = Ring(cloud.state / "rings" / "account.ring", seed=layout.seed)
    cpart, cnodes = layout.cring.get_nodes(account, cont)
    apart, anodes = aring.get_nodes(account)
    # Container updates a loaded machine could not deliver at once wait in the
    # object servers' queues: deliver them first, so that the other primaries hold
    # every row the replicators are to restore (else the wiped copy comes back as
    # an empty container, as in theirs).
    for _ in range(5):
        every_node(cloud, "object-updater")
        if all(_listing(dev, cpart, f"/{account}/{cont}") == names for dev in cnodes):
            break
    else:
        raise AssertionError("container updates never delivered")
    victim = cnodes[0]
    node = (int(victim["port"]) - cloud.config.storage.container_port) // 10
    avictim = next((d for d in anodes
                    if (int(d["port"]) - cloud.config.storage.account_port) // 10 == node), None)
    cloud.kill(f"container-server-{node}")
    cloud.kill(f"account-server-{node}")
    wiped = [layout.devices / f"node{node}" / str(victim["device"]) / "containers.lmdb"]
    if avictim is not None:
        wiped.append(layout.devices / f"node{node}" / str(avictim["device"]) / "accounts.lmdb")
    for env in wiped:
        subprocess.run(["rm", "-rf", str(env)], check=True)
    r = cloud.up()
    assert r.returncode == 0, r.stderr
    assert backend_get(victim, cpart, f"/{account}/{cont}")[0] == 404
    for _ in range(3):
        log = every_node(cloud, "container-replicator") + every_node(cloud, "account-replicator")
        status, body = backend_get(victim, cpart, f"/{account}/{cont}")
        if status == 200 and set(body.decode().split()) == names:
            break
    else:
        raise AssertionError(f"container not restored: {status}\n{log}")
    conn_v = http.client.HTTPConnection(victim["ip"], int(victim["port"]), timeout=10)
    try:
        conn_v.request("HEAD", f"/{victim['device']}/{cpart}/{urllib.parse.quote(account)}/"
                               f"{urllib.parse.quote(cont)}")
        head = conn_v.getresponse()
        head.read()
    finally:
        conn_v.close()
    assert head.getheader("X-Container-Meta-Kept") == "yes"
    assert head.getheader("X-Container-Object-Count") == str(len(names))
    if avictim is not None:
        assert cont in _listing(avictim, apart, f"/{account}")


def _load(conn: sc.Connection, cont: str, acked: dict[str, bytes], stop: threading.Event,
          limit: int) -> None:
    for i in range(limit):
        if stop.is_set():
            return
        data = hashlib.sha256(f"{cont}{i}".encode()).digest() * 128  # 4 KiB
        try:
            conn.put_object(cont, f"load-{i}", data)
        except ClientException:
            continue  # not acknowledged
        acked[f"load-{i}"] = data


def test_killed_object_server_replicas_agree_after_one_pass(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "rep-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    acked: dict[str, bytes] = {}
    stop = threading.Event()
    loader = threading.Thread(target=_load, args=(connect(cloud), cont, acked, stop, 120))
    loader.start()
    try:
        eventually(lambda: _at_least(acked, 20), timeout=60)
        cloud.kill("object-server-1")
        eventually(lambda: _at_least(acked, 60), timeout=60)
    finally:
        stop.set()
        loader.join(timeout=120)
    big = os.urandom(300_000)  # a file body, written while the node is down
    conn.put_object(cont, "big", big)
    acked["big"] = big
    r = cloud.up()
    assert r.returncode == 0, r.stderr
    log = every_node(cloud, "object-replicator")
    assert "objects_pushed=" in log, log
    layout = Layout(cloud)
    for name, data in acked.items():
        assert conn.get_object(cont, name)[1] == data, name
        part, nodes = layout.primaries(account, cont, name)
        for dev in nodes:  # all three replicas agree, byte for byte
            status, body = backend_get(dev, part, f"/{account}/{cont}/{name}")
            assert status == 200 and body == data, (name, dev["device"])
        others = [d for d in layout.ring.devs if d is not None
                  and d["id"] not in {n["id"] for n in nodes}]
        for dev in others:  # handoffs were emptied
            assert backend_get(dev, part, f"/{account}/{cont}/{name}")[0] == 404, name


def _at_least(acked: dict[str, bytes], n: int) -> None:
    assert len(acked) >= n


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes((byte[0] ^ 0xFF,)))


def _corrupt_inline(layout: Layout, dev: dict[str, Any], hash_hex: str) -> None:
    env = lmdb.open(str(layout.device_dir(dev) / "objects.lmdb"), max_dbs=8)
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin(db=meta, write=True) as txn:
            key = object_key(0, hash_hex)
            rec = ObjectRecord.unpack(txn.get(key))
            assert rec.inline
            bad = bytes((rec.inline[0] ^ 0xFF,)) + rec.inline[1:]
            txn.put(key, replace(rec, inline=bad).pack())
    finally:
        env.close()


def test_flipped_bytes_are_quarantined_and_restored(cloud: Cloud) -> None:
    conn = connect(cloud)
    account = account_of(conn)
    cont = "aud-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    file_body, inline_body = os.urandom(200_000), os.urandom(4096)
    conn.put_object(cont, "file", file_body)
    conn.put_object(cont, "inline", inline_body)
    layout = Layout(cloud)
    victims = {}
    for name in ("file", "inline"):
        part, nodes = layout.primaries(account, cont, name)
        dev = nodes[0]
        hash_hex = layout.hash(account, cont, name)
        rec = layout.record(dev, hash_hex)
        assert rec is not None
        if name == "file":
            data = layout.device_dir(dev) / "objects" / str(part) / hash_hex[-3:] / hash_hex \
                / f"{rec.data_timestamp}.data"
            _flip(data, 150_000)
        else:
            _corrupt_inline(layout, dev, hash_hex)
        victims[name] = (part, dev, hash_hex)
    node = {n: (int(d["port"]) - cloud.config.storage.object_port) // 10
            for n, (_, d, _) in victims.items()}
    log = "".join(once(cloud, "object-auditor", n) for n in sorted(set(node.values())))
    assert "quarantined=" in log, log
    for name, (part, dev, hash_hex) in victims.items():
        assert layout.record(dev, hash_hex) is None, name  # gone from the replica...
        qdir = layout.device_dir(dev) / "quarantined" / "objects"
        assert any(p.name.startswith(hash_hex) for p in qdir.iterdir()), name  # ...kept aside
        assert backend_get(dev, part, f"/{account}/{cont}/{name}")[0] == 404
    assert conn.get_object(cont, "file")[1] == file_body
    assert conn.get_object(cont, "inline")[1] == inline_body
    every_node(cloud, "object-replicator")
    for name, body in (("file", file_body), ("inline", inline_body)):
        part, dev, _ = victims[name]
        assert backend_get(dev, part, f"/{account}/{cont}/{name}") == (200, body), name


def test_expirer_deletes_expired_objects(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "exp-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    conn.put_object(cont, "soon", b"bye", headers={"X-Delete-After": "1"})
    conn.put_object(cont, "later", b"bye")
    conn.post_object(cont, "later", headers={"X-Delete-After": "1"})
    conn.put_object(cont, "keep", b"stay")
    time.sleep(2.1)
    for name in ("soon", "later"):
        with pytest.raises(ClientException) as info:
            conn.get_object(cont, name)
        assert info.value.http_status == 404
    assert {o["name"] for o in conn.get_container(cont)[1]} == {"soon", "later", "keep"}
    log = every_node(cloud, "object-expirer")
    assert "expired=" in log, log
    # Container updates the object servers could not deliver at once (a loaded
    # machine) wait in their queues for the updater.
    every_node(cloud, "object-updater")

    def listed() -> None:
        assert [o["name"] for o in conn.get_container(cont)[1]] == ["keep"]
    eventually(listed)
    assert conn.get_object(cont, "keep")[1] == b"stay"
    # Expired entries leave the queues: a later pass finds nothing left to expire
    # (a deletion that failed on a loaded machine is retried by the next pass).
    for _ in range(3):
        if "expired=" not in every_node(cloud, "object-expirer"):
            break
    else:
        raise AssertionError("the expirer keeps finding due objects")
