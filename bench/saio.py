"""A real OpenStack Swift 2.38 all-in-one ("SAIO") for side-by-side benchmarks.

Layout: memcached on a loopback port (tempauth keeps tokens only there), one
proxy and four storage nodes (object, container and account server each,
``workers = 1``), devices as directories, part power 10, 3 replicas, policy 0 (``rep3``) and
policy 1 (``ec42``: ``isa_l_rs_vand`` 4+2 over 8 devices, two per node).
Swift runs from the separate ``.venv-swift`` (:mod:`nubis.bench.refswift`).
The hash path secrets and policy 0 are in ``<root>/etc/swift.conf``, found
through ``swift_dir`` (``/etc/swift/swift.conf`` is not written); logs go to
an unused private UDP port.
Servers call ``setsid()`` themselves, so they are stopped by their recorded pids.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from nubis.bench.refswift import SWIFT_HASH_SETUP, ensure_swift_venv, swift_python

NODES = 4
_LAUNCH = SWIFT_HASH_SETUP + (
    "import os, sys\n"
    # Swift reads policies from /etc/swift/swift.conf at import time and run_wsgi's
    # set_swift_dir does not reload them: point it at ours and reload (ec42).
    "_su.SWIFT_CONF_FILE = os.path.join(os.path.dirname(sys.argv[1]), 'swift.conf')\n"
    "from swift.common.storage_policy import reload_storage_policies\n"
    "reload_storage_policies()\n"
    "from swift.common.wsgi import run_wsgi\n"
    "sys.exit(run_wsgi(sys.argv[1], sys.argv[2]))\n"
)
_RINGS = SWIFT_HASH_SETUP + (
    "import sys\n"
    "from swift.common.ring import RingBuilder\n"
    "root, base = sys.argv[1], int(sys.argv[2])\n"
    "for kind, off in (('object', 0), ('container', 1), ('account', 2)):\n"
    "    b = RingBuilder(10, 3, 1)\n"
    "    for i in range(4):\n"
    "        b.add_dev({'id': i, 'region': 1, 'zone': i + 1, 'ip': '127.0.0.1',\n"
    "                   'port': base + 10 * i + off, 'device': 'sdb%d' % (i + 1),\n"
    "                   'weight': 100, 'meta': ''})\n"
    "    b.rebalance(seed=1)\n"
    "    b.get_ring().save('%s/%s.ring.gz' % (root, kind))\n"
    "b = RingBuilder(10, 6, 1)\n"  # ec42: 6 fragment archives over 8 devices
    "for i in range(8):\n"
    "    b.add_dev({'id': i, 'region': 1, 'zone': i % 4 + 1, 'ip': '127.0.0.1',\n"
    "               'port': base + 10 * (i % 4), 'device': 'sdb%d' % (i + 1),\n"
    "               'weight': 100, 'meta': ''})\n"
    "b.rebalance(seed=1)\n"
    "b.get_ring().save('%s/object-1.ring.gz' % root)\n"
)

#: Policy 1 of the SAIO: erasure coding 4+2 with ISA-L (``isa_l_rs_vand``), 1 MiB segments.
EC_POLICY = ("[storage-policy:1]\nname = ec42\npolicy_type = erasure_coding\n"
             "ec_type = isa_l_rs_vand\nec_num_data_fragments = 4\n"
             "ec_num_parity_fragments = 2\nec_object_segment_size = 1048576\n")

_COMMON = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = root
swift_dir = {swift_dir}
devices = {devices}
mount_check = false
log_udp_host = 127.0.0.1
log_udp_port = {log_port}
log_level = WARNING
"""

_SERVER = """
[pipeline:main]
pipeline = healthcheck {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[filter:healthcheck]
use = egg:swift#healthcheck
"""

