"""``nubis-ring-builder BUILDER [command]``: swift-ring-builder's verbs, our file formats.

Exit codes follow swift-ring-builder: 0 success, 1 warning (nothing to do, balance
left above 1%, dispersion not optimal), 2 error. Every error is one line on stderr
and leaves the builder file untouched: commands change an in-memory builder and
save it only when everything succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from nubis.ring.builder import RingBuilder
from nubis.ring.builderfile import load_builder, save_builder
from nubis.ring.devices import Device, parse_add_value, parse_change_value, parse_search_value
from nubis.ring.errors import RingError
from nubis.ring.ringdata import load_ring_file, write_ring_file
from nubis.ring.simulate import Simulation, parse_changes, simulate
from rich.console import Console
from rich.table import Table

EXIT_SUCCESS = 0
EXIT_WARNING = 1
EXIT_ERROR = 2
PROG = "nubis-ring-builder"

USAGE = f"""usage: {PROG} BUILDER [command] [args]

Build and inspect a nubis ring (swift-ring-builder's verbs, nubis's file formats).

commands:
  (none)                                show the builder as a table
  create <part_power> <replicas> <min_part_hours> [--force]
  add <r1z1-127.0.0.1:6200/sdb1_meta> <weight> [<add_value> <weight> ...]
  add --region R --zone Z --ip IP --port P --device D --weight W [--meta M]
      [--replication-ip IP] [--replication-port P]
  remove <search> [<search> ...] [--yes]
  set_weight <search> <weight> [<search> <weight> ...] [--yes]
  set_info <search> <ip:port>R<rip:rport>/<device>_<meta> [...] [--yes]
  set_overload <overload>[%]
  set_min_part_hours <hours>
  set_replicas <replicas>
  rebalance [--seed N] [--force]
  validate
  dispersion [-v]
  search <search>
  list_parts <search> [<search> ...]
  pretend_min_part_hours_passed
  write_ring
  simulate <change> [<change> ...] [--mean-object-size BYTES --objects N]
      [--max-rebalances N] [--seed N] [--all-devices] [--json]
      changes: add <add_value> <weight> | remove <search> |
               set_weight <search> <weight> | fail <search> (e.g. fail r1z2)
      what the changes would move, without writing anything

<search> is swift-ring-builder's search value: d<id>r<region>z<zone>-<ip>:<port>/<device>_<meta>,
any part optional (d74, z1, 127.0.0.1:6200, /sdb1, ...).
Exit codes: 0 ok, 1 warning, 2 error.
"""


class CliError(Exception):
    """A command-line mistake: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message}")


@dataclass
class Context:
    """What a command works on.

    Attributes:
        path: The builder file.
        out: Where normal output goes.
        err: Where errors and progress go.
    """

    path: Path
    out: TextIO
    err: TextIO

    def say(self, text: str = "") -> None:
        """Print a line of normal output."""
        print(text, file=self.out)

    def console(self) -> Console:
        """Return a rich console on the output stream (plain text when not a terminal)."""
        tty = self.out.isatty()
        return Console(file=self.out, width=None if tty else 200, highlight=False,
                       no_color=not tty)

    def load(self) -> RingBuilder:
        """Load the builder (RingBuilderError on a missing or corrupt file)."""
        return load_builder(self.path)

    def save(self, builder: RingBuilder) -> None:
        """Save the builder atomically."""
        save_builder(builder, self.path)

    @property
    def ring_path(self) -> Path:
        """Return the ring file next to the builder (``object.builder`` -> ``object.ring``)."""
        name = self.path.name
        stem = name[:-len(".builder")] if name.endswith(".builder") else name
        return self.path.with_name(stem + ".ring")


Command = Callable[[Context, list[str]], int]


# ------------------------------------------------------------------ helpers


def _number(text: str, what: str, kind: type = float) -> Any:
    """Parse a number or raise a one-line CliError naming ``what``."""
    try:
        return kind(text)
    except ValueError:
        raise CliError(f"invalid {what}: {text!r}") from None


