"""The whole-cloud configuration: one TOML file, one frozen dataclass per section.

Components define their own section dataclass in their package; this module
composes them (it sits above every service in the dependency order). Load with
:func:`load_config` at start-up; never at import time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from nubis.api.compute.config import ComputeApiConfig
from nubis.api.identity.config import IdentityConfig
from nubis.api.image.config import ImageConfig
from nubis.api.network.config import NetworkApiConfig
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.shared.config import ApiConfig, TokenSettings
from nubis.api.volume.config import VolumeApiConfig
from nubis.common import config as cfg
from nubis.common.cluster import ClusterConfig
from nubis.common.errors import ConfigError
from nubis.daemons.compute.config import ComputeConfig
from nubis.daemons.network.config import NetworkAgentConfig
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.storage.config import (
    AuditorConfig,
    ExpirerConfig,
    ReconstructorConfig,
    ReplicatorConfig,
    StorageConfig,
    UpdaterConfig,
)
from nubis.daemons.volume.config import VolumeConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """The complete nubis configuration file."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    object_replicator: ReplicatorConfig = field(default_factory=ReplicatorConfig)
    object_auditor: AuditorConfig = field(default_factory=AuditorConfig)
    object_updater: UpdaterConfig = field(default_factory=UpdaterConfig)
    object_expirer: ExpirerConfig = field(default_factory=ExpirerConfig)
    container_replicator: ReplicatorConfig = field(default_factory=ReplicatorConfig)
    account_replicator: ReplicatorConfig = field(default_factory=ReplicatorConfig)
    object_reconstructor: ReconstructorConfig = field(default_factory=ReconstructorConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    tempauth: TempAuthConfig = field(default_factory=TempAuthConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    compute_api: ComputeApiConfig = field(default_factory=ComputeApiConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    volume_api: VolumeApiConfig = field(default_factory=VolumeApiConfig)
    network_api: NetworkApiConfig = field(default_factory=NetworkApiConfig)
    network_agent: NetworkAgentConfig = field(default_factory=NetworkAgentConfig)


def token_settings(config: Config) -> TokenSettings:
    """Return what every local token verifier needs, from ``[identity]`` and ``[api]``."""
    ic, state_dir = config.identity, config.cluster.state_dir
    return TokenSettings(ic.resolved_key_repository(state_dir), ic.max_active_keys,
                         ic.token_ttl, ic.revocation_poll_seconds, ic.token_cache_size,
                         config.api.resolved_database_url(state_dir))


def load_config(path: str | Path) -> Config:
    """Read and validate the config file at ``path``."""
    return cfg.load(Config, path)


def exit_on_config_error(fn: Callable[[], T]) -> T:
    """Run ``fn``; on ConfigError print its one-line message and exit 2."""
    try:
        return fn()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(ConfigError.exit_code) from None
