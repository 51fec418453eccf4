"""Every daemon ``nubis daemon NAME`` can run, and how the supervisor starts it.

A target is ``"module:function"``; the function is called as
``function(config: nubis.settings.Config, once: bool) -> int`` and runs in the
foreground until stopped (or one pass when ``once`` is true, for background
daemons). Modules are imported only when their daemon runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DaemonSpec:
    """How to run one kind of nubis process."""

    name: str
    target: str
    kind: Literal["server", "background"]
    summary: str


DAEMONS: dict[str, DaemonSpec] = {}


def register(spec: DaemonSpec) -> None:
    """Add a daemon to the table (module-level calls below, one per daemon)."""
    DAEMONS[spec.name] = spec


# Daemons are listed here as their components land.
register(DaemonSpec("object-server", "nubis.daemons.storage.objectserver:run", "server",
                    "object server (one storage node; $NUBIS_STORAGE_NODE)"))
register(DaemonSpec("container-server", "nubis.daemons.storage.containerserver:run", "server",
                    "container server (one storage node; $NUBIS_STORAGE_NODE)"))
register(DaemonSpec("account-server", "nubis.daemons.storage.accountserver:run", "server",
                    "account server (one storage node; $NUBIS_STORAGE_NODE)"))
register(DaemonSpec("proxy", "nubis.api.proxy.server:run", "server",
                    "Swift v1 proxy (+ tempauth) on port 8080"))
register(DaemonSpec("api", "nubis.api.app:run", "server",
                    "control-plane APIs (/identity Keystone v3, ...) on port 5000"))
register(DaemonSpec("scheduler", "nubis.daemons.scheduler.server:run", "server",
                    "scheduler + placement (/v1/select_destinations, /placement) on port 8775"))

#: Called by ``nubis up`` after every daemon answers its health check, in order:
#: ``"module:function"`` taking ``(config: Config, state_dir: pathlib.Path)``.
#: Used for bootstrap work (identity admin/demo users, catalog, clouds.yaml, ...).
POST_START_HOOKS: list[str] = [
    "nubis.api.identity.bootstrap:post_start",
]
