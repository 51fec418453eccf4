"""Additional checksums of multipart uploads (S3's "Checking object integrity").

CreateMultipartUpload chooses an algorithm (``x-amz-checksum-algorithm``) and a
type (``x-amz-checksum-type``): ``COMPOSITE`` (CRC32, CRC32C, SHA1, SHA256,
SHA512, MD5, XXHASH64, XXHASH3, XXHASH128; the default but for CRC64NVME) is the
algorithm over the parts' raw digests, shown as ``<base64>-<parts>``;
``FULL_OBJECT`` (CRC32, CRC32C, CRC64NVME; the default of CRC64NVME) is the CRC of
the whole object, combined from the parts' CRCs and lengths (:func:`crc_combine`),
no byte read again.

Where it is kept: the upload marker's body is ``"<ALGO> <TYPE>"`` (so its ETag,
in a HEAD and in the ``+segments`` listing, names the choice: :data:`_BY_ETAG`);
a part's verified checksum is sysmeta (:data:`CHECKSUM_META`, ``<algo>:<base64>``)
and a content-type parameter (:data:`PART_PARAM`), so ListParts and Complete read
it from the listing; the completed manifest has :data:`CHECKSUM_META` and
:data:`TYPE_META`. Messages and codes are S3's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.xmlio import el
from nubis.api.shared import awssig
from nubis.fastpath import crc

CHECKSUM_META = "x-object-sysmeta-s3-checksum"
TYPE_META = "x-object-sysmeta-s3-checksum-type"
#: Set on a checksum nubis added itself (S3's default CRC64NVME of an upload that sent
#: none): shown with checksum mode, carried by copies, but left out of
#: CopyObjectResult, whose schema in Swift's s3api (and its tests) has no checksums.
DEFAULT_META = "x-object-sysmeta-s3-checksum-default"
COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
#: S3's names of the algorithms (lower case in headers, upper case in XML).
NAMES = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME",
         "sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512", "md5": "MD5",
         "xxhash64": "XXHASH64", "xxhash3": "XXHASH3", "xxhash128": "XXHASH128"}
_TYPES = {COMPOSITE: ("crc32", "crc32c", "sha1", "sha256", "sha512", "md5", "xxhash64",
                      "xxhash3", "xxhash128"),
          FULL_OBJECT: ("crc32", "crc32c", "crc64nvme")}
#: Content type of a part, and the parameter carrying its checksum in listings.
PART_CTYPE = "application/octet-stream"
PART_PARAM = "s3_checksum"
#: The parameter carrying a part's default CRC64NVME instead (an upload created
#: without an algorithm): never listed, combined into the object's at Complete.
DEFAULT_PART_PARAM = "s3_default_crc"
#: Reflected polynomial and width of each CRC.
_CRCS = {"crc32": (0xEDB88320, 32), "crc32c": (crc.CRC32C_POLY, 32),
         "crc64nvme": (crc.CRC64NVME_POLY, 64)}


@dataclass(frozen=True)
class UploadChecksum:
    """The checksum algorithm (lower case) and type an upload was created with."""

    algo: str
    type: str

    @property
    def name(self) -> str:
        """Return the algorithm's S3 name (``CRC32``)."""
        return NAMES[self.algo]

    def marker_body(self) -> bytes:
        """Return the upload marker's body naming this choice."""
        return f"{self.name} {self.type}".encode()

    def headers(self) -> dict[str, str]:
        """Return the answer headers of CreateMultipartUpload."""
        return {"x-amz-checksum-algorithm": self.name, "x-amz-checksum-type": self.type}

    def xml(self) -> str:
        """Return ``<ChecksumAlgorithm>`` and ``<ChecksumType>`` (ListParts, uploads)."""
        return el("ChecksumAlgorithm", self.name) + el("ChecksumType", self.type)


#: S3's default checksum of an upload that sends none.
DEFAULT = UploadChecksum("crc64nvme", FULL_OBJECT)

_BY_ETAG = {hashlib.md5(UploadChecksum(a, t).marker_body(), usedforsecurity=False)
            .hexdigest(): UploadChecksum(a, t) for t, algos in _TYPES.items() for a in algos}


