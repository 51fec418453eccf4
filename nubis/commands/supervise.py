"""``nubis supervise``: keep every daemon of a state directory running (``nubis up`` starts it)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``supervise`` sub-command."""
    p = sub.add_parser("supervise", help="restart any daemon that exits (run by `nubis up`)")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--backoff", type=float, default=0.5,
                   help="first restart delay in seconds, doubled per quick exit (0.5)")
    p.add_argument("--max-backoff", type=float, default=60.0,
                   help="longest delay, and the retry period of a crash loop (60)")
    p.add_argument("--crash-loop", type=int, default=5,
                   help="quick exits in a row that make a crash loop (5)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nubis.commands.up import open_supervisor
    from nubis.watchdog import LABEL, Backoff, Watchdog, pid_file, running_pid

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the watchdog handles it (reload)
    state = Path(args.state_dir).absolute()
    other = running_pid(state)
    if other is not None and other != os.getpid():
        print(f"nubis {LABEL}: already running (pid {other})", file=sys.stderr)
        return 1
    sup, procs = open_supervisor(state)
    with contextlib.suppress(OSError):  # lead its own group: `nubis down` stops the group
        os.setpgid(0, 0)
    (state / "run").mkdir(parents=True, exist_ok=True)
    pid_file(state).write_text(f"{os.getpid()}\n")
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {LABEL} %(levelname)s: %(message)s")
    backoff = Backoff(base=args.backoff, cap=args.max_backoff, crash_loop=args.crash_loop)
    try:
        return Watchdog(sup, procs, backoff, reload=lambda: open_supervisor(state)).run_forever()
    finally:
        if running_pid(state) in (None, os.getpid()):
            pid_file(state).unlink(missing_ok=True)
