"""Ring lookup benchmark: nubis ``Ring`` vs OpenStack Swift's ``Ring`` on the same table.

One ring (100 devices over 5 zones, 20 servers, equal weights, 3 replicas,
part_power 18 by default) is built with nubis's builder; the very same
replica→partition→device table is saved as a Swift ``.ring.gz`` inside the
reference-Swift virtualenv (see :mod:`nubis.bench.refswift`), so both sides
look up identical placements. Each side times its own loop in its own process,
pinned to one CPU:

* single ``get_nodes(account, container, obj)`` — names/s;
* ``get_more_nodes(part)`` — first two handoffs, partitions/s;
* nubis batch calls (names → partitions; names → partitions + primary device
  ids), looping without the GIL — names/s.

Run alone: ``python -m nubis.bench.ring_lookup [--part-power 18] [--names 1000000]``.
``nubis.bench.ring`` calls :func:`run` and prints the same rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from nubis.bench.refswift import SWIFT_HASH_SETUP, ensure_swift_venv, swift_python
from nubis.fastpath import hashpath, ringlookup
from nubis.ring.builder import RingBuilder
from nubis.ring.ring import Ring
from nubis.ring.ringdata import RingData, write_ring_file

ACCOUNT, CONTAINER = "AUTH_bench", "bench"
DEFAULTS = {"part_power": 18, "names": 1_000_000, "single": 200_000, "handoff_parts": 20_000,
            "repeat": 5, "rounds": 2, "cpu": None, "no_swift": False, "no_pure": False}
#: The pure-Python twin runs on a tenth of the names (it is much slower).
PURE_SCALE = 10

# Runs inside the Swift venv: argv = ring dir, part_power, replicas, n_single, n_handoff, repeat.
SWIFT_SCRIPT = SWIFT_HASH_SETUP + r'''
import array, json, sys, time
from swift.common.ring import Ring, RingData
ring_dir, pp, reps, n_single, n_hand, repeat = sys.argv[1], *map(int, sys.argv[2:])
devs = json.load(open(ring_dir + "/devs.json"))
raw = open(ring_dir + "/table.u16", "rb").read()
parts = 1 << pp
rows = [array.array("H", raw[r * parts * 2:(r + 1) * parts * 2]) for r in range(reps)]
RingData(rows, devs, 32 - pp).save(ring_dir + "/object.ring.gz")
ring = Ring(ring_dir + "/object.ring.gz")
names = ["o%d" % i for i in range(n_single)]
get_nodes, more = ring.get_nodes, ring.get_more_nodes
def single():
    t = time.perf_counter()
    for n in names:
        get_nodes("AUTH_bench", "bench", n)
    return time.perf_counter() - t
def handoffs():
    t = time.perf_counter()
    for p in range(n_hand):
        g = more(p); next(g); next(g)
    return time.perf_counter() - t
check = sorted({0, 1, 12345 % parts, parts - 1})
out = {"single": min(single() for _ in range(repeat)),
       "handoffs": min(handoffs() for _ in range(repeat)),
       "check": {str(p): [d["id"] for d in ring.get_part_nodes(p)] for p in check}}
print(json.dumps(out))
'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this benchmark's options to ``parser``."""
    parser.add_argument("--part-power", type=int, default=DEFAULTS["part_power"])
    parser.add_argument("--names", type=int, default=DEFAULTS["names"],
                        help="names per batch call")
    parser.add_argument("--single", type=int, default=DEFAULTS["single"],
                        help="names for the single get_nodes loop")
    parser.add_argument("--handoff-parts", type=int, default=DEFAULTS["handoff_parts"])
    parser.add_argument("--repeat", type=int, default=DEFAULTS["repeat"],
                        help="runs per measurement; the best counts")
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"],
                        help="alternating nubis/Swift rounds; the best counts")
    parser.add_argument("--cpu", type=int, default=DEFAULTS["cpu"],
                        help="CPU to pin both sides to (default: the last allowed one)")
    parser.add_argument("--no-swift", action="store_true", help="skip the Swift side")
    parser.add_argument("--no-pure", action="store_true",
                        help="skip the pure-Python twin (NUBIS_NO_EXTENSIONS=1) rows")


def _opt(args: argparse.Namespace | None, name: str) -> Any:
    return getattr(args, name, DEFAULTS[name]) if args is not None else DEFAULTS[name]


# ------------------------------------------------------------------ setup


