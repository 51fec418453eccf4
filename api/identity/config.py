"""The ``[identity]`` section: tokens, keys, passwords, rate limits, catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nubis.common.config import check, non_negative, positive


@dataclass(frozen=True)
class IdentityConfig:
    """Keystone settings shared by the identity API and every token verifier."""

    #: Fernet key repository; empty means ``<state_dir>/fernet-keys``.
    key_repository: str = ""
    #: Keys kept: staged + primary + secondaries.
    max_active_keys: int = field(default=3, metadata=check(positive))
    #: Token lifetime in seconds.
    token_ttl: int = field(default=3600, metadata=check(positive))
    #: How often every verifier pulls new revocation events (the revocation bound).
    revocation_poll_seconds: float = field(default=2.0, metadata=check(positive))
    #: Verified-token cache entries per process.
    token_cache_size: int = field(default=10000, metadata=check(positive))
    #: Password of the bootstrap ``admin`` user; empty = generate once, keep in the state dir.
    admin_password: str = ""
    #: Password of the bootstrap ``demo`` user; empty = generate once.
    demo_password: str = ""
    #: Region of every catalog endpoint.
    region: str = "RegionOne"
    #: Object-store endpoint template (``%(project_id)s`` is substituted per token);
    #: empty means ``http://<proxy host>:<proxy port>/v1/AUTH_%(project_id)s``.
    object_store_url: str = ""
    #: Failed logins per user within ``lockout_seconds`` before further attempts are refused.
    max_failures_per_user: int = field(default=6, metadata=check(positive))
    #: Failed logins per source address within ``lockout_seconds`` before refusal.
    max_failures_per_source: int = field(default=30, metadata=check(positive))
    #: Sliding window (and lockout length) of the failed-login limits, in seconds.
    lockout_seconds: int = field(default=60, metadata=check(non_negative))
    #: argon2id time cost (iterations).
    password_time_cost: int = field(default=2, metadata=check(positive))
    #: argon2id memory cost in KiB (OWASP's minimum is 19456 for t=2).
    password_memory_kib: int = field(default=19456, metadata=check(positive))
    #: argon2id parallelism.
    password_parallelism: int = field(default=1, metadata=check(positive))

    def resolved_key_repository(self, state_dir: str | Path) -> Path:
        """Return the key repository directory."""
        if self.key_repository:
            return Path(self.key_repository)
        return Path(state_dir) / "fernet-keys"
