"""The ``[cluster]`` section: what every process of one cloud shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from nubis.common.policies import DEFAULT_POLICIES, PolicyConfig, PolicySet


@dataclass(frozen=True)
class ClusterConfig:
    """Cluster-wide settings shared by every process."""

    #: Secret mixed into every ring hash (Swift's swift_hash_path_prefix).
    hash_path_prefix: str = ""
    #: Secret mixed into every ring hash (Swift's swift_hash_path_suffix).
    hash_path_suffix: str = "nubis"
    #: Where state (devices, rings, databases, pids, logs) lives.
    state_dir: str = "var"
    #: Address every server binds to unless its section says otherwise.
    bind_ip: str = "127.0.0.1"
    #: Storage servers also listen on a Unix socket named after their address
    #: (:func:`~nubis.common.net.local_socket_name`) and the proxy of the same
    #: host reaches them through it: ~9 % less CPU per 4 KiB GET than loopback TCP
    #: (README, lever table). ``false``: TCP only.
    local_sockets: bool = True
    #: Storage policies by name (``[cluster.storage_policies.<name>]``): index, type,
    #: replicas or EC parameters; see :mod:`nubis.common.policies`.
    storage_policies: dict[str, PolicyConfig] = field(
        default_factory=lambda: dict(DEFAULT_POLICIES))

    def policies(self) -> PolicySet:
        """Return the storage policies (built through the policy-type registry)."""
        return PolicySet.from_config(self.storage_policies)
