from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nubis.fastpath import _hashpath_py as ref

Kernels = Callable[[str], ModuleType]
SEED = ref.cluster_seed(b"pre", b"suf")


def test_seed_depends_on_prefix_and_suffix(kernels: Kernels) -> None:
    k = kernels("hashpath")
    assert k.cluster_seed(b"a", b"b") != k.cluster_seed(b"ab", b"")
    assert k.cluster_seed(b"pre", b"suf") == SEED


@given(st.binary(max_size=300), st.integers(0, 32))
def test_partition_matches_reference(path: bytes, power: int) -> None:
    from nubis.fastpath import hashpath

    assert hashpath.partition(SEED, path, power) == ref.partition(SEED, path, power)
    assert hashpath.hash_path(SEED, path) == ref.hash_path(SEED, path)
    assert hashpath.hash_path_hex(SEED, path) == ref.hash_path_hex(SEED, path)


def test_partition_is_top_bits(kernels: Kernels) -> None:
    k = kernels("hashpath")
    h = k.hash_path(SEED, b"/a/c/o")
    assert k.partition(SEED, b"/a/c/o", 10) == h >> 54
    assert k.partition(SEED, b"/a/c/o", 32) == h >> 32
    assert k.partition(SEED, b"/a/c/o", 0) == 0


def test_hex_is_32_lowercase_hex(kernels: Kernels) -> None:
    h = kernels("hashpath").hash_path_hex(SEED, b"/AUTH_x/c/o")
    assert len(h) == 32 and int(h, 16) >= 0 and h == h.lower()


def test_batch_matches_single(kernels: Kernels) -> None:
    k = kernels("hashpath")
    names = [f"/AUTH_test/c/obj{i}".encode() for i in range(1000)]
    parts = k.batch_partitions(SEED, names, 18)
    assert parts.dtype == np.uint32
    assert list(parts) == [k.partition(SEED, n, 18) for n in names]
    assert len(k.batch_partitions(SEED, [], 18)) == 0


@pytest.mark.parametrize("power", [-1, 33])
def test_bad_part_power_rejected(kernels: Kernels, power: int) -> None:
    k = kernels("hashpath")
    with pytest.raises(ValueError):
        k.partition(SEED, b"/a", power)
    with pytest.raises(ValueError):
        k.batch_partitions(SEED, [b"/a"], power)


def test_batch_rejects_non_bytes(kernels: Kernels) -> None:
    with pytest.raises(TypeError):
        kernels("hashpath").batch_partitions(SEED, ["/a"], 10)
