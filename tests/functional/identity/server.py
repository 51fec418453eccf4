"""Start a real ``nubis api`` process on a free loopback port in a temp state dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from tests.ports import free_port
from tests.procs import terminate

ADMIN_PASSWORD = "admin-secret-pw"
DEMO_PASSWORD = "demo-secret-pw"


@dataclass
class ApiServer:
    root: Path
    port: int
    extra_config: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.root / "var"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    @property
    def clouds_yaml(self) -> Path:
        return self.state / "clouds.yaml"

    def write_config(self, port: int | None = None) -> Path:
        path = self.root / (f"config-{port}.toml" if port else "config.toml")
        path.write_text(
            f'[cluster]\nstate_dir = "{self.state}"\n'
            f"[api]\nport = {port or self.port}\npublic_url = \"{self.url}\"\n"
            f'[identity]\nadmin_password = "{ADMIN_PASSWORD}"\n'
            f'demo_password = "{DEMO_PASSWORD}"\nrevocation_poll_seconds = 0.5\n'
            + self.extra_config)
        return path

    def bootstrap(self, has_proxy: bool = True) -> None:
        from nubis.bootstrap import bootstrap_identity
        from nubis.settings import load_config

        bootstrap_identity(load_config(self.config_path), self.state, ["/identity"], has_proxy)

    def start(self, port: int | None = None) -> subprocess.Popen[bytes]:
        """Start one api process (on ``port`` or the main one) and wait until it answers."""
        cfg = self.write_config(port)
        log = open(self.root / f"api-{port or self.port}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "nubis", "daemon", "api",
                                 "--config", str(cfg)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port or self.port}/identity/v3"
        deadline = time.monotonic() + 120  # generous: CI machines are shared and loaded
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"nubis api exited: {(self.root / log.name).read_text()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return proc
            except requests.RequestException:
                time.sleep(0.05)
        terminate(proc)  # never leave an orphaned api server behind a failed fixture
        self.procs.remove(proc)
        raise RuntimeError("nubis api did not start")

    def stop(self) -> None:
        for proc in self.procs:
            terminate(proc)
        self.procs.clear()

    def cloud(self, name: str) -> dict[str, object]:
        return clouds_entry(self.clouds_yaml, name)

    def cli_env(self) -> dict[str, str]:
        return cli_env(self.clouds_yaml)


def clouds_entry(clouds_yaml: Path, name: str) -> dict[str, object]:
    """Return cloud ``name`` of a clouds.yaml."""
    doc = yaml.safe_load(clouds_yaml.read_text())
    cloud: dict[str, object] = doc["clouds"][name]
    return cloud


def cli_env(clouds_yaml: Path) -> dict[str, str]:
    """Return this process's environment without OS_* variables, pointing at ``clouds_yaml``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    return env


def start_server(root: Path, extra_config: str = "") -> ApiServer:
    server = ApiServer(root, free_port(), extra_config)
    server.state.mkdir(parents=True, exist_ok=True)
    server.write_config()
    server.bootstrap()
    server.start()
    return server
