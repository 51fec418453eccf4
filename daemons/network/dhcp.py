"""One real ``dnsmasq`` per subnet, inside the subnet's DHCP namespace, static hosts only.

Files live in ``<state>/network/dhcp/<subnet id>/``: ``hosts`` (``mac,name,ip`` for
exactly the ports that exist), ``opts`` (router, DNS servers, and a classless route
to the metadata address via the DHCP port, as Neutron's isolated metadata does) and
``pid``. A change rewrites the files atomically and sends SIGHUP (dnsmasq re-reads
both), or restarts dnsmasq when a host goes (a lease it still holds would refuse
the address to the next port); nothing is leased dynamically (``static`` range,
read-only lease file). The process is started without a shell, in its namespace
through ``setns`` before exec.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.common.fileutil import atomic_write
from nubis.daemons.network.linux import METADATA_IP
from pyroute2 import netns

LOG = logging.getLogger("nubis.daemons.network")
DNSMASQ = "dnsmasq"
LEASE_SECONDS = 86400


@dataclass(frozen=True)
class DhcpConfig:
    """What one subnet's dnsmasq serves."""

    subnet_id: str
    cidr: str
    gateway_ip: str | None
    dhcp_ip: str
    interface: str
    namespace: str
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[tuple[str, str], ...]
    mtu: int
    #: (mac, ip) of every port with an address on the subnet (not the DHCP port).
    hosts: tuple[tuple[str, str], ...]


def hosts_file(cfg: DhcpConfig) -> bytes:
    """Render dnsmasq's ``--dhcp-hostsfile``: one ``mac,name,ip`` line per port."""
    lines = [f"{mac},host-{ip.replace('.', '-')},{ip}\n" for mac, ip in sorted(cfg.hosts)]
    return "".join(lines).encode()


def opts_file(cfg: DhcpConfig) -> bytes:
    """Render ``--dhcp-optsfile``: router, DNS, MTU and classless static routes."""
    routes = [(f"{METADATA_IP}/32", cfg.dhcp_ip)]
    routes += list(cfg.host_routes)
    lines = [f"option:mtu,{cfg.mtu}\n"]
    if cfg.gateway_ip:
        routes.append(("0.0.0.0/0", cfg.gateway_ip))
        lines.append(f"option:router,{cfg.gateway_ip}\n")
    else:
        lines.append("option:router\n")
    if cfg.dns_nameservers:
        lines.append("option:dns-server," + ",".join(cfg.dns_nameservers) + "\n")
    else:
        lines.append("option:dns-server\n")
    lines.append("option:classless-static-route,"
                 + ",".join(f"{d},{via}" for d, via in routes) + "\n")
    return "".join(lines).encode()


def command(cfg: DhcpConfig, workdir: Path) -> list[str]:
    """Return dnsmasq's argv (no shell; every value comes from validated records)."""
    net = ipaddress.ip_network(cfg.cidr)
    return [DNSMASQ, "--keep-in-foreground", "--no-hosts", "--no-resolv", "--port=0",
            "--bind-interfaces", f"--interface={cfg.interface}", "--except-interface=lo",
            f"--pid-file={workdir / 'pid'}", f"--dhcp-hostsfile={workdir / 'hosts'}",
            f"--dhcp-optsfile={workdir / 'opts'}", "--leasefile-ro", "--dhcp-authoritative",
            f"--dhcp-range={net.network_address},static,{net.netmask},{LEASE_SECONDS}s",
            f"--dhcp-lease-max={net.num_addresses}", "--log-dhcp",
            f"--log-facility={workdir / 'log'}"]


