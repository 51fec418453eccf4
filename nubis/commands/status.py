"""``nubis status``: each process (pid, port, health, restarts, last exit) and daemon passes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nubis.supervisor import ExitRecord, ProcessStatus

if TYPE_CHECKING:
    from nubis.common.daemon import PassReport


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``status`` sub-command."""
    p = sub.add_parser("status", help="show the processes of the all-in-one cloud")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.set_defaults(func=_run)


def _state(r: ProcessStatus) -> str:
    if r.healthy:
        return "healthy"
    if r.running:
        return "running, unhealthy"
    if r.held:
        return "stopped (held)"
    if r.last_exit is not None and r.last_exit.crash_loop:
        return "crash loop"
    return "stopped"


def _exit_line(rec: ExitRecord | None) -> str:
    if rec is None:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(rec.time))
    return f"{rec.describe()} at {when} after {rec.ran_seconds:.1f}s"


def _run(args: argparse.Namespace) -> int:
    from nubis.commands.up import open_supervisor
    from nubis.common.daemon import read_reports
    from nubis.watchdog import running_pid

    sup, procs = open_supervisor(args.state_dir)
    watchdog = running_pid(sup.state_dir)
    print(f"supervisor: {'not running' if watchdog is None else f'running (pid {watchdog})'}")
    rows = sup.status(procs)
    print(f"{'process':22} {'pid':>8} {'port':>6}  {'state':20} last exit")
    for r in rows:
        port = "-" if r.process.port is None else str(r.process.port)
        pid = "-" if r.pid is None else str(r.pid)
        print(f"{r.process.label:22} {pid:>8} {port:>6}  {_state(r):20} "
              f"{_exit_line(r.last_exit)}".rstrip())
    for r in rows:
        rec = r.last_exit
        if rec is None or (r.healthy and not rec.crash_loop):
            continue
        retry = f"; retried every {rec.retry_in:g}s" if rec.crash_loop else ""
        print(f"\n{r.process.label}: {rec.failures} quick exit(s) in a row{retry}; "
              f"log tail:")
        for line in rec.tail:
            print(f"  | {line}")
    _print_passes(read_reports(Path(sup.state_dir)))
    return 0 if all(r.healthy for r in rows) else 1


def _print_passes(reports: list[PassReport]) -> None:
    """Show each background daemon's last pass: when, how long, what it did, its error."""
    if not reports:
        return
    print(f"\n{'daemon':26} {'last pass':>9} {'took':>8} {'passes':>6}  what it did")
    for p in reports:
        when = time.strftime("%H:%M:%S", time.localtime(p.started))
        did = ", ".join(f"{k}={v}" for k, v in sorted(p.stats.items())) or "nothing"
        if p.error:
            did = f"FAILED: {p.error}"
        print(f"{p.label:26} {when:>9} {p.duration:>7.2f}s {p.passes:>6}  {did}")
