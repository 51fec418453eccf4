"""Run a benchmark: ``python -m nubis.bench NAME [options]``.

Each benchmark lives in ``nubis.bench.<name>`` and exposes ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "ring": "nubis.bench.ring",
    "ring_lookup": "nubis.bench.ring_lookup",
    "swift": "nubis.bench.swift",
    "identity": "nubis.bench.identity",
    "scheduler": "nubis.bench.scheduler",
    "boot": "nubis.bench.boot",
    "ec": "nubis.bench.ec",
    "crc": "nubis.bench.crc",
    "md5": "nubis.bench.md5",
    "sigv4": "nubis.bench.sigv4",
    "image": "nubis.bench.image",
    "replication": "nubis.bench.replication",
    "s3": "nubis.bench.s3",
    "volume": "nubis.bench.volume",
    "network": "nubis.bench.network",
    "scale": "nubis.bench.scale",
    "netlease": "nubis.bench.netlease",
    "flush": "nubis.bench.flush",
    "loopback": "nubis.bench.loopback",
}


def main(argv: list[str]) -> int:
    """Dispatch to the named benchmark."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m nubis.bench {" + ",".join(BENCHMARKS) + "} [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    result: int = module.main(argv[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
