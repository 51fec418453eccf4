"""EC kernel benchmark: nubis vs raw ISA-L (a C loop, the ceiling) vs pyeclib.

``python -m nubis.bench ec [--rounds N] [--iterations N] [--quick] [--json]``
(or ``make bench-ec``).

For 8+4 and 4+2, one 1 MiB random segment (in cache, the same buffers every
time) is encoded, decoded with the first ``m`` data fragments lost (the
heaviest decode: every lost fragment is a data fragment), and those fragments
are reconstructed alone. Four contenders, in alternating rounds, best round
of each counts:

- *raw ISA-L*: ``bench/ec_ceiling.c`` compiled with gcc into a temp dir in
  this run, calling ``ec_encode_data`` on fixed buffers from a C loop;
- *nubis*: :class:`nubis.fastpath.ec.Codec` in this process, both into caller
  buffers (what the C loop does; ratio to the ceiling) and into fresh
  bytearrays (what pyeclib does; ratio to pyeclib);
- *pyeclib* ``isa_l_rs_vand`` (liberasurecode over the same ISA-L) in the
  reference Swift venv of :mod:`nubis.bench.refswift`, as a subprocess;
- the pure-Python twin (``NUBIS_NO_EXTENSIONS=1``), a few iterations, for scale.

Targets: nubis >= 80% of raw ISA-L and >= 3x pyeclib. The run also checks
that nubis' parity is byte-identical to pyeclib's ``isa_l_rs_cauchy`` payloads
(the same ISA-L Cauchy generator) and that every decode returns the segment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nubis.bench.refswift import ensure_swift_venv, swift_python
from nubis.fastpath import _ec_py, ec

CONFIGS: tuple[tuple[int, int], ...] = ((8, 4), (4, 2))
SEGMENT = 1 << 20
MODES = ("encode", "decode", "reconstruct")
CEILING_SOURCE = Path(__file__).resolve().parent / "ec_ceiling.c"

# Runs in the reference Swift venv: argv = k m segment_file iterations rounds lost...
# Prints RESULT <json>: best seconds per op for each mode, and the sha256 of the
# isa_l_rs_cauchy parity payloads (fragment header stripped).
PYECLIB_WORKER = r'''
import hashlib, json, sys, time
from pyeclib.ec_iface import ECDriver
k, m, path, iters, rounds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5])
lost = [int(x) for x in sys.argv[6:]]
with open(path, "rb") as f:
    seg = f.read()
size = len(seg) // k
cauchy = ECDriver(k=k, m=m, ec_type="isa_l_rs_cauchy").encode(seg)
parity_sha = hashlib.sha256(b"".join(f[-size:] for f in cauchy[k:])).hexdigest()
drv = ECDriver(k=k, m=m, ec_type="isa_l_rs_vand")
frags = drv.encode(seg)
alive = [f for i, f in enumerate(frags) if i not in lost][:k]
assert drv.decode(alive) == seg
def best(fn):
    out = 1e30
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        out = min(out, (time.perf_counter() - t) / iters)
    return out
result = {"encode": best(lambda: drv.encode(seg)),
          "decode": best(lambda: drv.decode(alive)),
          "reconstruct": best(lambda: drv.reconstruct(alive, lost)),
          "cauchy_parity_sha256": parity_sha}
print("RESULT " + json.dumps(result))
'''


def compile_ceiling(tmp: Path) -> Path:
    """Compile the raw ISA-L loop with gcc into ``tmp``; return the binary."""
    binary = tmp / "ec_ceiling"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(CEILING_SOURCE), "-lisal"],
                   check=True)
    return binary


def run_ceiling(binary: Path, k: int, m: int, lost: list[int], iters: int,
                rounds: int) -> dict[str, float]:
    """Run the C loop; return its best seconds per operation for each mode."""
    out = subprocess.run([str(binary), str(k), str(m), str(SEGMENT), str(iters), str(rounds),
                          *map(str, lost)], capture_output=True, text=True, check=True)
    return {mode: float(t) for mode, t in (line.split() for line in out.stdout.splitlines())}


def run_pyeclib(python: Path, segment_file: Path, k: int, m: int, lost: list[int],
                iters: int, rounds: int) -> dict[str, Any]:
    """Run the pyeclib worker in the reference venv; return its RESULT record."""
    out = subprocess.run([str(python), "-c", PYECLIB_WORKER, str(k), str(m),
                          str(segment_file), str(iters), str(rounds), *map(str, lost)],
                         capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result


def _best(fn: Callable[[], object], iters: int, rounds: int) -> float:
    """Return the best round's seconds per call of ``fn``."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t) / iters)
    return best


