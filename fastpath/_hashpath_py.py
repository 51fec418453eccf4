"""Ring hashing, pure-Python twin of ``_hashpath_c.pyx``.

A name ``/account[/container[/object]]`` hashes to a keyed 64-bit xxh3: the
cluster's hash prefix and suffix give a 64-bit seed (:func:`cluster_seed`) and
the path is hashed with it. The partition is the top ``part_power`` bits.
On-disk object directories use the keyed 128-bit xxh3 as 32 hex digits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import xxhash

#: Largest part_power the ring supports (partitions index a uint32).
MAX_PART_POWER = 32
#: Separator between prefix and suffix when deriving the seed.
SEED_SEPARATOR = b"\x00"


def cluster_seed(prefix: bytes, suffix: bytes) -> int:
    """Derive the 64-bit hash seed from the cluster's hash prefix and suffix."""
    return int(xxhash.xxh3_64_intdigest(prefix + SEED_SEPARATOR + suffix))


def hash_path(seed: int, path: bytes) -> int:
    """Return the keyed 64-bit xxh3 of ``path``."""
    return int(xxhash.xxh3_64_intdigest(path, seed=seed))


def hash_path_hex(seed: int, path: bytes) -> str:
    """Return the keyed 128-bit xxh3 of ``path`` as 32 lowercase hex digits."""
    return str(xxhash.xxh3_128_hexdigest(path, seed=seed))


def partition(seed: int, path: bytes, part_power: int) -> int:
    """Return the ring partition of ``path`` (top ``part_power`` bits)."""
    if not 0 <= part_power <= MAX_PART_POWER:
        raise ValueError(f"part_power must be 0..{MAX_PART_POWER}")
    if part_power == 0:
        return 0
    return hash_path(seed, path) >> (64 - part_power)


def batch_partitions(seed: int, paths: Sequence[bytes], part_power: int) -> npt.NDArray[np.uint32]:
    """Return the partitions of many paths as a uint32 array."""
    if not 0 <= part_power <= MAX_PART_POWER:
        raise ValueError(f"part_power must be 0..{MAX_PART_POWER}")
    out = np.empty(len(paths), dtype=np.uint32)
    if part_power == 0:
        out[:] = 0
        return out
    shift = 64 - part_power
    digest = xxhash.xxh3_64_intdigest
    for i, p in enumerate(paths):
        out[i] = digest(p, seed=seed) >> shift
    return out
