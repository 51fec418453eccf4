"""Ring benchmark: nubis vs swift-ring-builder (rebalance) and Swift's Ring (lookup).

``python -m nubis.bench ring [--quick]`` (or ``make bench-ring``); ``--scale`` adds, and
``--scale-only`` runs alone, the part power 22/24 scenarios of :mod:`nubis.bench.ring_scale`.

Rebalance half (this module): the same topology on both sides — 100 devices,
5 zones x 4 servers x 5 disks, equal weights, 3 replicas, min_part_hours 1 —
rebalanced fresh, then again after adding 10 devices (one new server with two
disks per zone; ``pretend_min_part_hours_passed`` first, on both sides).
Each tool runs in its own subprocess (Swift in the reference venv made by
:mod:`nubis.bench.refswift`); each times only its ``rebalance()`` calls and
reports the peak RSS of each phase (``VmHWM``, reset between phases through
``/proc/self/clear_refs``), plus the process peak from ``wait4``.

Lookup half: :mod:`nubis.bench.ring_lookup` (names/s, single and batch, vs
Swift's ``Ring.get_nodes``), when present.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Runs in either venv: argv = tool ("nubis" | "swift"), part_power; prints RESULT <json>.
WORKER = r'''
import json, sys, time
tool, pp = sys.argv[1], int(sys.argv[2])

def hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0

def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass

if tool == "swift":
    from swift.common.ring import RingBuilder
    b = RingBuilder(pp, 3, 1)
    def add(**dev):
        b.add_dev(dev)
    def stats():
        return b.get_balance(), b.dispersion
else:
    from nubis.ring.builder import RingBuilder
    b = RingBuilder(pp, 3, 1)
    def add(**dev):
        b.add_dev(**dev)
    def stats():
        return b.get_balance(), b.dispersion

for z in range(1, 6):
    for s in range(1, 5):
        for d in range(5):
            add(region=1, zone=z, ip="127.0.%d.%d" % (z, s), port=6200, device="sd%d" % d,
                weight=100.0)
result = {"tool": tool, "part_power": pp, "base_rss_kib": hwm_kib()}
reset_hwm()
t = time.perf_counter()
b.rebalance(seed=1)
result["fresh_s"] = time.perf_counter() - t
result["fresh_rss_kib"] = hwm_kib()
result["fresh_balance"], result["fresh_dispersion"] = stats()
b.pretend_min_part_hours_passed()
for z in range(1, 6):
    for d in range(2):
        add(region=1, zone=z, ip="127.0.%d.9" % z, port=6200, device="sd%d" % d, weight=100.0)
reset_hwm()
t = time.perf_counter()
changed = b.rebalance(seed=2)
result["add_s"] = time.perf_counter() - t
result["add_rss_kib"] = hwm_kib()
result["add_moved"] = changed[0] if isinstance(changed, tuple) else changed.changed
result["add_balance"], result["add_dispersion"] = stats()
print("RESULT " + json.dumps(result), flush=True)
'''


def run_worker(python: str, tool: str, part_power: int, timeout: float) -> dict[str, Any]:
    """Run one rebalance worker; return its measurements plus the process peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([python, "-c", WORKER, tool, str(part_power)],
                                stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{tool} rebalance at part_power {part_power} timed out")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = [ln for ln in out.read().decode(errors="replace").splitlines()
                 if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{tool} worker failed (exit {proc.returncode}): "
                               + " | ".join(tail))
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
        result["process_peak_rss_kib"] = usage.ru_maxrss
        return result


def rebalance_rows(part_powers: list[int], with_swift: bool,
                   timeout: float) -> list[dict[str, Any]]:
    """Measure both tools at each part power; return one row per (part_power, phase)."""
    swift_py = None
    if with_swift:
        from nubis.bench.refswift import ensure_swift_venv, swift_python
        swift_py = str(swift_python(ensure_swift_venv()))
    rows: list[dict[str, Any]] = []
    for pp in part_powers:
        print(f"ring rebalance: part_power {pp}: nubis ...", flush=True)
        ours = run_worker(sys.executable, "nubis", pp, timeout)
        theirs = None
        if swift_py is not None:
            print(f"ring rebalance: part_power {pp}: swift-ring-builder ...", flush=True)
            theirs = run_worker(swift_py, "swift", pp, timeout)
        for phase, label in (("fresh", "fresh"), ("add", "after adding 10 devices")):
            rows.append(_phase_row(pp, phase, label, ours, theirs))
    return rows


def _phase_row(pp: int, phase: str, label: str, ours: dict[str, Any],
               theirs: dict[str, Any] | None) -> dict[str, Any]:
    """Combine both tools' numbers for one phase."""
    row: dict[str, Any] = {
        "bench": "ring_rebalance", "part_power": pp, "phase": label,
        "nubis_s": ours[f"{phase}_s"], "nubis_rss_mib": ours[f"{phase}_rss_kib"] / 1024,
        "nubis_balance": ours[f"{phase}_balance"],
        "nubis_dispersion": ours[f"{phase}_dispersion"],
        "swift_s": None, "swift_rss_mib": None, "swift_balance": None,
        "swift_dispersion": None, "speedup": None,
    }
    if phase == "add":
        row["nubis_moved"] = ours["add_moved"]
    if theirs is not None:
        row.update({
            "swift_s": theirs[f"{phase}_s"], "swift_rss_mib": theirs[f"{phase}_rss_kib"] / 1024,
            "swift_balance": theirs[f"{phase}_balance"],
            "swift_dispersion": theirs[f"{phase}_dispersion"],
            "speedup": theirs[f"{phase}_s"] / max(ours[f"{phase}_s"], 1e-9),
        })
        if phase == "add":
            row["swift_moved"] = theirs["add_moved"]
    return row


