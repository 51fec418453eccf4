"""What the proxy computes for a buffered erasure-coded upload."""

from __future__ import annotations

import hashlib
import random

import pytest
import xxhash
from nubis.api.proxy.ec import _encode_small
from nubis.common.cluster import ClusterConfig
from nubis.common.policies import ECPolicy


@pytest.mark.parametrize("name", ["ec42", "ec84"])
@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 13, 3 << 20])
def test_archive_sums_are_each_archives_md5_and_xxh3(name: str, size: int) -> None:
    """The archives' MD5s (hashed side by side) are what each object server would compute."""
    policy = ClusterConfig().policies().by_name(name)
    assert isinstance(policy, ECPolicy)
    data = random.Random(size).randbytes(size)
    etag, bodies, sums = _encode_small(policy, data)
    assert etag == hashlib.md5(data).hexdigest()
    assert len(bodies) == len(sums) == policy.k + policy.m
    assert sums == [(hashlib.md5(b).hexdigest(), f"{xxhash.xxh3_64_intdigest(b):016x}")
                    for b in bodies]
