"""Post-start work of ``nubis up``: bootstrap identity with this cloud's catalog.

The catalog names the services this deployment runs and where they listen,
which only this layer knows (the registry and the whole Config); the identity
service gets them as plain entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nubis.common.net import http_base
from nubis.settings import Config

if TYPE_CHECKING:
    from nubis.api.identity.bootstrap import CatalogEntry
    from nubis.api.identity.store import Row


def identity_post_start(config: Config, state_dir: Path) -> None:
    """Bootstrap identity and write clouds.yaml/openrc (the ``nubis up`` hook)."""
    from nubis.registry import API_MOUNTS, DAEMONS

    state = Path(state_dir)
    bootstrap_identity(config, state, [m.prefix for m in API_MOUNTS], "proxy" in DAEMONS,
                       has_placement="scheduler" in DAEMONS)
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    print(f"\nIdentity (Keystone v3): {public}/identity/v3")
    print(f"  wrote {state / 'clouds.yaml'} (clouds nubis-admin, nubis-demo) and "
          f"{state / 'openrc'}")
    print(f"  OS_CLIENT_CONFIG_FILE={state / 'clouds.yaml'} openstack --os-cloud nubis-admin "
          "token issue")


def bootstrap_identity(config: Config, state_dir: Path, prefixes: list[str], has_proxy: bool,
                       *, has_placement: bool = False) -> Row:
    """Create the bootstrap entities for the mounted APIs ``prefixes``; return the admin project."""
    from nubis.api.identity.bootstrap import bootstrap

    state_dir.mkdir(parents=True, exist_ok=True)
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    return bootstrap(config.identity, config.api.resolved_database_url(state_dir), public,
                     state_dir, catalog(config, prefixes, has_proxy, has_placement))


def catalog(config: Config, prefixes: list[str], has_proxy: bool,
            has_placement: bool) -> list[CatalogEntry]:
    """Return the catalog entries of the mounted APIs, the proxy and placement."""
    from nubis.api.identity.bootstrap import CatalogEntry
    from nubis.registry import API_MOUNTS

    public = config.api.resolved_public_url(config.cluster.bind_ip)
    known = {m.prefix: m.catalog for m in API_MOUNTS}
    out = [CatalogEntry(known[p][0], known[p][1], f"{public}{known[p][2]}")
           for p in prefixes if p in known]
    if has_proxy:
        out.append(CatalogEntry("object-store", "swift", object_store_url(config)))
    if has_placement:
        out.append(CatalogEntry("placement", "placement", placement_url(config)))
    return out


def object_store_url(config: Config) -> str:
    """Return the object-store endpoint template (from ``[identity]`` or the proxy's port)."""
    if config.identity.object_store_url:
        return config.identity.object_store_url
    host = config.proxy.bind_ip or config.cluster.bind_ip
    return f"{http_base(host, config.proxy.port)}/v1/AUTH_%(project_id)s"


def placement_url(config: Config) -> str:
    """Return the placement endpoint (served by the scheduler process)."""
    host = config.scheduler.bind_ip or config.cluster.bind_ip
    return f"{http_base(host, config.scheduler.port)}/placement"
