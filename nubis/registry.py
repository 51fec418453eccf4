"""Every daemon ``nubis daemon NAME`` can run, and what each is handed.

A target is ``"module:function"``, called as ``function(*spec.args(config), once=once)``:
``args`` picks the typed config sections the daemon needs out of the whole
:class:`~nubis.settings.Config` (only this layer knows the whole file). It runs
in the foreground until stopped (or one pass when ``once`` is true, for
background daemons). Modules are imported only when their daemon runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nubis.api.shared.config import Mount
from nubis.common.net import http_base
from nubis.common.servicetoken import load_or_create
from nubis.defaults import ring_dir
from nubis.settings import Config, token_settings


@dataclass(frozen=True)
class DaemonSpec:
    """How to run one kind of nubis process."""

    name: str
    target: str
    kind: Literal["server", "background"]
    summary: str
    #: The positional arguments of ``target`` (its config sections), from the whole Config.
    args: Callable[[Config], tuple[Any, ...]]
    #: Run once per storage node (``$NUBIS_STORAGE_NODE`` set), like the storage servers.
    per_node: bool = False


@dataclass(frozen=True)
class ApiMount:
    """One API of the ``nubis api`` process and its service catalog entry."""

    prefix: str
    #: ``"module:function"`` called as ``function(prefix, services, section)``.
    factory: str
    #: Its own section of the Config.
    section: Callable[[Config], Any]
    #: Service type, name and the path after the public URL, for the catalog.
    catalog: tuple[str, str, str]


DAEMONS: dict[str, DaemonSpec] = {}

#: The APIs ``nubis api`` serves, by path prefix. Add new control-plane APIs here.
API_MOUNTS: list[ApiMount] = [
    ApiMount("/identity", "nubis.api.identity.app:create_app", lambda c: c.identity,
             ("identity", "keystone", "/identity")),
    ApiMount("/image", "nubis.api.image.app:create_app",
             lambda c: c.image.for_cluster(c.cluster),
             ("image", "glance", "/image")),
    ApiMount("/compute", "nubis.api.compute.app:create_app", lambda c: compute_api(c),
             ("compute", "nova", "/compute/v2.1")),
    ApiMount("/volume", "nubis.api.volume.app:create_app", lambda c: volume_api(c),
             ("block-storage", "cinderv3", "/volume/v3")),
    ApiMount("/network", "nubis.api.network.app:create_app", lambda c: network_api(c),
             ("network", "neutron", "/network")),
]


def register(spec: DaemonSpec) -> None:
    """Add a daemon to the table (module-level calls below, one per daemon)."""
    DAEMONS[spec.name] = spec


def api_mounts(config: Config) -> list[Mount]:
    """Return the mounts of ``nubis api``, each with its own config section."""
    return [Mount(m.prefix, m.factory, m.section(config)) for m in API_MOUNTS]


def scheduler_url(config: Config) -> str:
    """Return the scheduler's base URL (its own API, not placement)."""
    return http_base(config.scheduler.bind_ip or config.cluster.bind_ip, config.scheduler.port)


def scheduler_token(config: Config) -> str:
    """Return the scheduler's shared service token (created in the state dir if unset)."""
    return config.scheduler.service_token or load_or_create(
        Path(config.cluster.state_dir).resolve() / "scheduler" / "service_token")


def compute_token(config: Config) -> str:
    """Return the compute daemons' shared service token (created in the state dir if unset)."""
    return config.compute.service_token or load_or_create(
        Path(config.cluster.state_dir).resolve() / "compute" / "service_token")


def compute_api(config: Config) -> Any:
    """Return ``[compute_api]`` with its peers (scheduler, compute tokens) resolved."""
    c = config.compute_api
    return dataclasses.replace(c, scheduler_url=c.scheduler_url or scheduler_url(config),
                               scheduler_token=c.scheduler_token or scheduler_token(config),
                               compute_token=c.compute_token or compute_token(config))


def volume_token(config: Config) -> str:
    """Return the volume daemons' shared service token (created in the state dir if unset)."""
    return config.volume.service_token or load_or_create(
        Path(config.cluster.state_dir).resolve() / "volume" / "service_token")


def volume_api(config: Config) -> Any:
    """Return ``[volume_api]`` with its peers (volume daemon, object store) resolved."""
    c = config.volume_api
    daemon = http_base(config.volume.bind_ip or config.cluster.bind_ip, config.volume.port)
    store = http_base(config.proxy.bind_ip or config.cluster.bind_ip, config.proxy.port)
    return dataclasses.replace(c, volume_url=c.volume_url or daemon,
                               volume_token=c.volume_token or volume_token(config),
                               object_store_url=c.object_store_url or f"{store}/v1")


def network_agent_token(config: Config) -> str:
    """Return the network agents' shared service token (created in the state dir if unset)."""
    return config.network_api.agent_token or load_or_create(
        Path(config.cluster.state_dir).resolve() / "network" / "agent_token")


def network_api(config: Config) -> Any:
    """Return ``[network_api]`` with the agents' token resolved."""
    return dataclasses.replace(config.network_api, agent_token=network_agent_token(config))


