"""Additional checksums of multipart uploads through boto3 and the ``aws`` CLI.

Expected values are computed here, independently of the server: CRC32 with
zlib, SHA-256 with hashlib, CRC32C with the bitwise definition below.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud

MIB = 1024 * 1024
PART = 5 * MIB
SMALL = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> bytes:
    """Return CRC-32C (Castagnoli) of ``data``, big-endian."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return (crc ^ 0xFFFFFFFF).to_bytes(4, "big")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + PART] for i in range(0, len(data), PART)]


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any) -> str:
    name = f"ck-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return str(path)


def test_upload_file_default_checksum_is_composite_crc32(s3cloud: S3Cloud,
                                                         tmp_path: Path) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    data = os.urandom(11 * MIB)
    s3.upload_file(_file(tmp_path, data), bucket, "obj", Config=SMALL)
    parts = _chunks(data)
    want = _b64(_crc32(b"".join(_crc32(p) for p in parts))) + "-3"
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == want
    assert head["ChecksumType"] == "COMPOSITE"
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="obj")
    got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ChecksumCRC32"] == want
    ranged = s3.get_object(Bucket=bucket, Key="obj", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == data[:10] and "ChecksumCRC32" not in ranged
    # A plain PutObject's checksum is FULL_OBJECT.
    s3.put_object(Bucket=bucket, Key="small", Body=b"hello")
    small = s3.head_object(Bucket=bucket, Key="small", ChecksumMode="ENABLED")
    assert small["ChecksumCRC32"] == _b64(_crc32(b"hello"))
    assert small["ChecksumType"] == "FULL_OBJECT"


def test_upload_file_sha256_and_object_attributes(s3cloud: S3Cloud, tmp_path: Path) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    data = os.urandom(11 * MIB)
    s3.upload_file(_file(tmp_path, data), bucket, "obj", Config=SMALL,
                   ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    digests = [hashlib.sha256(p).digest() for p in _chunks(data)]
    want = _b64(hashlib.sha256(b"".join(digests)).digest()) + "-3"
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (want, "COMPOSITE")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="obj",
                                     ObjectAttributes=["Checksum", "ObjectParts"])
    assert attrs["Checksum"] == {"ChecksumSHA256": want, "ChecksumType": "COMPOSITE"}
    assert attrs["ObjectParts"]["TotalPartsCount"] == 3
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"])
            for p in attrs["ObjectParts"]["Parts"]] == [
        (n + 1, len(p), _b64(hashlib.sha256(p).digest())) for n, p in enumerate(_chunks(data))]


def test_full_object_crc32c_and_listings(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    parts = [os.urandom(PART), os.urandom(PART), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj", ChecksumAlgorithm="CRC32C",
                                    ChecksumType="FULL_OBJECT")
    assert (up["ChecksumAlgorithm"], up["ChecksumType"]) == ("CRC32C", "FULL_OBJECT")
    uid = up["UploadId"]
    with pytest.raises(ClientError) as exc:  # another algorithm's checksum
        s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=1, Body=parts[0],
                       ChecksumCRC32=_b64(_crc32(parts[0])))
    assert _code(exc) == "InvalidRequest"
    assert "expected checksum Type: crc32c, actual checksum Type: crc32" in str(exc.value)
    done = []
    for n, body in enumerate(parts, 1):
        sent = _b64(crc32c(body))
        resp = s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=n,
                              Body=body, ChecksumCRC32C=sent)
        assert resp["ChecksumCRC32C"] == sent
        done.append({"PartNumber": n, "ETag": resp["ETag"], "ChecksumCRC32C": sent})
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == ("CRC32C", "FULL_OBJECT")
    assert [p["ChecksumCRC32C"] for p in listed["Parts"]] == [d["ChecksumCRC32C"]
                                                              for d in done]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["UploadId"], u["ChecksumAlgorithm"], u["ChecksumType"]) for u in uploads] \
        == [(uid, "CRC32C", "FULL_OBJECT")]
    whole = _b64(crc32c(b"".join(parts)))
    with pytest.raises(ClientError) as exc:  # a full-object checksum that is not the object's
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                     MultipartUpload={"Parts": done},
                                     ChecksumCRC32C=_b64(crc32c(b"other")))
    assert _code(exc) == "BadDigest"
    result = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                          MultipartUpload={"Parts": done},
                                          ChecksumCRC32C=whole, ChecksumType="FULL_OBJECT")
    assert (result["ChecksumCRC32C"], result["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32C"], head["ChecksumType"]) == (whole, "FULL_OBJECT")


