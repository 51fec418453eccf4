"""``nubis identity``: key rotation and bootstrap for the identity service."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``identity`` sub-command."""
    p = sub.add_parser("identity", help="identity (Keystone) maintenance")
    p.add_argument("action", choices=("rotate-keys", "bootstrap"),
                   help="rotate-keys: promote the staged Fernet key and stage a new one "
                        "(every verifier picks it up within seconds); bootstrap: create the "
                        "admin/demo users, catalog, clouds.yaml and openrc")
    p.add_argument("--config", help="config file (default $NUBIS_CONFIG or var/nubis.toml)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nubis.api.shared.tokens import KeyRepository
    from nubis.commands.daemon import config_path
    from nubis.settings import exit_on_config_error, load_config

    path = config_path(args.config)
    config = exit_on_config_error(lambda: load_config(path))
    state = Path(config.cluster.state_dir)
    if args.action == "rotate-keys":
        ic = config.identity
        repo = KeyRepository(ic.resolved_key_repository(state), ic.max_active_keys)
        repo.setup()
        primary = repo.rotate()
        print(f"{repo.path}: primary key is now {primary}; keys {list(repo.fingerprint())}")
        return 0
    from nubis.bootstrap import identity_post_start

    identity_post_start(config, state)
    return 0