def build_ring(part_power: int) -> RingData:
    """Build the benchmark ring: 100 devices, 5 zones x 4 servers x 5 disks, 3 replicas."""
    builder = RingBuilder(part_power, 3, 1)
    for i in range(100):
        zone, server = i // 20 + 1, (i % 20) // 5 + 1
        builder.add_dev(region=1, zone=zone, ip=f"127.0.{zone}.{server}", port=6200,
                        device=f"sd{i % 5}", weight=100.0)
    builder.rebalance(seed=1)
    return builder.get_ring()


def _export_for_swift(data: RingData, ring_dir: Path) -> None:
    """Write the devices and the table in a form the Swift-side script reads."""
    (ring_dir / "devs.json").write_text(json.dumps(data.devs))
    table = np.stack([np.asarray(r, dtype="<u2") for r in data.replica2part2dev])
    (ring_dir / "table.u16").write_bytes(table.tobytes())


def _pin(cpu: int | None) -> int | None:
    """Pin this process to one CPU; return it (``None`` where unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def _best(fn: Callable[[], None], repeat: int) -> float:
    """Return the best wall time of ``repeat`` runs of ``fn`` (GC off while timing)."""
    times = []
    for _ in range(repeat):
        gc.disable()
        try:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        finally:
            gc.enable()
    return min(times)


# -------------------------------------------------------------- measuring


def measure_nubis(ring: Ring, n_single: int, n_batch: int, n_hand: int,
                  repeat: int) -> dict[str, float]:
    """Time nubis's single, handoff and batch lookups; return seconds per case."""
    names = [f"o{i}" for i in range(n_single)]
    get_nodes, more = ring.get_nodes, ring.get_more_nodes

    def single() -> None:
        for n in names:
            get_nodes(ACCOUNT, CONTAINER, n)

    def handoffs() -> None:
        for p in range(n_hand):
            g = more(p)
            next(g)
            next(g)

    paths = [f"/{ACCOUNT}/{CONTAINER}/o{i}".encode() for i in range(n_batch)]

    def batch_parts() -> None:
        ring.get_partitions(paths)

    def batch_nodes() -> None:
        ring.get_batch_nodes(paths)

    return {"single": _best(single, repeat), "handoffs": _best(handoffs, repeat),
            "batch_parts": _best(batch_parts, repeat),
            "batch_nodes": _best(batch_nodes, repeat)}


