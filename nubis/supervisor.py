"""The processes of an all-in-one nubis cloud: what runs, how one starts and stops.

Each daemon runs as a detached ``nubis daemon NAME`` process (one per storage
node for per-node daemons) in its own session and process group, with a pid
file under ``<state>/run/`` and its output in ``<state>/log/<label>.log``.
Stopping signals the whole process group (SIGTERM, then SIGKILL after a
timeout), so workers a server forked go with it even when their parent is
already gone. Who keeps the processes running is :mod:`nubis.watchdog`'s.

Per process, the state directory also holds:

- ``run/<label>.hold``: stopped on purpose (``nubis down LABEL``); not restarted
  until ``nubis up``;
- ``run/<label>.exit.json``: the last exit (when, status, how long it ran, the
  tail of its log, consecutive quick failures, crash loop), written by the
  watchdog and shown by ``nubis status``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nubis.common.fileutil import atomic_write
from nubis.common.net import http_base
from nubis.registry import DAEMONS
from nubis.settings import Config

#: Daemons that run once per storage node (``NUBIS_STORAGE_NODE`` selects it),
#: with the ``[storage]`` attribute holding their base port.
PER_NODE: dict[str, str] = {
    "object-server": "object_port",
    "container-server": "container_port",
    "account-server": "account_port",
    # background daemons of a node (no port; ``[object_*] enabled`` turns them off)
    "object-replicator": "",
    "object-auditor": "",
    "object-updater": "",
    "object-expirer": "",
    "object-reconstructor": "",
}

#: Log lines kept in an exit record.
TAIL_LINES = 12


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
class ExitRecord:
    """How a process last exited (``run/<label>.exit.json``)."""

    label: str
    #: Wall-clock time of the exit (seconds since the epoch).
    time: float
    #: Exit code, or minus the signal number; None when the process was not
    #: the watchdog's child (adopted from an earlier run) and the status is unknown.
    status: int | None
    ran_seconds: float
    #: Consecutive exits that came soon after the start.
    failures: int
    #: The watchdog gave up restarting quickly: it retries only every ``retry_in`` s.
    crash_loop: bool
    retry_in: float
    tail: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Return the exit status in words (``exit 2``, ``killed by SIGKILL``)."""
        if self.status is None:
            return "exited (status unknown)"
        if self.status < 0:
            try:
                return f"killed by {signal.Signals(-self.status).name}"
            except ValueError:
                return f"killed by signal {-self.status}"
        return f"exit {self.status}"


@dataclass(frozen=True)
class ProcessStatus:
    """What ``nubis status`` shows for one process."""

    process: Process
    pid: int | None
    running: bool
    healthy: bool
    held: bool = False
    last_exit: ExitRecord | None = None


def _section(config: Config, name: str) -> Any:
    return getattr(config, name.replace("-", "_"), None)


def plan(config: Config) -> list[Process]:
    """Return every process to run: each enabled daemon (per node where it says so)."""
    out: list[Process] = []
    bind = config.cluster.bind_ip
    for name, spec in DAEMONS.items():
        per_node = name in PER_NODE or spec.per_node
        section = _section(config, name)
        if section is not None and getattr(section, "enabled", True) is False:
            continue
        if per_node:
            out.extend(_per_node_processes(config, name, bind))
            continue
        host = getattr(section, "bind_ip", "") or bind
        port = getattr(section, "port", None) if spec.kind == "server" else None
        out.append(Process(name, None, host, port if isinstance(port, int) else None))
    return out


def _per_node_processes(config: Config, name: str, bind: str) -> list[Process]:
    storage = getattr(config, "storage", None)
    count = int(getattr(storage, "node_count", 1)) if storage is not None else 1
    attr = PER_NODE.get(name)
    base = getattr(storage, attr, None) if storage is not None and attr else None
    host = (getattr(storage, "bind_ip", "") if storage is not None else "") or bind
    return [Process(name, i, host, None if base is None else int(base) + 10 * i)
            for i in range(count)]


def daemon_command(proc: Process, config_path: Path) -> list[str]:
    """Return the argv that runs ``proc`` in the foreground."""
    return [sys.executable, "-m", "nubis", "daemon", proc.daemon, "--config", str(config_path)]


def daemon_env(proc: Process) -> dict[str, str]:
    """Return the extra environment of ``proc`` (its storage node)."""
    return {} if proc.node is None else {"NUBIS_STORAGE_NODE": str(proc.node)}