def _find(builder: RingBuilder, search: str, allow_many: bool) -> list[Device]:
    """Return devices matching a search value; error on none or (unless allowed) several."""
    devs: list[Device] = builder.search_devs(parse_search_value(search))
    if not devs:
        raise CliError(f"no device matches {search!r}")
    if len(devs) > 1 and not allow_many:
        raise CliError(f"{len(devs)} devices match {search!r}; add --yes to change them all")
    return devs


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    """Split ``a b c d`` into ``[(a, b), (c, d)]``."""
    if not values or len(values) % 2:
        raise CliError(f"expected pairs of <search> <{what}>")
    return list(zip(values[::2], values[1::2], strict=True))


def _hms(seconds: int) -> str:
    """Format seconds like swift-ring-builder (``1:00:00``)."""
    return str(timedelta(seconds=seconds))


# ------------------------------------------------------------------ commands


def cmd_create(ctx: Context, argv: list[str]) -> int:
    """Create a new builder file."""
    parser = _Parser(prog=f"{PROG} BUILDER create")
    parser.add_argument("part_power")
    parser.add_argument("replicas")
    parser.add_argument("min_part_hours")
    parser.add_argument("--force", action="store_true", help="overwrite an existing builder")
    args = parser.parse_args(argv)
    if ctx.path.exists() and not args.force:
        raise CliError(f"{ctx.path} already exists; use --force to overwrite it")
    builder = RingBuilder(_number(args.part_power, "part_power", int),
                          _number(args.replicas, "replicas"),
                          _number(args.min_part_hours, "min_part_hours", int))
    ctx.save(builder)
    return EXIT_SUCCESS


def cmd_add(ctx: Context, argv: list[str]) -> int:
    """Add devices, from ``<add_value> <weight>`` pairs or from options."""
    builder = ctx.load()
    added = [_add_one(builder, fields, weight) for fields, weight in _add_requests(argv)]
    ctx.save(builder)
    for dev in added:
        ctx.say(f"Device {dev.describe()} with {dev.weight} weight got id {dev.id}")
    return EXIT_SUCCESS


def _add_requests(argv: list[str]) -> list[tuple[dict[str, Any], float]]:
    """Parse the add arguments into (device fields, weight) requests."""
    if argv and argv[0].startswith("-"):
        parser = _Parser(prog=f"{PROG} BUILDER add")
        for flag, short, kind in (("--region", "-r", int), ("--zone", "-z", int),
                                  ("--ip", "-i", str), ("--port", "-p", int),
                                  ("--device", "-d", str), ("--weight", "-w", float)):
            parser.add_argument(flag, short, type=kind, required=flag != "--region")
        parser.add_argument("--meta", "-m", default="")
        parser.add_argument("--replication-ip", "-I", default=None)
        parser.add_argument("--replication-port", "-P", type=int, default=None)
        args = parser.parse_args(argv)
        fields = {"region": 1 if args.region is None else args.region, "zone": args.zone,
                  "ip": args.ip, "port": args.port, "device": args.device, "meta": args.meta,
                  "replication_ip": args.replication_ip,
                  "replication_port": args.replication_port}
        return [(fields, args.weight)]
    pairs = _pairs(argv, "weight") if argv else []
    if not pairs:
        raise CliError("add needs <add_value> <weight> pairs, e.g. "
                       "add r1z1-127.0.0.1:6200/sdb1 100")
    return [(parse_add_value(value), _number(weight, "weight")) for value, weight in pairs]


def _add_one(builder: RingBuilder, fields: dict[str, Any], weight: float) -> Device:
    """Add one device; return it."""
    dev_id = builder.add_dev(weight=weight, **fields)
    return builder.get_dev(dev_id)


