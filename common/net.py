"""Addresses: how a client reaches a server from the address it binds.

Servers bind loopback by default. When an operator binds a wildcard (every
address), URLs that nubis writes for clients (catalog, clouds.yaml, health
checks) must still name a reachable address: loopback.
"""

from __future__ import annotations

LOOPBACK = "127.0.0.1"
#: Bind addresses that mean "every interface" (or "not set").
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def connect_host(bind_ip: str) -> str:
    """Return the address a local client uses to reach a server bound to ``bind_ip``."""
    return LOOPBACK if bind_ip in WILDCARDS else bind_ip


def http_base(bind_ip: str, port: int) -> str:
    """Return ``http://host:port`` for a server bound to ``bind_ip`` (IPv6 bracketed)."""
    host = connect_host(bind_ip)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
