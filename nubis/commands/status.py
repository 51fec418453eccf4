"""``nubis status``: show each process, its pid, port and health."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``status`` sub-command."""
    p = sub.add_parser("status", help="show the processes of the all-in-one cloud")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nubis.commands.up import open_supervisor

    sup, procs = open_supervisor(args.state_dir)
    rows = sup.status(procs)
    print(f"{'process':22} {'pid':>8} {'port':>6}  state")
    for r in rows:
        state = "healthy" if r.healthy else ("running, unhealthy" if r.running else "stopped")
        port = "-" if r.process.port is None else str(r.process.port)
        pid = "-" if r.pid is None else str(r.pid)
        print(f"{r.process.label:22} {pid:>8} {port:>6}  {state}")
    return 0 if all(r.healthy for r in rows) else 1
