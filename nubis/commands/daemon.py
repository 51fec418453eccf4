"""``nubis daemon NAME``: run one daemon in the foreground."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = "var/nubis.toml"


def config_path(value: str | None) -> Path:
    """Return the config path: the option, ``$NUBIS_CONFIG``, or ``var/nubis.toml``."""
    return Path(value or os.environ.get("NUBIS_CONFIG") or DEFAULT_CONFIG).absolute()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``daemon`` sub-command."""
    p = sub.add_parser("daemon", help="run one daemon in the foreground")
    p.add_argument("name", help="daemon name (see `nubis daemon --list`)", nargs="?")
    p.add_argument("--config", help=f"config file (default $NUBIS_CONFIG or {DEFAULT_CONFIG})")
    p.add_argument("--once", action="store_true", help="run one pass and exit")
    p.add_argument("--list", action="store_true", help="list the daemons and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nubis.registry import DAEMONS
    from nubis.settings import exit_on_config_error, load_config

    if args.list or not args.name:
        for each in DAEMONS.values():
            print(f"{each.name:20} {each.kind:10} {each.summary}")
        return 0 if args.list else 2
    spec = DAEMONS.get(args.name)
    if spec is None:
        print(f"nubis daemon: unknown daemon {args.name!r} (try --list)", file=sys.stderr)
        return 2
    path = config_path(args.config)
    config = exit_on_config_error(lambda: load_config(path))
    os.environ["NUBIS_CONFIG"] = str(path)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {spec.name} %(levelname)s %(name)s: %(message)s")
    module_name, _, func_name = spec.target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        result = func(*spec.args(config), once=bool(args.once))
    except KeyboardInterrupt:
        return 0
    return int(result or 0)