def run_nubis(codec: Any, segment: bytes, lost: list[int], iters: int,
              rounds: int) -> dict[str, float]:
    """Time ``codec`` in this process, into caller buffers and into fresh ones."""
    size = codec.fragment_size(len(segment))
    frags = codec.encode(segment)
    alive = {i: bytes(f) for i, f in enumerate(frags) if i not in lost}
    if codec.decode(alive, len(segment)) != segment:
        raise AssertionError(f"{codec!r}: decode did not return the segment")
    parity = bytearray(codec.m * size)
    out = bytearray(len(segment))
    return {
        "encode": _best(lambda: codec.encode(segment, parity), iters, rounds),
        "encode_fresh": _best(lambda: codec.encode(segment), iters, rounds),
        "decode": _best(lambda: codec.decode_into(alive, len(segment), out), iters, rounds),
        "decode_fresh": _best(lambda: codec.decode(alive, len(segment)), iters, rounds),
        "reconstruct": _best(lambda: codec.reconstruct(alive, lost), iters, rounds),
    }


def _parity_sha(codec: Any, segment: bytes) -> str:
    """Return the sha256 of ``codec``'s parity fragments of ``segment``."""
    import hashlib

    return hashlib.sha256(b"".join(codec.encode(segment)[codec.k:])).hexdigest()


def measure(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Run every contender on every code, alternating, best round of each."""
    binary = compile_ceiling(tmp)
    python = None if args.no_pyeclib else swift_python(ensure_swift_venv())
    segment = os.urandom(SEGMENT)
    segment_file = tmp / "segment"
    segment_file.write_bytes(segment)
    rows: list[dict[str, Any]] = []
    for k, m in CONFIGS:
        lost = list(range(m))
        codec = ec.Codec(k, m)
        row: dict[str, Any] = {"k": k, "m": m, "lost": lost, "ceiling": {}, "nubis": {},
                               "pyeclib": {}}
        for _ in range(args.repeat):
            _merge(row["ceiling"], run_ceiling(binary, k, m, lost, args.iterations,
                                               args.rounds))
            _merge(row["nubis"], run_nubis(codec, segment, lost, args.iterations,
                                           args.rounds))
            if python is not None:
                res = run_pyeclib(python, segment_file, k, m, lost, args.iterations,
                                  args.rounds)
                row["cauchy_parity_identical"] = (
                    res.pop("cauchy_parity_sha256") == _parity_sha(codec, segment))
                _merge(row["pyeclib"], res)
        row["twin"] = run_nubis(_ec_py.Codec(k, m), segment, lost, 2, 2)
        rows.append(row)
    return rows


def _merge(best: dict[str, float], new: dict[str, float]) -> None:
    """Keep the smaller time per key."""
    for key, value in new.items():
        best[key] = min(best.get(key, float("inf")), value)


def _rate(seconds: float | None) -> str:
    """Format segment throughput (MB/s of 1 MiB segments) for ``seconds`` per op."""
    return "—" if seconds is None else f"{SEGMENT / seconds / 1e6:,.0f}"


def _ratio(num: float | None, den: float | None, pct: bool = False) -> str:
    """Format den/num (times are inverse rates) as a speed ratio."""
    if num is None or den is None:
        return "—"
    return f"{den / num:.0%}" if pct else f"{den / num:.1f}x"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the results as a Markdown table (MB/s of 1 MiB segments)."""
    print(f"\nEC kernel ({ec.IMPLEMENTATION}), 1 MiB segments in cache, MB/s of segment; "
          "decode/reconstruct lose the first m data fragments\n")
    print("| code | operation | raw ISA-L (C) | nubis, caller buffers | nubis, fresh buffers "
          "| pyeclib isa_l_rs_vand | pure twin | nubis / ISA-L | nubis / pyeclib |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for mode in MODES:
            fresh = row["nubis"].get(mode + "_fresh", row["nubis"][mode])
            twin = row["twin"].get(mode + "_fresh", row["twin"][mode])
            pye = row["pyeclib"].get(mode)
            print(f"| {row['k']}+{row['m']} | {mode} | {_rate(row['ceiling'][mode])} "
                  f"| {_rate(row['nubis'][mode])} | {_rate(fresh)} | {_rate(pye)} "
                  f"| {_rate(twin)} | **{_ratio(row['nubis'][mode], row['ceiling'][mode], True)}**"
                  f" | **{_ratio(fresh, pye)}** |")
    for row in rows:
        if "cauchy_parity_identical" in row:
            same = "identical" if row["cauchy_parity_identical"] else "DIFFERENT"
            print(f"\n{row['k']}+{row['m']}: parity vs pyeclib isa_l_rs_cauchy: {same}", end="")
    print("\nTargets: nubis / ISA-L >= 80%, nubis / pyeclib >= 3x")


def main(argv: list[str]) -> int:
    """Run the EC benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench ec")
    ap.add_argument("--iterations", type=int, default=200, help="operations per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per contender and repeat")
    ap.add_argument("--repeat", type=int, default=2, help="alternations of the contenders")
    ap.add_argument("--quick", action="store_true", help="a smoke run (few iterations)")
    ap.add_argument("--no-pyeclib", action="store_true", help="skip the reference venv")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.rounds, args.repeat = 10, 2, 1
    with tempfile.TemporaryDirectory(prefix="nubis-bench-ec-") as d:
        rows = measure(args, Path(d))
    if args.json:
        print(json.dumps(rows, indent=2))
    print_table(rows)
    bad = [r for r in rows if r.get("cauchy_parity_identical") is False]
    return 1 if bad else 0
