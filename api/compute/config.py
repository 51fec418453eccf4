"""The ``[compute_api]`` section: the Nova v2.1 API under ``nubis api``."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, non_negative, positive


@dataclass(frozen=True)
class ComputeApiConfig:
    """Peers of the compute API and its default quotas."""

    #: Scheduler base URL (``select_destinations``, host list, releases); empty means
    #: the local scheduler (resolved by the CLI layer).
    scheduler_url: str = ""
    #: Shared service token of the scheduler (resolved by the CLI layer when empty).
    scheduler_token: str = ""
    #: Shared service token of the compute daemons (resolved by the CLI layer when empty).
    compute_token: str = ""
    #: Image service base URL (``.../image``); empty means this process's ``/image``.
    image_url: str = ""
    #: Seconds a compute daemon may take to build one instance.
    build_timeout: float = field(default=600.0, metadata=check(positive))
    #: Seconds an instance may stay in BUILD before the power-state sync puts it in
    #: ERROR (Nova's ``instance_build_timeout``; 0 turns it off). Builds run in the
    #: api process, so this is what ends a build an api restart interrupted.
    instance_build_timeout: float = field(default=3600.0, metadata=check(non_negative))
    #: Seconds a power action (stop, reboot) may take on the host.
    action_timeout: float = field(default=300.0, metadata=check(positive))
    #: Seconds between power-state syncs with the hosts (Nova's ``sync_power_state_interval``).
    sync_power_state_interval: float = field(default=10.0, metadata=check(positive))
    #: Most servers/flavors one list page returns (Nova's ``max_limit``).
    max_limit: int = field(default=1000, metadata=check(positive))
    #: Default quotas per project (Nova's ``[quota]``).
    instances: int = field(default=10, metadata=check(positive))
    cores: int = field(default=20, metadata=check(positive))
    ram: int = field(default=51200, metadata=check(positive))
    key_pairs: int = field(default=100, metadata=check(positive))
    metadata_items: int = field(default=128, metadata=check(positive))
    server_groups: int = field(default=10, metadata=check(positive))
    server_group_members: int = field(default=10, metadata=check(positive))
    #: Availability zone of hosts in no AZ aggregate.
    default_availability_zone: str = "nova"
