"""``nubis down``: stop every process of a state directory."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``down`` sub-command."""
    p = sub.add_parser("down", help="stop the all-in-one cloud started by `nubis up`")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait after SIGTERM before SIGKILL")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nubis.commands.up import CONFIG_NAME, open_supervisor
    from nubis.common.errors import ConfigError
    from nubis.settings import load_config
    from nubis.supervisor import stop_by_pid_files

    state = Path(args.state_dir).absolute()
    try:
        load_config(state / CONFIG_NAME)
    except ConfigError as exc:
        # Still stop what the pid files name: a broken config must not strand daemons.
        print(f"nubis down: {exc}; stopping by pid files", file=sys.stderr)
        for label in stop_by_pid_files(state / "run", args.timeout):
            print(f"stopped {label}")
        return 0
    sup, procs = open_supervisor(state)
    # Stop the front ends first, the storage servers last.
    for proc in sorted(procs, key=lambda p: p.node is not None):
        if sup.stop(proc, args.timeout):
            print(f"stopped {proc.label}")
    return 0
