"""Probe: two ``nubis api`` processes share one database and key repository.

A token issued by one is verified locally by the other; a revocation written
through one takes effect in the other within the revocation poll interval;
a key rotation on disk is picked up by both without a restart.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.functional.identity.conftest import password_auth
from tests.functional.identity.server import ADMIN_PASSWORD, ApiServer, free_port, start_server

pytestmark = pytest.mark.probe


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ApiServer, str]]:
    server = start_server(tmp_path)
    other_port = free_port()
    try:
        server.start(other_port)
        yield server, f"http://127.0.0.1:{other_port}/identity/v3"
    finally:
        server.stop()


def _issue(base: str) -> str:
    r = requests.post(f"{base}/auth/tokens", json=password_auth("admin", ADMIN_PASSWORD, "admin"),
                      timeout=30)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def test_cross_process_validation_revocation_rotation(pair: tuple[ApiServer, str]) -> None:
    server, other = pair
    token = _issue(server.auth_url)
    assert requests.get(f"{other}/auth/catalog", headers={"X-Auth-Token": token},
                        timeout=10).status_code == 200
    keeper = _issue(other)
    r = requests.delete(f"{server.auth_url}/auth/tokens", timeout=10,
                        headers={"X-Auth-Token": keeper, "X-Subject-Token": token})
    assert r.status_code == 204
    status = 0
    for _ in range(50):  # revocation_poll_seconds = 0.5 in the test config
        status = requests.get(f"{other}/auth/catalog", headers={"X-Auth-Token": token},
                              timeout=10).status_code
        if status == 401:
            break
        time.sleep(0.1)
    assert status == 401
    # rotate the shared keys on disk: old tokens stay valid, new ones verify everywhere
    rotated = subprocess.run([sys.executable, "-m", "nubis", "identity", "rotate-keys",
                              "--config", str(server.config_path)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert rotated.returncode == 0, rotated.stderr
    assert "primary key is now 2" in rotated.stdout
    for base in (server.auth_url, other):
        assert requests.get(f"{base}/auth/catalog", headers={"X-Auth-Token": keeper},
                            timeout=10).status_code == 200
    fresh = _issue(other)
    assert requests.get(f"{server.auth_url}/auth/catalog", headers={"X-Auth-Token": fresh},
                        timeout=10).status_code == 200
