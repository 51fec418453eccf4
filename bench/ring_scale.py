"""Ring at scale: fresh, incremental, no-op and zone-removal rebalances with peak RSS.

``python -m nubis.bench ring --scale`` (part power 22 / 2,000 devices and part power
24 / 10,000 devices; ``--scale-only 22`` for one size).

Topologies, 3 replicas, equal weights, ``min_part_hours`` 1:

* pp22: 2,000 devices, 1 region x 10 zones x 10 servers x 20 disks;
* pp24: 10,000 devices, 2 regions x 10 zones x 25 servers x 20 disks.

The fresh rebalance runs once and its builder is saved; every other scenario starts
from that file in a process of its own (so peak RSS is per scenario):

* ``+10% devices``: one new server per zone (``pretend_min_part_hours_passed`` first);
* ``+10% devices, no-op``: the same without pretending — ``min_part_hours`` pins every
  partition, so nothing may move (what automation does by mistake);
* ``+1 region``: a new region with 10% more devices in 2 zones (pretend first);
* ``weight x2 on 10%``: every tenth device doubles its weight (pretend first);
* ``remove a zone``: every device of one zone removed (no pretend: Swift moves replicas
  off removed devices whatever ``min_part_hours`` says).

Each worker reports the seconds of ``rebalance()`` alone, the whole process's wall
clock (start-up, load, change, rebalance, save) and CPU time (user + system, which a
busy shared machine does not inflate the way it does the wall clock), its peak RSS
(``wait4``), the one-minute load average when it ended, the moved
part-replicas and the theoretical minimum: the replicas the new weights take from
the old devices (``sum(max(0, old_count - new_quota))``), plus what removed devices
held. swift-ring-builder is not run here: at part power 22 it needs ~10 minutes and
~2 GB for the fresh rebalance alone and far longer at part power 24 (see the README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOPOLOGIES: dict[int, tuple[int, int, int, int]] = {
    # part power: regions, zones per region, servers per zone, disks per server
    22: (1, 10, 10, 20),
    24: (2, 10, 25, 20),
}
SCENARIOS = ("fresh", "add10", "noop", "region", "weight", "zone")
LABELS = {
    "fresh": "fresh", "add10": "+10% devices", "noop": "+10% devices, no-op",
    "region": "+1 region (+10%)", "weight": "weight x2 on 10%", "zone": "remove a zone",
}

# argv = part_power, scenario, builder path; prints RESULT <json>.
WORKER = r'''
import json, sys, time
from nubis.ring.builder import RingBuilder
from nubis.ring.builderfile import load_builder, save_builder
from nubis.bench.ring_scale import TOPOLOGIES

pp, scenario, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
regions, zones, servers, disks = TOPOLOGIES[pp]

def add_server(b, region, zone, server):
    for d in range(disks):
        b.add_dev(region=region, zone=zone, ip="10.%d.%d.%d" % (region, zone, server),
                  port=6200, device="sd%d" % d, weight=100.0)

t_change = time.perf_counter()
if scenario == "fresh":
    b = RingBuilder(pp, 3, 1)
    for r in range(1, regions + 1):
        for z in range(1, zones + 1):
            for s in range(servers):
                add_server(b, r, z, s)
    before = None
else:
    b = load_builder(path)
    before = b.dev_parts()
    if scenario != "noop" and scenario != "zone":
        b.pretend_min_part_hours_passed()
    if scenario in ("add10", "noop"):
        extra = max(1, servers // 10)
        for r in range(1, regions + 1):
            for z in range(1, zones + 1):
                for s in range(extra):
                    add_server(b, r, z, servers + s)
    elif scenario == "region":
        new_servers = regions * zones * servers // 10
        for i in range(new_servers):
            add_server(b, regions + 1, 1 + i % 2, i)
    elif scenario == "weight":
        for dev in b.iter_devs():
            if dev.id % 10 == 0:
                b.set_dev_weight(dev.id, 200.0)
    elif scenario == "zone":
        for dev in b.search_devs({"region": 1, "zone": 1}):
            b.remove_dev(dev.id)
t_change = time.perf_counter() - t_change
t = time.perf_counter()
res = b.rebalance(seed=7)
elapsed = time.perf_counter() - t
minimum = None
if before is not None and scenario != "noop":
    quota = b.replica_plan().quota
    n = len(before)
    minimum = int(sum(max(0, int(before[i]) - quota.get(i, 0)) for i in range(n)))
if scenario == "fresh":
    save_builder(b, path)
print("RESULT " + json.dumps({
    "rebalance_s": elapsed, "change_s": t_change, "moved": res.changed, "minimum": minimum,
    "balance": res.balance, "dispersion": res.dispersion, "devices": len(b.iter_devs())}),
    flush=True)
'''


def run_scenario(pp: int, scenario: str, path: Path, timeout: float) -> dict[str, Any]:
    """Run one scenario in its own process; return its figures plus wall clock and RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(pp), scenario, str(path)],
                                stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"ring scale pp{pp} {scenario} timed out")
            time.sleep(0.02)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        lines = [ln for ln in out.read().decode(errors="replace").splitlines()
                 if ln.startswith("RESULT ")]
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not lines:
            tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"ring scale pp{pp} {scenario} failed (exit {code}): "
                               + " | ".join(tail))
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    result.update(bench="ring_scale", part_power=pp, scenario=LABELS[scenario],
                  wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                  peak_rss_mib=usage.ru_maxrss / 1024,
                  load1=os.getloadavg()[0])  # the machine is shared: say how busy it was
    return result


