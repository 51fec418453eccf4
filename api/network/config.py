"""The ``[network_api]`` section: the Neutron v2.0 API under ``nubis api``."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, positive


@dataclass(frozen=True)
class NetworkApiConfig:
    """MAC prefix, MTUs, list limits and default quotas of the network API."""

    #: Shared service token of the network agents (resolved by the CLI layer when empty).
    agent_token: str = ""
    #: First three octets of every port's MAC address (Neutron's ``base_mac``).
    base_mac: str = "fa:16:3e"
    #: MTU of tenant (VXLAN) networks and of flat provider networks.
    vxlan_mtu: int = field(default=1450, metadata=check(positive))
    flat_mtu: int = field(default=1500, metadata=check(positive))
    #: Most items one list page returns.
    max_limit: int = field(default=1000, metadata=check(positive))
    #: Default quotas per project (Neutron's ``[quotas]``).
    network: int = field(default=100, metadata=check(positive))
    subnet: int = field(default=100, metadata=check(positive))
    port: int = field(default=500, metadata=check(positive))
    security_group: int = field(default=10, metadata=check(positive))
    security_group_rule: int = field(default=100, metadata=check(positive))
