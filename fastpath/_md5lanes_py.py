"""MD5 of many messages, one after another with hashlib. Twin: _md5lanes_c.pyx.

The compiled twin hashes up to :data:`LANES` messages side by side in the lanes
of one AVX2 register (``md5_lanes.h``); both give the digests ``hashlib.md5``
gives, in the order of the messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

#: Messages the compiled kernel hashes side by side (32-bit lanes of AVX2).
LANES = 8
#: Whether this implementation hashes messages side by side.
SIDE_BY_SIDE = False


def md5_many(messages: Sequence[bytes | bytearray | memoryview]) -> list[bytes]:
    """Return the 16-byte MD5 digest of each message, in order."""
    return [hashlib.md5(m, usedforsecurity=False).digest() for m in messages]
