"""The ``[identity]`` section: tokens, keys, passwords, rate limits, catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nubis.common.config import check, non_negative, positive


@dataclass(frozen=True)
class SecurityComplianceConfig:
    """``[identity.security_compliance]``: Keystone's ``[security_compliance]`` options.

    Zero (or empty) disables an option, as Keystone's unset defaults do.
    """

    #: Failed password authentications before the account is locked (0: never).
    lockout_failure_attempts: int = field(default=0, metadata=check(non_negative))
    #: Seconds an account stays locked (0: until an administrator re-enables it).
    lockout_duration: int = field(default=1800, metadata=check(non_negative))
    #: Days a password stays valid (0: forever).
    password_expires_days: int = field(default=0, metadata=check(non_negative))
    #: A new password must differ from this many of the latest ones (0: no check).
    unique_last_password_count: int = field(default=0, metadata=check(non_negative))
    #: Days before a user may change its own password again (0: any time).
    minimum_password_age: int = field(default=0, metadata=check(non_negative))
    #: Regular expression every new password must match (empty: any).
    password_regex: str = ""
    #: Human description of ``password_regex`` (shown in the 400 answer).
    password_regex_description: str = ""
    #: Passwords set by an administrator must be changed at first use.
    change_password_upon_first_use: bool = False


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
    #: Most entities a list returns before answering ``"truncated": true`` (0: no limit).
    list_limit: int = field(default=0, metadata=check(non_negative))
    #: Deepest project hierarchy, domain excluded (Keystone's ``max_project_tree_depth``).
    max_project_tree_depth: int = field(default=5, metadata=check(positive))
    #: Whether trusts may be redelegated (Keystone's ``[trust] allow_redelegation``).
    trust_allow_redelegation: bool = False
    #: Longest redelegation chain (Keystone's ``[trust] max_redelegation_count``).
    trust_max_redelegation_count: int = field(default=3, metadata=check(non_negative))
    #: Lockout, password expiry, history and strength rules.
    security_compliance: SecurityComplianceConfig = field(
        default_factory=SecurityComplianceConfig)

    def resolved_key_repository(self, state_dir: str | Path) -> Path:
        """Return the key repository directory."""
        if self.key_repository:
            return Path(self.key_repository)
        return Path(state_dir) / "fernet-keys"