def requested(headers: Mapping[str, str]) -> UploadChecksum | None:
    """Return the checksum a CreateMultipartUpload asks for (InvalidRequest if not valid)."""
    raw_algo = headers.get("x-amz-checksum-algorithm")
    raw_type = headers.get("x-amz-checksum-type")
    if raw_algo is None:
        if raw_type is not None:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used "
                          "with the x-amz-checksum-algorithm header.")
        return None
    algo = raw_algo.strip().lower()
    if algo not in NAMES:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please "
                      f"try again with any of the valid types: [{', '.join(NAMES.values())}]")
    kind = (raw_type or "").strip().upper() or \
        (FULL_OBJECT if algo == "crc64nvme" else COMPOSITE)
    if kind not in _TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if algo not in _TYPES[kind]:
        raise S3Error("InvalidRequest", f"The {kind} checksum type cannot be used with the "
                      f"{algo} checksum algorithm.")
    return UploadChecksum(algo, kind)


def of_marker(etag: str) -> UploadChecksum | None:
    """Return the checksum an upload marker's ETag (HEAD or listing hash) names."""
    return _BY_ETAG.get(etag.strip('"').split(";", 1)[0].strip())


def _mismatch(expected: str, actual: str | None) -> S3Error:
    return S3Error("InvalidRequest", "Checksum Type mismatch occurred, expected checksum "
                   f"Type: {expected}, actual checksum Type: {actual or 'null'}")


def sent_algo(headers: Mapping[str, str]) -> str | None:
    """Return the algorithm of a request's checksum (header or announced trailer)."""
    claimed = awssig.checksum_algo_of(headers)
    if claimed is not None:
        return claimed[0]
    for name in headers.get("x-amz-trailer", "").split(","):
        name = name.strip().lower()
        if name.startswith("x-amz-checksum-"):
            return name[len("x-amz-checksum-"):]
    return None


def part_compute(upload: UploadChecksum | None, headers: Mapping[str, str]) -> str | None:
    """Check an UploadPart's checksum against its upload; return an algorithm to compute.

    A part of an upload with an algorithm must carry that algorithm's checksum
    (InvalidRequest otherwise), but for ``FULL_OBJECT`` one may carry none: its
    checksum is then computed (the returned algorithm).
    """
    if upload is None:
        return None
    algo = sent_algo(headers)
    if algo == upload.algo:
        return None
    if algo is None and upload.type == FULL_OBJECT:
        return upload.algo
    raise _mismatch(upload.algo, algo)


def part_meta(checksum: tuple[str, str]) -> dict[str, str]:
    """Return the metadata storing a part's verified ``(algo, base64)`` checksum."""
    algo, value = checksum[0], checksum[1].strip()
    return {"content-type": f"{PART_CTYPE};{PART_PARAM}={algo}:{value}",
            CHECKSUM_META: f"{algo}:{value}"}


def default_part_meta(value: str) -> dict[str, str]:
    """Return the metadata storing a part's default CRC64NVME (base64)."""
    return {"content-type": f"{PART_CTYPE};{DEFAULT_PART_PARAM}={value.strip()}"}


def _param(entry: Mapping[str, Any], name: str) -> str | None:
    for param in str(entry.get("content_type", "")).split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == name:
            return value
    return None