def cmd_remove(ctx: Context, argv: list[str]) -> int:
    """Mark devices for removal at the next rebalance."""
    parser = _Parser(prog=f"{PROG} BUILDER remove")
    parser.add_argument("search", nargs="+")
    parser.add_argument("--yes", "-y", action="store_true")
    args = parser.parse_args(argv)
    builder = ctx.load()
    removed = []
    for search in args.search:
        for dev in _find(builder, search, args.yes):
            builder.remove_dev(dev.id)
            removed.append(dev)
    ctx.save(builder)
    for dev in removed:
        ctx.say(f"{dev.describe()} marked for removal and will be removed next rebalance.")
    return EXIT_SUCCESS


def cmd_set_weight(ctx: Context, argv: list[str]) -> int:
    """Set device weights."""
    values, yes = _strip_yes(argv)
    builder = ctx.load()
    changed = []
    for search, weight_text in _pairs(values, "weight"):
        weight = _number(weight_text, "weight")
        for dev in _find(builder, search, yes):
            builder.set_dev_weight(dev.id, weight)
            changed.append(builder.get_dev(dev.id))
    ctx.save(builder)
    for dev in changed:
        ctx.say(f"{dev.describe()} weight set to {dev.weight}")
    return EXIT_SUCCESS


def _strip_yes(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--yes``/``-y`` from ``argv``; tell whether it was there."""
    rest = [a for a in argv if a not in ("--yes", "-y")]
    return rest, len(rest) != len(argv)


def cmd_set_info(ctx: Context, argv: list[str]) -> int:
    """Change ip/port/replication ip:port/device/meta of devices."""
    values, yes = _strip_yes(argv)
    builder = ctx.load()
    lines = []
    for search, change in _pairs(values, "change"):
        changes = parse_change_value(change)
        for dev in _find(builder, search, yes):
            new = builder.set_dev_info(dev.id, changes)
            lines.append(f"Device {dev.describe()} is now {new.describe()}")
    ctx.save(builder)
    for line in lines:
        ctx.say(line)
    return EXIT_SUCCESS


def _one_arg(argv: list[str], name: str) -> str:
    """Return the single argument of a ``set_*`` command."""
    if len(argv) != 1:
        raise CliError(f"expected exactly one <{name}>")
    return argv[0]


def cmd_set_overload(ctx: Context, argv: list[str]) -> int:
    """Set the overload, as a fraction (0.1) or a percentage (10%)."""
    text = _one_arg(argv, "overload")
    value = _number(text.rstrip("%"), "overload")
    if text.endswith("%"):
        value /= 100.0
    builder = ctx.load()
    builder.set_overload(value)
    ctx.save(builder)
    ctx.say(f"The overload factor is now {value * 100:.2f}% ({value:.6f})")
    ctx.say("The change will take effect after the next rebalance.")
    return EXIT_SUCCESS


def cmd_set_min_part_hours(ctx: Context, argv: list[str]) -> int:
    """Set min_part_hours."""
    hours = _number(_one_arg(argv, "hours"), "min_part_hours", int)
    builder = ctx.load()
    builder.change_min_part_hours(hours)
    ctx.save(builder)
    ctx.say(f"The minimum number of hours before a partition can be reassigned is now "
            f"set to {hours}")
    return EXIT_SUCCESS


def cmd_set_replicas(ctx: Context, argv: list[str]) -> int:
    """Set the replica count."""
    replicas = _number(_one_arg(argv, "replicas"), "replicas")
    builder = ctx.load()
    builder.set_replicas(replicas)
    ctx.save(builder)
    ctx.say(f"The replica count is now {replicas:.6f}.")
    ctx.say("The change will take effect after the next rebalance.")
    return EXIT_SUCCESS


def cmd_pretend_min_part_hours_passed(ctx: Context, argv: list[str]) -> int:
    """Let the next rebalance move any partition."""
    if argv:
        raise CliError("pretend_min_part_hours_passed takes no arguments")
    builder = ctx.load()
    builder.pretend_min_part_hours_passed()
    ctx.save(builder)
    return EXIT_SUCCESS


def cmd_rebalance(ctx: Context, argv: list[str]) -> int:
    """Rebalance, then save the builder and write the ring file."""
    parser = _Parser(prog=f"{PROG} BUILDER rebalance")
    parser.add_argument("--seed", "-s", type=int, default=None)
    parser.add_argument("--force", "-f", action="store_true")
    args = parser.parse_args(argv)
    builder = ctx.load()
    if not builder.devs_changed and builder.min_part_seconds_left() > 0 and not args.force:
        ctx.say("No partitions could be reassigned.")
        ctx.say(f"The time between rebalances must be at least min_part_hours: "
                f"{builder.min_part_hours} hours "
                f"({_hms(builder.min_part_seconds_left())} remaining)")
        return EXIT_WARNING
    devs_changed = builder.devs_changed
    seconds_left = builder.min_part_seconds_left()
    before = (builder.get_balance(), builder.dispersion) if builder.ever_rebalanced else None
    result = _run_rebalance(ctx, builder, args.seed)
    if not (result.changed or args.force or result.removed):
        # swift-ring-builder's answer when min_part_hours (or the topology) pins everything
        ctx.say("No partitions could be reassigned.")
        if seconds_left > 0:
            ctx.say(f"The time between rebalances must be at least min_part_hours: "
                    f"{builder.min_part_hours} hours ({_hms(seconds_left)} remaining)")
        else:
            ctx.say("There is no need to do so at this time")
        return EXIT_WARNING
    builder.validate()
    if before is not None and not devs_changed and not args.force and \
            100.0 * result.changed / builder.parts < 1 and \
            abs(before[0] - result.balance) < 1 and abs(before[1] - result.dispersion) < 1:
        ctx.say("Cowardly refusing to save rebalance as it did not change at least 1%.")
        return EXIT_WARNING
    # like swift-ring-builder: the ring first, then the builder it came from
    write_ring_file(ctx.ring_path, builder.get_ring())
    ctx.save(builder)
    ctx.say(f"Reassigned {result.changed} ({100.0 * result.changed / builder.parts:.2f}%) "
            f"partitions. Balance is now {result.balance:.2f}.  "
            f"Dispersion is now {result.dispersion:.2f}")
    status = EXIT_SUCCESS
    if result.dispersion > 0:
        ctx.say(f"NOTE: Dispersion of {result.dispersion:.6f} indicates some parts are not "
                "optimally dispersed. You may want to adjust some device weights, increase "
                "the overload or review the dispersion report.")
        status = EXIT_WARNING
    if result.balance > 1:
        ctx.say(f"NOTE: Balance of {result.balance:.2f} indicates you should push this ring, "
                f"wait at least {builder.min_part_hours} hours, and rebalance/repush.")
        status = EXIT_WARNING
    return status


def _run_rebalance(ctx: Context, builder: RingBuilder, seed: int | None) -> Any:
    """Rebalance, with a progress display when stderr is a terminal."""
    if not ctx.err.isatty():
        return builder.rebalance(seed=seed)
    console = Console(file=ctx.err)
    with console.status("rebalancing...") as status:
        return builder.rebalance(seed=seed, progress=lambda msg: status.update(msg))


def cmd_simulate(ctx: Context, argv: list[str]) -> int:
    """Show what changes plus rebalances would move; write nothing."""
    parser = _Parser(prog=f"{PROG} BUILDER simulate")
    parser.add_argument("--mean-object-size", type=float, default=0.0)
    parser.add_argument("--objects", type=float, default=0.0,
                        help="objects in the cluster (for bytes copied)")
    parser.add_argument("--max-rebalances", type=int, default=10)
    parser.add_argument("--seed", "-s", type=int, default=None)
    parser.add_argument("--all-devices", action="store_true")
    parser.add_argument("--json", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.max_rebalances < 1 or args.mean_object_size < 0 or args.objects < 0:
        raise CliError("--max-rebalances must be >= 1; sizes and counts >= 0")
    changes = parse_changes(rest)
    builder = ctx.load()
    per_replica = args.objects * args.mean_object_size / builder.parts
    sim = simulate(builder, changes, args.max_rebalances, per_replica, args.seed)
    if args.json:
        ctx.say(json.dumps(sim.to_json(), indent=2, sort_keys=True))
    else:
        _print_simulation(ctx, sim, args.all_devices)
    return EXIT_SUCCESS if sim.converged else EXIT_WARNING


#: Devices listed by ``simulate`` without ``--all-devices`` (most moves first).
SIMULATE_TOP = 20


def _print_simulation(ctx: Context, sim: Simulation, all_devices: bool) -> None:
    """Render a simulation as rich tables."""
    console = ctx.console()
    rounds = Table(title="Rebalances (spaced by min_part_hours)")
    for col in ("#", "after hours", "moved", "balance", "dispersion"):
        rounds.add_column(col, justify="right")
    for i, r in enumerate(sim.rounds, 1):
        rounds.add_row(str(i), str(r.hours), str(r.moved), f"{r.balance:.2f}",
                       f"{r.dispersion:.2f}")
    console.print(rounds)
    zones = Table(title="Part-replicas moved per zone")
    for col in ("region", "zone", "gained", "lost"):
        zones.add_column(col, justify="right")
    for z in sim.per_zone:
        zones.add_row(str(z["region"]), str(z["zone"]), str(z["gained"]), str(z["lost"]))
    console.print(zones)
    devs = sorted(sim.per_device, key=lambda d: -(d["gained"] + d["lost"]))
    shown = devs if all_devices else devs[:SIMULATE_TOP]
    table = Table(title=f"Part-replicas moved per device ({len(shown)} of {len(devs)})")
    for col in ("id", "device", "weight", "gained", "lost", "parts after"):
        table.add_column(col, justify="left" if col == "device" else "right")
    for d in shown:
        table.add_row(str(d["id"]), d["device"] + (" (removed)" if d["removed"] else ""),
                      f"{d['weight']:g}", str(d["gained"]), str(d["lost"]), str(d["parts"]))
    console.print(table)
    last = sim.rounds[-1]
    copied = f"{_bytes(sim.bytes_copied)} copied by replication" if sim.bytes_per_replica \
        else "bytes copied: pass --mean-object-size and --objects"
    ctx.say(f"{sim.moved} part-replicas move ({100.0 * sim.moved / sim.parts:.2f}% of "
            f"partitions) in {len(sim.rounds)} rebalance(s); {copied}.")
    ctx.say(f"Balance {last.balance:.2f}, dispersion {last.dispersion:.2f}; "
            + ("settled." if sim.converged else "NOT settled within --max-rebalances."))
    ctx.say("Nothing was written.")


def _bytes(value: float) -> str:
    """Format a byte count with a binary unit."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def cmd_validate(ctx: Context, argv: list[str]) -> int:
    """Check the builder's assignment."""
    if argv:
        raise CliError("validate takes no arguments")
    builder = ctx.load()
    builder.validate()
    ctx.say(f"{ctx.path}: valid ({builder.parts} partitions, {builder.replicas:g} replicas, "
            f"{len(builder.iter_devs())} devices)")
    return EXIT_SUCCESS


def cmd_dispersion(ctx: Context, argv: list[str]) -> int:
    """Show dispersion (``-v``: per-tier replica histograms)."""
    parser = _Parser(prog=f"{PROG} BUILDER dispersion")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    builder = ctx.load()
    report = builder.dispersion_report()
    ctx.say(f"Dispersion is {report['dispersion']:.6f}, Balance is {report['balance']:.6f}, "
            f"Overload is {report['overload'] * 100:.2f}%")
    ctx.say(f"Required overload is {report['required_overload'] * 100:.6f}%")
    if report["dispersion"] > 0:
        ctx.say("Worst tiers:")
        worst = sorted(report["tiers"], key=lambda t: -t["parts_at_risk"])[:5]
        for tier in worst:
            if tier["parts_at_risk"]:
                ctx.say(f"  {_tier_name(tier['tier'])}: {tier['parts_at_risk']} parts at risk")
    if args.verbose:
        _print_dispersion_table(ctx, builder, report)
    return EXIT_SUCCESS


def _tier_name(tier: tuple[Any, ...], devices: dict[int, str] | None = None) -> str:
    """Render a tier like swift-ring-builder: ``r1``, ``r1z2``, ``r1z2-10.0.0.1``."""
    parts = [f"r{tier[0]}"]
    if len(tier) > 1:
        parts.append(f"z{tier[1]}")
    if len(tier) > 2:
        parts.append(f"-{tier[2]}")
    if len(tier) > 3:
        parts.append(f"/{devices.get(int(tier[3]), tier[3])}" if devices else f"/d{tier[3]}")
    return "".join(parts)


def _print_dispersion_table(ctx: Context, builder: RingBuilder, report: dict[str, Any]) -> None:
    """Print the per-tier histogram table."""
    rows = builder.table.shape[0] if builder.table is not None else 0
    names = {d.id: d.device for d in builder.iter_devs()}
    table = Table(box=None, show_edge=False, pad_edge=False)
    for name in ("Tier", "Parts", "%", "Max", *map(str, range(rows + 1))):
        table.add_column(name, justify="left" if name == "Tier" else "right")
    for tier in sorted(report["tiers"], key=lambda t: tuple(map(str, t["tier"]))):
        counts = tier["replicas"]
        parts = sum(k * n for k, n in enumerate(counts))
        pct = 100.0 * tier["parts_at_risk"] / max(builder.parts, 1)
        table.add_row(_tier_name(tier["tier"], names), str(parts), f"{pct:.2f}",
                      f"{tier['max_replicas']:g}", *map(str, counts))
    ctx.console().print(table)


def cmd_search(ctx: Context, argv: list[str]) -> int:
    """List devices matching a search value."""
    builder = ctx.load()
    devs = builder.search_devs(parse_search_value(_one_arg(argv, "search")))
    if not devs:
        print("No matching devices found", file=ctx.err)
        return EXIT_ERROR
    _print_devices(ctx, builder, devs)
    return EXIT_SUCCESS


def cmd_list_parts(ctx: Context, argv: list[str]) -> int:
    """List partitions with replicas on the matching devices (most matches first)."""
    if not argv:
        raise CliError("list_parts needs at least one <search>")
    builder = ctx.load()
    ids: set[int] = set()
    for search in argv:
        ids.update(d.id for d in builder.search_devs(parse_search_value(search)))
    if not ids:
        print("No matching devices found", file=ctx.err)
        return EXIT_ERROR
    table = Table(box=None, show_edge=False, pad_edge=False)
    table.add_column("Partition", justify="right")
    table.add_column("Matches", justify="right")
    for part, count in builder.list_parts(sorted(ids)):
        table.add_row(str(part), str(count))
    ctx.console().print(table)
    return EXIT_SUCCESS


def cmd_write_ring(ctx: Context, argv: list[str]) -> int:
    """Write the ring file from the builder's current assignment."""
    if argv:
        raise CliError("write_ring takes no arguments")
    builder = ctx.load()
    if not builder.ever_rebalanced:
        raise CliError("unable to write an empty ring: rebalance first")
    builder.validate()
    write_ring_file(ctx.ring_path, builder.get_ring())
    ctx.say(f"Wrote {ctx.ring_path}")
    return EXIT_SUCCESS


def cmd_default(ctx: Context, argv: list[str]) -> int:
    """Show the builder: summary lines and the device table."""
    if argv:
        raise CliError(f"unknown command {argv[0]!r} (see {PROG} --help)")
    builder = ctx.load()
    devs = builder.iter_devs()
    regions = {d.region for d in devs}
    zones = {(d.region, d.zone) for d in devs}
    balance = builder.get_balance() if any(d.weight for d in devs) else 0.0
    ctx.say(f"{ctx.path}, build version {builder.version}, id {builder.id}")
    ctx.say(f"{builder.parts} partitions, {builder.replicas:.6f} replicas, {len(regions)} "
            f"regions, {len(zones)} zones, {len(devs)} devices, {balance:.2f} balance, "
            f"{builder.dispersion:.2f} dispersion")
    ctx.say(f"The minimum number of hours before a partition can be reassigned is "
            f"{builder.min_part_hours} ({_hms(builder.min_part_seconds_left())} remaining)")
    ctx.say(f"The overload factor is {builder.overload * 100:.2f}% ({builder.overload:.6f})")
    ctx.say(_ring_file_status(ctx, builder))
    if devs:
        _print_devices(ctx, builder, devs)
    return EXIT_SUCCESS


def _ring_file_status(ctx: Context, builder: RingBuilder) -> str:
    """Say whether the ring file exists and matches the builder."""
    if not ctx.ring_path.exists():
        return f"Ring file {ctx.ring_path} not found, probably it hasn't been written yet"
    try:
        ring = load_ring_file(ctx.ring_path, verify=False)
    except RingError:
        return f"Ring file {ctx.ring_path} is invalid"
    if ring.version == builder.version:
        return f"Ring file {ctx.ring_path} is up-to-date"
    return f"Ring file {ctx.ring_path} is obsolete"


def _print_devices(ctx: Context, builder: RingBuilder, devs: list[Device]) -> None:
    """Print the device table (id, region, zone, addresses, name, weight, parts, balance)."""
    parts = builder.dev_parts()
    balance = builder.balance_per_dev() if any(d.weight for d in builder.iter_devs()) else {}
    table = Table(box=None, show_edge=False, pad_edge=False, title_justify="left")
    for name in ("id", "region", "zone", "ip address:port", "replication ip:port", "name",
                 "weight", "partitions", "balance", "flags", "meta"):
        table.add_column(name, justify="left" if name in ("meta", "flags") else "right")
    for dev in devs:
        count = int(parts[dev.id]) if dev.id < len(parts) else 0
        flags = "DEL" if dev.id in builder.remove_devs else ""
        table.add_row(str(dev.id), str(dev.region), str(dev.zone), f"{dev.ip}:{dev.port}",
                      f"{dev.replication_ip}:{dev.replication_port}", dev.device,
                      f"{dev.weight:.2f}", str(count), f"{balance.get(dev.id, 0.0):.2f}",
                      flags, dev.meta)
    ctx.say("Devices:")
    ctx.console().print(table)


COMMANDS: dict[str, Command] = {
    "create": cmd_create,
    "add": cmd_add,
    "remove": cmd_remove,
    "set_weight": cmd_set_weight,
    "set_info": cmd_set_info,
    "set_overload": cmd_set_overload,
    "set_min_part_hours": cmd_set_min_part_hours,
    "set_replicas": cmd_set_replicas,
    "rebalance": cmd_rebalance,
    "validate": cmd_validate,
    "dispersion": cmd_dispersion,
    "search": cmd_search,
    "list_parts": cmd_list_parts,
    "pretend_min_part_hours_passed": cmd_pretend_min_part_hours_passed,
    "write_ring": cmd_write_ring,
    "simulate": cmd_simulate,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run the ring-builder CLI; return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, file=out, end="")
        return EXIT_SUCCESS if args else EXIT_ERROR
    ctx = Context(path=Path(args[0]), out=out, err=err)
    verb, rest = (args[1], args[2:]) if len(args) > 1 else ("", [])
    if rest and rest[0] in ("-h", "--help") and verb in COMMANDS:
        print(USAGE, file=out, end="")
        return EXIT_SUCCESS
    command = COMMANDS.get(verb, cmd_default)
    if verb not in COMMANDS:
        rest = args[1:]
    try:
        return command(ctx, rest)
    except (CliError, RingError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; builder file unchanged", file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
