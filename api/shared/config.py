"""What the CLI layer hands the API services: ``[api]``, token settings, mounts.

These are plain frozen dataclasses (no runtime imports), so the CLI layer can
build them without loading any service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nubis.common.config import check, port, positive
from nubis.common.net import http_base


@dataclass(frozen=True)
class ApiConfig:
    """Where ``nubis api`` listens and which database it uses."""

    #: Address to bind; empty means the cluster's ``bind_ip``.
    bind_ip: str = ""
    #: TCP port of the control-plane APIs (path prefixes /identity, /compute, ...).
    port: int = field(default=5000, metadata=check(port))
    #: SQLAlchemy URL of the control-plane database; empty means
    #: ``sqlite:///<state_dir>/nubis.db``. Use ``postgresql://...`` for multi-node.
    database_url: str = ""
    #: Base URL clients use to reach this process (catalog, links); empty means
    #: ``http://<bind_ip or 127.0.0.1>:<port>``.
    public_url: str = ""
    #: Largest accepted request body, in bytes.
    max_body_bytes: int = field(default=1 << 20, metadata=check(positive))

    def resolved_bind_ip(self, cluster_bind_ip: str) -> str:
        """Return the address to bind."""
        return self.bind_ip or cluster_bind_ip

    def resolved_database_url(self, state_dir: str | Path) -> str:
        """Return the database URL, defaulting to the state dir's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(state_dir).resolve() / 'nubis.db'}"

    def resolved_public_url(self, cluster_bind_ip: str) -> str:
        """Return the public base URL (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return http_base(self.resolved_bind_ip(cluster_bind_ip), self.port)


@dataclass(frozen=True)
class TokenSettings:
    """What a local token verifier needs: the cloud's keys and revocation events."""

    #: The Fernet key repository directory.
    key_repository: Path
    #: Keys kept: staged + primary + secondaries.
    max_active_keys: int = 3
    #: Token lifetime in seconds (how long revocation events are kept).
    token_ttl: int = 3600
    #: How often new revocation events are pulled (the revocation bound).
    revocation_poll_seconds: float = 2.0
    #: Verified-token cache entries per process.
    token_cache_size: int = 10000
    #: SQLAlchemy URL of the control-plane database holding revocation events.
    database_url: str = ""


@dataclass(frozen=True)
class Mount:
    """One API of the ``nubis api`` process: path prefix, factory, own config section."""

    prefix: str
    #: ``"module:function"``, called as ``function(prefix, services, section)``.
    factory: str
    #: The API's own config section (a frozen dataclass).
    section: Any
