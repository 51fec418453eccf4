"""Unit tests of the supervisor's plan and the default state written by ``nubis up``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

from nubis import defaults
from nubis.settings import load_config
from nubis.supervisor import Process, Supervisor, health_ok, plan, stop_groups


def test_default_config_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    ports = defaults.Ports(proxy=18080, object=16200, container=16201, account=16202)
    assert defaults.write_default_config(path, tmp_path, ports, 2, {"api": 15000})
    assert not defaults.write_default_config(path, tmp_path, ports)  # never overwritten
    doc = tomllib.loads(path.read_text())
    assert doc["tempauth"]["users"]["admin:admin"]["groups"] == [".admin", ".reseller_admin"]
    config = load_config(path)
    assert config.proxy.port == 18080 and config.proxy.workers == 2
    assert config.storage.node_count == 4 and config.api.port == 15000
    assert config.cluster.hash_path_prefix and config.cluster.state_dir == str(tmp_path)
    assert (path.stat().st_mode & 0o777) == 0o600


def test_plan_runs_one_storage_process_per_node(tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    defaults.write_default_config(path, tmp_path, defaults.Ports(18080, 16200, 16201, 16202))
    procs = plan(load_config(path))
    objects = [p for p in procs if p.daemon == "object-server"]
    assert [p.port for p in objects] == [16200, 16210, 16220, 16230]
    assert [p.label for p in objects][-1] == "object-server-3"
    proxy = next(p for p in procs if p.daemon == "proxy")
    assert proxy.port == 18080 and proxy.health_url == "http://127.0.0.1:18080/healthcheck"


def test_rings_devices_and_swiftrc(tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    defaults.write_default_config(path, tmp_path, defaults.Ports(18080, 16200, 16201, 16202))
    config = load_config(path)
    # 4 nodes x 3 devices: ec84's ring needs 12 (the replicated rings use d1..d4)
    assert len(defaults.ensure_devices(config)) == 12
    rings = defaults.ensure_rings(config)
    assert sorted(p.name for p in rings) == [
        "account.ring", "container.ring", "object-1.ring", "object-2.ring",
        "object-3.ring", "object.ring"]
    assert defaults.ensure_rings(config) == []  # idempotent
    from nubis.ring import Ring

    ring = Ring(tmp_path / "rings" / "object.ring", config.cluster.hash_path_prefix.encode(),
                config.cluster.hash_path_suffix.encode())
    _, nodes = ring.get_nodes("AUTH_test", "c", "o")
    assert len({n["port"] for n in nodes}) == 3
    rc = defaults.write_swiftrc(config, tmp_path).read_text()
    assert "ST_AUTH=http://127.0.0.1:18080/auth/v1.0" in rc and "ST_USER=admin:admin" in rc


def test_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    defaults.write_default_config(path, tmp_path)
    sup = Supervisor(load_config(path), path, tmp_path)
    proc = Process("proxy", None, "127.0.0.1", 18080)
    sup.run_dir.mkdir(parents=True)
    sup.pid_file(proc).write_text("1\n")  # pid 1 is not a nubis daemon
    assert sup.read_pid(proc) is None
    assert sup.stop(proc) is False and not sup.pid_file(proc).exists()


def test_garbled_health_answer_is_unhealthy_not_a_crash() -> None:
    """A poll the kernel connected to itself reads back ``GET /healthcheck``."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))  # the kernel's free port: no race with other tests
        srv.listen(1)
        port = srv.getsockname()[1]

        def echo_request_line() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"GET /healthcheck HTTP/1.1\r\n\r\n")

        t = threading.Thread(target=echo_request_line, daemon=True)
        t.start()
        assert health_ok(Process("proxy", None, "127.0.0.1", port)) is False
        t.join(5)


def _session(code: str) -> subprocess.Popen[bytes]:
    """Start ``python -c code nubis`` in its own session (``nubis`` marks it as ours)."""
    return subprocess.Popen([sys.executable, "-c", code, "nubis"], start_new_session=True,
                            stdout=subprocess.PIPE)


def test_stop_groups_stops_every_group_at_once() -> None:
    """One call stops several groups: the polite ones on SIGTERM, one ignoring it killed."""
    ready = "print('ready', flush=True); time.sleep(60)"
    polite = [_session(f"import time; {ready}") for _ in range(3)]
    stubborn = _session("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                        + ready)
    procs = [*polite, stubborn]
    try:
        for p in procs:  # each has its handlers and argv in place
            assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        ran = stop_groups({p.pid for p in procs} | {2**22 + 1}, timeout=0.5)
        assert ran == {p.pid for p in procs}
        # stop_groups reaps its own children while it waits: gone from /proc
        assert not [p.pid for p in procs if Path(f"/proc/{p.pid}").exists()]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(ChildProcessError):
                p.wait(5)