class Supervisor:
    """Start, stop and inspect the processes of one state directory."""

    def __init__(self, config: Config, config_path: Path, state_dir: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = state_dir
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "log"

    # -- files -------------------------------------------------------------
    def pid_file(self, proc: Process) -> Path:
        """Return the pid file of ``proc``."""
        return self.run_dir / f"{proc.label}.pid"

    def hold_file(self, proc: Process) -> Path:
        """Return the marker of a process stopped on purpose."""
        return hold_path(self.state_dir, proc.label)

    def log_file(self, proc: Process) -> Path:
        """Return the log (stdout and stderr) of ``proc``."""
        return self.log_dir / f"{proc.label}.log"

    def read_pid(self, proc: Process) -> int | None:
        """Return the pid recorded for ``proc`` if that process still runs."""
        try:
            pid = int(self.pid_file(proc).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_our_daemon(pid, proc.daemon) else None

    def held(self, proc: Process) -> bool:
        """Tell whether ``proc`` was stopped on purpose."""
        return self.hold_file(proc).exists()

    def hold(self, proc: Process) -> None:
        """Mark ``proc`` as stopped on purpose (the watchdog leaves it down)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.hold_file(proc).touch()

    def release(self, proc: Process) -> None:
        """Let the watchdog run ``proc`` again."""
        self.hold_file(proc).unlink(missing_ok=True)

    def write_exit(self, record: ExitRecord) -> None:
        """Record how a process exited."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.run_dir / f"{record.label}.exit.json",
                     [json.dumps(asdict(record)).encode()])

    def read_exit(self, proc: Process) -> ExitRecord | None:
        """Return the last exit record of ``proc``, if any."""
        try:
            raw = json.loads((self.run_dir / f"{proc.label}.exit.json").read_text())
            return ExitRecord(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def log_tail(self, proc: Process, lines: int = TAIL_LINES) -> list[str]:
        """Return the last ``lines`` lines of the log of ``proc``."""
        try:
            with open(self.log_file(proc), "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    # -- start -------------------------------------------------------------
    def spawn(self, proc: Process) -> subprocess.Popen[bytes]:
        """Start ``proc`` in its own session and process group; write its pid file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **daemon_env(proc)}
        with open(self.log_file(proc), "ab") as log:
            child = subprocess.Popen(
                daemon_command(proc, self.config_path), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                close_fds=True)
        self.pid_file(proc).write_text(f"{child.pid}\n")
        return child

    def wait_healthy(self, procs: list[Process], timeout: float = 30.0,
                     since: float | None = None) -> list[Process]:
        """Wait until every process runs and answers its health check; return the failures.

        With ``since`` (a wall-clock time), a process whose exit record is newer
        fails at once: the watchdog restarts it, but the caller wants to know.
        """
        deadline = time.monotonic() + timeout
        pending = list(procs)
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending
                       if self.read_pid(p) is None or not health_ok(p)]
            if since is not None:
                crashed = [p for p in pending if (r := self.read_exit(p)) and r.time >= since]
                if crashed:
                    return crashed
            if pending:
                time.sleep(0.1)
        return pending

    # -- stop --------------------------------------------------------------
    def stop(self, proc: Process, timeout: float = 10.0) -> bool:
        """Stop ``proc`` and its process group; True if any of it ran."""
        return bool(self.stop_all([proc], timeout))

    def stop_all(self, procs: list[Process], timeout: float = 10.0) -> list[Process]:
        """Stop several processes and their groups at once; return those that ran.

        All are signalled together and share one ``timeout``, so stopping a whole
        cloud takes about as long as its slowest process, not the sum of all.
        """
        pids: dict[Process, int] = {}
        for proc in procs:
            with contextlib.suppress(OSError, ValueError):
                pids[proc] = int(self.pid_file(proc).read_text().strip())
        ran = stop_groups(set(pids.values()), timeout)
        for proc in procs:
            self.pid_file(proc).unlink(missing_ok=True)
        return [proc for proc in procs if pids.get(proc) in ran]

    def status(self, procs: list[Process]) -> list[ProcessStatus]:
        """Return the status of every process."""
        out = []
        for p in procs:
            pid = self.read_pid(p)
            out.append(ProcessStatus(p, pid, pid is not None,
                                     pid is not None and health_ok(p),
                                     self.held(p), self.read_exit(p)))
        return out


def hold_path(state_dir: Path, label: str) -> Path:
    """Return the marker that keeps process ``label`` down until ``nubis up``."""
    return state_dir / "run" / f"{label}.hold"


def stop_by_pid_files(run_dir: Path, timeout: float = 10.0) -> list[str]:
    """Stop every process group named by a pid file, all at once (no config needed).

    Used by ``nubis down`` when the config file cannot be read any more, and
    for the watchdog's own pid file.
    """
    pids: dict[str, int] = {}
    files = sorted(run_dir.glob("*.pid"))
    for pid_file in files:
        with contextlib.suppress(OSError, ValueError):
            pids[pid_file.stem] = int(pid_file.read_text().strip())
    ran = stop_groups(set(pids.values()), timeout)
    for pid_file in files:
        pid_file.unlink(missing_ok=True)
    return [label for label, pid in pids.items() if pid in ran]


def stop_group(pgid: int, timeout: float = 10.0) -> bool:
    """Stop the nubis processes of process group ``pgid`` (SIGTERM, then SIGKILL).

    Returns:
        Whether any process of the group was running.
    """
    return bool(stop_groups({pgid}, timeout))


def stop_groups(pgids: set[int], timeout: float = 10.0) -> set[int]:
    """Stop the nubis processes of several process groups (SIGTERM, then SIGKILL).

    Only processes that are ``python -m nubis ...`` and in one of those groups are
    signalled, so a reused pid never hits a stranger. A group leader may be
    gone already (orphaned workers of a killed server are still found). Every
    group is signalled at once and ``timeout`` bounds the wait of all of them.

    Returns:
        The groups that had a running process.
    """
    by_group = group_members(pgids)
    members = [pid for pids in by_group.values() for pid in pids]
    if not members:
        return set()
    for pid in members:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in members):
        time.sleep(0.05)
    # Again by group: a process forked after the first look is stopped too.
    left = [pid for pids in group_members(pgids).values() for pid in pids]
    for pid in left:
        _signal(pid, signal.SIGKILL)
    for _ in range(100):
        if not any(_alive(p) for p in {*members, *left}):
            break
        time.sleep(0.05)
    return set(by_group)


def group_members(pgids: set[int]) -> dict[int, list[int]]:
    """Return the live nubis processes of each of the process groups ``pgids`` that has any."""
    out: dict[int, list[int]] = {}
    if not pgids:
        return out
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pgid = int(stat[2])
            if pgid not in pgids or stat[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if b"nubis" in argv:
            out.setdefault(pgid, []).append(pid)
    return out


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


def is_our_daemon(pid: int, daemon: str) -> bool:
    """Tell whether ``pid`` is a live ``nubis daemon <daemon>`` (not a reused pid)."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"nubis" in argv and daemon.encode() in argv


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
