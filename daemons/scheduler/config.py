"""The ``[scheduler]`` config section (Nova's ``[filter_scheduler]`` option names)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, non_negative, port, positive

#: Nova's default filter list (placement-era defaults plus the ones nubis adds).
DEFAULT_FILTERS: tuple[str, ...] = (
    "ComputeFilter",
    "AvailabilityZoneFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
)


@dataclass(frozen=True)
class SchedulerConfig:
    """Settings of ``nubis scheduler`` (filters, weighers, placement, server)."""

    #: Filters to run, in order (Nova's ``enabled_filters``).
    enabled_filters: tuple[str, ...] = DEFAULT_FILTERS
    #: Weighers to run (Nova's ``weight_classes``; ``all`` = every known one).
    weight_classes: tuple[str, ...] = ("all",)
    #: Pick randomly among this many best hosts (Nova's ``host_subset_size``).
    host_subset_size: int = field(default=1, metadata=check(positive))
    #: Hosts per instance returned (1 selected + alternates), Nova's ``max_attempts``.
    max_attempts: int = field(default=3, metadata=check(positive))
    ram_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    disk_weight_multiplier: float = 1.0
    io_ops_weight_multiplier: float = -1.0
    num_instances_weight_multiplier: float = 0.0
    soft_affinity_weight_multiplier: float = field(default=1.0, metadata=check(non_negative))
    soft_anti_affinity_weight_multiplier: float = field(
        default=1.0, metadata=check(non_negative))
    build_failure_weight_multiplier: float = 1000000.0
    max_instances_per_host: int = field(default=50, metadata=check(positive))
    max_io_ops_per_host: int = field(default=8, metadata=check(positive))
    isolated_images: tuple[str, ...] = ()
    isolated_hosts: tuple[str, ...] = ()
    restrict_isolated_hosts_to_isolated_images: bool = True
    #: Availability zone of hosts in no AZ aggregate (Nova's default_availability_zone).
    default_availability_zone: str = "nova"
    #: Seconds without a report after which a host counts as down (service_down_time).
    service_down_time: int = field(default=60, metadata=check(positive))
    #: Claim retries on a provider generation conflict.
    claim_retries: int = field(default=5, metadata=check(positive))
    port: int = field(default=8775, metadata=check(port))
    #: Empty: use ``[cluster] bind_ip``.
    bind_ip: str = ""
    #: Empty: ``sqlite:///<state_dir>/scheduler.sqlite``.
    database_url: str = ""
    #: Shared token services present in ``X-Service-Token`` / ``X-Auth-Token``.
    #: Empty: a random one is generated into ``<state_dir>/scheduler/service_token``.
    service_token: str = ""
