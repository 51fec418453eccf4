"""``nubis down``: stop every process of a state directory."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``down`` sub-command."""
    p = sub.add_parser("down", help="stop the all-in-one cloud started by `nubis up`")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait after SIGTERM before SIGKILL")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nubis.commands.up import open_supervisor

    sup, procs = open_supervisor(args.state_dir)
    # Stop the front ends first, the storage servers last.
    for proc in sorted(procs, key=lambda p: p.node is not None):
        if sup.stop(proc, args.timeout):
            print(f"stopped {proc.label}")
    return 0
