"""Bring up libvirtd on a host without systemd, and decide the guests' domain type.

``ensure_libvirtd()`` is idempotent and safe to call from several processes at
once (they serialize on a lock file). On a Debian machine with the Makefile's
packages but no ``libvirt-daemon-system`` and no systemd it:

1. creates the ``kvm`` and ``libvirt-qemu`` groups and the ``libvirt-qemu`` user
   (the account libvirt runs QEMU as) when missing;
2. creates ``/var/log/libvirt``, ``/var/run/libvirt``, ``/var/lib/libvirt`` and
   ``/var/cache/libvirt``;
3. gives ``/dev/kvm`` to group ``kvm`` with mode 0660, as udev would. Without it
   libvirtd finds its cached QEMU capabilities (probed as root, with KVM) out of
   date on every ``defineXML`` and probes QEMU again: about 30 s per call here;
4. starts ``virtlogd -d`` and ``libvirtd -d`` unless they run, and waits until
   ``qemu:///system`` answers.

``probe_domain_type()`` boots a kernel + initrd under KVM once and uses ``kvm``
only if that guest gets through its boot and powers itself off within a bound;
otherwise ``qemu`` (TCG). On the development machines ``/dev/kvm`` exists but
KVM guests hang, so the answer there is ``qemu``. The answer is cached in the
state directory.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import libvirt
from nubis.common.fileutil import locked
from nubis.daemons.compute.domain import DirectBoot, DomainSpec, DomainType, domain_xml
from nubis.daemons.compute.errors import HostSetupError

URI = "qemu:///system"
QEMU_USER = "libvirt-qemu"
QEMU_GROUP = "libvirt-qemu"
KVM_GROUP = "kvm"
KVM_DEVICE = Path("/dev/kvm")
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
VIRTLOGD_SOCKET = Path("/var/run/libvirt/virtlogd-sock")
RUN_DIR = Path("/var/run")
LIBVIRT_DIRS = (Path("/var/log/libvirt"), Path("/var/run/libvirt"), Path("/var/lib/libvirt"),
                Path("/var/cache/libvirt"))
LOCK_FILE = Path("/var/run/nubis-libvirtd.lock")
DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
#: How long a KVM probe guest gets to boot and power itself off.
PROBE_BOUND = 20.0
PROBE_CACHE = "domain-type.json"


@dataclass(frozen=True)
class HostStatus:
    """What ``ensure_libvirtd`` found or did."""

    uri: str
    libvirt_version: int
    started: tuple[str, ...]


@dataclass(frozen=True)
class DomainTypeChoice:
    """The domain type guests use on this host, and why."""

    domain_type: DomainType
    reason: str
    probe_seconds: float


def quiet_libvirt() -> None:
    """Stop libvirt-python printing every error to stderr (they are raised anyway)."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def connect(uri: str = URI) -> libvirt.virConnect:
    """Open a libvirt connection (errors raised, never printed)."""
    quiet_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostSetupError(f"cannot connect to {uri}: {exc}") from exc


def ensure_libvirtd(uri: str = URI, timeout: float = 60.0) -> HostStatus:
    """Make sure libvirtd (and virtlogd) run and ``uri`` answers; start what is missing.

    Raises:
        HostSetupError: not root while something must be created or started, a
            tool is missing, or libvirtd does not answer within ``timeout``.
    """
    quiet_libvirt()
    if os.geteuid() != 0:
        version = _answers(uri)
        if version:
            return HostStatus(uri, version, ())
        raise HostSetupError(f"{uri} does not answer and starting libvirtd needs root")
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with locked(LOCK_FILE):
        _ensure_accounts()
        _ensure_dirs()
        _ensure_kvm_device()
        started = []
        if not _virtlogd_running():
            _start(["virtlogd", "-d"])
            started.append("virtlogd")
        version = _answers(uri)
        if not version:
            if not _daemon_pid("libvirtd"):
                _start(["libvirtd", "-d"])
                started.append("libvirtd")
            version = _wait_answering(uri, timeout)
        return HostStatus(uri, version, tuple(started))


