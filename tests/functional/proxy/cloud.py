"""A real all-in-one nubis cloud for tests: ``nubis up`` in a tmp dir on free ports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nubis import defaults
from nubis.settings import Config, load_config
from nubis.supervisor import hold_path
from tests.ports import free_block


def other_server_sections() -> list[str]:
    """Return the config sections of every other registered server with a ``port``."""
    from nubis.registry import DAEMONS
    from nubis.supervisor import PER_NODE

    base = Config()
    out: list[str] = []
    for name, spec in DAEMONS.items():
        section = name.replace("-", "_")
        if spec.kind != "server" or name in PER_NODE or name == "proxy":
            continue
        if hasattr(getattr(base, section, None), "port"):
            out.append(section)
    return out


def free_ports() -> tuple[defaults.Ports, dict[str, int]]:
    """Pick one free block: storage (4 nodes x 3 ports at base + 10i + k), proxy, others.

    Returns:
        The storage and proxy ports, and a port per other server section.
    """
    others = other_server_sections()
    storage = 10 * defaults.NODE_COUNT
    base = free_block(storage + 1 + len(others))
    ports = defaults.Ports(proxy=base + storage, object=base, container=base + 1,
                           account=base + 2)
    return ports, {name: base + storage + 1 + i for i, name in enumerate(others)}


def nubis(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``nubis`` CLI."""
    return subprocess.run([sys.executable, "-m", "nubis", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass
class Cloud:
    """A running cloud: its state dir, config and endpoints."""

    state: Path
    config: Config

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.config.proxy.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.proxy_url}/auth/v1.0"

    def login(self, user: str = "test:tester") -> tuple[str, str]:
        """Return ``(storage_url, token)`` for a tempauth user."""
        key = self.config.tempauth.users[user].key
        req = urllib.request.Request(self.auth_url, headers={"X-Auth-User": user,
                                                             "X-Auth-Key": key})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers["X-Storage-Url"], resp.headers["X-Auth-Token"]

    def pid(self, label: str) -> int:
        return int((self.state / "run" / f"{label}.pid").read_text())

    def kill(self, label: str, hold: bool = True) -> None:
        """SIGKILL one daemon (e.g. ``object-server-1``).

        With ``hold`` the supervisor leaves it down until the next ``nubis up``
        (as ``nubis down LABEL`` does); without, the supervisor restarts it.
        """
        if hold:
            hold_path(self.state, label).touch()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid(label), signal.SIGKILL)

    def up(self, test_image: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``nubis up`` (without the test image unless asked: it needs a build)."""
        extra = () if test_image else ("--no-test-image",)
        return nubis("up", "--state-dir", str(self.state), "--timeout", "150", *extra,
                     timeout=900 if test_image else 240)

    def down(self) -> subprocess.CompletedProcess[str]:
        return nubis("down", "--state-dir", str(self.state), "--timeout", "5")


def start_cloud(state: Path, proxy_workers: int = 1, frontend: str = "native",
                extra_config: str = "", test_image: bool = False,
                section_lines: dict[str, str] | None = None,
                node_count: int | None = None) -> Cloud:
    """Write a config with free ports into ``state`` and run ``nubis up``.

    Args:
        state: The cloud's state directory.
        proxy_workers: ``[proxy] workers``.
        frontend: ``[proxy] frontend`` (``asgi`` or ``native``).
        extra_config: TOML appended to the config (whole sections only).
        test_image: build (cached) and upload the test image set (``nubis up``'s hook).
        section_lines: TOML lines put at the top of existing sections (``{"tempauth":
            'extra_reseller_prefixes = ["SERVICE_"]'}``).
        node_count: ``[storage] node_count`` (default: the all-in-one's four nodes).
    """
    ports, others = free_ports()
    conf = state / "nubis.toml"
    defaults.write_default_config(conf, state, ports, proxy_workers, others)
    conf.write_text(conf.read_text().replace("[proxy]\n",
                                             f'[proxy]\nfrontend = "{frontend}"\n', 1)
                    + extra_config)
    for section, lines in (section_lines or {}).items():
        conf.write_text(conf.read_text().replace(f"[{section}]\n",
                                                 f"[{section}]\n{lines}\n", 1))
    if node_count is not None:
        conf.write_text(re.sub(r"(?m)^node_count = \d+$", f"node_count = {node_count}",
                               conf.read_text(), count=1))
    cloud = Cloud(state, load_config(state / "nubis.toml"))
    try:
        proc = cloud.up(test_image)
    except BaseException:  # timed out or interrupted: leave no daemons behind
        cloud.down()
        raise
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}"
                         for p in sorted((state / "log").glob("*.log")))
        cloud.down()
        raise RuntimeError(f"nubis up failed ({proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}\n{logs}")
    return cloud


def expirer_pass(cloud: Cloud, now: float | None = None) -> None:
    """Run one pass of the object expirer on every storage node of the cloud (in parallel).

    ``now``: the moment S3 lifecycle rules are judged at (``$NUBIS_LIFECYCLE_NOW``).
    """
    procs = []
    for node in range(cloud.config.storage.node_count):
        env = {**os.environ, "NUBIS_STORAGE_NODE": str(node)}
        if now is not None:
            env["NUBIS_LIFECYCLE_NOW"] = str(now)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "nubis", "daemon", "object-expirer", "--once", "--config",
             str(cloud.state / "nubis.toml")], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=env))
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def eventually(check, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Retry ``check()`` until it stops raising AssertionError (bounded in time).

    Container listings are updated asynchronously by the object servers, so
    listing assertions right after a write poll briefly.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
