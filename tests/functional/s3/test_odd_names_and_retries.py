"""Odd metadata names through both APIs, a retried Complete, multipart conditionals."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import swiftclient
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud
from tests.functional.s3.test_cli_and_edges import _swift

#: Names llhttp refuses but Swift (and S3) store: the s3api suite's weird metadata.
ODD = "(@)[]{}=<>?\"/\\"


def _bucket(s3: Any) -> str:
    name = f"odd-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def test_odd_metadata_names_round_trip_through_s3(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    meta = {f"k{c}": f"v{c}" for c in ODD}
    s3.put_object(Bucket=b, Key="o", Body=b"x", Metadata=meta)  # SigV4 signs every name
    assert s3.head_object(Bucket=b, Key="o")["Metadata"] == meta
    got = s3.get_object(Bucket=b, Key="o")
    assert got["Metadata"] == meta
    assert got["Body"].read() == b"x"


def test_odd_metadata_names_round_trip_through_swift(s3cloud: S3Cloud) -> None:
    sw: swiftclient.Connection = _swift(s3cloud)
    container = f"odd-{uuid.uuid4().hex[:12]}"
    sw.put_container(container)
    sent = {"X-Object-Meta-(": "open", "X-Object-Meta-a@b": "at"}
    sw.put_object(container, "o", b"y", headers=sent)
    head = sw.head_object(container, "o")
    assert head["x-object-meta-("] == "open"
    assert head["x-object-meta-a@b"] == "at"
    sw.post_object(container, "o", headers={"X-Object-Meta-{x}": "brace"})
    head = sw.head_object(container, "o")
    assert head["x-object-meta-{x}"] == "brace"
    assert "x-object-meta-(" not in head  # a POST replaces user metadata


def _multipart(s3: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n, body in ((1, b"a" * (5 << 20)), (2, b"b" * 10)):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n,
                              Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    return uid, parts


def test_complete_is_safe_to_retry(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    uid, parts = _multipart(s3, b, "mp")
    first = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                         MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                         MultipartUpload={"Parts": parts})
    assert again["ETag"] == first["ETag"]
    assert first["ETag"].strip('"').endswith("-2")
    with pytest.raises(ClientError) as exc:  # other parts: that upload is gone
        s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                     MultipartUpload={"Parts": parts[:1]})
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId="not-an-upload",
                                     MultipartUpload={"Parts": parts})
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.get_object(Bucket=b, Key="mp")["Body"].read() == b"a" * (5 << 20) + b"b" * 10


def test_conditions_on_a_multipart_object_use_its_s3_etag(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    uid, parts = _multipart(s3, b, "mp")
    s3_etag = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                           MultipartUpload={"Parts": parts})["ETag"]
    # The Swift (SLO) ETag: md5 of the parts' hex ETags; S3 clients never see it.
    hexes = "".join(p["ETag"].strip('"') for p in parts)
    swift_etag = f'"{hashlib.md5(hexes.encode()).hexdigest()}"'
    assert s3.head_object(Bucket=b, Key="mp", IfMatch=s3_etag)["ETag"] == s3_etag
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="mp", IfMatch=swift_etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.head_object(Bucket=b, Key="mp", IfNoneMatch=swift_etag)["ETag"] == s3_etag
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="mp", IfNoneMatch=s3_etag)
    meta = exc.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 304
    assert meta["HTTPHeaders"]["etag"] == s3_etag
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="mp", IfMatch=swift_etag)
    assert exc.value.response["Error"]["Code"] == "PreconditionFailed"