def _answers(uri: str) -> int:
    """Return libvirt's version if ``uri`` answers now, else 0."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return 0
    try:
        return int(conn.getLibVersion())
    except libvirt.libvirtError:
        return 0
    finally:
        conn.close()


def _wait_answering(uri: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = _answers(uri)
        if version:
            return version
        time.sleep(0.1)
    raise HostSetupError(f"libvirtd started but {uri} did not answer within {timeout:.0f} s "
                         "(see /var/log/libvirt/libvirtd.log)")


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              env=DAEMON_ENV)
    except FileNotFoundError as exc:
        raise HostSetupError(f"{argv[0]} not found: install the Makefile's APT_PACKAGES") from exc
    if done.returncode != 0:
        raise HostSetupError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _ensure_accounts() -> None:
    """Create the groups and the user libvirt runs QEMU as (Debian's libvirt-daemon-system)."""
    for group in (KVM_GROUP, QEMU_GROUP):
        if not _group_exists(group):
            _run(["groupadd", "--system", group])
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        _run(["useradd", "--system", "--gid", KVM_GROUP, "--groups", QEMU_GROUP,
              "--home-dir", "/var/lib/libvirt", "--no-create-home",
              "--shell", "/usr/sbin/nologin", "--comment", "Libvirt Qemu", QEMU_USER])
        return
    if QEMU_USER not in grp.getgrnam(QEMU_GROUP).gr_mem and \
            pwd.getpwnam(QEMU_USER).pw_gid != grp.getgrnam(QEMU_GROUP).gr_gid:
        _run(["usermod", "--append", "--groups", QEMU_GROUP, QEMU_USER])


def _ensure_dirs() -> None:
    for path in LIBVIRT_DIRS:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)


def _ensure_kvm_device() -> None:
    try:
        st = KVM_DEVICE.stat()
    except FileNotFoundError:
        return
    kvm_gid = grp.getgrnam(KVM_GROUP).gr_gid
    if st.st_gid != kvm_gid:
        os.chown(KVM_DEVICE, -1, kvm_gid)
    if stat.S_IMODE(st.st_mode) & 0o060 != 0o060:
        os.chmod(KVM_DEVICE, stat.S_IMODE(st.st_mode) | 0o060)


def _daemon_pid(name: str) -> int:
    """Return the pid in ``/var/run/<name>.pid`` if that process is ``name``, else 0."""
    try:
        pid = int((RUN_DIR / f"{name}.pid").read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return 0
    return pid if comm == name else 0


def _virtlogd_running() -> bool:
    """True if virtlogd runs (our pid file) or its socket accepts (systemd activation)."""
    if _daemon_pid("virtlogd"):
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(str(VIRTLOGD_SOCKET))
        except OSError:
            return False
    return True


def _start(argv: list[str]) -> None:
    """Start a daemon that forks itself (``-d``); it outlives this process by design."""
    if shutil.which(argv[0], path=DAEMON_ENV["PATH"]) is None:
        raise HostSetupError(f"{argv[0]} not found: install the Makefile's APT_PACKAGES")
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=DAEMON_ENV, start_new_session=True, timeout=120, check=False)
    if done.returncode != 0:
        raise HostSetupError(f"{' '.join(argv)} exited {done.returncode}: "
                             f"{done.stderr.strip()[-500:]} (see /var/log/libvirt/)")


# --- who QEMU runs as ---------------------------------------------------------------


def blocking_ancestor(path: Path, user: str = QEMU_USER) -> Path | None:
    """Return the first directory on ``path``'s way that ``user`` cannot search, if any.

    QEMU runs as ``user`` and opens disks, kernels and the console log by path, so
    every directory above them must grant it search (x) permission.
    """
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for directory in [*reversed(path.absolute().parents)]:
        st = directory.stat()
        if st.st_uid == pw.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return directory
    return None


def check_reachable(path: Path, user: str = QEMU_USER) -> None:
    """Raise HostSetupError if ``user`` (QEMU) cannot reach ``path`` through its parents."""
    blocked = blocking_ancestor(path, user)
    if blocked is not None:
        raise HostSetupError(
            f"{path} is not reachable by {user} (QEMU runs as it): {blocked} is mode "
            f"{stat.S_IMODE(blocked.stat().st_mode):04o}; give it o+x or move the state dir")


# --- the domain-type probe ------------------------------------------------------------


def choose_domain_type(conn: libvirt.virConnect, work_dir: Path, kernel: Path, initrd: Path,
                       *, cmdline: str, expect: str, bound: float = PROBE_BOUND,
                       use_cache: bool = True) -> DomainTypeChoice:
    """Return the cached domain type of this host, probing once if there is none.

    ``kernel``/``initrd`` must boot, print ``expect`` on ttyS0 and power off by
    themselves given ``cmdline`` (the test image with ``nubis.poweroff`` does).
    The result is cached in ``work_dir/domain-type.json``.
    """
    cache = work_dir / PROBE_CACHE
    if use_cache:
        cached = _read_choice(cache)
        if cached is not None:
            return cached
    work_dir.mkdir(parents=True, exist_ok=True)
    choice = _probe(conn, work_dir, kernel, initrd, cmdline, expect, bound)
    tmp = cache.with_name(f".{cache.name}.tmp")
    tmp.write_text(json.dumps(asdict(choice)) + "\n")
    os.replace(tmp, cache)
    return choice


