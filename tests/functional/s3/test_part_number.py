"""GetObject/HeadObject with ``partNumber`` through boto3 and the ``aws`` CLI."""

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


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return str(resp["Error"]["Code"]), int(resp["ResponseMetadata"]["HTTPStatusCode"])


def _bucket(s3: Any) -> str:
    name = f"pn-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def test_a_multipart_objects_parts_read_one_by_one(s3cloud: S3Cloud, tmp_path: Path) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    data = os.urandom(11 * MIB)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    s3.upload_file(str(path), bucket, "mp", Config=SMALL)
    for number, (start, stop) in enumerate(((0, PART), (PART, 2 * PART),
                                            (2 * PART, len(data))), 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["Body"].read() == data[start:stop], number
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{stop - 1}/{len(data)}"
        assert got["PartsCount"] == 3 and got["ETag"].endswith('-3"')
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert (head["ContentLength"], head["PartsCount"]) == (stop - start, 3)
        # The part's own checksum (boto3 uploads parts with CRC32 and validates reads).
        crc = base64.b64encode(zlib.crc32(data[start:stop]).to_bytes(4, "big")).decode()
        checked = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number,
                                ChecksumMode="ENABLED")
        assert checked["ChecksumCRC32"] == crc and checked["Body"].read() == data[start:stop]
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number,
                              ChecksumMode="ENABLED")
        assert (head["ChecksumCRC32"], head["ChecksumType"]) == (crc, "COMPOSITE")
    whole = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert whole["ChecksumCRC32"].endswith("-3")
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key="mp")
    with pytest.raises(ClientError) as past:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert _error(past) == ("InvalidPartNumber", 416)


def test_a_plain_object_is_its_only_part(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"0123456789", ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key="plain", PartNumber=1, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"0123456789"
    assert got["ChecksumSHA256"] == base64.b64encode(
        hashlib.sha256(b"0123456789").digest()).decode()
    assert got["ContentRange"] == "bytes 0-9/10" and "PartsCount" not in got
    head = s3.head_object(Bucket=bucket, Key="plain", PartNumber=1)
    assert head["ContentLength"] == 10 and head["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as second:
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert _error(second) == ("InvalidPartNumber", 416)


@pytest.mark.parametrize("number", ["0", "10001", "x"])
def test_a_bad_part_number_is_invalid_argument(s3cloud: S3Cloud, number: str) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")

    def set_part(request: Any, **_: Any) -> None:  # signed after this
        request.url += ("&" if "?" in request.url else "?") + f"partNumber={number}"

    s3.meta.events.register("before-sign.s3.GetObject", set_part)
    with pytest.raises(ClientError) as bad:
        s3.get_object(Bucket=bucket, Key="plain")
    assert _error(bad) == ("InvalidArgument", 400)


def test_range_and_part_number_together_are_refused(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")
    with pytest.raises(ClientError) as both:
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=1, Range="bytes=0-1")
    assert _error(both) == ("InvalidRequest", 400)


def test_aws_cli_get_object_part_number(s3cloud: S3Cloud, tmp_path: Path) -> None:
    s3 = s3cloud.client()
    bucket = _bucket(s3)
    data = os.urandom(6 * MIB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "mp", Config=SMALL)
    out = tmp_path / "part2.bin"
    meta = json.loads(s3cloud.aws("s3api", "get-object", "--bucket", bucket, "--key", "mp",
                                  "--part-number", "2", str(out)).stdout)
    assert out.read_bytes() == data[PART:] and meta["PartsCount"] == 2
