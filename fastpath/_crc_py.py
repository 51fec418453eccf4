"""CRC-32C and CRC-64/NVME, table-driven in pure Python. Twin: _crc_c.pyx.

The S3 checksums ``x-amz-checksum-crc32c`` and ``x-amz-checksum-crc64nvme``
(CRC-32 is zlib's). Both are reflected CRCs with all-ones initial value and
final XOR; like :func:`zlib.crc32`, each function takes the previous result
(``0`` to start) so a body can be checksummed piece by piece.
"""

from __future__ import annotations

#: CRC-32C (Castagnoli, iSCSI), reflected polynomial.
CRC32C_POLY = 0x82F63B78
#: CRC-64/NVME (Rocksoft), reflected polynomial.
CRC64NVME_POLY = 0x9A6C9329AC4BC9B5
#: Check values: the CRC of ``b"123456789"`` (the catalogue's ``check``).
CRC32C_CHECK = 0xE3069283
CRC64NVME_CHECK = 0xAE8B14860A799888

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def make_table(poly: int, width: int) -> list[int]:
    """Return the 256-entry byte table of the reflected CRC ``poly``."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & ((1 << width) - 1))
    return table


_CRC32C_TABLE = make_table(CRC32C_POLY, 32)
_CRC64NVME_TABLE = make_table(CRC64NVME_POLY, 64)


def _update(table: list[int], mask: int, data: bytes | bytearray | memoryview,
            value: int) -> int:
    crc = (value ^ mask) & mask
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """Return the CRC-32C of ``data`` continuing from ``value``."""
    return _update(_CRC32C_TABLE, _MASK32, data, value)


def crc64nvme(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """Return the CRC-64/NVME of ``data`` continuing from ``value``."""
    return _update(_CRC64NVME_TABLE, _MASK64, data, value)


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


def fold_constant(poly: int, exponent: int) -> int:
    """Return ``x^exponent mod P`` bit-reflected, for the 64-bit reflected CRC ``poly``.

    Carry-less multiplication by these constants moves a 128-bit block of a
    message forward (``exponent`` = distance + 63 for its first eight bytes,
    distance - 1 for its last eight) without changing the message's CRC: the
    folding of Intel's "Fast CRC Computation Using PCLMULQDQ".
    """
    full = _reflect(poly, 64) | (1 << 64)
    value = 1 << exponent
    for bit in range(exponent, 63, -1):
        if value >> bit & 1:
            value ^= full << (bit - 64)
    return _reflect(value, 64)


#: Folding constants of CRC-64/NVME: (first half, second half) for 128 and 512 bits.
CRC64NVME_FOLD = (fold_constant(CRC64NVME_POLY, 128 + 63), fold_constant(CRC64NVME_POLY, 127),
                  fold_constant(CRC64NVME_POLY, 512 + 63), fold_constant(CRC64NVME_POLY, 511))
