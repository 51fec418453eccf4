"""The two container servers of ``python -m nubis.bench scale``, each alone in its process.

* nubis: :class:`~nubis.daemons.storage.containerserver.ContainerServer` on
  nubis' HTTP server (uvloop), the storage defaults ``make up`` uses, one
  device; bulk rows arrive over HTTP as ``POST /<device>/_rows`` batches (the
  calls nubis object servers make).
* Swift 2.38.3: ``swift.container.server`` under ``run_wsgi`` (eventlet,
  ``workers = 0``: one process), one device, from the reference venv
  (:mod:`nubis.bench.refswift`). Swift's container server takes one row per
  ``PUT``, so bulk rows go straight into its ``ContainerBroker``
  (``merge_items``, the call its replicator uses) -- through HTTP a million
  rows would take most of an hour on this machine. Listings and the per-row
  insert samples go through HTTP on both.

Rows are named ``dNN/oIIIIIIIII``: 100 "directories", so ``prefix``,
``delimiter`` and ``marker`` queries have something to skip.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import msgpack
from nubis.bench import loadgen
from nubis.bench.refswift import SWIFT_HASH_SETUP, ensure_swift_venv, swift_python
from nubis.bench.saio import _LAUNCH

ACCOUNT = "AUTH_scale"
CONTAINER = "big"
DIRS = 100
ROW_SIZE = 4096
CTYPE = "application/octet-stream"

#: Child process: nubis' container server on a free port (printed when listening).
_NUBIS_SERVE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from nubis.common.httpserver import run_uvloop\n"
    "from nubis.daemons.storage.config import StorageConfig\n"
    "from nubis.daemons.storage.containerserver import ContainerServer\n"
    "from nubis.daemons.storage.runner import serve\n"
    "cfg = StorageConfig()\n"
    "app = ContainerServer(cfg, Path(sys.argv[1]))\n"
    "def ready(port):\n"
    "    print(port, flush=True)\n"
    "run_uvloop(serve(app, '127.0.0.1', 0, max_connections=cfg.max_connections, ready=ready))\n"
)

#: Child process: bulk-load rows ``[start, stop)`` into Swift's container DB.
_SWIFT_LOAD = SWIFT_HASH_SETUP + (
    "import glob, sys, time\n"
    "from swift.container.backend import ContainerBroker\n"
    "root, start, stop, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
    "int(sys.argv[4])\n"
    "(path,) = glob.glob(root + '/*/containers/*/*/*/*.db')\n"
    "broker = ContainerBroker(path)\n"
    "t0 = time.perf_counter()\n"
    "for lo in range(start, stop, batch):\n"
    "    broker.merge_items([{'name': 'd%02d/o%09d' % (i % 100, i),\n"
    "        'created_at': '%d.%05d' % (1700000000 + i // 100000, i % 100000),\n"
    "        'size': 4096, 'content_type': 'application/octet-stream',\n"
    "        'etag': '%032x' % i, 'deleted': 0, 'storage_policy_index': 0,\n"
    "        'ctype_timestamp': None, 'meta_timestamp': None}\n"
    "        for i in range(lo, min(stop, lo + batch))])\n"
    "print(time.perf_counter() - t0)\n"
)

_SWIFT_CONF = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = root
swift_dir = {root}
devices = {root}/devices
mount_check = false
log_udp_host = 127.0.0.1
log_udp_port = {log_port}
log_level = WARNING

[pipeline:main]
pipeline = healthcheck container-server

[app:container-server]
use = egg:swift#container

[filter:healthcheck]
use = egg:swift#healthcheck
"""


def row_name(i: int) -> str:
    """Return the name of row ``i``."""
    return f"d{i % DIRS:02d}/o{i:09d}"