def format_rebalance(rows: list[dict[str, Any]]) -> str:
    """Render the rebalance rows as a plain-text table."""
    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    head = (f"{'pp':>3} {'phase':<24} {'nubis s':>8} {'swift s':>8} {'speedup':>8} "
            f"{'nubis MiB':>9} {'swift MiB':>9} {'bal nubis':>9} {'bal swift':>9} "
            f"{'disp nubis':>10} {'disp swift':>10}")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['part_power']:>3} {r['phase']:<24} {num(r['nubis_s'], '8.3f')} "
            f"{num(r['swift_s'], '8.2f')} {num(r['speedup'], '7.1f') + 'x':>8} "
            f"{num(r['nubis_rss_mib'], '9.1f')} {num(r['swift_rss_mib'], '9.1f')} "
            f"{num(r['nubis_balance'], '9.4f')} {num(r['swift_balance'], '9.4f')} "
            f"{num(r['nubis_dispersion'], '10.4f')} {num(r['swift_dispersion'], '10.4f')}")
    return "\n".join(lines)


def check_targets(rows: list[dict[str, Any]], target_pp: int) -> list[str]:
    """Return one line per target (>= 50x at the target part power, balance, dispersion)."""
    lines = []
    for r in rows:
        if r["part_power"] != target_pp or r["speedup"] is None:
            continue
        fast = r["speedup"] >= 50
        balanced = r["nubis_balance"] <= r["swift_balance"] + 0.1
        dispersed = r["nubis_dispersion"] == 0
        verdict = "MET" if fast and balanced and dispersed else "NOT MET"
        lines.append(f"target pp{target_pp} {r['phase']}: speedup {r['speedup']:.1f}x (>= 50), "
                     f"balance {r['nubis_balance']:.4f} (<= {r['swift_balance'] + 0.1:.4f}), "
                     f"dispersion {r['nubis_dispersion']:g} (== 0): {verdict}")
    return lines


def lookup_rows(quick: bool, with_swift: bool) -> tuple[list[dict[str, Any]], str]:
    """Run the lookup half if :mod:`nubis.bench.ring_lookup` exists; return rows and table."""
    try:
        from nubis.bench import ring_lookup
    except ImportError:
        return [], "(lookup benchmark nubis.bench.ring_lookup not available)"
    parser = argparse.ArgumentParser()
    ring_lookup.add_arguments(parser)
    argv = ["--part-power", "16", "--names", "200000", "--single", "20000", "--repeat", "2"] \
        if quick else []
    if not with_swift:
        argv.append("--no-swift")
    rows = ring_lookup.run(parser.parse_args(argv))
    return rows, ring_lookup.format_table(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the ring benchmark and print the ratios."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench ring",
                                     description="nubis ring vs Swift: rebalance and lookup")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: part_power 14 and 16, smaller lookup run")
    parser.add_argument("--part-powers", type=int, nargs="+", default=None)
    parser.add_argument("--no-swift", action="store_true", help="skip the Swift side")
    parser.add_argument("--no-lookup", action="store_true", help="skip the lookup half")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed per worker process")
    parser.add_argument("--json", type=Path, default=None, help="also write rows as JSON")
    parser.add_argument("--scale", action="store_true",
                        help="also run the at-scale scenarios (nubis.bench.ring_scale)")
    parser.add_argument("--scale-only", action="store_true",
                        help="run only the at-scale scenarios")
    parser.add_argument("--scale-part-powers", type=int, nargs="+", default=[22, 24],
                        choices=[22, 24])
    args = parser.parse_args(argv)
    if args.scale_only:
        return _run_scale(args.scale_part_powers, args.timeout, args.json)
    part_powers = args.part_powers or ([14, 16] if args.quick else [18, 20])
    with_swift = not args.no_swift
    rows = rebalance_rows(part_powers, with_swift, args.timeout)
    print()
    print("ring rebalance: 100 devices (5 zones x 4 servers x 5 disks), equal weights, "
          "3 replicas; then +10 devices (2 per zone); seconds = rebalance() only; "
          "MiB = peak RSS of the phase")
    print(format_rebalance(rows))
    for line in check_targets(rows, max(part_powers)):
        print(line)
    all_rows = list(rows)
    if not args.no_lookup:
        print()
        lrows, table = lookup_rows(args.quick, with_swift)
        print("ring lookup (see nubis.bench.ring_lookup):")
        print(table)
        all_rows += lrows
    if args.json is not None:
        args.json.write_text(json.dumps(all_rows, indent=2))
    if args.scale:
        return _run_scale(args.scale_part_powers, args.timeout,
                          None if args.json is None else args.json.with_suffix(".scale.json"))
    return 0


def _run_scale(part_powers: list[int], timeout: float, json_path: Path | None) -> int:
    """Run the at-scale scenarios and print their table and target verdicts."""
    from nubis.bench.ring_scale import check_scale_targets, format_scale, scale_rows

    rows = scale_rows(part_powers, timeout)
    print()
    print("ring at scale: 3 replicas, equal weights, min_part_hours 1; each scenario in its "
          "own process; wall = whole process; MiB = its peak RSS")
    print(format_scale(rows))
    for line in check_scale_targets(rows):
        print(line)
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
