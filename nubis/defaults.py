"""What ``nubis up`` writes into a fresh state directory: config, rings, devices.

The default cloud is SAIO-like: four storage nodes on loopback (node ``i``
serves device ``d<i+1>`` on ports ``6200+10i`` / ``6201+10i`` / ``6202+10i``),
one region, one zone per node, 3 replicas, storage policy ``rep3`` (index 0).
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.common.config import read_toml
from nubis.common.fileutil import atomic_write
from nubis.settings import Config, load_config

NODE_COUNT = 4
REPLICAS = 3
PART_POWER = 10
RING_KINDS = ("object", "container", "account")

#: Default tempauth users: ``account:user`` -> (key, groups).
DEFAULT_USERS: dict[str, tuple[str, list[str]]] = {
    "admin:admin": ("admin", [".admin", ".reseller_admin"]),
    "test:tester": ("testing", [".admin"]),
    "test2:tester2": ("testing2", [".admin"]),
    "test:tester3": ("testing3", []),
}


@dataclass(frozen=True)
class Ports:
    """Ports of a cloud: proxy and node-0 storage ports (node i adds 10*i)."""

    proxy: int = 8080
    object: int = 6200
    container: int = 6201
    account: int = 6202


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(doc: dict[str, dict[str, Any]]) -> str:
    """Write a two-level document (sections with scalars and sub-tables) as TOML."""
    lines: list[str] = []

    def section(name: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{_key(k)} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in tables.items():
            section(f"{name}.{_key(k)}", v)

    for name, table in doc.items():
        section(name, table)
    return "\n".join(lines)


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def default_document(state_dir: Path, ports: Ports | None = None,
                     proxy_workers: int = 2,
                     section_ports: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Return the default config of a state directory (fresh random hash secrets).

    ``section_ports`` sets ``port`` in other sections (tests use free ports).
    """
    p = ports or Ports()
    users = {name: {"key": key, "groups": groups}
             for name, (key, groups) in DEFAULT_USERS.items()}
    doc: dict[str, dict[str, Any]] = {
        "cluster": {"hash_path_prefix": secrets.token_hex(8),
                    "hash_path_suffix": secrets.token_hex(8),
                    "state_dir": str(state_dir), "bind_ip": "127.0.0.1"},
        "storage": {"node_count": NODE_COUNT, "object_port": p.object,
                    "container_port": p.container, "account_port": p.account},
        "proxy": {"port": p.proxy, "workers": proxy_workers,
                  "token_verifiers": ["nubis.api.proxy.keystoneauth:proxy_verifier"],
                  "s3_credentials": "nubis.api.identity.ec2:proxy_lookup"},
        "tempauth": {"token_life": 86400, "token_secret": secrets.token_hex(32),
                     "users": users},
    }
    for section, port in (section_ports or {}).items():
        doc.setdefault(section, {})["port"] = port
    return doc


def write_default_config(path: Path, state_dir: Path, ports: Ports | None = None,
                         proxy_workers: int = 2,
                         section_ports: dict[str, int] | None = None) -> bool:
    """Write the default config to ``path`` unless it exists; return True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# nubis all-in-one configuration (written by `nubis up`)\n\n" + to_toml(
        default_document(state_dir, ports, proxy_workers, section_ports))
    atomic_write(path, [text.encode()], mode=0o600)
    return True


#: Default keys never added to an existing config: without them the cloud has been
#: running on the built-in values (a new hash secret would move every object; users
#: an operator removed stay removed).
NEVER_ADDED = frozenset({("cluster", "hash_path_prefix"), ("cluster", "hash_path_suffix"),
                         ("tempauth", "token_secret"), ("tempauth", "users")})


def missing_defaults(doc: dict[str, Any], defaults: dict[str, dict[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    """Return the keys of ``defaults`` that ``doc`` lacks, by section (values untouched).

    Keys in :data:`NEVER_ADDED` are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for section, table in defaults.items():
        have = doc.get(section)
        if not isinstance(have, dict):
            have = {}
        add = {k: v for k, v in table.items()
               if k not in have and (section, k) not in NEVER_ADDED}
        if add:
            out[section] = add
    return out


