"""What the ``nubis api`` process hands to every control-plane sub-application."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nubis.api.shared.auth import TokenVerifier, make_verifier
from nubis.api.shared.config import ApiConfig, TokenSettings
from nubis.common.cluster import ClusterConfig
from nubis.common.db import make_engine
from sqlalchemy.engine import Engine


@dataclass
class ApiServices:
    """Shared runtime objects: the ``[api]`` section, database engine, verifier, URLs."""

    api: ApiConfig
    state_dir: Path
    engine: Engine
    verifier: TokenVerifier
    public_url: str


def build_services(api: ApiConfig, cluster: ClusterConfig,
                   tokens: TokenSettings) -> ApiServices:
    """Create the engine, key repository and verifier of the ``nubis api`` process."""
    state_dir = Path(cluster.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(api.resolved_database_url(state_dir))
    verifier = make_verifier(tokens, engine)
    public_url = api.resolved_public_url(cluster.bind_ip)
    return ApiServices(api, state_dir, engine, verifier, public_url)
