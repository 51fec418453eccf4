"""The ``[network_agent]`` section: one network agent per compute host."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.config import check, positive


@dataclass(frozen=True)
class NetworkAgentConfig:
    """Where the agent reads the wiring state and relays metadata, and how often."""

    enabled: bool = True
    #: Seconds between reconcile passes.
    interval: float = field(default=2.0, metadata=check(positive))
    #: Seconds after which a pass rebuilds even when the API's state is unchanged
    #: (repairs devices removed behind the agent's back; a dead dnsmasq and any
    #: state change are handled on the next pass).
    resync_interval: float = field(default=30.0, metadata=check(positive))
    #: Base URL of the network API (``.../network``); empty: this cloud's ``nubis api``.
    network_url: str = ""
    #: The agents' shared service token (resolved by the CLI layer when empty).
    agent_token: str = ""
    #: Base URL of the compute API (``.../compute``) for the metadata relay.
    compute_url: str = ""
    #: The compute service token the metadata relay presents.
    compute_token: str = ""
    #: Serve the metadata proxy at 169.254.169.254 in each DHCP namespace.
    metadata: bool = True
