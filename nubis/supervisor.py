"""A small process supervisor for an all-in-one nubis cloud.

It starts each server daemon as a detached ``nubis daemon NAME`` process (one
per storage node for the storage servers), records pid files under
``<state>/run/``, sends logs to ``<state>/log/``, waits for ``/healthcheck``,
and stops processes with SIGTERM then SIGKILL. Starting is idempotent: a
process whose pid file names a live ``nubis daemon`` is left alone.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.common.net import http_base
from nubis.registry import DAEMONS
from nubis.settings import Config

#: Daemons that run once per storage node (``NUBIS_STORAGE_NODE`` selects it).
PER_NODE: dict[str, str] = {
    "object-server": "object_port",
    "container-server": "container_port",
    "account-server": "account_port",
    # background daemons of a node (no port; ``[object_*] enabled`` turns them off)
    "object-replicator": "",
    "object-auditor": "",
    "object-updater": "",
    "object-expirer": "",
}


@dataclass(frozen=True)
class Process:
    """One supervised process: a daemon name, its node, where it listens."""

    daemon: str
    node: int | None
    host: str
    port: int | None

    @property
    def label(self) -> str:
        """Return a unique, file-name-safe name (``object-server-2``)."""
        return self.daemon if self.node is None else f"{self.daemon}-{self.node}"

    @property
    def health_url(self) -> str | None:
        """Return the process's health-check URL, if it serves HTTP."""
        if self.port is None:
            return None
        return f"{http_base(self.host, self.port)}/healthcheck"


@dataclass(frozen=True)
class ProcessStatus:
    """What ``nubis status`` shows for one process."""

    process: Process
    pid: int | None
    running: bool
    healthy: bool


def _section(config: Config, name: str) -> Any:
    return getattr(config, name.replace("-", "_"), None)


def plan(config: Config) -> list[Process]:
    """Return every process to run: enabled servers and per-node background daemons."""
    out: list[Process] = []
    bind = config.cluster.bind_ip
    for name, spec in DAEMONS.items():
        if spec.kind != "server" and name not in PER_NODE:
            continue
        section = _section(config, name)
        if section is not None and getattr(section, "enabled", True) is False:
            continue
        if name in PER_NODE:
            out.extend(_storage_processes(config, name, bind))
            continue
        host = getattr(section, "bind_ip", "") or bind
        port = getattr(section, "port", None)
        out.append(Process(name, None, host, port if isinstance(port, int) else None))
    return out


def _storage_processes(config: Config, name: str, bind: str) -> list[Process]:
    storage = getattr(config, "storage", None)
    count = int(getattr(storage, "node_count", 1)) if storage is not None else 1
    base = getattr(storage, PER_NODE[name], None) if storage is not None and PER_NODE[name] \
        else None
    host = (getattr(storage, "bind_ip", "") if storage is not None else "") or bind
    return [Process(name, i, host, None if base is None else int(base) + 10 * i)
            for i in range(count)]


class Supervisor:
    """Start, stop and inspect the processes of one state directory."""

    def __init__(self, config: Config, config_path: Path, state_dir: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = state_dir
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "log"

    # -- pid files -------------------------------------------------------
    def pid_file(self, proc: Process) -> Path:
        """Return the pid file of ``proc``."""
        return self.run_dir / f"{proc.label}.pid"

    def read_pid(self, proc: Process) -> int | None:
        """Return the pid recorded for ``proc`` if that process still runs."""
        try:
            pid = int(self.pid_file(proc).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_daemon(pid, proc.daemon) else None

    # -- start -----------------------------------------------------------
    def start(self, proc: Process) -> tuple[int, bool]:
        """Start ``proc`` unless it already runs; return ``(pid, started)``."""
        pid = self.read_pid(proc)
        if pid is not None:
            return pid, False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if proc.node is not None:
            env["NUBIS_STORAGE_NODE"] = str(proc.node)
        cmd = [sys.executable, "-m", "nubis", "daemon", proc.daemon,
               "--config", str(self.config_path)]
        with open(self.log_dir / f"{proc.label}.log", "ab") as log:
            child = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, close_fds=True)
        self.pid_file(proc).write_text(f"{child.pid}\n")
        return child.pid, True

    def wait_healthy(self, procs: list[Process], timeout: float = 30.0) -> list[Process]:
        """Wait until every process answers its health check; return the failures."""
        deadline = time.monotonic() + timeout
        pending = [p for p in procs if p.health_url is not None]
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending if not health_ok(p)]
            dead = [p for p in pending if self.read_pid(p) is None]
            if dead:
                return dead
            if pending:
                time.sleep(0.1)
        return pending

    # -- stop ------------------------------------------------------------
    def stop(self, proc: Process, timeout: float = 10.0) -> bool:
        """Stop ``proc`` (SIGTERM, then SIGKILL after ``timeout``); True if it ran."""
        pid = self.read_pid(proc)
        with contextlib.suppress(FileNotFoundError):
            if pid is None:
                self.pid_file(proc).unlink()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
            # Kill the daemon's own children (uvicorn workers) too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file(proc).unlink()
        return True

    def status(self, procs: list[Process]) -> list[ProcessStatus]:
        """Return the status of every process."""
        out = []
        for p in procs:
            pid = self.read_pid(p)
            out.append(ProcessStatus(p, pid, pid is not None,
                                     pid is not None and health_ok(p)))
        return out


def stop_by_pid_files(run_dir: Path, timeout: float = 10.0) -> list[str]:
    """Stop every live ``nubis daemon`` named by a pid file (no config needed).

    Used by ``nubis down`` when the config file cannot be read any more.
    """
    stopped = []
    for pid_file in sorted(run_dir.glob("*.pid")):
        label = pid_file.stem
        base = label.rsplit("-", 1)[0] if label.rsplit("-", 1)[-1].isdigit() else label
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if not _is_our_daemon(pid, base):
            pid_file.unlink(missing_ok=True)
            continue
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        stopped.append(label)
    return stopped


def health_ok(proc: Process, timeout: float = 1.0) -> bool:
    """Return whether ``proc`` answers ``GET /healthcheck`` over HTTP.

    A 2xx is healthy; a 4xx also counts (the server is up and answering HTTP but
    has no health route); 5xx, no answer and a garbled answer are not (a poll of a
    port nobody listens on yet can even be connected to itself by the kernel and
    read back its own request line).
    """
    url = proc.health_url
    if url is None:
        return True
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as exc:
        return int(exc.code) < 500
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone once reaped.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _is_our_daemon(pid: int, daemon: str) -> bool:
    """Tell whether ``pid`` is a live ``nubis daemon <daemon>`` (not a reused pid)."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"daemon" in argv and daemon.encode() in argv


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