def row_headers(i: int) -> dict[str, str]:
    """Return the backend headers of row ``i`` (as an object server sends them)."""
    return {"X-Timestamp": f"{1700000000 + i // 100000}.{i % 100000:05d}",
            "X-Size": str(ROW_SIZE), "X-Content-Type": CTYPE, "X-Etag": f"{i:032x}"}


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def allocated_bytes(root: Path) -> int:
    """Return the bytes the files under ``root`` occupy on disk."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def rss_bytes(pid: int) -> int:
    """Return a process' resident set size (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Server:
    """One container server under test, in its own process."""

    name: str
    root: Path
    device: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def pid(self) -> int:
        """Return the server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def path(self, obj: str = "") -> str:
        """Return the backend path of the container (or one of its rows)."""
        base = f"/{self.device}/0/{ACCOUNT}/{CONTAINER}"
        return base + ("/" + quote(obj) if obj else "")

    def create_container(self) -> None:
        """PUT the container."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.path()}",
                                     method="PUT",
                                     headers={"X-Timestamp": "1690000000.00000"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.status not in (201, 202):
                raise RuntimeError(f"{self.name}: container PUT answered {resp.status}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; return once it answers."""
        raise NotImplementedError

    def load(self, start: int, stop: int, batch: int) -> float:
        """Insert rows ``[start, stop)`` in bulk; return the seconds it took."""
        raise NotImplementedError

    def disk_bytes(self) -> int:
        """Return the bytes the server's device occupies."""
        return allocated_bytes(self.root / "devices")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class NubisServer(Server):
    """nubis' container server (LMDB), bulk rows through ``POST /<device>/_rows``."""

    def __init__(self, root: Path) -> None:
        super().__init__("nubis", root, "d1")

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; wait until it listens."""
        (self.root / "devices" / self.device).mkdir(parents=True, exist_ok=True)
        log = open(self.root / "nubis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-c", _NUBIS_SERVE,
                                      str(self.root / "devices")],
                                     stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child prints its port when listening
        if not line.strip().isdigit():
            self.stop()
            tail = (self.root / "nubis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"nubis container server did not start:\n{tail}")
        self.port = int(line)
        del timeout

    def load(self, start: int, stop: int, batch: int) -> float:
        """Send rows in ``_rows`` batches over two connections; check every status."""
        base = quote(f"/{ACCOUNT}/{CONTAINER}/")
        reqs = [loadgen.Request("POST", f"/{self.device}/_rows",
                                (("Content-Type", "application/x-msgpack"),),
                                msgpack.packb([["PUT", base + quote(row_name(i)), row_headers(i)]
                                               for i in range(lo, min(stop, lo + batch))]))
                for lo in range(start, stop, batch)]

        def all_created(_: int, body: bytes) -> bool:
            return all(s == 201 for s in msgpack.unpackb(body))

        res = loadgen.run_loop(loadgen.run("127.0.0.1", self.port, reqs, 2,
                                           verify=all_created, expect=(200,),
                                           time_limit=3600))
        if res.failed:
            raise RuntimeError(f"nubis bulk load: {res.failed} batches failed {res.statuses}")
        return res.seconds


class SwiftServer(Server):
    """Swift 2.38.3's container server (SQLite), bulk rows through its ``ContainerBroker``."""

    def __init__(self, root: Path) -> None:
        super().__init__("swift", root, "sdb1")
        self.python = ""

    def start(self, timeout: float = 60.0) -> None:
        """Write the config, start ``run_wsgi`` (one process); wait for ``/healthcheck``."""
        self.python = str(swift_python(ensure_swift_venv()))
        (self.root / "devices" / self.device).mkdir(parents=True, exist_ok=True)
        (self.root / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_prefix =\nswift_hash_path_suffix = nubis-bench\n\n"
            "[storage-policy:0]\nname = rep3\ndefault = yes\n")
        self.port = free_port()
        conf = self.root / "container-server.conf"
        conf.write_text(_SWIFT_CONF.format(port=self.port, root=self.root,
                                           log_port=free_port()))
        log = open(self.root / "swift.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([self.python, "-c", _LAUNCH, str(conf), "container-server"],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while not _healthy(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                tail = (self.root / "swift.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"swift container server did not start:\n{tail}")
            time.sleep(0.2)

    def load(self, start: int, stop: int, batch: int) -> float:
        """Merge rows into the broker directly (no HTTP: one row per PUT is too slow)."""
        out = subprocess.run([self.python, "-c", _SWIFT_LOAD, str(self.root / "devices"),
                              str(start), str(stop), str(batch)],
                             capture_output=True, text=True, check=False, timeout=7200)
        if out.returncode != 0:
            raise RuntimeError(f"swift bulk load failed:\n{out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1) as r:
            return int(r.status) == 200
    except OSError:
        return False
