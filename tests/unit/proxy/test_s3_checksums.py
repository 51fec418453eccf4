"""Multipart checksums: CRC combination, composite values, S3's choices and errors."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from nubis.api.proxy.s3 import checksums
from nubis.api.proxy.s3.checksums import COMPOSITE, FULL_OBJECT, UploadChecksum
from nubis.api.proxy.s3.errors import S3Error

MIB = 1024 * 1024


def _bitwise(data: bytes, poly: int, width: int) -> int:
    """Return a reflected CRC (init and final XOR all ones) by its bitwise definition."""
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ mask


_REFERENCE = {
    "crc32": lambda d: zlib.crc32(d),
    "crc32c": lambda d: _bitwise(d, 0x82F63B78, 32),
    "crc64nvme": lambda d: _bitwise(d, 0x9A6C9329AC4BC9B5, 64),
}


@pytest.mark.parametrize("algo", sorted(_REFERENCE))
@pytest.mark.parametrize(("len1", "len2"), [(0, 0), (1, 0), (0, 7), (13, 1), (300, 1029)])
def test_crc_combine_equals_crc_of_the_concatenation(algo: str, len1: int, len2: int) -> None:
    crc = _REFERENCE[algo]
    a, b = os.urandom(len1), os.urandom(len2)
    assert checksums.crc_combine(algo, crc(a), crc(b), len(b)) == crc(a + b)


def test_crc_check_values() -> None:
    """The reference CRCs are the catalogued ones (``123456789``)."""
    assert _REFERENCE["crc32"](b"123456789") == 0xCBF43926
    assert _REFERENCE["crc32c"](b"123456789") == 0xE3069283
    assert _REFERENCE["crc64nvme"](b"123456789") == 0xAE8B14860A799888


@pytest.mark.parametrize("algo", sorted(_REFERENCE))
def test_full_object_of_three_parts(algo: str) -> None:
    crc = _REFERENCE[algo]
    width = 64 if algo == "crc64nvme" else 32
    parts = [os.urandom(n) for n in (100, 2000, 5)]
    sums = [(base64.b64encode(crc(p).to_bytes(width // 8, "big")).decode(), len(p))
            for p in parts]
    whole = base64.b64encode(crc(b"".join(parts)).to_bytes(width // 8, "big")).decode()
    assert checksums.final(UploadChecksum(algo, FULL_OBJECT), sums) == whole


# Parts 5 MiB of "A" and "tail": the checksums of Ceph's s3-tests suite.
@pytest.mark.parametrize(("algo", "kind", "parts", "want"), [
    ("crc32", COMPOSITE, ["JRTCyQ==", "fDe0XQ=="], "ar6UVw==-2"),
    ("crc32", FULL_OBJECT, ["JRTCyQ==", "fDe0XQ=="], "gPNU7Q=="),
    ("crc32c", COMPOSITE, ["MDaLrw==", "B21LrQ=="], "9nmlxg==-2"),
    ("crc32c", FULL_OBJECT, ["MDaLrw==", "B21LrQ=="], "LZbOwA=="),
    ("crc64nvme", FULL_OBJECT, ["L/E4WYn8v98=", "sAra2CkCEgw="], "UpfGsWmSCEg="),
    ("sha1", COMPOSITE, ["iIaTCGbm+vdVjNqIMF2S0T7ibMk=", "+/XyoodbO7Zbjjsj5swB1YyjBEc="],
     "l89BPfYtRdlTXZSsCsWMB0Elnjg=-2"),
    ("sha256", COMPOSITE, ["275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=",
                           "DGL4du8d6oMN6fMsL0tG3W101Q0ViW4J71ovzUrH4dc="],
     "2kYaKgwMh4G97NB7sxufv13cvQqUqNgjK75WsW6s16Q=-2"),
])
def test_known_multipart_checksums(algo: str, kind: str, parts: list[str], want: str) -> None:
    sums = [(parts[0], 5 * MIB), (parts[1], 4)]
    assert checksums.final(UploadChecksum(algo, kind), sums) == want


@pytest.mark.parametrize(("headers", "want"), [
    ({}, None),
    ({"x-amz-checksum-algorithm": "CRC32"}, UploadChecksum("crc32", COMPOSITE)),
    ({"x-amz-checksum-algorithm": "sha1"}, UploadChecksum("sha1", COMPOSITE)),
    ({"x-amz-checksum-algorithm": "CRC64NVME"}, UploadChecksum("crc64nvme", FULL_OBJECT)),
    ({"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"},
     UploadChecksum("crc32c", FULL_OBJECT)),
])
def test_requested(headers: dict[str, str], want: UploadChecksum | None) -> None:
    assert checksums.requested(headers) == want
    if want is not None:
        etag = hashlib.md5(want.marker_body()).hexdigest()
        assert checksums.of_marker(f'"{etag}"') == want


@pytest.mark.parametrize("headers", [
    {"x-amz-checksum-algorithm": "BLAKE3"},
    {"x-amz-checksum-algorithm": "XXHASH3", "x-amz-checksum-type": "FULL_OBJECT"},
    {"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "FULL_OBJECT"},
    {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
    {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "BOTH"},
    {"x-amz-checksum-type": "COMPOSITE"},
])
def test_requested_refuses(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as exc:
        checksums.requested(headers)
    assert exc.value.code == "InvalidRequest"


def test_part_compute_and_mismatch() -> None:
    composite = UploadChecksum("sha256", COMPOSITE)
    full = UploadChecksum("crc32c", FULL_OBJECT)
    assert checksums.part_compute(None, {"x-amz-checksum-crc32": "x"}) is None
    assert checksums.part_compute(composite, {"x-amz-checksum-sha256": "x"}) is None
    assert checksums.part_compute(composite, {"x-amz-trailer": "x-amz-checksum-sha256"}) is None
    assert checksums.part_compute(full, {}) == "crc32c"
    with pytest.raises(S3Error, match="actual checksum Type: null"):
        checksums.part_compute(composite, {})
    with pytest.raises(S3Error, match="expected checksum Type: sha256, actual checksum "
                                      "Type: crc32"):
        checksums.part_compute(composite, {"x-amz-checksum-crc32": "x"})


def test_part_checksum_round_trip_through_content_type() -> None:
    meta = checksums.part_meta(("crc32", "AAAAAA=="))
    assert checksums.part_checksum({"content_type": meta["content-type"]}) == \
        ("crc32", "AAAAAA==")
    assert checksums.part_checksum({"content_type": "application/octet-stream"}) is None
    assert meta[checksums.CHECKSUM_META] == "crc32:AAAAAA=="


def test_a_default_part_crc_is_kept_apart_from_listed_checksums() -> None:
    entry = {"content_type": checksums.default_part_meta("AAAAAAAAAAA=")["content-type"]}
    assert checksums.default_part_crc(entry) == "AAAAAAAAAAA="
    assert checksums.part_checksum(entry) is None  # never listed as the part's
    assert checksums.default_part_crc({"content_type": "application/octet-stream"}) is None


def test_check_listed() -> None:
    bad = S3Error("InvalidPart")
    upload = UploadChecksum("crc32", COMPOSITE)
    stored = ("crc32", "AAAAAA==")
    checksums.check_listed(upload, 1, {"crc32": "AAAAAA=="}, stored, bad)
    for given in ({"crc32": "AAAAAQ=="}, {"sha1": "x"}):
        with pytest.raises(S3Error) as exc:
            checksums.check_listed(upload, 1, given, stored, bad)
        assert exc.value is bad
    with pytest.raises(S3Error, match="It was missing for part 3"):
        checksums.check_listed(upload, 3, {}, stored, bad)
    checksums.check_listed(UploadChecksum("crc32", FULL_OBJECT), 1, {}, stored, bad)
    checksums.check_listed(None, 1, {"sha1": "x"}, stored, bad)
