"""``nubis up``: write a default cloud into a state directory and start it."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from nubis.supervisor import Process, Supervisor

CONFIG_NAME = "nubis.toml"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``up`` sub-command."""
    p = sub.add_parser("up", help="start an all-in-one cloud (writes config + rings first)")
    p.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for every /healthcheck")
    p.add_argument("--no-test-image", action="store_true",
                   help="do not build and upload the bootable test image set")
    p.set_defaults(func=_run)


def open_supervisor(state_dir: str | Path) -> tuple[Supervisor, list[Process]]:
    """Load ``<state>/nubis.toml`` and return a supervisor and its process plan."""
    from nubis.settings import exit_on_config_error, load_config
    from nubis.supervisor import plan

    state = Path(state_dir).absolute()
    path = state / CONFIG_NAME
    config = exit_on_config_error(lambda: load_config(path))
    return Supervisor(config, path, state), plan(config)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start(sup: Supervisor, procs: list[Process], timeout: float) -> bool:
    """Have the watchdog start what is not running; wait for every health check."""
    import time

    from nubis import watchdog

    before = {p.label: sup.read_pid(p) for p in procs}
    for proc in procs:  # ``nubis down LABEL`` held it; ``up`` brings it back
        sup.release(proc)
    since = time.time()
    pid, started = watchdog.ensure_running(sup.state_dir)
    print(f"{'started' if started else 'running'} supervisor (pid {pid})")
    failed = sup.wait_healthy(procs, timeout, since=since)
    for proc in failed:
        log = sup.log_file(proc)
        record = sup.read_exit(proc)
        why = (f"did not answer {proc.health_url} within {timeout:g}s" if record is None
               or record.time < since else f"{record.describe()} (restarting)")
        print(f"nubis up: {proc.label} {why}; see {log}:\n{_tail(log)}", file=sys.stderr)
    if failed:
        return False
    for proc in procs:
        old = before[proc.label]
        print(f"{'running' if old else 'started'} {proc.label} (pid {old or sup.read_pid(proc)})")
    return True


def _run(args: argparse.Namespace) -> int:
    from nubis import defaults
    from nubis.registry import OPTIONAL_HOOKS, POST_START_HOOKS
    from nubis.settings import exit_on_config_error

    state = Path(args.state_dir).absolute()
    state.mkdir(parents=True, exist_ok=True)
    if defaults.write_default_config(state / CONFIG_NAME, state):
        print(f"wrote {state / CONFIG_NAME}")
    elif added := exit_on_config_error(
            lambda: defaults.add_missing_defaults(state / CONFIG_NAME, state)):
        print(f"added to {state / CONFIG_NAME}: {', '.join(added)}")
    sup, procs = open_supervisor(state)
    config = sup.config
    exit_on_config_error(lambda: defaults.ensure_devices(config))
    for ring in defaults.ensure_rings(config):
        print(f"wrote {ring}")
    if not _start(sup, procs, args.timeout):
        return 1
    skipped = {OPTIONAL_HOOKS["test-image"]} if args.no_test_image else set()
    for hook in POST_START_HOOKS:
        if hook in skipped:
            continue
        module, _, func = hook.partition(":")
        getattr(importlib.import_module(module), func)(config, state)
    rc = defaults.write_swiftrc(config, state)
    _print_summary(config, procs, rc)
    return 0


def _print_summary(config: object, procs: list[Process], swiftrc: Path) -> None:
    from nubis.settings import Config

    assert isinstance(config, Config)
    host = config.proxy.bind_ip or config.cluster.bind_ip
    print("\nnubis is up:")
    for p in procs:
        if p.port is not None:
            print(f"  {p.label:22} http://{p.host}:{p.port}")
    print(f"\nSwift API: http://{host}:{config.proxy.port}/v1/AUTH_<account>")
    print(f"  auth:   http://{host}:{config.proxy.port}/auth/v1.0")
    for user, entry in config.tempauth.users.items():
        role = ("reseller admin" if ".reseller_admin" in entry.groups
                else "account admin" if ".admin" in entry.groups else "user")
        print(f"  user {user:16} key {entry.key:12} ({role})")
    print(f"\n  . {swiftrc} && swift stat")