def scale_rows(part_powers: list[int], timeout: float) -> list[dict[str, Any]]:
    """Run every scenario at each part power; return one row per scenario."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nubis-ring-scale-") as tmp:
        for pp in part_powers:
            path = Path(tmp) / f"pp{pp}.builder"
            for scenario in SCENARIOS:
                print(f"ring scale: part_power {pp}: {LABELS[scenario]} ...", flush=True)
                rows.append(run_scenario(pp, scenario, path, timeout))
                print(format_scale(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def format_scale(rows: list[dict[str, Any]]) -> str:
    """Render the scale rows as a plain-text table."""
    head = (f"{'pp':>3} {'devices':>7} {'scenario':<22} {'rebal s':>8} {'wall s':>7} {'cpu s':>6} "
            f"{'peak MiB':>8} {'moved':>9} {'minimum':>9} {'excess':>7} {'balance':>8} "
            f"{'disp':>6} {'load':>5}")
    lines = [head]
    for r in rows:
        minimum = r["minimum"]
        excess = "-" if not minimum else f"{100.0 * (r['moved'] - minimum) / minimum:6.2f}%"
        lines.append(
            f"{r['part_power']:>3} {r['devices']:>7} {r['scenario']:<22} "
            f"{r['rebalance_s']:8.2f} {r['wall_s']:7.2f} {r.get('cpu_s', 0.0):6.2f} "
            f"{r['peak_rss_mib']:8.0f} "
            f"{r['moved']:>9} {'-' if minimum is None else minimum:>9} {excess:>7} "
            f"{r['balance']:8.3f} {r['dispersion']:6.2f} {r.get('load1', 0.0):5.1f}")
    return "\n".join(lines)


def check_scale_targets(rows: list[dict[str, Any]]) -> list[str]:
    """Return one verdict line per scale target (time, memory, no-op, movement)."""
    lines = []
    for r in rows:
        pp = r["part_power"]
        limits = []
        if pp == 24:
            limits.append(("wall", r["wall_s"], 10.0))
            limits.append(("peak MiB", r["peak_rss_mib"], 1024.0))
        if r["scenario"] == LABELS["noop"]:
            limits.append(("wall", r["wall_s"], 1.0 if pp == 22 else 3.0))
        if r["minimum"]:
            limits.append(("moved/minimum", r["moved"] / r["minimum"], 1.01))
        if r["scenario"] != LABELS["region"]:  # a 10% region cannot hold a replica of each
            limits.append(("dispersion", r["dispersion"], 0.0))
        for what, value, limit in limits:
            verdict = "MET" if value <= limit else "NOT MET"
            lines.append(f"target pp{pp} {r['scenario']}: {what} {value:.3f} "
                         f"(<= {limit:g}): {verdict}")
    return lines
