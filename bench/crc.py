"""CRC benchmark: S3's CRC-32C and CRC-64/NVME kernels vs what they replace.

``python -m nubis.bench crc [--mib N] [--rounds R]``

The proxy verifies ``x-amz-checksum-crc32c`` / ``-crc64nvme`` over every body
that carries one (boto3 with ``ChecksumAlgorithm``, the SDKs' defaults) and
stores multipart parts' values. In one run this measures, per algorithm, on the
same random buffer (4 KiB and ``--mib`` MiB), best of ``--rounds``:

- ``fastpath`` (the compiled kernel nubis loads: ISA-L's ``crc32_iscsi``,
  slicing-by-8 for CRC-64/NVME);
- ``pure`` (its pure-Python twin: the table loop nubis ran before, run on a
  smaller buffer and scaled, it is ~10^3 times slower);
- ``awscrt`` (the AWS Common Runtime's checksums, which botocore uses on the
  client side for these algorithms), when installed;
- ``zlib.crc32`` (CRC-32, CPython's hardware-assisted zlib) as a yardstick.

Prints MB/s and the fastpath/reference ratios.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib
from collections.abc import Callable

from nubis.fastpath import _crc_py, crc

Func = Callable[[bytes], int]
#: Bytes the pure twin is timed on (it runs at a few MB/s).
PURE_BYTES = 64 * 1024


def _rate(func: Func, data: bytes, rounds: int) -> float:
    """Return the best MB/s of ``func`` over ``data`` in ``rounds`` tries."""
    best = float("inf")
    reps = max(1, (1 << 20) // max(len(data), 1))
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            func(data)
        best = min(best, (time.perf_counter() - start) / reps)
    return len(data) / best / 1e6


def _contenders(algo: str) -> dict[str, Func]:
    out: dict[str, Func] = {"fastpath": getattr(crc, algo), "pure": getattr(_crc_py, algo)}
    try:
        from awscrt import checksums  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        out["awscrt"] = getattr(checksums, algo)
    return out


def run(mib: int, rounds: int) -> list[tuple[str, str, str, float]]:
    """Return ``(algo, size, contender, MB/s)`` rows."""
    rows = []
    sizes = (("4KiB", os.urandom(4096)), (f"{mib}MiB", os.urandom(mib << 20)))
    for size, data in sizes:
        for algo in ("crc32c", "crc64nvme"):
            for name, func in _contenders(algo).items():
                sample = data[:PURE_BYTES] if name == "pure" else data
                rows.append((algo, size, name, _rate(func, sample, rounds)))
        rows.append(("crc32", size, "zlib", _rate(zlib.crc32, data, rounds)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench crc")
    parser.add_argument("--mib", type=int, default=16, help="large buffer size in MiB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"CRC kernels: fastpath implementation {crc.IMPLEMENTATION}; best of {args.rounds}")
    rows = run(args.mib, args.rounds)
    rates = {(a, s, n): r for a, s, n, r in rows}
    print(f"{'algo':10} {'size':6} {'contender':9} {'MB/s':>10}  fastpath/this")
    for algo, size, name, rate in rows:
        mine = rates.get((algo, size, "fastpath"))
        ratio = f"{mine / rate:9.1f}x" if mine and name != "fastpath" else ""
        print(f"{algo:10} {size:6} {name:9} {rate:10.0f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
