"""Free loopback ports for test servers, outside the kernel's ephemeral range.

A client that polls a port nobody listens on yet can, once in a while, be given
that very port as its own source port; the kernel then connects the socket to
itself and the client reads back its own request (``BadStatusLine: GET …``).
That only happens inside the ephemeral range, so test servers never use it.
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

HOST = "127.0.0.1"
LOW, HIGH = 10000, 65000
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """Return the kernel's ephemeral port range (inclusive)."""
    try:
        lo, hi = RANGE_FILE.read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def port_free(port: int) -> bool:
    """Return whether ``port`` can be bound on loopback right now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _candidates(size: int) -> list[int]:
    lo, hi = ephemeral_range()
    below = range(LOW, max(LOW, lo - size), 10)
    above = range(hi + 1, max(hi + 1, HIGH - size), 10)
    return [*below, *above]


def free_block(size: int) -> int:
    """Return a base port such that ``base .. base+size-1`` are all free."""
    starts = _candidates(size)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        base = rng.choice(starts)
        if all(port_free(base + k) for k in range(size)):
            return base
    raise RuntimeError("no free loopback port block outside the ephemeral range")


def free_port() -> int:
    """Return one free loopback port outside the ephemeral range."""
    return free_block(1)