def test_complete_checks_each_parts_checksum(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    body = os.urandom(1000)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="obj",
                                     ChecksumAlgorithm="CRC32")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=1, Body=body,
                          ChecksumAlgorithm="CRC32")["ETag"]
    wrong = {"PartNumber": 1, "ETag": etag, "ChecksumCRC32": _b64(_crc32(b"other"))}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                     MultipartUpload={"Parts": [wrong]})
    assert _code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:  # COMPOSITE needs each part's checksum
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                 "ETag": etag}]})
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                     MultipartUpload={"Parts": [{**wrong, "ChecksumCRC32":
                                                                 _b64(_crc32(body))}]},
                                     ChecksumType="FULL_OBJECT")
    assert _code(exc) == "InvalidRequest"
    right = {**wrong, "ChecksumCRC32": _b64(_crc32(body))}
    result = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid,
                                          MultipartUpload={"Parts": [right]})
    assert result["ChecksumCRC32"] == _b64(_crc32(_crc32(body))) + "-1"
    assert result["ChecksumType"] == "COMPOSITE"


@pytest.mark.parametrize(("algo", "kind", "message"), [
    ("MD4", None, "Checksum algorithm provided is unsupported"),
    ("SHA256", "FULL_OBJECT", "The FULL_OBJECT checksum type cannot be used with the sha256"),
    ("CRC64NVME", "COMPOSITE", "The COMPOSITE checksum type cannot be used with the crc64nvme"),
    ("CRC32", "PARTS", "Value for x-amz-checksum-type header is invalid."),
    (None, "COMPOSITE", "The x-amz-checksum-type header can only be used with the "
                        "x-amz-checksum-algorithm header."),
])
def test_create_refuses_bad_checksum_choices(s3cloud: S3Cloud, algo: str | None,
                                             kind: str | None, message: str) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    args = {k: v for k, v in (("ChecksumAlgorithm", algo), ("ChecksumType", kind)) if v}
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="obj", **args)
    assert _code(exc) == "InvalidRequest"
    assert message in exc.value.response["Error"]["Message"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_crc64nvme_defaults_to_full_object(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client(request_checksum_calculation="when_required")
    bucket = _bucket(s3)
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj", ChecksumAlgorithm="CRC64NVME")
    assert up["ChecksumType"] == "FULL_OBJECT"
    # A FULL_OBJECT part may come without a checksum: the server computes it.
    resp = s3.upload_part(Bucket=bucket, Key="obj", UploadId=up["UploadId"], PartNumber=1,
                          Body=b"0123456789")
    part = s3.list_parts(Bucket=bucket, Key="obj", UploadId=up["UploadId"])["Parts"][0]
    assert part["ChecksumCRC64NVME"]
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="obj", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": resp["ETag"]}]})
    assert (result["ChecksumCRC64NVME"], result["ChecksumType"]) == \
        (part["ChecksumCRC64NVME"], "FULL_OBJECT")


def test_aws_cli_head_object_checksum_mode(s3cloud: S3Cloud, tmp_path: Path) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    data = os.urandom(11 * MIB)
    s3.upload_file(_file(tmp_path, data), bucket, "obj", Config=SMALL)
    want = _b64(_crc32(b"".join(_crc32(p) for p in _chunks(data)))) + "-3"
    out = json.loads(s3cloud.aws("s3api", "head-object", "--bucket", bucket, "--key", "obj",
                                 "--checksum-mode", "ENABLED", "--output", "json").stdout)
    assert (out["ChecksumCRC32"], out["ChecksumType"]) == (want, "COMPOSITE")
    plain = json.loads(s3cloud.aws("s3api", "head-object", "--bucket", bucket, "--key", "obj",
                                   "--output", "json").stdout)
    assert "ChecksumCRC32" not in plain


def _object_heads(s3cloud: S3Cloud) -> float:
    """Return how many HEADs the object servers answered (their ``/metrics``)."""
    import urllib.request

    from nubis.daemons.storage.config import node_settings

    conf = s3cloud.cloud.config
    total = 0.0
    for n in range(conf.storage.node_count):
        port = node_settings(conf.storage, s3cloud.cloud.state, n).object_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("nubis_http_requests_total{") and 'method="HEAD"' in line:
                    total += float(line.rsplit(" ", 1)[1])
    return total


def test_checksum_and_multipart_etag_come_with_the_read(s3cloud: S3Cloud) -> None:
    """GetObject with checksum mode (boto3's default) reads the checksum with the object.

    Neither a plain nor a multipart object's read makes another HEAD to the object
    servers for its checksum or S3 ETag: they come with the version served.
    """
    s3 = s3cloud.client()
    bucket = f"rd-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"read with its checksum"
    s3.put_object(Bucket=bucket, Key="plain", Body=body, ChecksumAlgorithm="CRC32")
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32",
                                     ChecksumType="FULL_OBJECT")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=body,
                          ChecksumAlgorithm="CRC32")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, ChecksumType="FULL_OBJECT",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"],
                                    "ChecksumCRC32": part["ChecksumCRC32"]}]})
    before = _object_heads(s3cloud)
    for _ in range(3):
        got = s3.get_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
        assert got["Body"].read() == body and got["ChecksumCRC32"] == crc
        got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
        assert got["Body"].read() == body and got["ETag"] == done["ETag"]
        assert got["ChecksumCRC32"] == crc and got["ChecksumType"] == "FULL_OBJECT"
    assert _object_heads(s3cloud) == before


