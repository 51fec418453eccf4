"""MD5 of many messages side by side (both implementations)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from types import ModuleType

import pytest
from nubis.fastpath import md5lanes

Kernels = Callable[[str], ModuleType]
#: Lengths around MD5's block (64) and padding (56) boundaries.
EDGES = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096]


def _md5(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def test_known_values(kernels: Kernels) -> None:
    got = kernels("md5lanes").md5_many([b"", b"abc", b"message digest"])
    assert [d.hex() for d in got] == ["d41d8cd98f00b204e9800998ecf8427e",
                                      "900150983cd24fb0d6963f7d28e17f72",
                                      "f96b697d7cb7938d525a2f31aaf161d0"]


def test_edge_lengths_side_by_side(kernels: Kernels) -> None:
    messages = [bytes(range(256)) * (n // 256) + bytes(n % 256) for n in EDGES]
    assert kernels("md5lanes").md5_many(messages) == [_md5(m) for m in messages]


@pytest.mark.parametrize("count", [0, 1, 2, 7, 8, 9, 17, 40])
def test_any_count_of_mixed_lengths(kernels: Kernels, count: int) -> None:
    """Lanes refill as messages end: short and long ones mixed, more than the lanes."""
    rnd = random.Random(count)
    messages = [rnd.randbytes(rnd.choice([rnd.randint(0, 200), rnd.randint(0, 70_000)]))
                for _ in range(count)]
    assert kernels("md5lanes").md5_many(messages) == [_md5(m) for m in messages]


def test_accepts_any_buffer(kernels: Kernels) -> None:
    data = random.Random(3).randbytes(5000)
    messages = [bytearray(data), memoryview(data)[7:4007], data]
    assert kernels("md5lanes").md5_many(messages) == [_md5(m) for m in messages]


def test_not_a_buffer_is_a_type_error(kernels: Kernels) -> None:
    with pytest.raises(TypeError):
        kernels("md5lanes").md5_many([b"a", "text"])


def test_compiled_lanes_are_used_on_avx2() -> None:
    """The kernel the selector loaded says whether it hashes side by side."""
    if md5lanes.IMPLEMENTATION == "python":
        assert md5lanes.SIDE_BY_SIDE is False
    else:
        with open("/proc/cpuinfo") as f:
            assert (" avx2" in f.read()) == md5lanes.SIDE_BY_SIDE
