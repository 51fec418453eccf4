"""What the ``nubis api`` process hands to every control-plane sub-application."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nubis.api.auth import TokenVerifier
from nubis.api.identity.config import IdentityConfig
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.revoke import RevocationList
from nubis.api.tokens import KeyRepository
from nubis.common.db import make_engine
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from nubis.settings import Config


@dataclass
class ApiServices:
    """Shared runtime objects: config, database engine, token verifier, URLs."""

    config: Config
    state_dir: Path
    engine: Engine
    verifier: TokenVerifier
    public_url: str

    @property
    def identity(self) -> IdentityConfig:
        """Return the ``[identity]`` section."""
        return self.config.identity

    def hasher(self) -> PasswordHasher:
        """Return a password hasher with the configured argon2 cost."""
        c = self.config.identity
        return PasswordHasher(c.password_time_cost, c.password_memory_kib,
                              c.password_parallelism)


def make_verifier(identity: IdentityConfig, state_dir: str | Path,
                  engine: Engine | None) -> TokenVerifier:
    """Build a token verifier from the ``[identity]`` section (creates keys if missing)."""
    keys = KeyRepository(identity.resolved_key_repository(state_dir), identity.max_active_keys)
    keys.setup()
    revocations = RevocationList(engine, identity.revocation_poll_seconds,
                                 float(identity.token_ttl))
    return TokenVerifier(keys, revocations, cache_size=identity.token_cache_size)


def build_services(config: Config) -> ApiServices:
    """Create the engine, key repository and verifier for ``config``."""
    state_dir = Path(config.cluster.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.api.resolved_database_url(state_dir))
    verifier = make_verifier(config.identity, state_dir, engine)
    public_url = config.api.resolved_public_url(config.cluster.bind_ip)
    return ApiServices(config, state_dir, engine, verifier, public_url)
