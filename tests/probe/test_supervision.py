"""Probe tests of supervision: daemons killed with SIGKILL come back by themselves.

Real daemons on loopback test ports (``nubis up`` in a tmp dir). Every wait is
bounded; nothing here runs ``nubis up`` to bring a daemon back.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from swiftclient import client as sc

from nubis import defaults
from nubis.settings import load_config
from nubis.supervisor import Supervisor, health_ok, plan
from nubis.watchdog import Backoff, Watchdog
from tests.functional.proxy.cloud import Cloud, nubis, start_cloud
from tests.ports import free_block

pytestmark = pytest.mark.probe

#: Seconds a killed daemon gets to be back and healthy.
COMEBACK = 60.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def _within(seconds: float, check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("supervision") / "state", proxy_workers=2)
    try:
        yield c
    finally:
        c.down()


def _comes_back(cloud: Cloud, label: str) -> int:
    """SIGKILL ``label``; wait for a new, healthy process; return its pid."""
    sup = Supervisor(cloud.config, cloud.state / "nubis.toml", cloud.state)
    proc = next(p for p in plan(cloud.config) if p.label == label)
    old = cloud.pid(label)
    os.kill(old, signal.SIGKILL)

    def back() -> bool:
        pid = sup.read_pid(proc)
        return pid is not None and pid != old and health_ok(proc)

    assert _within(COMEBACK, back), f"{label} not back; log:\n{sup.log_tail(proc)}"
    record = sup.read_exit(proc)
    assert record is not None and record.status == -signal.SIGKILL
    return cloud.pid(label)


def _background_labels() -> list[str]:
    """Return one process of every registered background daemon (node 0 if per node)."""
    from nubis.registry import DAEMONS
    from nubis.supervisor import PER_NODE

    return [f"{name}-0" if spec.per_node or name in PER_NODE else name
            for name, spec in DAEMONS.items() if spec.kind == "background"]


@pytest.mark.parametrize("label", ["api", "scheduler", "object-server-1",
                                   "container-server-2", "account-server-0",
                                   *_background_labels()])
def test_killed_daemon_comes_back(cloud: Cloud, label: str) -> None:
    _comes_back(cloud, label)
    status = nubis("status", "--state-dir", str(cloud.state))
    assert status.returncode == 0, status.stdout
    line = next(x for x in status.stdout.splitlines() if x.startswith(label + " "))
    assert "healthy" in line and "killed by SIGKILL" in line


def test_killed_proxy_leaves_no_orphan_and_serves_again(cloud: Cloud) -> None:
    storage, token = cloud.login()
    sc.put_container(storage, token, "sv")
    sc.put_object(storage, token, "sv", "before", b"acknowledged")
    old = cloud.pid("proxy")
    workers = _children(old)
    assert len(workers) == 2
    new = _comes_back(cloud, "proxy")
    # The old workers died with their parent: nothing of it holds the port.
    assert _within(COMEBACK, lambda: not any(_alive(w) for w in workers))
    assert len(_children(new)) == 2
    storage, token = cloud.login()
    assert sc.get_object(storage, token, "sv", "before")[1] == b"acknowledged"
    sc.put_object(storage, token, "sv", "after", b"x" * 4096)
    assert sc.get_object(storage, token, "sv", "after")[1] == b"x" * 4096


def test_a_container_one_worker_made_is_found_by_the_other(cloud: Cloud) -> None:
    """A worker that saw "no such container" finds it once another worker made it."""
    storage, token = cloud.login()
    conns = [sc.http_connection(storage) for _ in range(8)]  # spread over both workers
    try:
        for conn in conns:
            with pytest.raises(sc.ClientException) as exc:
                sc.head_container(storage, token, "made-later", http_conn=conn)
            assert exc.value.http_status == 404
        sc.put_container(storage, token, "made-later", http_conn=conns[0])
        for i, conn in enumerate(conns):
            sc.put_object(storage, token, "made-later", f"o{i}", b"x", http_conn=conn)
        names = [o["name"] for o in sc.get_container(storage, token, "made-later")[1]]
        assert names == [f"o{i}" for i in range(8)]
    finally:
        for conn in conns:
            conn[1].close()


def test_metrics_count_requests(cloud: Cloud) -> None:
    storage, token = cloud.login()
    sc.head_account(storage, token)
    object_port = cloud.config.storage.object_port
    for port in (object_port, cloud.config.proxy.port, cloud.config.api.port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        assert "# TYPE nubis_http_request_duration_seconds histogram" in text, port
    wanted = 'nubis_http_requests_total{method="GET",server="proxy",status="200"}'
    # Each worker counts only its own requests, and the kernel picks the worker per
    # connection: a worker that has answered nothing yet has no counter line. Every
    # scrape is itself a GET answered 200, so a bounded number of scrapes must show it.
    texts = []
    for _ in range(20):
        with urllib.request.urlopen(f"http://127.0.0.1:{cloud.config.proxy.port}/metrics",
                                    timeout=10) as r:
            texts.append(r.read().decode())
        if wanted in texts[-1]:
            break
    assert wanted in texts[-1], texts[-1]


def test_background_daemon_counters_on_their_nodes_servers(cloud: Cloud) -> None:
    """Background daemons have no port: their node's servers export their pass totals."""
    object_port = cloud.config.storage.object_port
    container_port = cloud.config.storage.container_port

    def scrape(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    wanted = {object_port: ['nubis_object_replicator_suffixes_synced_total{node="0"}',
                            'nubis_object_auditor_quarantined_total{node="0"}',
                            'nubis_object_updater_applied_total{node="0"}',
                            'nubis_object_expirer_expired_total{node="0"}',
                            'nubis_daemon_passes_total{daemon="object-replicator",node="0"}',
                            "nubis_object_async_pendings_queued_total"],
              container_port: ['nubis_container_replicator_databases_pushed_total{node="0"}']}

    def exported() -> bool:  # each daemon passes once when it starts
        return all(w in scrape(port) for port, names in wanted.items() for w in names)

    assert _within(COMEBACK, exported), scrape(object_port)
    status = nubis("status", "--state-dir", str(cloud.state)).stdout
    passes = status[status.index("last pass"):].splitlines()[1:]  # the daemons' passes
    rows = {x.split()[0]: x.split()[1:] for x in passes if x.strip()}
    for label in ("object-replicator-0", "object-auditor-0", "object-updater-0",
                  "object-expirer-0", "container-replicator-0", "account-replicator-0"):
        when, took, count = rows[label][:3]  # when, how long, how many passes
        assert when.count(":") == 2 and took.endswith("s") and int(count) >= 1, status


def test_down_stops_everything_and_up_works_again(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "state", proxy_workers=2)
    groups = [int(p.read_text()) for p in (cloud.state / "run").glob("*.pid")]
    members = [pid for g in groups for pid in [g, *_children(g)]]
    proxy = cloud.pid("proxy")
    workers = _children(proxy)
    os.kill(proxy, signal.SIGSTOP)  # a hung parent: its workers are still serving
    try:
        down = cloud.down()
    finally:
        if _alive(proxy):
            os.kill(proxy, signal.SIGCONT)
    assert down.returncode == 0, down.stderr
    assert "stopped supervisor" in down.stdout and "stopped proxy" in down.stdout
    assert not [pid for pid in [*members, *workers] if _alive(pid)]
    status = nubis("status", "--state-dir", str(cloud.state))
    assert status.returncode == 1 and "supervisor: not running" in status.stdout
    again = cloud.up()
    try:
        assert again.returncode == 0, again.stderr
        assert "started proxy" in again.stdout and "started supervisor" in again.stdout
    finally:
        assert cloud.down().returncode == 0


def test_down_one_process_holds_it_until_up(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "state")
    try:
        r = nubis("down", "object-server-2", "--state-dir", str(cloud.state))
        assert r.returncode == 0 and "stopped object-server-2" in r.stdout, r.stderr
        time.sleep(2.0)  # several watchdog rounds: it must leave a held process down
        status = nubis("status", "--state-dir", str(cloud.state))
        line = next(x for x in status.stdout.splitlines() if x.startswith("object-server-2"))
        assert status.returncode == 1 and "stopped (held)" in line
        again = cloud.up()
        assert again.returncode == 0 and "started object-server-2" in again.stdout
    finally:
        cloud.down()


def test_crash_loop_is_reported_not_spun(tmp_path: Path) -> None:
    """A daemon that cannot start: backoff, then a crash loop with its status and log."""
    path = tmp_path / "nubis.toml"
    base = free_block(2)
    defaults.write_default_config(path, tmp_path, defaults.Ports(base, base, base, base),
                                  1, {"scheduler": base + 1})
    bad = '[scheduler]\nenabled_filters = ["NoSuchFilter"]\n'
    path.write_text(path.read_text().replace("[scheduler]\n", bad))
    config = load_config(path)
    sup = Supervisor(config, path, tmp_path)
    proc = next(p for p in plan(config) if p.daemon == "scheduler")
    dog = Watchdog(sup, [proc], Backoff(base=0.05, cap=30.0, crash_loop=3), interval=0.05)
    starts = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        before = dog.slots[0].pid
        dog.run_once()
        starts += dog.slots[0].pid not in (None, before)
        record = sup.read_exit(proc)
        if record is not None and record.crash_loop:
            break
        time.sleep(0.05)
    record = sup.read_exit(proc)
    assert record is not None and record.crash_loop and record.failures == 3
    assert record.status == 2 and record.retry_in == 30.0
    assert any("NoSuchFilter" in line for line in record.tail), record.tail
    assert starts == 3
    dog.run_once()  # within the crash-loop delay: not started again
    assert dog.slots[0].pid is None
    status = nubis("status", "--state-dir", str(tmp_path))
    line = next(x for x in status.stdout.splitlines() if x.startswith("scheduler "))
    assert "crash loop" in line and "exit 2" in line
    assert "retried every 30s" in status.stdout and "NoSuchFilter" in status.stdout
