"""A whole ``nubis up`` cloud (API, volume daemon, object store) for the volume tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests
from nubis.daemons.volume.server import volumes_dir

from tests.functional.proxy.cloud import Cloud, start_cloud

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@dataclass
class VolumeCloud:
    """The running cloud plus helpers for the ``openstack`` CLI and the SDK."""

    cloud: Cloud

    @property
    def state(self) -> Path:
        return self.cloud.state

    @property
    def volumes_path(self) -> Path:
        return volumes_dir(self.cloud.config.volume, self.state.resolve())

    def sdk(self, name: str = "nubis-demo") -> openstack.connection.Connection:
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        try:
            return openstack.connect(cloud=name)
        finally:
            del os.environ["OS_CLIENT_CONFIG_FILE"]

    def osc(self, *args: str, cloud: str = "nubis-demo", check: bool = True) -> Any:
        """Run ``openstack``; parse JSON output when ``-f json`` is given."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        proc = subprocess.run([OPENSTACK, "--os-cloud", cloud, *args], capture_output=True,
                              text=True, timeout=300, env=env, check=False)
        if check:
            assert proc.returncode == 0, (args, proc.stderr)
        if check and "-f" in args and "json" in args:
            return json.loads(proc.stdout)
        return proc

    def http(self, method: str, path: str, cloud: str = "nubis-demo",
             **kw: Any) -> requests.Response:
        """Call the volume API directly as a clouds.yaml cloud (for what clients cannot send)."""
        conn = self.sdk(cloud)
        url = conn.block_storage.get_endpoint().rstrip("/")
        headers = {"X-Auth-Token": conn.auth_token, **kw.pop("headers", {})}
        return requests.request(method, f"{url}{path}", headers=headers, timeout=60, **kw)

    def wait(self, kind: str, ident: str, status: str = "available",
             timeout: float = 120.0) -> dict[str, Any]:
        """Poll ``openstack volume [snapshot|backup] show`` until ``status`` (bounded)."""
        cmd = {"volume": ("volume", "show"), "snapshot": ("volume", "snapshot", "show"),
               "backup": ("volume", "backup", "show")}[kind]
        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.osc(*cmd, ident, "-f", "json")
            if doc["status"] == status:
                return doc
            assert "error" not in doc["status"], doc
            assert time.monotonic() < deadline, doc
            time.sleep(0.5)


@pytest.fixture(scope="session")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VolumeCloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("volume") / "state")
    vc = VolumeCloud(cloud)
    try:
        yield vc
    finally:
        cloud.down()
        # Outside the tmp dir when QEMU's user could not reach it (see volumes_dir).
        shutil.rmtree(vc.volumes_path, ignore_errors=True)


def wait_gone(find: Any, ident: str, timeout: float = 60.0) -> None:
    """Poll an SDK ``find_*`` (``ignore_missing``) until the resource is gone (bounded)."""
    deadline = time.monotonic() + timeout
    while find(ident, ignore_missing=True) is not None:
        assert time.monotonic() < deadline, f"{ident} still exists"
        time.sleep(0.3)
