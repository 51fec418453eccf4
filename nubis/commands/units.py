"""``nubis units``: write systemd unit files for the daemons of a state directory."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from nubis.supervisor import Process, daemon_command, daemon_env

#: The target every unit is part of (``systemctl start nubis.target``).
TARGET = "nubis.target"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``units`` sub-command."""
    p = sub.add_parser("units", help="write systemd unit files (one per daemon)")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--out", required=True, help="directory for the unit files")
    p.add_argument("--user", default="", help="User= of the units (default: none)")
    p.set_defaults(func=_run)


def unit_name(proc: Process) -> str:
    """Return the unit file name of ``proc`` (``nubis-object-server-2.service``)."""
    return f"nubis-{proc.label}.service"


def render_unit(proc: Process, config_path: Path, workdir: Path, user: str = "") -> str:
    """Return the systemd service unit that runs ``proc``.

    ``Restart=on-failure`` restarts it after a crash (not after ``systemctl
    stop``); ``KillMode=control-group`` stops every worker it forked; storage
    servers start before the front ends.
    """
    cmd = " ".join(shlex.quote(a) for a in daemon_command(proc, config_path))
    env = "".join(f"Environment={k}={v}\n" for k, v in daemon_env(proc).items())
    after = "network-online.target" if proc.node is not None else (
        "network-online.target nubis-storage.target")
    return (
        "[Unit]\n"
        f"Description=nubis {proc.label}\n"
        f"After={after}\n"
        "Wants=network-online.target\n"
        f"PartOf={TARGET}\n\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={cmd}\n"
        f"{env}"
        f"WorkingDirectory={workdir}\n"
        + (f"User={user}\n" if user else "")
        + "Restart=on-failure\n"
        "RestartSec=1\n"
        "KillMode=control-group\n"
        "TimeoutStopSec=30\n\n"
        "[Install]\n"
        f"WantedBy={TARGET}\n")


def render_target(procs: list[Process]) -> str:
    """Return ``nubis.target``, which wants every unit."""
    wants = " ".join(unit_name(p) for p in procs)
    return ("[Unit]\nDescription=nubis cloud (all daemons)\n"
            f"Wants={wants}\n\n[Install]\nWantedBy=multi-user.target\n")


def _run(args: argparse.Namespace) -> int:
    from nubis.commands.up import open_supervisor

    sup, procs = open_supervisor(args.state_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(os.getcwd())
    storage = [unit_name(p) for p in procs if p.node is not None]
    files = {unit_name(p): render_unit(p, sup.config_path, workdir, args.user) for p in procs}
    files[TARGET] = render_target(procs)
    files["nubis-storage.target"] = (
        "[Unit]\nDescription=nubis storage servers\n"
        f"Wants={' '.join(storage)}\nAfter={' '.join(storage)}\nPartOf={TARGET}\n")
    for name, text in files.items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0
