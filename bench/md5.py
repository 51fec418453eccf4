"""MD5 benchmark: the side-by-side lanes kernel vs hashlib, one message after another.

``python -m nubis.bench md5 [--kib 1024] [--rounds R]``

The proxy hashes every buffered upload body (up to 2 MiB) for its ETag, and
bodies of concurrent uploads go to :func:`nubis.fastpath.md5lanes.md5_many`
together (:mod:`nubis.api.proxy.digests`). In one run this measures, for 1, 2,
4, 8 and 16 messages of ``--kib`` KiB (and of 64 KiB, the smallest body hashed
off the event loop), best of ``--rounds``:

- ``lanes``: ``md5_many`` over all the messages at once (the compiled kernel;
  with ``NUBIS_NO_EXTENSIONS=1`` or without AVX2 it is hashlib's loop);
- ``hashlib``: ``hashlib.md5`` of each message in turn (OpenSSL's MD5, what
  the proxy ran before, and what Swift's object servers run).

Both must give the same digests (checked). Prints MB/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable

from nubis.fastpath import md5lanes

COUNTS = (1, 2, 4, 8, 16)
Func = Callable[[list[bytes]], list[bytes]]


def _hashlib(messages: list[bytes]) -> list[bytes]:
    return [hashlib.md5(m, usedforsecurity=False).digest() for m in messages]


def _rate(func: Func, messages: list[bytes], rounds: int) -> float:
    """Return the best MB/s of ``func`` over ``messages`` in ``rounds`` tries."""
    total = sum(map(len, messages))
    reps = max(1, (8 << 20) // total)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            func(messages)
        best = min(best, (time.perf_counter() - start) / reps)
    return total / best / 1e6


def run(kib: int, rounds: int) -> list[tuple[int, int, float, float]]:
    """Return ``(KiB per message, messages, lanes MB/s, hashlib MB/s)`` rows."""
    rows = []
    for size in sorted({64, kib}):
        for count in COUNTS:
            messages = [os.urandom(size << 10) for _ in range(count)]
            if md5lanes.md5_many(messages) != _hashlib(messages):
                raise RuntimeError("md5_many and hashlib disagree")
            rows.append((size, count, _rate(md5lanes.md5_many, messages, rounds),
                         _rate(_hashlib, messages, rounds)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench md5")
    parser.add_argument("--kib", type=int, default=1024, help="message size in KiB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"MD5 lanes: implementation {md5lanes.IMPLEMENTATION}, side by side "
          f"{md5lanes.SIDE_BY_SIDE} ({md5lanes.LANES} lanes); best of {args.rounds}")
    print(f"{'size':>8} {'messages':>8} {'lanes MB/s':>11} {'hashlib MB/s':>13} {'ratio':>6}")
    for size, count, lanes, ref in run(args.kib, args.rounds):
        print(f"{size:>5}KiB {count:>8} {lanes:>11.0f} {ref:>13.0f} {lanes / ref:>6.2f}")
    return 0