def test_newer_checksum_algorithms(s3cloud: S3Cloud) -> None:
    """SHA512 (boto3 computes and validates it itself), MD5 and the xxHash family.

    Stored and shown with the object, checked on upload (BadDigest), and as a
    multipart upload's ``COMPOSITE`` checksum.
    """
    import xxhash

    from tests.functional.s3.test_cli_and_edges import _code, _raw

    s3 = s3cloud.client()
    bucket = f"newsum-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(3000)
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    put = s3.put_object(Bucket=bucket, Key="s", Body=body, ChecksumAlgorithm="SHA512")
    assert put["ChecksumSHA512"] == sha512 and put["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="s", ChecksumMode="ENABLED")
    assert got["Body"].read() == body and got["ChecksumSHA512"] == sha512
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    digests = {"md5": hashlib.md5(body).digest(), "xxhash64": xxhash.xxh64(body).digest(),
               "xxhash3": xxhash.xxh3_64(body).digest(),
               "xxhash128": xxhash.xxh3_128(body).digest()}
    for algo, digest in digests.items():
        value = base64.b64encode(digest).decode()
        r = _raw(s3cloud, "PUT", f"/{bucket}/{algo}", body, {f"x-amz-checksum-{algo}": value})
        assert r.status_code == 200 and r.headers[f"x-amz-checksum-{algo}"] == value, r.text
        head = s3.head_object(Bucket=bucket, Key=algo, ChecksumMode="ENABLED")
        assert head["ResponseMetadata"]["HTTPHeaders"][f"x-amz-checksum-{algo}"] == value
        wrong = base64.b64encode(bytes(len(digest))).decode()
        r = _raw(s3cloud, "PUT", f"/{bucket}/{algo}-bad", body,
                 {f"x-amz-checksum-{algo}": wrong})
        assert r.status_code == 400 and _code(r) == "BadDigest", r.text
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp",
                                     ChecksumAlgorithm="SHA512")["UploadId"]
    parts, raw = [], b""
    for n, chunk in enumerate((body * 1800, body), start=1):  # 5.4 MB, then the last
        up = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=chunk,
                            ChecksumAlgorithm="SHA512")
        assert up["ChecksumSHA512"] == base64.b64encode(hashlib.sha512(chunk).digest()).decode()
        parts.append({"PartNumber": n, "ETag": up["ETag"], "ChecksumSHA512": up["ChecksumSHA512"]})
        raw += hashlib.sha512(chunk).digest()
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert [p["ChecksumSHA512"] for p in listed["Parts"]] == [p["ChecksumSHA512"] for p in parts]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
    composite = base64.b64encode(hashlib.sha512(raw).digest()).decode() + "-2"
    assert done["ChecksumSHA512"] == composite
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumSHA512"] == composite and head["ChecksumType"] == "COMPOSITE"


