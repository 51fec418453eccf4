"""A whole ``nubis up`` cloud with a compute host, for the compute API probes.

The state dir lives under ``/var/tmp`` with mode 0711 (QEMU's user must reach the
instance files; pytest's tmp dirs are 0700). The test image set is the cached one
(``$NUBIS_TEST_IMAGE_CACHE`` or ``var/cache/test-image``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests
import yaml

from tests.functional.proxy.cloud import Cloud, start_cloud

REPO = Path(__file__).resolve().parents[3]
OPENSTACK = str(Path(sys.executable).with_name("openstack"))
#: Bound on waiting for a state (a loop bound, not a performance assertion).
WAIT = 240.0


@dataclass
class ComputeCloud:
    """The running cloud and ways to drive it (CLI, SDK, raw HTTP)."""

    cloud: Cloud

    @property
    def state(self) -> Path:
        return self.cloud.state

    @property
    def compute_url(self) -> str:
        public = self.cloud.config.api.resolved_public_url(self.cloud.config.cluster.bind_ip)
        return f"{public}/compute"

    def auth(self, name: str) -> dict[str, Any]:
        doc = yaml.safe_load((self.state / "clouds.yaml").read_text())
        auth: dict[str, Any] = doc["clouds"][name]["auth"]
        return auth

    def login(self, name: str) -> tuple[str, str]:
        """Return ``(token, project_id)`` of a clouds.yaml login."""
        a = self.auth(name)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": a["username"], "domain": {"name": "Default"}, "password": a["password"]}}},
            "scope": {"project": {"name": a["project_name"], "domain": {"name": "Default"}}}}}
        r = requests.post(f"{a['auth_url']}/auth/tokens", json=body, timeout=30)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]

    def sdk(self, name: str) -> openstack.connection.Connection:
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        try:
            return openstack.connect(cloud=name)
        finally:
            del os.environ["OS_CLIENT_CONFIG_FILE"]

    def osc(self, *args: str, cloud: str = "nubis-admin", check: bool = True) -> Any:
        """Run ``openstack``; parse JSON output when ``-f json`` is given."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        proc = subprocess.run([OPENSTACK, "--os-cloud", cloud, *args], capture_output=True,
                              text=True, timeout=WAIT + 60, env=env, check=False)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        if check and "-f" in args and "json" in args:
            return json.loads(proc.stdout)
        return proc

    def http(self, method: str, path: str, token: str, mv: str | None = None,
             **kw: Any) -> requests.Response:
        headers = {"X-Auth-Token": token, "Accept": "application/json",
                   **kw.pop("headers", {})}
        if mv:
            headers["OpenStack-API-Version"] = f"compute {mv}"
        return requests.request(method, f"{self.compute_url}{path}", headers=headers,
                                timeout=120, **kw)

    def instance_dir(self, server_id: str) -> Path:
        return self.state / "compute" / "instances" / server_id


def wait_for(check: Callable[[], Any], what: str, bound: float = WAIT,
             interval: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + bound
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {bound:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def compute() -> Iterator[ComputeCloud]:
    os.environ.setdefault("NUBIS_TEST_IMAGE_CACHE", str(REPO / "var" / "cache" / "test-image"))
    top = Path(tempfile.mkdtemp(prefix="nubis-compute-cloud-", dir="/var/tmp"))
    os.chmod(top, 0o711)
    (top / "state").mkdir(mode=0o711)
    os.chmod(top / "state", 0o711)
    cloud = start_cloud(top / "state", test_image=True)
    try:
        yield ComputeCloud(cloud)
    finally:
        cloud.down()
        remove_guests_under(top)
        shutil.rmtree(top, ignore_errors=True)


def remove_guests_under(top: Path) -> None:
    """Destroy and undefine guests whose files are under ``top`` (a failed test's)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        for dom in conn.listAllDomains(0):
            if str(top) in dom.XMLDesc(0):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    finally:
        conn.close()
