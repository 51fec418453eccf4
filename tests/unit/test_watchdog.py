"""Unit tests of the watchdog's restart policy and ``nubis units``."""

from __future__ import annotations

from pathlib import Path

from nubis.commands.units import render_target, render_unit, unit_name
from nubis.supervisor import ExitRecord, Process
from nubis.watchdog import Backoff


def test_backoff_doubles_then_reports_a_crash_loop() -> None:
    b = Backoff(base=0.5, cap=60.0, stable=10.0, crash_loop=5)
    failures, delays = 0, []
    for _ in range(6):
        failures = b.failures(failures, ran_seconds=0.2)
        delays.append(b.delay(failures))
    assert delays == [0.5, 1.0, 2.0, 4.0, 60.0, 60.0]
    assert not b.is_crash_loop(4) and b.is_crash_loop(5)
    assert b.failures(7, ran_seconds=30.0) == 1  # a stable run starts a new count
    assert Backoff(base=10, cap=15).delay(3) == 15


def test_exit_record_words() -> None:
    rec = ExitRecord("proxy", 0.0, -9, 1.0, 1, False, 0.5)
    assert rec.describe() == "killed by SIGKILL"
    assert ExitRecord("x", 0.0, 2, 1.0, 1, False, 0.5).describe() == "exit 2"
    assert ExitRecord("x", 0.0, None, 1.0, 1, False, 0.5).describe().startswith("exited")


def test_units_restart_on_failure_and_set_the_node(tmp_path: Path) -> None:
    proc = Process("object-server", 2, "127.0.0.1", 6220)
    text = render_unit(proc, tmp_path / "nubis.toml", tmp_path, user="nubis")
    assert unit_name(proc) == "nubis-object-server-2.service"
    assert "Restart=on-failure\n" in text and "Environment=NUBIS_STORAGE_NODE=2\n" in text
    assert f"daemon object-server --config {tmp_path / 'nubis.toml'}" in text
    assert "User=nubis\n" in text and "KillMode=control-group\n" in text
    proxy = render_unit(Process("proxy", None, "127.0.0.1", 8080), tmp_path / "n.toml", tmp_path)
    assert "NUBIS_STORAGE_NODE" not in proxy and "User=" not in proxy
    assert "nubis-proxy.service" in render_target([Process("proxy", None, "h", 1)])


def test_units_command_writes_one_unit_per_process(tmp_path: Path) -> None:
    from nubis import defaults
    from nubis.cli import main

    defaults.write_default_config(tmp_path / "nubis.toml", tmp_path,
                                  defaults.Ports(18080, 16200, 16201, 16202))
    assert main(["units", "--state-dir", str(tmp_path), "--out", str(tmp_path / "u")]) == 0
    names = {p.name for p in (tmp_path / "u").iterdir()}
    assert {"nubis.target", "nubis-proxy.service", "nubis-object-server-3.service",
            "nubis-api.service", "nubis-scheduler.service"} <= names
    assert all("Restart=on-failure" in (tmp_path / "u" / n).read_text()
               for n in names if n.endswith(".service"))


def test_reload_watches_added_processes(tmp_path: Path) -> None:
    from nubis import defaults
    from nubis.settings import load_config
    from nubis.supervisor import Supervisor, plan
    from nubis.watchdog import Watchdog

    path = tmp_path / "nubis.toml"
    defaults.write_default_config(path, tmp_path, defaults.Ports(18080, 16200, 16201, 16202))
    config = load_config(path)
    sup = Supervisor(config, path, tmp_path)
    procs = plan(config)
    dog = Watchdog(sup, procs[:2], reload=lambda: (sup, procs))
    assert len(dog.slots) == 2
    dog.reload()
    assert sorted(s.proc.label for s in dog.slots) == sorted(p.label for p in procs)
    assert [s.proc.node is None for s in dog.slots][-1]  # front ends after storage
