"""Probe tests of ``nubis up`` / ``status`` / ``down`` / ``daemon`` on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.proxy.cloud import nubis, start_cloud

pytestmark = pytest.mark.probe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_twice_status_swiftrc_down(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "state", proxy_workers=2)
    try:
        pids = {p.stem: int(p.read_text()) for p in (cloud.state / "run").glob("*.pid")}
        assert {"proxy", "object-server-0", "container-server-3", "account-server-2"} <= \
            set(pids)
        again = cloud.up()
        assert again.returncode == 0, again.stderr
        assert "started" not in again.stdout and "running proxy" in again.stdout
        assert {p.stem: int(p.read_text())
                for p in (cloud.state / "run").glob("*.pid")} == pids
        status = nubis("status", "--state-dir", str(cloud.state))
        assert status.returncode == 0, status.stdout
        assert "proxy" in status.stdout and "healthy" in status.stdout
        swift = Path(sys.executable).with_name("swift")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_"))}
        r = subprocess.run(["bash", "-c", f'. "{cloud.state}/swiftrc" && "{swift}" stat'],
                           capture_output=True, text=True, env=env, timeout=60, check=False)
        assert r.returncode == 0 and "Account: AUTH_admin" in r.stdout, r.stderr
    finally:
        down = cloud.down()
    assert down.returncode == 0 and "stopped proxy" in down.stdout
    assert not any(_alive(pid) for pid in pids.values())
    assert not list((cloud.state / "run").glob("*.pid"))
    status = nubis("status", "--state-dir", str(cloud.state))
    assert status.returncode == 1 and "stopped" in status.stdout


def test_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "nubis.toml").write_text("[proxy]\nport = 0\n")
    r = nubis("up", "--state-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "[proxy] port" in r.stderr
    (tmp_path / "nubis.toml").write_text("[proxy\n")
    r = nubis("daemon", "proxy", "--config", str(tmp_path / "nubis.toml"))
    assert r.returncode == 2 and "invalid TOML" in r.stderr
    r = nubis("daemon", "no-such-daemon", "--config", str(tmp_path / "nubis.toml"))
    assert r.returncode == 2


def test_down_works_with_a_broken_config(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "state")
    pids = [int(p.read_text()) for p in (cloud.state / "run").glob("*.pid")]
    try:
        (cloud.state / "nubis.toml").write_text("[proxy]\nbogus = 1\n")
    finally:
        down = cloud.down()
    assert down.returncode == 0 and "stopped proxy" in down.stdout
    assert "unknown key" in down.stderr
    assert not any(_alive(pid) for pid in pids)
