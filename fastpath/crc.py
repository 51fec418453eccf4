"""S3's extra CRCs (CRC-32C, CRC-64/NVME): the compiled kernels when available, else the twin."""

from __future__ import annotations

from nubis.fastpath._crc_py import CRC32C_POLY, CRC64NVME_POLY
from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("crc")

crc32c = _impl.crc32c
crc64nvme = _impl.crc64nvme

__all__ = ["CRC32C_POLY", "CRC64NVME_POLY", "IMPLEMENTATION", "crc32c", "crc64nvme"]
