"""Ring hashing kernels: the compiled ones when available, else the pure twin."""

from __future__ import annotations

from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("hashpath")

MAX_PART_POWER: int = _impl.MAX_PART_POWER
cluster_seed = _impl.cluster_seed
hash_path = _impl.hash_path
hash_path_hex = _impl.hash_path_hex
partition = _impl.partition
batch_partitions = _impl.batch_partitions

__all__ = ["IMPLEMENTATION", "MAX_PART_POWER", "batch_partitions", "cluster_seed",
           "hash_path", "hash_path_hex", "partition"]