def _read_choice(path: Path) -> DomainTypeChoice | None:
    try:
        doc: Any = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("domain_type") not in ("kvm", "qemu"):
            return None
        return DomainTypeChoice(doc["domain_type"], str(doc["reason"]),
                                float(doc["probe_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _kvm_offered(conn: libvirt.virConnect) -> bool:
    return KVM_DEVICE.exists() and "<domain type='kvm'" in conn.getCapabilities()


def _probe(conn: libvirt.virConnect, work_dir: Path, kernel: Path, initrd: Path,
           cmdline: str, expect: str, bound: float) -> DomainTypeChoice:
    if not _kvm_offered(conn):
        return DomainTypeChoice("qemu", "libvirt offers no kvm domain type here", 0.0)
    result = probe_boot(conn, work_dir, kernel, initrd, domain_type="kvm", cmdline=cmdline,
                        expect=expect, bound=bound)
    return DomainTypeChoice("kvm" if result.ok else "qemu", f"KVM probe: {result.detail}",
                            result.seconds)


@dataclass(frozen=True)
class ProbeResult:
    """How a probe boot went: ``ok`` if the guest booted and powered off in time."""

    ok: bool
    detail: str
    seconds: float
    #: The transient domain's name (it is gone when the probe returns).
    name: str = ""


def probe_boot(conn: libvirt.virConnect, work_dir: Path, kernel: Path, initrd: Path, *,
               domain_type: DomainType, cmdline: str, expect: str,
               bound: float = PROBE_BOUND) -> ProbeResult:
    """Boot ``kernel``/``initrd`` once as a transient domain of ``domain_type``.

    The result is ok if the guest printed ``expect`` and powered itself off within
    ``bound`` seconds. The probe's files are removed afterwards.
    """
    probe_dir = work_dir / f"{domain_type}-probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    probe_dir.mkdir(mode=0o711, parents=True)
    os.chmod(probe_dir, 0o711)
    try:
        check_reachable(probe_dir / "x")
        for src in (kernel, initrd):
            shutil.copyfile(src, probe_dir / src.name)
            os.chmod(probe_dir / src.name, 0o644)
        uid = str(uuidlib.uuid4())
        spec = DomainSpec(uuid=uid, name=f"nubis-probe-{uid}", vcpus=1, memory_mib=128,
                          domain_type=domain_type, console_log=probe_dir / "console.log",
                          boot=DirectBoot(probe_dir / kernel.name, probe_dir / initrd.name,
                                          cmdline))
        return _boot_transient(conn, spec, expect, bound)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def _boot_transient(conn: libvirt.virConnect, spec: DomainSpec, expect: str,
                    bound: float) -> ProbeResult:
    start = time.monotonic()
    try:
        dom = conn.createXML(domain_xml(spec), 0)
    except libvirt.libvirtError as exc:
        return ProbeResult(False, f"guest failed to start: {exc.get_error_message()}", 0.0,
                           spec.name)
    finally:
        remove_qemu_logs(spec.name)
    try:
        finished = _wait_gone(dom, start + bound)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        remove_qemu_logs(spec.name)
    seconds = time.monotonic() - start
    if not finished:
        return ProbeResult(False, f"guest did not boot and power off within {bound:.0f} s",
                           seconds, spec.name)
    try:
        console = spec.console_log.read_text(errors="replace")
    except OSError:
        console = ""
    if expect not in console:
        return ProbeResult(False, f"guest stopped without printing {expect!r}", seconds,
                           spec.name)
    return ProbeResult(True, f"guest booted and powered off in {seconds:.1f} s", seconds,
                       spec.name)


def remove_qemu_logs(name: str) -> None:
    """Remove libvirt's own log of domain ``name`` (``/var/log/libvirt/qemu/NAME.log*``)."""
    for log in QEMU_LOG_DIR.glob(f"{name}.log*"):
        log.unlink(missing_ok=True)


def _wait_gone(dom: libvirt.virDomain, deadline: float) -> bool:
    """Wait until a transient domain stops; False if it still runs at ``deadline``."""
    while time.monotonic() < deadline:
        try:
            if not dom.isActive():
                return True
        except libvirt.libvirtError:  # a transient domain vanishes when it stops
            return True
        time.sleep(0.1)
    return False