class DhcpServers:
    """The dnsmasq processes of this host, by subnet."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.configs: dict[str, DhcpConfig] = {}

    def workdir(self, subnet_id: str) -> Path:
        """Return a subnet's dnsmasq directory."""
        return self.root / subnet_id

    def ensure(self, cfg: DhcpConfig) -> str:
        """Start, reload or leave a subnet's dnsmasq; return what was done."""
        work = self.workdir(cfg.subnet_id)
        work.mkdir(parents=True, exist_ok=True)
        proc = self.procs.get(cfg.subnet_id)
        old = self.configs.get(cfg.subnet_id)
        if proc is not None and proc.poll() is None and old is not None and (
                _static(old) == _static(cfg)) and not removed(old, cfg):
            if old.hosts == cfg.hosts and opts_file(old) == opts_file(cfg):
                return "unchanged"
            self._write(work, cfg)
            proc.send_signal(signal.SIGHUP)
            self.configs[cfg.subnet_id] = cfg
            return "reloaded"
        self.stop(cfg.subnet_id)
        self._write(work, cfg)
        (work / "pid").unlink(missing_ok=True)
        with (work / "stderr").open("ab") as err:
            proc = subprocess.Popen(
                command(cfg, work), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, preexec_fn=_enter(cfg.namespace), close_fds=True)
        self.procs[cfg.subnet_id] = proc
        self.configs[cfg.subnet_id] = cfg
        wait_started(proc, work)
        return "started"

    def _write(self, work: Path, cfg: DhcpConfig) -> None:
        atomic_write(work / "hosts", [hosts_file(cfg)])
        atomic_write(work / "opts", [opts_file(cfg)])

    def stop(self, subnet_id: str, timeout: float = 3.0) -> bool:
        """Stop a subnet's dnsmasq (ours, or one a previous agent left); return if it ran."""
        ran = False
        proc = self.procs.pop(subnet_id, None)
        self.configs.pop(subnet_id, None)
        if proc is not None:
            ran = proc.poll() is None
            _terminate(proc.pid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        stale = stale_pid(self.workdir(subnet_id))
        if stale is not None:
            ran = True
            _terminate(stale, timeout)
        return ran

    def all_running(self) -> bool:
        """Tell whether every dnsmasq this agent started still runs."""
        return all(proc.poll() is None for proc in self.procs.values())

    def known(self) -> list[str]:
        """Return every subnet with a dnsmasq directory (running or left over)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def forget(self, subnet_id: str) -> None:
        """Remove a stopped subnet's files."""
        work = self.workdir(subnet_id)
        for name in ("hosts", "opts", "pid", "log", "stderr"):
            (work / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            work.rmdir()


class DhcpError(Exception):
    """dnsmasq did not start."""


def wait_started(proc: subprocess.Popen[bytes], work: Path, timeout: float = 5.0) -> None:
    """Wait until dnsmasq wrote its pid file (it then serves); raise if it exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (work / "stderr").read_bytes()[-300:].decode(errors="replace")
            raise DhcpError(f"dnsmasq exited with {proc.returncode}: {tail}")
        if stale_pid(work) == proc.pid:
            return
        time.sleep(0.01)
    raise DhcpError(f"dnsmasq did not write {work / 'pid'} within {timeout} s")


def removed(old: DhcpConfig, new: DhcpConfig) -> set[tuple[str, str]]:
    """Return the (mac, ip) host entries ``old`` served that ``new`` no longer has.

    dnsmasq keeps a lease in memory until it expires (``--leasefile-ro``, nothing
    releases it), and SIGHUP does not drop it: an address freed by a deleted port and
    handed to a new port later would be refused ("leased to <old MAC>"). So a change
    that removes a host restarts the subnet's dnsmasq instead of reloading it.
    """
    return set(old.hosts) - set(new.hosts)


def _static(cfg: DhcpConfig) -> tuple[Any, ...]:
    return (cfg.cidr, cfg.interface, cfg.namespace)


def _enter(namespace: str) -> Any:
    def enter() -> None:
        netns.setns(namespace)
    return enter


def stale_pid(workdir: Path) -> int | None:
    """Return the pid of a live dnsmasq serving ``workdir`` (from its pid file), if any."""
    try:
        pid = int((workdir / "pid").read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if argv and Path(argv[0].decode(errors="replace")).name == DNSMASQ and any(
            a == f"--pid-file={workdir / 'pid'}".encode() for a in argv):
        return pid
    return None


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def configs_for(network: Mapping[str, Any], interfaces: Mapping[str, tuple[str, str]]
                ) -> Iterable[DhcpConfig]:
    """Yield the DHCP config of each DHCP-enabled subnet of a network state record.

    ``interfaces`` maps subnet id to (namespace, namespace-side veth).
    """
    ports: Sequence[Mapping[str, Any]] = network["ports"]
    for sub in network["subnets"]:
        if not sub["enable_dhcp"] or sub["id"] not in interfaces:
            continue
        dhcp_ip = dhcp_address(ports, sub["id"])
        if dhcp_ip is None:
            continue
        hosts = tuple((p["mac_address"], ip["ip_address"]) for p in ports
                      if p["device_owner"] != "network:dhcp"
                      for ip in p["fixed_ips"] if ip["subnet_id"] == sub["id"])
        ns_name, ns_if = interfaces[sub["id"]]
        yield DhcpConfig(sub["id"], sub["cidr"], sub["gateway_ip"], dhcp_ip, ns_if, ns_name,
                         tuple(sub["dns_nameservers"]),
                         tuple((r["destination"], r["nexthop"]) for r in sub["host_routes"]),
                         int(network["mtu"]), hosts)


def dhcp_address(ports: Sequence[Mapping[str, Any]], subnet_id: str) -> str | None:
    """Return the address of a subnet's DHCP port, if it has one."""
    for p in ports:
        if p["device_owner"] == "network:dhcp" and p["device_id"] == f"dhcp-{subnet_id}":
            for ip in p["fixed_ips"]:
                if ip["subnet_id"] == subnet_id:
                    return str(ip["ip_address"])
    return None


def dhcp_mac(ports: Sequence[Mapping[str, Any]], subnet_id: str) -> str | None:
    """Return the MAC of a subnet's DHCP port, if it has one."""
    for p in ports:
        if p["device_owner"] == "network:dhcp" and p["device_id"] == f"dhcp-{subnet_id}":
            return str(p["mac_address"])
    return None