def _crc64nvme(data: bytes) -> bytes:
    """CRC-64/NVME by its definition (reflected polynomial, one bit at a time)."""
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return (crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def test_uploads_without_a_checksum_get_a_crc64nvme(s3cloud: S3Cloud) -> None:
    """S3 adds a full-object CRC64NVME to an upload that sends no checksum.

    PutObject buffered and streamed (signed aws-chunked, past the proxy's
    one-request size), shown on the PutObject answer and with checksum mode; a
    copy keeps it or computes one; a multipart upload combines its parts'.
    """
    from nubis.api.shared import awssig
    from nubis.fastpath import crc

    from tests.functional.s3.test_cli_and_edges import _raw, _streaming_put

    assert _crc64nvme(b"123456789").hex() == "ae8b14860a799888"  # the catalogue's check
    s3 = s3cloud.client()
    bucket = f"dflt-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(3000)
    want = base64.b64encode(_crc64nvme(body)).decode()
    r = _raw(s3cloud, "PUT", f"/{bucket}/small", body)
    assert r.status_code == 200, r.text
    assert r.headers["x-amz-checksum-crc64nvme"] == want
    assert r.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="small", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == want and head["ChecksumType"] == "FULL_OBJECT"
    chunks = [os.urandom(65536) for _ in range(40)]
    big = b"".join(chunks)
    r = _streaming_put(s3cloud, f"/{bucket}/big", awssig.STREAMING, chunks)
    assert r.status_code == 200, r.text
    streamed = base64.b64encode(crc.crc64nvme(big).to_bytes(8, "big")).decode()
    assert r.headers["x-amz-checksum-crc64nvme"] == streamed
    head = s3.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == streamed and head["ContentLength"] == len(big)
    # a copy keeps it (not listed in CopyObjectResult: Swift's s3api schema has no
    # checksums there, and its functional tests validate against it)
    copied = s3.copy_object(Bucket=bucket, Key="copy",
                            CopySource={"Bucket": bucket, "Key": "small"})
    assert "ChecksumCRC64NVME" not in copied["CopyObjectResult"]
    head = s3.head_object(Bucket=bucket, Key="copy", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == want
    # a copy of a multipart object (its parts' checksum is not the copy's) gets one
    # computed over the copied bytes
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu")
    etags = [s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=n,
                            Body=data)["ETag"] for n, data in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": n, "ETag": e}
                                     for n, e in enumerate(etags, 1)]})
    s3.copy_object(Bucket=bucket, Key="mpu-copy", CopySource={"Bucket": bucket, "Key": "mpu"})
    head = s3.head_object(Bucket=bucket, Key="mpu-copy", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == base64.b64encode(
        crc.crc64nvme(b"".join(parts)).to_bytes(8, "big")).decode()
    assert head["ChecksumType"] == "FULL_OBJECT"
    # a multipart upload whose parts send none (uploaded or copied) gets the whole
    # object's CRC64NVME at Complete, combined from the parts' (never listed)
    plain = s3cloud.client(request_checksum_calculation="when_required")
    up = plain.create_multipart_upload(Bucket=bucket, Key="dmpu")
    first = plain.upload_part(Bucket=bucket, Key="dmpu", UploadId=up["UploadId"],
                              PartNumber=1, Body=parts[0])
    assert not [h for h in first["ResponseMetadata"]["HTTPHeaders"]
                if h.startswith("x-amz-checksum-")]
    second = plain.upload_part_copy(Bucket=bucket, Key="dmpu", UploadId=up["UploadId"],
                                    PartNumber=2, CopySource={"Bucket": bucket, "Key": "small"})
    assert "ChecksumCRC64NVME" not in second["CopyPartResult"]
    listed = plain.list_parts(Bucket=bucket, Key="dmpu", UploadId=up["UploadId"])["Parts"]
    assert [p for p in listed if any(k.startswith("Checksum") for k in p)] == []
    listing = {"Parts": [{"PartNumber": 1, "ETag": first["ETag"]},
                         {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]}
    done = plain.complete_multipart_upload(Bucket=bucket, Key="dmpu", UploadId=up["UploadId"],
                                           MultipartUpload=listing)
    again = plain.complete_multipart_upload(Bucket=bucket, Key="dmpu",  # a client's retry
                                            UploadId=up["UploadId"], MultipartUpload=listing)
    assert "ChecksumCRC64NVME" not in done and "ChecksumCRC64NVME" not in again
    head = s3.head_object(Bucket=bucket, Key="dmpu", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == base64.b64encode(
        crc.crc64nvme(parts[0] + body).to_bytes(8, "big")).decode()
    assert head["ChecksumType"] == "FULL_OBJECT" and head["ETag"].endswith('-2"')
    # a client's own checksum is the one kept (no second one is added)
    s3.put_object(Bucket=bucket, Key="own", Body=body, ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="own", ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" not in head and head["ChecksumCRC32"]


def test_complete_checks_the_expected_object_size(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    first = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=1,
                           Body=b"a" * (5 << 20))["ETag"]
    last = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=2, Body=b"b" * 7)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": last}]}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="k", UploadId=up, MultipartUpload=parts,
                                     MpuObjectSize=(5 << 20) + 8)
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=b, Key="k")
    s3.complete_multipart_upload(Bucket=b, Key="k", UploadId=up, MultipartUpload=parts,
                                 MpuObjectSize=(5 << 20) + 7)
    assert s3.head_object(Bucket=b, Key="k")["ContentLength"] == (5 << 20) + 7