def measure_swift(data: RingData, ring_dir: Path, n_single: int, n_hand: int,
                  repeat: int, cpu: int | None) -> dict[str, float]:
    """Run the Swift-side loop in the reference venv; return seconds per case."""
    venv = ensure_swift_venv()
    _export_for_swift(data, ring_dir)
    cmd = [str(swift_python(venv)), "-c", SWIFT_SCRIPT, str(ring_dir), str(data.part_power),
           str(len(data.replica2part2dev)), str(n_single), str(n_hand), str(repeat)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("swift lookup benchmark failed:\n" + proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    _check_same_placement(data, result.pop("check"))
    return result


def _check_same_placement(data: RingData, swift_nodes: dict[str, list[int]]) -> None:
    """Fail unless Swift's ring maps sample partitions to the same devices as ours."""
    for part, ids in swift_nodes.items():
        ours = [int(row[int(part)]) for row in data.replica2part2dev]
        if ours != ids:
            raise RuntimeError(f"swift ring differs at partition {part}: {ids} != {ours}")


def measure_pure(ring_path: Path, n_single: int, n_batch: int, n_hand: int, repeat: int,
                 cpu: int | None) -> dict[str, float]:
    """Time the pure-Python twin in a child process with ``NUBIS_NO_EXTENSIONS=1``."""
    env = dict(os.environ, NUBIS_NO_EXTENSIONS="1")
    code = ("import sys; from nubis.bench.ring_lookup import pure_child; "
            "pure_child(sys.argv[1:])")
    cmd = [sys.executable, "-c", code, str(ring_path), str(n_single), str(n_batch),
           str(n_hand), str(repeat)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError("pure-Python lookup benchmark failed:\n" + proc.stderr[-3000:])
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def pure_child(argv: list[str]) -> None:
    """Child side of :func:`measure_pure`: measure and print JSON."""
    if ringlookup.IMPLEMENTATION != "python":
        raise SystemExit("pure_child needs NUBIS_NO_EXTENSIONS=1")
    ring = Ring(Path(argv[0]), b"", b"nubis-bench")
    n_single, n_batch, n_hand, repeat = (int(a) for a in argv[1:])
    print(json.dumps(measure_nubis(ring, n_single, n_batch, n_hand, repeat)))


def _row(case: str, n: int, nubis_s: float, swift_s: float | None,
         unit: str = "names/s") -> dict[str, Any]:
    nubis_rate = n / nubis_s
    swift_rate = n / swift_s if swift_s else None
    return {"bench": "ring_lookup", "case": case, "unit": unit, "n": n,
            "nubis": nubis_rate, "swift": swift_rate,
            "ratio": nubis_rate / swift_rate if swift_rate else None}


def run(args: argparse.Namespace | None = None) -> list[dict[str, Any]]:
    """Run the lookup benchmark; return one row per case (rates and ratio vs Swift)."""
    pp, n_batch = _opt(args, "part_power"), _opt(args, "names")
    n_single, n_hand, repeat = _opt(args, "single"), _opt(args, "handoff_parts"), \
        _opt(args, "repeat")
    n_hand = min(n_hand, 1 << pp)
    previous = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpu = _pin(_opt(args, "cpu"))
    try:
        with tempfile.TemporaryDirectory(prefix="nubis-bench-ring-") as tmp:
            ring_dir = Path(tmp)
            data = build_ring(pp)
            write_ring_file(ring_dir / "object.ring", data)
            ring = Ring(ring_dir / "object.ring", b"", b"nubis-bench")
            ours: dict[str, float] = {}
            theirs: dict[str, float] = {}
            pure: dict[str, float] = {}
            # Alternate the sides so a noisy neighbour hurts both alike; keep the best.
            for _ in range(_opt(args, "rounds")):
                _keep_best(ours, measure_nubis(ring, n_single, n_batch, n_hand, repeat))
                if not _opt(args, "no_swift"):
                    _keep_best(theirs, measure_swift(data, ring_dir, n_single, n_hand,
                                                     repeat, cpu))
                if not _opt(args, "no_pure"):
                    _keep_best(pure, measure_pure(
                        ring_dir / "object.ring", n_single // PURE_SCALE,
                        n_batch // PURE_SCALE, n_hand // PURE_SCALE, max(repeat // 2, 1), cpu))
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
    return _rows(ours, theirs, n_single, n_batch, n_hand) + [
        {**row, "case": "pure twin: " + row["case"]}
        for row in (_rows(pure, theirs, n_single // PURE_SCALE, n_batch // PURE_SCALE,
                          n_hand // PURE_SCALE, swift_scale=PURE_SCALE) if pure else [])]


def _keep_best(best: dict[str, float], new: dict[str, float]) -> None:
    """Merge ``new`` timings into ``best``, keeping the smaller time per case."""
    for key, value in new.items():
        best[key] = min(value, best.get(key, value))


def _rows(ours: dict[str, float], theirs: dict[str, float], n_single: int, n_batch: int,
          n_hand: int, swift_scale: int = 1) -> list[dict[str, Any]]:
    """Turn timings into rate rows; Swift's timings were for ``swift_scale`` x the names."""
    single = theirs["single"] / swift_scale if "single" in theirs else None
    hand = theirs["handoffs"] / swift_scale if "handoffs" in theirs else None
    # Swift has no batch call: its batch-equivalent is the single get_nodes loop.
    batch = single * n_batch / n_single if single else None
    return [
        _row("get_nodes (single)", n_single, ours["single"], single),
        _row("get_more_nodes (2 handoffs)", n_hand, ours["handoffs"], hand, "parts/s"),
        _row("batch get_partitions", n_batch, ours["batch_parts"], batch),
        _row("batch get_batch_nodes (part + primary ids)", n_batch, ours["batch_nodes"], batch),
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Render the rows as a plain-text table."""
    lines = [f"{'case':<54} {'nubis':>14} {'swift':>14} {'ratio':>9}  unit"]
    for r in rows:
        swift = f"{r['swift']:>14,.0f}" if r["swift"] else f"{'-':>14}"
        ratio = f"{r['ratio']:>8.1f}x" if r["ratio"] else f"{'-':>9}"
        lines.append(f"{r['case']:<54} {r['nubis']:>14,.0f} {swift} {ratio}  {r['unit']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench.ring_lookup",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    args = parser.parse_args(argv)
    rows = run(args)
    print(f"ring lookup: part_power {args.part_power}, 100 devices / 5 zones / 3 replicas, "
          f"one CPU, best of {args.repeat} x {args.rounds} rounds; "
          f"fastpath={ringlookup.IMPLEMENTATION}, hashpath={hashpath.IMPLEMENTATION}")
    print("(batch rows compare with Swift's single get_nodes rate: Swift has no batch call)")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