def add_missing_defaults(path: Path, state_dir: Path) -> list[str]:
    """Add to an existing config the default keys it lacks; return them as ``section.key``.

    A state dir written by an older ``nubis up`` keeps its ``nubis.toml``; keys the
    defaults gained since (e.g. the proxy's S3 credential lookup) are added with their
    default values, every value already there (secrets, ports, users) is kept. The
    file is rewritten only when something is added, and only when it loads as it is
    (a broken config stays untouched: its ConfigError is raised).
    """
    load_config(path)
    doc = read_toml(path)
    add = missing_defaults(doc, default_document(state_dir))
    if not add:
        return []
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in doc.items()}
    for section, keys in add.items():
        merged.setdefault(section, {}).update(keys)
    try:
        text = "# nubis all-in-one configuration (written by `nubis up`)\n\n" + to_toml(merged)
    except TypeError as exc:  # a form to_toml does not write (an array of tables)
        print(f"{path}: not adding default keys ({exc})", file=sys.stderr)
        return []
    atomic_write(path, [text.encode()], mode=0o600)
    return [f"{section}.{key}" for section, keys in add.items() for key in keys]


def ring_dir(config: Config) -> Path:
    """Return where the proxy reads its rings."""
    if config.proxy.ring_dir:
        return Path(config.proxy.ring_dir)
    return Path(config.cluster.state_dir) / "rings"


def devices_per_node(config: Config) -> int:
    """Return how many devices each node has: enough for the widest policy's ring."""
    count = config.storage.node_count
    widest = max(p.ring_replicas for p in config.cluster.policies())
    return max(1, -(-widest // count))


def device_name(config: Config, node: int, slot: int) -> str:
    """Return the name of ``node``'s device ``slot`` (``d1``..``d4``, then ``d5``..)."""
    return f"d{slot * config.storage.node_count + node + 1}"


def ensure_devices(config: Config) -> list[Path]:
    """Create every node's device directories; return them."""
    from nubis.daemons.storage.config import node_settings

    out = []
    for i in range(config.storage.node_count):
        node = node_settings(config.storage, config.cluster.state_dir, i)
        for slot in range(devices_per_node(config)):
            dev = node.devices / device_name(config, i, slot)
            dev.mkdir(parents=True, exist_ok=True)
            out.append(dev)
    return out


def ring_plan(config: Config) -> list[tuple[str, str, int, int]]:
    """Return every ring to build: (file stem, server kind, replicas, devices per node).

    The container and account rings and every replicated policy's object ring
    use one device per node (``min(replicas, nodes)`` copies); an EC policy's
    ring has ``k + m`` primaries over enough devices per node for one fragment
    archive per device (``ec42``: 6 of 8 devices, ``ec84``: 12 of 12).
    """
    count = config.storage.node_count
    out = [(kind, kind, min(REPLICAS, count), 1) for kind in ("container", "account")]
    for policy in config.cluster.policies():
        want = policy.ring_replicas
        per_node = max(1, -(-want // count)) if policy.is_ec else 1
        out.append((policy.ring_name, "object", min(want, count * per_node), per_node))
    return out


def ensure_rings(config: Config) -> list[Path]:
    """Build the container, account and every policy's object ring if missing."""
    from nubis.daemons.storage.config import node_settings
    from nubis.ring.builder import RingBuilder
    from nubis.ring.ringdata import write_ring_file

    rdir = ring_dir(config)
    rdir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, kind, replicas, per_node in ring_plan(config):
        path = rdir / f"{stem}.ring"
        if path.exists():
            continue
        builder = RingBuilder(PART_POWER, replicas, 1)
        for i in range(config.storage.node_count):
            node = node_settings(config.storage, config.cluster.state_dir, i)
            port = {"object": node.object_port, "container": node.container_port,
                    "account": node.account_port}[kind]
            for slot in range(per_node):
                builder.add_dev(region=1, zone=i + 1, ip=node.bind_ip, port=port,
                                device=device_name(config, i, slot), weight=100.0)
        builder.rebalance(seed=1)
        write_ring_file(path, builder.get_ring())
        written.append(path)
    return written


def write_swiftrc(config: Config, state_dir: Path, user: str = "admin:admin") -> Path:
    """Write ``<state>/swiftrc`` exporting ST_AUTH / ST_USER / ST_KEY."""
    entry = config.tempauth.users.get(user)
    key = entry.key if entry is not None else ""
    host = config.proxy.bind_ip or config.cluster.bind_ip
    auth = f"http://{host}:{config.proxy.port}/auth/v1.0"
    path = state_dir / "swiftrc"
    path.write_text(f"export ST_AUTH={shlex.quote(auth)}\n"
                    f"export ST_USER={shlex.quote(user)}\n"
                    f"export ST_KEY={shlex.quote(key)}\n")
    os.chmod(path, 0o600)
    return path
