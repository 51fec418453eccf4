"""The reference S3 server: Ceph RGW (Debian's ``radosgw`` 16.2) on one node, on loopback.

``python -m nubis.bench s3 --reference rgw`` compares nubis with it. What
:class:`RgwCluster` starts (facts from ``reference-rgw-on-this-machine.md``):
one monitor, one BlueStore OSD on a sparse file, no mgr, one ``radosgw`` with
the beast front end (``tcp_nodelay=1``, or Nagle adds ~40 ms to small
requests), pools of size 1 (compare with a one-replica nubis policy), cephx
on, all daemons bound to 127.0.0.1 and living in one temporary directory.
Bootstrapping takes ~25 s. :meth:`RgwCluster.stop` kills each daemon by the
pid recorded at start and removes the directory (``NUBIS_KEEP_RGW=1`` keeps it,
logs included, for a post-mortem).

The packages are not part of ``make up`` (hundreds of MB, only this
benchmark needs them); :data:`INSTALL_HINT` says how to get them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Binaries the reference needs (all from Debian bookworm's Ceph 16.2 packages).
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool",
            "monmaptool")
INSTALL_HINT = ("Ceph RGW is not installed; the reference run needs Debian's Ceph 16.2:\n"
                "  apt-get install --no-install-recommends ceph-mon ceph-osd radosgw "
                "ceph-common")
#: Sparse size of the OSD's BlueStore block file.
BLOCK_BYTES = 20 << 30
#: The pools RGW writes objects and bucket indexes to (made by us: PG budget).
DATA_POOLS = (("default.rgw.buckets.data", 32), ("default.rgw.buckets.index", 16))
ACCESS, SECRET = "nubisbench", "nubisbench-secret"


def missing_binaries() -> list[str]:
    """Return the Ceph binaries not on PATH (empty: the reference can run)."""
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port() -> int:
    """Return a free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ceph_conf(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    """Return the ``ceph.conf`` of the one-node, size-1, loopback cluster under ``root``."""
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
mon initial members = a
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {root}/keyring
run dir = {root}/run
pid file = {root}/run/$name.pid
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
log to stderr = false
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
osd objectstore = bluestore

[mon.a]
mon data = {root}/mon

[osd.0]
osd data = {root}/osd
keyring = {root}/osd/keyring
bluestore block create = true
bluestore block size = {BLOCK_BYTES}

[client.admin]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {root}/rgw
"""


@dataclass
class RgwCluster:
    """A running mon + OSD + radosgw; ``endpoint`` takes S3 with ACCESS/SECRET."""

    root: Path
    rgw_port: int
    #: Daemons run in the foreground (the OSD, radosgw), stopped in reverse order.
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        """Return the cluster's ``ceph.conf``."""
        return self.root / "ceph.conf"

    @property
    def endpoint(self) -> str:
        """Return the S3 endpoint URL."""
        return f"http://127.0.0.1:{self.rgw_port}"

    def ceph(self, *args: str, timeout: float = 60.0) -> str:
        """Run a ``ceph`` CLI command (mon commands only: there is no mgr)."""
        return _run(["ceph", "-c", str(self.conf), "--connect-timeout", "20", *args],
                    timeout)

    def stop(self) -> None:
        """Kill every daemon started (by recorded pid) and remove the directory."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        for pid_file in sorted((self.root / "run").glob("*.pid")):
            self._kill(pid_file)
        if not os.environ.get("NUBIS_KEEP_RGW"):
            shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _kill(pid_file: Path) -> None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if not Path(f"/proc/{pid}").exists():
                    return
                time.sleep(0.1)


def _foreground(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a daemon in the foreground (``-f``), its output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _daemon(cmd: list[str], timeout: float = 120.0) -> None:
    """Start a daemon that forks into the background (its output goes to its log file)."""
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode})")


def _run(cmd: list[str], timeout: float = 120.0) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr[-2000:]}{proc.stdout[-500:]}")
    return proc.stdout


def start(parent: Path, timeout: float = 180.0) -> RgwCluster:
    """Bootstrap the cluster under ``parent/rgw`` (bounded); stop it again on failure."""
    root = parent / "rgw"
    for sub in ("run", "log", "mon", "osd", "rgw"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cluster = RgwCluster(root, free_port())
    try:
        _bootstrap(cluster, free_port(), time.monotonic() + timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _bootstrap(cluster: RgwCluster, mon_port: int, deadline: float) -> None:
    root, conf = cluster.root, str(cluster.conf)
    fsid = str(uuid.uuid4())
    cluster.conf.write_text(ceph_conf(root, fsid, mon_port, cluster.rgw_port))
    _make_keys(root)
    _run(["monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", "--fsid", fsid,
          str(root / "monmap")])
    _run(["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(root / "monmap"),
          "--keyring", str(root / "keyring")])
    _daemon(["ceph-mon", "-c", conf, "-i", "a"])
    cluster.ceph("mon", "stat")
    _start_osd(cluster, deadline)
    for pool, pgs in DATA_POOLS:
        cluster.ceph("osd", "pool", "create", pool, str(pgs))
        cluster.ceph("osd", "pool", "application", "enable", pool, "rgw")
    rgw = _foreground(["radosgw", "-f", "-c", conf, "-n", "client.admin"],
                      root / "log" / "radosgw.out")
    cluster.procs.append(rgw)
    _wait(lambda: _listening(cluster.rgw_port), deadline, "radosgw listening", rgw)
    _run(["radosgw-admin", "-c", conf, "user", "create", "--uid", "bench",
          "--display-name", "bench", "--access-key", ACCESS, "--secret", SECRET])


def _make_keys(root: Path) -> None:
    ring = str(root / "keyring")
    _run(["ceph-authtool", "--create-keyring", ring, "--gen-key", "-n", "mon.",
          "--cap", "mon", "allow *"])
    _run(["ceph-authtool", ring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *",
          "--cap", "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *"])


def _start_osd(cluster: RgwCluster, deadline: float) -> None:
    root, conf = cluster.root, str(cluster.conf)
    osd_uuid = str(uuid.uuid4())
    key = _run(["ceph-authtool", "--gen-print-key"]).strip()
    (root / "osd" / "keyring").write_text(f"[osd.0]\n\tkey = {key}\n")
    secrets = root / "osd-secrets.json"
    secrets.write_text(f'{{"cephx_secret": "{key}"}}')
    osd_id = cluster.ceph("osd", "new", osd_uuid, "-i", str(secrets)).strip()
    if osd_id != "0":
        raise RuntimeError(f"unexpected OSD id {osd_id!r}")
    _run(["ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid,
          "--no-mon-config"], timeout=max(10.0, deadline - time.monotonic()))
    cluster.procs.append(_foreground(["ceph-osd", "-f", "-c", conf, "-i", "0"],
                                     root / "log" / "osd.out"))
    _wait(lambda: '"num_up_osds":1' in cluster.ceph("osd", "stat", "-f", "json")
          .replace(" ", ""), deadline, "the OSD up")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(check: Callable[[], bool], deadline: float, what: str,
          proc: subprocess.Popen[bytes] | None = None) -> None:
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)