_PROXY = """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache tempauth
    proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}
# A loaded shared machine makes memcached answers slow; with Swift's defaults
# (0.3 s connect timeout, error-limited after 10 errors a minute) the proxy then
# stops reading tokens and answers 401 to everything for a minute. Patient
# timeouts change no fast path.
connect_timeout = 5
io_timeout = 10
pool_timeout = 5
error_suppression_limit = 1000000

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging
"""


class SwiftAIO:
    """Start and stop a Swift all-in-one under ``root`` using ports from ``base``."""

    def __init__(self, root: Path, base: int, proxy_workers: int = 1) -> None:
        self.root = root
        self.proxy_workers = proxy_workers
        self.pids: list[int] = []
        self.set_base(base)

    def set_base(self, base: int) -> None:
        """Choose the ports: node i at ``base + 10i (+1, +2)``, proxy ``base + 90``."""
        self.base = base
        self.proxy_port = base + 90
        self.memcache_port = base + 91
        self.log_port = base + 92

    def _conf(self, name: str, port: int, devices: Path, body: str, workers: int = 1) -> Path:
        path = self.root / "etc" / f"{name}.conf"
        path.write_text(_COMMON.format(port=port, workers=workers, swift_dir=self.root / "etc",
                                       devices=devices, log_port=self.log_port) + body)
        return path

    def start(self, timeout: float = 300.0) -> str:
        """Build rings and configs, start every process; return the auth URL.

        Thirteen eventlet servers importing Swift on 2 cores: at load average
        ~30 they were not all healthy after 90 s, hence the generous bound.
        """
        venv = ensure_swift_venv()
        py = str(swift_python(venv))
        (self.root / "etc").mkdir(parents=True, exist_ok=True)
        # swift_dir's swift.conf (read via set_swift_dir; /etc/swift is not touched).
        (self.root / "etc" / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_prefix =\nswift_hash_path_suffix = nubis-bench\n\n"
            "[storage-policy:0]\nname = rep3\ndefault = yes\n\n" + EC_POLICY)
        subprocess.run([py, "-c", _RINGS, str(self.root / "etc"), str(self.base)], check=True,
                       capture_output=True, timeout=120)
        mc = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(self.memcache_port),
                               "-U", "0", "-u", "root", "-m", "64"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pids.append(mc.pid)
        confs: list[tuple[Path, str, int]] = []
        for i in range(NODES):
            devices = self.root / f"node{i}"
            for dev in (i + 1, i + 1 + NODES):
                (devices / f"sdb{dev}").mkdir(parents=True, exist_ok=True)
            for off, kind in enumerate(("object", "container", "account")):
                port = self.base + 10 * i + off
                confs.append((self._conf(f"{kind}-{i}", port, devices,
                                         _SERVER.format(kind=kind)), f"{kind}-server", port))
        confs.append((self._conf("proxy", self.proxy_port, self.root,
                                 _PROXY.format(memcache_port=self.memcache_port),
                                 self.proxy_workers), "proxy-server", self.proxy_port))
        log = open(self.root / "swift.log", "ab")  # noqa: SIM115 - kept for the children
        for conf, section, _ in confs:
            p = subprocess.Popen([py, "-c", _LAUNCH, str(conf), section],
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            self.pids.append(p.pid)
        log.close()
        self._wait([port for _, _, port in confs], timeout)
        return f"http://127.0.0.1:{self.proxy_port}/auth/v1.0"

    def _wait(self, ports: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if time.monotonic() > deadline:
                tail = (self.root / "swift.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"swift servers not healthy on {pending}:\n{tail}")
            pending = [p for p in pending if not _healthy(p)]
            if pending:
                time.sleep(0.2)

    def all_pids(self) -> list[int]:
        """Return every process of the SAIO: memcached, the servers and their workers."""
        from nubis.bench.procstat import group_pids

        return self.pids[:1] + group_pids(self.pids[1:])  # run_wsgi calls setsid()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every recorded pid (servers kill their own groups), then SIGKILL."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        self.pids.clear()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1) as r:
            return int(r.status) == 200
    except (OSError, http.client.HTTPException):
        return False
