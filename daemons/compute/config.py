"""The ``[compute]`` section: the compute daemon of one hypervisor host."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, non_negative, port, positive


def _domain_type(value: object) -> str | None:
    return None if value in ("auto", "kvm", "qemu") else "must be auto, kvm or qemu"


@dataclass(frozen=True)
class ComputeConfig:
    """Settings of ``nubis daemon compute`` (Nova's ``[DEFAULT]``/``[libvirt]`` names)."""

    port: int = field(default=8776, metadata=check(port))
    #: Empty: use ``[cluster] bind_ip``.
    bind_ip: str = ""
    #: This host's name in the scheduler (Nova's ``host``); empty: the machine's host name.
    host: str = ""
    #: Where instance files and the image cache live (Nova's ``instances_path``); empty:
    #: ``<state>/compute``, or ``/var/lib/nubis/compute-<hash of the state dir>`` when
    #: QEMU's user cannot reach the state dir (a clone under ``/root``).
    instances_path: str = ""
    #: ``auto``: the choice cached in ``<state>/compute/domain-type.json`` by a probe
    #: boot, else ``qemu`` (TCG); ``kvm``/``qemu`` force one.
    domain_type: str = field(default="auto", metadata=check(_domain_type))
    #: Shared token callers present in ``X-Service-Token``; empty: a random one in
    #: ``<state>/compute/service_token``.
    service_token: str = ""
    #: Seconds between inventory reports to the scheduler (resource tracker).
    report_interval: float = field(default=10.0, metadata=check(positive))
    #: Seconds between power-state syncs with libvirt.
    sync_interval: float = field(default=10.0, metadata=check(positive))
    #: Seconds a clean (ACPI) shutdown may take before the guest is destroyed.
    shutdown_timeout: float = field(default=60.0, metadata=check(positive))
    #: Seconds an image download may take.
    download_timeout: float = field(default=600.0, metadata=check(positive))
    cpu_allocation_ratio: float = field(default=16.0, metadata=check(positive))
    ram_allocation_ratio: float = field(default=1.5, metadata=check(positive))
    disk_allocation_ratio: float = field(default=1.0, metadata=check(positive))
    reserved_host_memory_mb: int = field(default=512, metadata=check(non_negative))
    reserved_host_disk_mb: int = field(default=0, metadata=check(non_negative))
    #: Builds run at once (Nova's ``max_concurrent_builds``).
    max_concurrent_builds: int = field(default=10, metadata=check(positive))
