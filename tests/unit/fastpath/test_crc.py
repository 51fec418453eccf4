"""CRC-32C and CRC-64/NVME kernels (both implementations)."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from types import ModuleType

import pytest
from nubis.fastpath import NO_EXTENSIONS, _crc_py

Kernels = Callable[[str], ModuleType]
# The CRC catalogue's check inputs and a value computed with the AWS CRT's checksums.
VECTORS = [
    ("crc32c", b"123456789", _crc_py.CRC32C_CHECK),
    ("crc64nvme", b"123456789", _crc_py.CRC64NVME_CHECK),
    ("crc32c", b"", 0),
    ("crc64nvme", b"", 0),
    ("crc32c", b"\x00" * 32, 0x8A9136AA),
    ("crc32c", b"\xff" * 32, 0x62A8AB43),
    ("crc64nvme", b"abcdefghijklmnopqrstuvwxyz\n", 0x40B0CD8458A17D0E),
]


@pytest.mark.parametrize(("name", "data", "expected"), VECTORS)
def test_known_values(kernels: Kernels, name: str, data: bytes, expected: int) -> None:
    assert getattr(kernels("crc"), name)(data) == expected


@pytest.mark.parametrize("name", ["crc32c", "crc64nvme"])
def test_pieces_continue_from_the_previous_value(kernels: Kernels, name: str) -> None:
    func = getattr(kernels("crc"), name)
    data = random.Random(7).randbytes(5000)
    whole = func(data)
    for cut in (0, 1, 7, 8, 9, 4095, 5000):
        assert func(data[cut:], func(data[:cut])) == whole


@pytest.mark.parametrize("name", ["crc32c", "crc64nvme"])
def test_compiled_matches_the_twin_on_every_alignment(kernels: Kernels, name: str) -> None:
    data = random.Random(11).randbytes(300)
    func = getattr(kernels("crc"), name)
    pure = getattr(_crc_py, name)
    for start in range(9):
        for end in (start, start + 1, start + 15, 300):
            assert func(data[start:end]) == pure(data[start:end])


@pytest.mark.parametrize("name", ["crc32c", "crc64nvme"])
def test_any_buffer_is_accepted(kernels: Kernels, name: str) -> None:
    func = getattr(kernels("crc"), name)
    data = b"buffer protocol"
    expected = func(data)
    assert func(bytearray(data)) == expected
    assert func(memoryview(b"xx" + data)[2:]) == expected
    with pytest.raises(TypeError):
        func("text")


@pytest.mark.skipif(NO_EXTENSIONS, reason="NUBIS_NO_EXTENSIONS=1: no compiled kernel to test")
def test_folding_and_tables_agree_on_long_inputs() -> None:
    """The compiled kernel's two CRC-64 paths (PCLMULQDQ folding, slicing-by-8) agree."""
    module = importlib.import_module("nubis.fastpath._crc_c")
    data = random.Random(13).randbytes(70_000)
    for end in (63, 64, 65, 127, 128, 129, 1000, 70_000):
        expected = module._crc64nvme_by_tables(data[:end], 99)
        assert module.crc64nvme(data[:end], 99) == expected == _crc_py.crc64nvme(data[:end], 99)
