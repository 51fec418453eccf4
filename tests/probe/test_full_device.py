"""Fault test: a storage device runs out of space.

A real four-node cloud whose node-1 device ``d2`` is a size-limited tmpfs the
test mounts (and removes afterwards). The tmpfs is filled up; then every
write must still be acknowledged (handoffs take the full device's share),
the full node must answer 507, every acknowledged write must read back with
its exact bytes, and once space is freed one replicator pass per node must
move the handoffs' copies back to the device.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.proxy.cloud import Cloud, start_cloud
from tests.probe.test_durability import Layout, account_of, backend_get, connect, every_node

pytestmark = pytest.mark.probe

FULL_NODE = 1
FULL_DEVICE = "d2"
TMPFS_MIB = 48
DAEMON_SECTIONS = ("object_replicator", "object_auditor", "object_updater", "object_expirer",
                   "container_replicator", "account_replicator")


def _mount_tmpfs(path: Path, mib: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs",
                        str(path)], capture_output=True, text=True, check=False)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, Path]]:
    state = tmp_path_factory.mktemp("nubis-full")
    device = state / "devices" / f"node{FULL_NODE}" / FULL_DEVICE
    if not _mount_tmpfs(device, TMPFS_MIB):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        extra = "".join(f"\n[{s}]\ninterval = 3600.0\n" for s in DAEMON_SECTIONS)
        c = start_cloud(state, extra_config=extra)
        try:
            yield c, device
        finally:
            c.down()
    finally:
        _umount(device)


def _fill(device: Path) -> Path:
    """Fill the device's filesystem to the last block; return the filler file."""
    filler = device / "filler"
    chunk = 1 << 20
    with open(filler, "wb", buffering=0) as fh:
        while chunk >= 512:
            try:
                if fh.write(b"\0" * chunk) < chunk:
                    chunk //= 2
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk //= 2
    assert shutil.disk_usage(device).free < 64 << 10
    return filler


def _backend_put(dev: dict[str, Any], part: int, path: str, body: bytes) -> int:
    conn = http.client.HTTPConnection(dev["ip"], int(dev["port"]), timeout=30)
    try:
        conn.request("PUT", f"/{dev['device']}/{part}{urllib.parse.quote(path)}", body,
                     {"X-Timestamp": "1700000000.00000", "Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_full_device_writes_land_on_handoffs_and_come_back(
        cloud: tuple[Cloud, Path]) -> None:
    c, device = cloud
    conn = connect(c)
    account = account_of(conn)
    cont = "full-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    layout = Layout(c)
    filler = _fill(device)
    acked: dict[str, bytes] = {}
    for i in range(24):  # files and inline bodies
        data = os.urandom(150_000 if i % 2 else 3000)
        conn.put_object(cont, f"o{i}", data)  # acknowledged (raises otherwise)
        acked[f"o{i}"] = data
    on_full = {n for n in acked
               if any(d["device"] == FULL_DEVICE for d in layout.primaries(account, cont, n)[1])}
    assert on_full, "no object has the full device as a primary"
    name = next(iter(on_full))
    part, nodes = layout.primaries(account, cont, name)
    full = next(d for d in nodes if d["device"] == FULL_DEVICE)
    assert _backend_put(full, part, f"/{account}/{cont}/probe-507", os.urandom(100_000)) == 507
    assert _backend_put(full, part, f"/{account}/{cont}/probe-small", b"tiny") == 507
    for name, data in acked.items():  # nothing lost while the device is full
        assert conn.get_object(cont, name)[1] == data, name
        part, nodes = layout.primaries(account, cont, name)
        good = sum(backend_get(d, part, f"/{account}/{cont}/{name}") == (200, data)
                   for d in layout.ring.devs if d is not None)
        assert good >= 3, name  # three copies, handoffs included
    # While it is full the other primaries' replicators use handoffs in its place.
    assert "handoffs_used=" in every_node(c, "object-replicator")
    filler.unlink()
    log = ""
    for _ in range(3):  # a push that timed out on a loaded machine waits for the next pass
        log = every_node(c, "object-replicator")
        if all(backend_get(_full_of(layout, account, cont, n), _part(layout, account, cont, n),
                           f"/{account}/{cont}/{n}") == (200, acked[n]) for n in on_full):
            break
    else:
        raise AssertionError(f"the full device never got its objects back\n{log}")
    for name, data in acked.items():
        part, nodes = layout.primaries(account, cont, name)
        for dev in nodes:
            assert backend_get(dev, part, f"/{account}/{cont}/{name}") == (200, data), name
        ids = {d["id"] for d in nodes}
        for dev in (d for d in layout.ring.devs if d is not None and d["id"] not in ids):
            assert backend_get(dev, part, f"/{account}/{cont}/{name}")[0] == 404, name


def _part(layout: Layout, account: str, cont: str, name: str) -> int:
    return layout.primaries(account, cont, name)[0]


def _full_of(layout: Layout, account: str, cont: str, name: str) -> dict[str, Any]:
    return next(d for d in layout.primaries(account, cont, name)[1]
                if d["device"] == FULL_DEVICE)