def part_checksum(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return a part's ``(algo, base64)`` checksum from its listing entry."""
    value = _param(entry, PART_PARAM)
    if value is None:
        return None
    algo, _, digest = value.partition(":")
    return algo, digest


def default_part_crc(entry: Mapping[str, Any]) -> str | None:
    """Return a part's default CRC64NVME (base64) from its listing entry (None: none)."""
    return _param(entry, DEFAULT_PART_PARAM)


def part_xml(checksum: tuple[str, str] | None) -> str:
    """Return a part's ``<ChecksumXXX>`` (empty without a checksum)."""
    if checksum is None or checksum[0] not in NAMES:
        return ""
    return el("Checksum" + NAMES[checksum[0]], checksum[1])


def check_listed(upload: UploadChecksum | None, number: int, given: dict[str, str],
                 stored: tuple[str, str] | None, bad_part: S3Error) -> None:
    """Check a Complete ``<Part>``'s checksums against the stored one.

    ``given`` maps lower-case algorithms to the ``<ChecksumXXX>`` values of the part.
    A wrong or foreign value is ``bad_part`` (InvalidPart); a ``COMPOSITE`` upload
    needs each part's value.
    """
    if upload is None:
        if stored is not None and stored[0] in given and given[stored[0]] != stored[1]:
            raise bad_part
        return
    if set(given) - {upload.algo} or stored is None or stored[0] != upload.algo:
        raise bad_part
    if upload.algo in given:
        if given[upload.algo] != stored[1]:
            raise bad_part
    elif upload.type == COMPOSITE:
        raise S3Error("InvalidRequest", f"The upload was created using a {upload.algo} "
                      "checksum. The complete request must include the checksum for each "
                      f"part. It was missing for part {number} in the request.")


def check_complete_headers(upload: UploadChecksum | None, headers: Mapping[str, str]) -> None:
    """Refuse a Complete whose checksum type or algorithm is not the upload's."""
    if upload is None:
        return
    kind = headers.get("x-amz-checksum-type")
    if kind is not None and kind.strip().upper() != upload.type:
        raise S3Error("InvalidRequest", f"The upload was created using the {upload.type} "
                      "checksum mode. The complete request must use the same checksum mode.")
    claimed = awssig.checksum_algo_of(headers)
    if claimed is not None and claimed[0] != upload.algo:
        raise _mismatch(upload.algo, claimed[0])


def verify_complete(upload: UploadChecksum, headers: Mapping[str, str], value: str) -> None:
    """Raise ``BadDigest`` unless a Complete's ``x-amz-checksum-<algo>`` is ``value``."""
    claimed = headers.get(f"x-amz-checksum-{upload.algo}")
    if claimed is not None and claimed.strip() != value:
        raise S3Error("BadDigest", f"The {upload.name} you specified did not match the "
                      "calculated checksum.")


def _raw(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidPart") from None


def final(upload: UploadChecksum, parts: list[tuple[str, int]]) -> str:
    """Return the object's checksum from its parts' ``(base64, length)``, in order."""
    if upload.type == COMPOSITE:
        digest = awssig.CHECKSUMS[upload.algo]()
        for value, _ in parts:
            digest.update(_raw(value))
        return f"{base64.b64encode(digest.digest()).decode()}-{len(parts)}"
    width = _CRCS[upload.algo][1]
    crc = int.from_bytes(_raw(parts[0][0]), "big") if parts else 0
    for value, length in parts[1:]:
        crc = crc_combine(upload.algo, crc, int.from_bytes(_raw(value), "big"), length)
    return base64.b64encode(crc.to_bytes(width // 8, "big")).decode()


def stored_headers(meta: Mapping[str, str]) -> dict[str, str]:
    """Return ``x-amz-checksum-<algo>`` and ``-type`` of an object's stored sysmeta."""
    checksum = meta.get(CHECKSUM_META)
    if not checksum:
        return {}
    algo, _, value = checksum.partition(":")
    return {f"x-amz-checksum-{algo}": value,
            "x-amz-checksum-type": meta.get(TYPE_META) or FULL_OBJECT}


def answer_xml(meta: Mapping[str, str]) -> str:
    """Return :func:`result_xml` for a Copy or Complete answer: nothing for a default one.

    Swift's s3api schemas of CopyObjectResult and CompleteMultipartUploadResult
    have no checksums (its tests validate against them), so only a checksum the
    client asked for is shown there; a default one is shown with checksum mode.
    """
    return "" if DEFAULT_META in meta else result_xml(meta)


def result_xml(meta: Mapping[str, str]) -> str:
    """Return ``<ChecksumXXX>`` and ``<ChecksumType>`` of stored sysmeta (or nothing)."""
    checksum = meta.get(CHECKSUM_META)
    if not checksum:
        return ""
    algo, _, value = checksum.partition(":")
    if algo not in NAMES:
        return ""
    return el("Checksum" + NAMES[algo], value) + \
        el("ChecksumType", meta.get(TYPE_META) or FULL_OBJECT)


# -- CRC combination ------------------------------------------------------------------

def _multmodp(a: int, b: int, poly: int, width: int) -> int:
    """Return ``a * b`` modulo the CRC polynomial (reflected bit order, as zlib's)."""
    m = 1 << (width - 1)
    p = 0
    while m:
        if a & m:
            p ^= b
            if not a & (m - 1):
                break
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return p


def _x8nmodp(n: int, poly: int, width: int) -> int:
    """Return ``x^(8n)`` modulo the CRC polynomial."""
    p = 1 << (width - 1)  # x^0
    square = 1 << (width - 9)  # x^8
    while n:
        if n & 1:
            p = _multmodp(square, p, poly, width)
        n >>= 1
        if n:
            square = _multmodp(square, square, poly, width)
    return p


def crc_combine(algo: str, crc1: int, crc2: int, len2: int) -> int:
    """Return the CRC of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``.

    For ``crc32`` (zlib's), ``crc32c`` and ``crc64nvme``: reflected CRCs whose
    initial value and final XOR are all ones, so (as zlib's ``crc32_combine``)
    the result is ``crc(A) * x^(8 len(B)) + crc(B)`` modulo the polynomial.
    """
    poly, width = _CRCS[algo]
    return _multmodp(_x8nmodp(len2, poly, width), crc1, poly, width) ^ crc2
