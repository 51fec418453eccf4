"""``nubis down``: stop the watchdog, then every process of a state directory."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``down`` sub-command."""
    p = sub.add_parser("down", help="stop the all-in-one cloud started by `nubis up`")
    p.add_argument("labels", nargs="*", metavar="PROCESS",
                   help="stop only these (e.g. object-server-1) and keep them down "
                        "until `nubis up`; the supervisor keeps running")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait after SIGTERM before SIGKILL")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nubis import watchdog
    from nubis.commands.up import CONFIG_NAME, open_supervisor
    from nubis.common.errors import ConfigError
    from nubis.settings import load_config
    from nubis.supervisor import stop_by_pid_files, stop_group

    state = Path(args.state_dir).absolute()
    if args.labels:
        return _stop_some(state, args.labels, args.timeout)
    # The watchdog first, or it would restart what is being stopped.
    pid = watchdog.running_pid(state)
    if pid is not None and stop_group(pid, args.timeout):
        print("stopped supervisor")
    watchdog.pid_file(state).unlink(missing_ok=True)
    try:
        load_config(state / CONFIG_NAME)
    except ConfigError as exc:
        # Still stop what the pid files name: a broken config must not strand daemons.
        print(f"nubis down: {exc}; stopping by pid files", file=sys.stderr)
        for label in stop_by_pid_files(state / "run", args.timeout):
            print(f"stopped {label}")
        return 0
    sup, procs = open_supervisor(state)
    # The front ends first, then the storage nodes' processes; each set all at once.
    for tier in ([p for p in procs if p.node is None], [p for p in procs if p.node is not None]):
        for proc in sup.stop_all(tier, args.timeout):
            print(f"stopped {proc.label}")
    # Whatever else a pid file names (a daemon no longer in the plan).
    for label in stop_by_pid_files(state / "run", args.timeout):
        print(f"stopped {label}")
    return 0


def _stop_some(state: object, labels: list[str], timeout: float) -> int:
    from nubis.commands.up import open_supervisor

    sup, procs = open_supervisor(str(state))
    by_label = {p.label: p for p in procs}
    unknown = [name for name in labels if name not in by_label]
    if unknown:
        print(f"nubis down: unknown process {', '.join(unknown)} "
              f"(one of: {', '.join(by_label)})", file=sys.stderr)
        return 2
    for name in labels:
        sup.hold(by_label[name])
    for proc in sup.stop_all([by_label[name] for name in labels], timeout):
        print(f"stopped {proc.label} (held until `nubis up`)")
    return 0