def _network_agent(config: Config) -> tuple[Any, ...]:
    c = config.network_agent
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    return (dataclasses.replace(
        c, network_url=c.network_url or f"{public}/network",
        agent_token=c.agent_token or network_agent_token(config),
        compute_url=c.compute_url or f"{public}/compute",
        compute_token=c.compute_token or compute_token(config)), config.cluster)


def _compute(config: Config) -> tuple[Any, ...]:
    from nubis.daemons.compute.service import Peers

    return (config.compute, config.cluster,
            Peers(scheduler_url(config), scheduler_token(config)))


def _storage(config: Config) -> tuple[Any, ...]:
    return (config.storage, config.cluster)


# Daemons are listed here as their components land.
register(DaemonSpec("object-server", "nubis.daemons.storage.objectserver:run", "server",
                    "object server (one storage node; $NUBIS_STORAGE_NODE)", _storage))
register(DaemonSpec("container-server", "nubis.daemons.storage.containerserver:run", "server",
                    "container server (one storage node; $NUBIS_STORAGE_NODE)", _storage))
register(DaemonSpec("account-server", "nubis.daemons.storage.accountserver:run", "server",
                    "account server (one storage node; $NUBIS_STORAGE_NODE)", _storage))
register(DaemonSpec("proxy", "nubis.api.proxy.server:run", "server",
                    "Swift v1 proxy (+ tempauth) on port 8080",
                    lambda c: (c.proxy, c.tempauth, c.cluster, token_settings(c))))
register(DaemonSpec("api", "nubis.api.shared.host:run", "server",
                    "control-plane APIs (/identity Keystone v3, /image Glance v2, "
                    "/compute Nova v2.1, /network Neutron v2.0) on port 5000",
                    lambda c: (c.api, c.cluster, token_settings(c), api_mounts(c))))
register(DaemonSpec("scheduler", "nubis.daemons.scheduler.server:run", "server",
                    "scheduler + placement (/v1/select_destinations, /placement) on port 8775",
                    lambda c: (c.scheduler, c.cluster, token_settings(c))))

def _object_daemon(section: Callable[[Config], Any]) -> Callable[[Config], tuple[Any, ...]]:
    return lambda c: (section(c), c.storage, c.cluster, ring_dir(c))


# Object-side background daemons: one process per storage node, like the servers.
for _name, _module, _section, _summary in (
        ("object-replicator", "replicator", lambda c: c.object_replicator,
         "syncs object partitions with the other primaries, empties handoffs"),
        ("object-auditor", "auditor", lambda c: c.object_auditor,
         "verifies stored objects' checksums, quarantines bad ones"),
        ("object-updater", "updater", lambda c: c.object_updater,
         "sends queued container updates (async pendings)"),
        ("object-reconstructor", "reconstructor", lambda c: c.object_reconstructor,
         "rebuilds missing or corrupt EC fragment archives, reverts handoffs")):
    register(DaemonSpec(_name, f"nubis.daemons.storage.{_module}:run", "background",
                        f"{_summary} (one storage node; $NUBIS_STORAGE_NODE)",
                        _object_daemon(_section)))
# The expirer also applies S3 lifecycle rules, with the S3 API's code in its process.
register(DaemonSpec("object-expirer", "nubis.expirerboot:run", "background",
                    "deletes objects whose X-Delete-At has passed, applies S3 lifecycle rules "
                    "(one storage node; $NUBIS_STORAGE_NODE)",
                    lambda c: (c.object_expirer, c.storage, c.cluster, ring_dir(c), c.proxy,
                               c.tempauth)))
# Container/account database replicators: one per storage node, like the servers.
for _kind, _db_section in (("container", lambda c: c.container_replicator),
                           ("account", lambda c: c.account_replicator)):
    register(DaemonSpec(f"{_kind}-replicator", f"nubis.daemons.storage.dbreplicator:run_{_kind}",
                        "background",
                        f"syncs {_kind} databases with the other primaries, empties handoffs "
                        "(one storage node; $NUBIS_STORAGE_NODE)",
                        _object_daemon(_db_section), per_node=True))
register(DaemonSpec("compute", "nubis.daemons.compute.server:run", "server",
                    "compute host (libvirt; builds and powers instances) on port 8776",
                    _compute))
register(DaemonSpec("volume", "nubis.daemons.volume.server:run", "server",
                    "volume host (qcow2 volumes, snapshots, backups) on port 8777",
                    lambda c: (c.volume, c.cluster)))
register(DaemonSpec("network-agent", "nubis.daemons.network.agent:run", "background",
                    "network agent (bridges, DHCP namespaces, dnsmasq, metadata proxy)",
                    _network_agent))

#: Called by ``nubis up`` after every daemon answers its health check, in order:
#: ``"module:function"`` taking ``(config: Config, state_dir: pathlib.Path)``.
#: Used for bootstrap work (identity admin/demo users, catalog, clouds.yaml, ...).
POST_START_HOOKS: list[str] = [
    "nubis.bootstrap:identity_post_start",
    "nubis.bootstrap:test_image_post_start",
    "nubis.computeboot:flavors_post_start",
    "nubis.networkboot:network_post_start",
]

#: Hooks ``nubis up --no-NAME`` leaves out: NAME -> hook.
OPTIONAL_HOOKS: dict[str, str] = {
    "test-image": "nubis.bootstrap:test_image_post_start",
}
