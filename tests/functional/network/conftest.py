"""A real ``nubis api`` process (identity + network in the catalog) for the network tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests

from tests.functional.identity.server import ApiServer
from tests.ports import free_port

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@dataclass
class Project:
    """A throwaway project with a member user."""

    id: str
    name: str
    user: str
    password: str


@dataclass
class NetCloud:
    """The api server plus ready-made logins and clients."""

    server: ApiServer

    @property
    def url(self) -> str:
        return f"{self.server.url}/network/v2.0"

    def sdk(self, name: str = "nubis-demo") -> openstack.connection.Connection:
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(self.server.clouds_yaml)
        try:
            return openstack.connect(cloud=name)
        finally:
            del os.environ["OS_CLIENT_CONFIG_FILE"]

    def project_sdk(self, project: Project) -> openstack.connection.Connection:
        return openstack.connect(
            auth_url=f"{self.server.url}/identity/v3", username=project.user,
            password=project.password, project_name=project.name,
            user_domain_name="Default", project_domain_name="Default")

    def token(self, name: str = "nubis-demo") -> str:
        token: str = self.sdk(name).auth_token
        return token

    def http(self, method: str, path: str, token: str, **kw: Any) -> requests.Response:
        headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)

    def osc(self, *args: str, cloud: str = "nubis-demo") -> Any:
        """Run ``openstack`` (parse ``-f json`` output); fail on a non-zero exit."""
        env = self.server.cli_env()
        proc = subprocess.run([OPENSTACK, "--os-cloud", cloud, *args], capture_output=True,
                              text=True, timeout=120, env=env, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
        return json.loads(proc.stdout) if "json" in args else proc.stdout


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetCloud]:
    from nubis.bootstrap import bootstrap_identity
    from nubis.settings import load_config

    server = ApiServer(tmp_path_factory.mktemp("network"), free_port())
    server.state.mkdir(parents=True, exist_ok=True)
    server.write_config()
    bootstrap_identity(load_config(server.config_path), server.state,
                       ["/identity", "/network"], False)
    server.start()
    try:
        yield NetCloud(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def alt(net: NetCloud) -> Project:
    """Another project with its own member user."""
    conn = net.sdk("nubis-admin")
    sfx = uuid.uuid4().hex[:6]
    project = conn.identity.create_project(name=f"alt-{sfx}", domain_id="default")
    user = conn.identity.create_user(name=f"alt-{sfx}", password="alt-secret",
                                     domain_id="default")
    role = next(r for r in conn.identity.roles() if r.name == "member")
    conn.identity.assign_project_role_to_user(project, user, role)
    return Project(project.id, project.name, user.name, "alt-secret")
