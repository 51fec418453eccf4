"""The S3 API through the current boto3 (default checksums and aws-chunked uploads)."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from nubis.fastpath import _crc_py

from tests.functional.s3.conftest import S3Cloud

MIB = 1024 * 1024


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def test_bucket_lifecycle_and_global_namespace(s3cloud: S3Cloud) -> None:
    s3, other = s3cloud.client(), s3cloud.client(s3cloud.admin)
    name = _bucket(s3)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert _code(exc) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket=name)
    assert _code(exc) == "BucketAlreadyExists"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    other.create_bucket(Bucket=name)  # released: another project may take it now
    other.delete_bucket(Bucket=name)


@pytest.mark.parametrize("bad", ["ab", "UPPER", "a..b", "192.168.1.1", "-dash", "x" * 64])
def test_bucket_naming_rules(s3cloud: S3Cloud, bad: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3cloud.client().create_bucket(Bucket=bad)
    assert _code(exc) == "InvalidBucketName"


def test_objects_metadata_ranges_conditions(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    key = "dir/ünïcode key+%.txt"
    body = bytes(range(256)) * 40
    put = s3.put_object(Bucket=b, Key=key, Body=body, ContentType="text/x-test",
                        CacheControl="max-age=5", ContentDisposition="inline",
                        Metadata={"color": "blue"})
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key=key)
    assert got["Body"].read() == body and got["ContentType"] == "text/x-test"
    assert got["Metadata"] == {"color": "blue"} and got["CacheControl"] == "max-age=5"
    assert got["ContentDisposition"] == "inline"
    part = s3.get_object(Bucket=b, Key=key, Range="bytes=10-19")
    assert part["Body"].read() == body[10:20] and part["ContentRange"] == \
        f"bytes 10-19/{len(body)}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key=key, Range=f"bytes={len(body) + 5}-")
    assert _code(exc) == "InvalidRange"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key=key, IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key=key, IfMatch='"0123"')
    assert _code(exc) == "PreconditionFailed"
    over = s3.get_object(Bucket=b, Key=key, ResponseContentType="application/x-over",
                         ResponseContentDisposition="attachment")
    assert over["ContentType"] == "application/x-over"
    assert over["ContentDisposition"] == "attachment"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="missing")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="missing")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket-here", Key="x")
    assert _code(exc) == "NoSuchBucket"


def test_bad_digest_and_metadata_limit(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="k", Body=b"data", ContentMD5=wrong)
    assert _code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="k", Body=b"data", Metadata={"big": "x" * 2100})
    assert _code(exc) == "MetadataTooLarge"
    assert "Contents" not in s3.list_objects_v2(Bucket=b)


@pytest.mark.parametrize("algo", ["CRC32", "SHA1", "SHA256"])  # CRC32C needs awscrt
def test_checksums_stored_and_returned(s3cloud: S3Cloud, algo: str) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    put = s3.put_object(Bucket=b, Key="c", Body=b"checksum me" * 100,
                        ChecksumAlgorithm=algo)
    value = put[f"Checksum{algo}"]
    head = s3.head_object(Bucket=b, Key="c", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == value


@pytest.mark.parametrize(("algo", "func"), [("CRC32C", _crc_py.crc32c),
                                           ("CRC64NVME", _crc_py.crc64nvme)])
def test_crc32c_and_crc64nvme_bodies_are_verified(s3cloud: S3Cloud, algo: str,
                                                  func: Callable[[bytes], int]) -> None:
    """A checksum boto3 sends precomputed (it computes these two only with awscrt)."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    body = random.Random(5).randbytes(MIB + 3)  # several reads of the proxy
    width = 4 if algo == "CRC32C" else 8
    value = base64.b64encode(func(body).to_bytes(width, "big")).decode()
    put = s3.put_object(Bucket=b, Key="c", Body=body, **{f"Checksum{algo}": value})
    assert put[f"Checksum{algo}"] == value
    head = s3.head_object(Bucket=b, Key="c", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == value
    wrong = base64.b64encode(func(b"other").to_bytes(width, "big")).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="c", Body=body, **{f"Checksum{algo}": wrong})
    assert _code(exc) == "BadDigest"
    assert s3.get_object(Bucket=b, Key="c")["Body"].read() == body


def test_listings_v1_v2(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    keys = ["a/1", "a/2", "b/1", "c", "d e", "f%g"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in v2["Contents"]] == ["c", "d e", "f%g"]
    assert v2["KeyCount"] == 5
    seen: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b,
                                                             PaginationConfig={"PageSize": 2}):
        assert page["KeyCount"] <= 2
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == keys
    v1: list[str] = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=b, Delimiter="/",
                                                          PaginationConfig={"PageSize": 2}):
        v1 += [o["Key"] for o in page.get("Contents", [])]
        v1 += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(v1) == ["a/", "b/", "c", "d e", "f%g"]
    after = s3.list_objects_v2(Bucket=b, StartAfter="b/1", Prefix="", FetchOwner=True)
    assert [o["Key"] for o in after["Contents"]] == ["c", "d e", "f%g"]
    assert after["Contents"][0]["Owner"]["ID"] == s3cloud.demo.project_id
    assert s3.list_objects_v2(Bucket=b, Prefix="a/")["KeyCount"] == 2
    with pytest.raises(ClientError) as exc:
        s3.list_objects(Bucket=b, MaxKeys=-1)
    assert _code(exc) == "InvalidArgument"
    assert s3.list_objects_v2(Bucket=b, MaxKeys=5000)["MaxKeys"] == 1000


def test_delete_objects_and_copy(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"copy me", ContentType="text/plain",
                  Metadata={"m": "1"})
    s3.copy_object(Bucket=b, Key="same-meta", CopySource={"Bucket": b, "Key": "src"})
    got = s3.get_object(Bucket=b, Key="same-meta")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"m": "1"}
    s3.copy_object(Bucket=b, Key="new-meta", CopySource=f"{b}/src",
                   MetadataDirective="REPLACE", Metadata={"n": "2"},
                   ContentType="text/other")
    got = s3.get_object(Bucket=b, Key="new-meta")
    assert got["Metadata"] == {"n": "2"} and got["ContentType"] == "text/other"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="x", CopySource=f"{b}/src", CopySourceIfMatch='"nope"')
    assert _code(exc) == "PreconditionFailed"
    res = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "src"},
                                                          {"Key": "never-there"}]})
    assert sorted(d["Key"] for d in res["Deleted"]) == ["never-there", "src"]
    quiet = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "same-meta"}],
                                                "Quiet": True})
    assert "Deleted" not in quiet
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["new-meta"]


def test_copy_source_keys_with_percent_and_unicode(s3cloud: S3Cloud) -> None:
    """CopyObject copies the very key named, whatever its characters (``aws s3 cp/mv``)."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="a b", Body=b"the decoy: a space")
    for n, key in enumerate(("ç.txt", "a%20b", "dir/ü ï 字?&=+.bin", "100%")):
        body = f"source {n}".encode()
        s3.put_object(Bucket=b, Key=key, Body=body)
        s3.copy_object(Bucket=b, Key=f"copy-{n}", CopySource={"Bucket": b, "Key": key})
        assert s3.get_object(Bucket=b, Key=f"copy-{n}")["Body"].read() == body
        s3.copy_object(Bucket=b, Key=f"{key}.2", CopySource=f"{b}/{key}",
                       MetadataDirective="REPLACE", Metadata={"n": str(n)})
        got = s3.get_object(Bucket=b, Key=f"{key}.2")
        assert got["Body"].read() == body and got["Metadata"] == {"n": str(n)}


def _checksums(answer: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in answer.items() if k.startswith("Checksum")}


def test_copy_keeps_tags_and_checksum(s3cloud: S3Cloud) -> None:
    """CopyObject carries the source's tags (tagging directive) and checksum, as S3 does."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    body = b"copied with its checksum"
    v1 = s3.put_object(Bucket=b, Key="src", Body=body, ChecksumAlgorithm="SHA256",
                       Tagging="team=blue")
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert v1["ChecksumSHA256"] == sha
    newer = b"newer: boto3's default CRC32, no tags"
    s3.put_object(Bucket=b, Key="src", Body=newer)
    old = {"Bucket": b, "Key": "src", "VersionId": v1["VersionId"]}
    result = s3.copy_object(Bucket=b, Key="same", CopySource=old)["CopyObjectResult"]
    assert _checksums(result) == {"ChecksumSHA256": sha, "ChecksumType": "FULL_OBJECT"}
    head = s3.head_object(Bucket=b, Key="same", ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (sha, "FULL_OBJECT")
    assert s3.get_object_tagging(Bucket=b, Key="same")["TagSet"] == [
        {"Key": "team", "Value": "blue"}]
    s3.copy_object(Bucket=b, Key="retagged", CopySource=old, TaggingDirective="REPLACE",
                   Tagging="team=red&tier=2", MetadataDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=b, Key="retagged")["TagSet"] == [
        {"Key": "team", "Value": "red"}, {"Key": "tier", "Value": "2"}]
    assert _checksums(s3.head_object(Bucket=b, Key="retagged", ChecksumMode="ENABLED"))
    s3.copy_object(Bucket=b, Key="untagged", CopySource=old, TaggingDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=b, Key="untagged")["TagSet"] == []
    # Another algorithm is computed over the copied bytes, as S3 does.
    other = s3.copy_object(Bucket=b, Key="crc", CopySource=old, ChecksumAlgorithm="CRC32")
    crc_old = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert _checksums(other["CopyObjectResult"]) == {"ChecksumCRC32": crc_old,
                                                     "ChecksumType": "FULL_OBJECT"}
    head = s3.head_object(Bucket=b, Key="crc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc_old and "ChecksumSHA256" not in head
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="crc", CopySource=old, ChecksumAlgorithm="CRC16")
    assert _code(exc) == "InvalidRequest"
    latest = s3.copy_object(Bucket=b, Key="latest", CopySource={"Bucket": b, "Key": "src"})
    crc = base64.b64encode(zlib.crc32(newer).to_bytes(4, "big")).decode()
    assert _checksums(latest["CopyObjectResult"]) == {"ChecksumCRC32": crc,
                                                      "ChecksumType": "FULL_OBJECT"}
    assert s3.get_object_tagging(Bucket=b, Key="latest")["TagSet"] == []
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="x", CopySource=old, TaggingDirective="MERGE")
    assert _code(exc) == "InvalidArgument"


def test_multipart(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    p1, p2 = b"1" * (5 * MIB), b"2" * 1000
    up = s3.create_multipart_upload(Bucket=b, Key="big", ContentType="text/big",
                                    Metadata={"k": "v"})
    uid = up["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="big", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="big", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    parts = s3.list_parts(Bucket=b, Key="big", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, 1000)]
    uploads = s3.list_multipart_uploads(Bucket=b)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big", uid)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert _code(exc) == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}]})
    assert _code(exc) == "InvalidPart"
    done = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    md5s = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
    assert done["ETag"] == f'"{md5s}-2"'
    got = s3.get_object(Bucket=b, Key="big")
    assert got["ETag"] == done["ETag"] and got["ContentType"] == "text/big"
    assert got["Metadata"] == {"k": "v"} and got["Body"].read() == p1 + p2
    assert s3.list_objects_v2(Bucket=b)["Contents"][0]["ETag"] == done["ETag"]
    assert s3.get_object(Bucket=b, Key="big", Range="bytes=5242879-5242880",
                         IfMatch=done["ETag"])["Body"].read() == b"12"
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=b, Key="big", UploadId=uid)
    assert _code(exc) == "NoSuchUpload"


def test_complete_drops_the_parts_it_leaves_out(s3cloud: S3Cloud) -> None:
    """As S3 (unlike Swift's s3api): parts not named by Complete do not linger."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    uid = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    etags = {n: s3.upload_part(Bucket=b, Key="k", UploadId=uid, PartNumber=n,
                               Body=bytes([48 + n]) * (5 * MIB if n < 3 else 10))["ETag"]
             for n in (1, 2, 3)}
    s3.complete_multipart_upload(Bucket=b, Key="k", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 3)]})
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"1" * (5 * MIB) + b"3" * 10
    assert s3cloud.segments(b) == [f"k/{uid}/00001", f"k/{uid}/00003"]


def _complete(s3: Any, bucket: str, key: str, body: bytes) -> str:
    """Upload ``body`` as a one-part multipart upload; return the upload id."""
    uid: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1,
                          Body=body)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    return uid


def test_overwrites_and_deletes_free_a_multipart_objects_parts(s3cloud: S3Cloud) -> None:
    """As S3 (unlike Swift's s3api): a replaced multipart object's parts do not linger.

    PutObject, Complete and CopyObject over one free them; DeleteObjects too. A
    versioned bucket keeps them while the replaced object lives on as a version;
    deleting that version, or replacing a Suspended bucket's null version, frees them.
    """
    s3 = s3cloud.client()

    def complete(bucket: str, key: str, body: bytes) -> str:
        return _complete(s3, bucket, key, body)

    b = _bucket(s3)
    first = complete(b, "k", b"first")
    assert s3cloud.segments(b) == [f"k/{first}/00001"]
    second = complete(b, "k", b"second")  # a Complete over a multipart object
    assert s3cloud.segments(b) == [f"k/{second}/00001"]
    s3.put_object(Bucket=b, Key="k", Body=b"plain")  # a PutObject over one
    assert s3cloud.segments(b) == []
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"plain"
    complete(b, "c", b"copied over")
    s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k"})
    assert s3cloud.segments(b) == []  # a CopyObject over one
    complete(b, "c", b"copied onto itself")
    s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "c"},
                   MetadataDirective="REPLACE", Metadata={"x": "y"})
    assert s3cloud.segments(b) == []  # the copy holds the bytes now
    assert s3.get_object(Bucket=b, Key="c")["Body"].read() == b"copied onto itself"
    complete(b, "d", b"doomed")
    deleted = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "d"}, {"Key": "k"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["d", "k"]
    assert s3cloud.segments(b) == []
    v = _bucket(s3)
    s3.put_bucket_versioning(Bucket=v, VersioningConfiguration={"Status": "Enabled"})
    kept = complete(v, "k", b"old version")
    s3.put_object(Bucket=v, Key="k", Body=b"new")
    assert s3cloud.segments(v) == [f"k/{kept}/00001"]
    old = s3.list_object_versions(Bucket=v)["Versions"][-1]
    assert s3.get_object(Bucket=v, Key="k", VersionId=old["VersionId"])["Body"].read() \
        == b"old version"
    s3.put_bucket_versioning(Bucket=v, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=v, Key="k", Body=b"null")  # replaces a link: the version stays
    assert s3cloud.segments(v) == [f"k/{kept}/00001"]
    null = complete(v, "n", b"null version")
    s3.put_object(Bucket=v, Key="n", Body=b"plain")  # replaces the null version for good
    s3.delete_object(Bucket=v, Key="k", VersionId=old["VersionId"])  # gone for good
    assert s3cloud.segments(v) == [] and null != kept
    null = complete(v, "n", b"null version again")
    s3.delete_object(Bucket=v, Key="n")  # Suspended: the null version goes for good
    assert s3cloud.segments(v) == []
    s3.put_bucket_versioning(Bucket=v, VersioningConfiguration={"Status": "Enabled"})
    kept = complete(v, "m", b"kept")
    s3.delete_object(Bucket=v, Key="m")  # a delete marker: the version stays
    assert s3cloud.segments(v) == [f"m/{kept}/00001"]
    vid = s3.list_object_versions(Bucket=v, Prefix="m")["Versions"][0]["VersionId"]
    deleted = s3.delete_objects(Bucket=v, Delete={"Objects": [{"Key": "m", "VersionId": vid}]})
    assert deleted["Deleted"] == [{"Key": "m", "VersionId": vid}]
    assert s3cloud.segments(v) == []


def test_overwrite_frees_parts_under_an_erasure_coded_policy(s3cloud: S3Cloud) -> None:
    """The EC write path reports the upload it replaced too (ec42 bucket made with Swift)."""
    s3, swift = s3cloud.client(), s3cloud.swift()
    b = f"b-{uuid.uuid4().hex[:12]}"
    swift.put_container(b, headers={"X-Storage-Policy": "ec42"})
    assert swift.head_container(b)["x-storage-policy"] == "ec42"
    first = _complete(s3, b, "k", b"first")
    second = _complete(s3, b, "k", b"second")  # a Complete over a multipart object
    assert s3cloud.segments(b) == [f"k/{second}/00001"] and first != second
    s3.put_object(Bucket=b, Key="k", Body=b"plain")  # a PutObject over one
    assert s3cloud.segments(b) == []
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"plain"


def test_object_attributes_of_a_multipart_object_page_its_parts(s3cloud: S3Cloud) -> None:
    """GetObjectAttributes: the S3 ETag, size and parts (paged), of the asked version too."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    uid = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    sizes = {1: 5 * MIB, 3: 5 * MIB, 4: 7}
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=b, Key="mp", UploadId=uid,
                                                      PartNumber=n, Body=b"p" * size)["ETag"]}
             for n, size in sizes.items()]
    done = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
    first = s3.get_object_attributes(Bucket=b, Key="mp", MaxParts=2, ObjectAttributes=[
        "ETag", "ObjectParts", "ObjectSize"])
    assert first["ETag"] == done["ETag"].strip('"') and first["ETag"].endswith("-3")
    assert first["ObjectSize"] == sum(sizes.values())
    assert first["VersionId"] == done["VersionId"]
    page = first["ObjectParts"]
    assert (page["TotalPartsCount"], page["IsTruncated"], page["NextPartNumberMarker"]) == (
        3, True, 3)
    assert [(p["PartNumber"], p["Size"]) for p in page["Parts"]] == [(1, 5 * MIB), (3, 5 * MIB)]
    rest = s3.get_object_attributes(Bucket=b, Key="mp", PartNumberMarker=3,
                                    ObjectAttributes=["ObjectParts"])["ObjectParts"]
    assert rest["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(4, 7)]
    s3.put_object(Bucket=b, Key="mp", Body=b"newer")
    old = s3.get_object_attributes(Bucket=b, Key="mp", VersionId=done["VersionId"],
                                   ObjectAttributes=["ObjectSize", "StorageClass"])
    assert (old["ObjectSize"], old["StorageClass"]) == (sum(sizes.values()), "STANDARD")
    assert s3.get_object_attributes(Bucket=b, Key="mp", ObjectAttributes=["ObjectSize"])[
        "ObjectSize"] == 5


def test_copy_conditions_name_a_multipart_sources_s3_etag(s3cloud: S3Cloud) -> None:
    """CopySourceIf(None)Match of a multipart source compare its md5-of-md5s-N ETag."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    uid = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(
        Bucket=b, Key="mp", UploadId=uid, PartNumber=n, Body=body)["ETag"]}
        for n, body in ((1, b"a" * (5 * MIB)), (2, b"tail"))]
    etag = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid,
                                        MultipartUpload={"Parts": parts})["ETag"]
    swift_etag = s3cloud.swift().head_object(b, "mp")["etag"]
    source = {"Bucket": b, "Key": "mp"}
    s3.copy_object(Bucket=b, Key="c1", CopySource=source, CopySourceIfMatch=etag)
    s3.copy_object(Bucket=b, Key="c2", CopySource=source, CopySourceIfNoneMatch=swift_etag)
    for cond in ({"CopySourceIfMatch": f'"{swift_etag}"'}, {"CopySourceIfNoneMatch": etag},
                 {"CopySourceIfMatch": '"0123"'}):
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=b, Key="c3", CopySource=source, **cond)
        assert _code(exc) == "PreconditionFailed", cond
    up = s3.create_multipart_upload(Bucket=b, Key="pc")["UploadId"]
    part = s3.upload_part_copy(Bucket=b, Key="pc", UploadId=up, PartNumber=1, CopySource=source,
                               CopySourceRange=f"bytes={5 * MIB}-{5 * MIB + 3}",
                               CopySourceIfMatch=etag)["CopyPartResult"]["ETag"]
    assert part == f'"{hashlib.md5(b"tail").hexdigest()}"'
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=b, Key="pc", UploadId=up, PartNumber=2, CopySource=source,
                            CopySourceIfNoneMatch=etag)
    assert _code(exc) == "PreconditionFailed"
    plain = s3.put_object(Bucket=b, Key="plain", Body=b"p")["ETag"]
    with pytest.raises(ClientError) as exc:  # a 304 of the source is no empty part
        s3.upload_part_copy(Bucket=b, Key="pc", UploadId=up, PartNumber=3,
                            CopySource={"Bucket": b, "Key": "plain"}, CopySourceIfNoneMatch=plain)
    assert _code(exc) == "PreconditionFailed"
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=b, Key="pc", UploadId=up)["Parts"]] \
        == [1]
    s3.abort_multipart_upload(Bucket=b, Key="pc", UploadId=up)
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]} == {
        "mp", "c1", "c2", "plain"}


def test_multipart_too_small_copy_and_abort(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    cp = s3.upload_part_copy(Bucket=b, Key="m", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": b, "Key": "src"},
                             CopySourceRange="bytes=2-5")
    assert cp["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"2345").hexdigest()}"'
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1},
                      {"PartNumber": 2, "ETag": cp["CopyPartResult"]["ETag"]}]})
    assert _code(exc) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=3, Body=b"x")
    assert _code(exc) == "NoSuchUpload"
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []


@pytest.mark.parametrize(("rng", "message"), [
    ("bytes=0-10", "Range specified is not valid for source object of size: 10"),
    ("bytes=10-12", "Range specified is not valid for source object of size: 10"),
    ("0-9", "must be of the form bytes=first-last"),
    ("bytes=-3", "must be of the form bytes=first-last"),
    ("bytes=3-", "must be of the form bytes=first-last"),
    ("bytes=0-1,3-4", "must be of the form bytes=first-last"),
    ("bytes=5-2", "must be of the form bytes=first-last"),
])
def test_upload_part_copy_range_is_checked(s3cloud: S3Cloud, rng: str, message: str) -> None:
    """A copy range S3 refuses is InvalidArgument (Swift would clamp or ignore it)."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=b, Key="m", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": b, "Key": "src"}, CopySourceRange=rng)
    assert _code(exc) == "InvalidArgument"
    assert message in exc.value.response["Error"]["Message"]
    assert exc.value.response["Error"]["ArgumentName"] == "x-amz-copy-source-range"
    assert s3.list_parts(Bucket=b, Key="m", UploadId=uid).get("Parts", []) == []
    whole = s3.upload_part_copy(Bucket=b, Key="m", UploadId=uid, PartNumber=1,
                                CopySource={"Bucket": b, "Key": "src"},
                                CopySourceRange="bytes=0-9")
    assert whole["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"0123456789").hexdigest()}"'
    s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=uid)


def test_copy_from_a_missing_bucket_is_no_such_bucket(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    missing = f"missing-{uuid.uuid4().hex[:10]}"
    uid = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    for copy in (lambda src: s3.copy_object(Bucket=b, Key="k", CopySource=src),
                 lambda src: s3.upload_part_copy(Bucket=b, Key="m", UploadId=uid,
                                                 PartNumber=1, CopySource=src)):
        with pytest.raises(ClientError) as exc:
            copy({"Bucket": missing, "Key": "k"})
        assert _code(exc) == "NoSuchBucket"
        with pytest.raises(ClientError) as exc:  # the bucket is there, the key is not
            copy({"Bucket": b, "Key": "absent"})
        assert _code(exc) == "NoSuchKey"
    s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=uid)


def test_list_multipart_uploads_url_encoding(s3cloud: S3Cloud) -> None:
    """``encoding-type=url`` quotes ListMultipartUploads' keys and prefixes, as S3's."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    ids = [s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"]
           for k in ("a b/c d", "a b/e&f", "x\ry")]
    got = s3.list_multipart_uploads(Bucket=b, EncodingType="url", Prefix="a b/",
                                    Delimiter="/")
    assert got["EncodingType"] == "url" and got["Prefix"] == "a%20b/"
    assert [u["Key"] for u in got["Uploads"]] == ["a%20b/c%20d", "a%20b/e%26f"]
    got = s3.list_multipart_uploads(Bucket=b, EncodingType="url", Delimiter=" ")
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["a%20"]
    assert [u["Key"] for u in got["Uploads"]] == ["x%0Dy"]
    plain = s3.list_multipart_uploads(Bucket=b)
    assert "EncodingType" not in plain
    assert [u["Key"] for u in plain["Uploads"]] == ["a b/c d", "a b/e&f", "x\ry"]
    with pytest.raises(ClientError) as exc:
        s3.list_multipart_uploads(Bucket=b, EncodingType="base64")
    assert _code(exc) == "InvalidArgument"
    for key, uid in zip(("a b/c d", "a b/e&f", "x\ry"), ids, strict=True):
        s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=uid)


@pytest.mark.parametrize("version", ["default", "s3v4"])
def test_presigned_urls(s3cloud: S3Cloud, version: str) -> None:
    s3 = s3cloud.client() if version == "default" else s3cloud.client(
        signature_version="s3v4")
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="p q", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p q"},
                                    ExpiresIn=60)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"presigned"
    assert r.headers["x-amz-request-id"]
    put = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "up"},
                                    ExpiresIn=60)
    assert requests.put(put, data=b"via url", timeout=10).status_code == 200
    assert s3.get_object(Bucket=b, Key="up")["Body"].read() == b"via url"
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p q"},
                                        ExpiresIn=0)
    r = requests.get(expired, timeout=10)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert b"expired" in r.content
    r = requests.get(url.replace("Signature=", "Signature=0"), timeout=10)
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content


def test_a_presigned_put_holds_its_body_to_a_sent_payload_hash(s3cloud: S3Cloud) -> None:
    """A presigned request that sends x-amz-content-sha256 signs that hash (botocore too)."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    b = _bucket(s3cloud.client())
    body = b"hashed via url"

    def presigned(key: str) -> str:
        req = AWSRequest(method="PUT", url=f"{s3cloud.endpoint}/{b}/{key}",
                         headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
        S3SigV4QueryAuth(Credentials(s3cloud.demo.access, s3cloud.demo.secret), "s3",
                         "us-east-1", expires=60).add_auth(req)
        return str(req.url)

    sha = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    r = requests.put(presigned("good"), data=body, headers=sha, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.put(presigned("bad"), data=b"another body", headers=sha, timeout=10)
    assert r.status_code == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in r.content
    assert s3cloud.client().get_object(Bucket=b, Key="good")["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3cloud.client().head_object(Bucket=b, Key="bad")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bad_credentials(s3cloud: S3Cloud) -> None:
    from tests.functional.s3.conftest import Keys

    wrong = Keys(s3cloud.demo.access, "not-the-secret", s3cloud.demo.project_id)
    with pytest.raises(ClientError) as exc:
        s3cloud.client(wrong).list_buckets()
    assert _code(exc) == "SignatureDoesNotMatch"
    assert "StringToSign" in exc.value.response["Error"]
    unknown = Keys("AKIANOTAKEY", "x", "")
    with pytest.raises(ClientError) as exc:
        s3cloud.client(unknown).list_buckets()
    assert _code(exc) == "InvalidAccessKeyId"


def test_cross_project_isolation(s3cloud: S3Cloud) -> None:
    demo, admin = s3cloud.client(), s3cloud.client(s3cloud.admin)
    b = _bucket(demo)
    demo.put_object(Bucket=b, Key="secret", Body=b"mine")
    for call in (lambda: admin.get_object(Bucket=b, Key="secret"),
                 lambda: admin.put_object(Bucket=b, Key="x", Body=b"x"),
                 lambda: admin.list_objects_v2(Bucket=b),
                 lambda: admin.delete_object(Bucket=b, Key="secret"),
                 lambda: admin.delete_bucket(Bucket=b)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _code(exc) == "AccessDenied"
    assert b not in [x["Name"] for x in admin.list_buckets()["Buckets"]]
    assert demo.get_object(Bucket=b, Key="secret")["Body"].read() == b"mine"


def test_expected_bucket_owner(s3cloud: S3Cloud) -> None:
    """``ExpectedBucketOwner`` (and the copy source's) must name the owning project."""
    s3, mine, other = s3cloud.client(), s3cloud.demo.project_id, s3cloud.admin.project_id
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x", ExpectedBucketOwner=mine)
    s3.head_bucket(Bucket=b, ExpectedBucketOwner=mine)
    s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k"},
                   ExpectedBucketOwner=mine, ExpectedSourceBucketOwner=mine)
    for call in (lambda: s3.put_object(Bucket=b, Key="k", Body=b"y", ExpectedBucketOwner=other),
                 lambda: s3.get_object(Bucket=b, Key="k", ExpectedBucketOwner="123456789012"),
                 lambda: s3.list_objects_v2(Bucket=b, ExpectedBucketOwner=other),
                 lambda: s3.copy_object(Bucket=b, Key="d", CopySource={"Bucket": b, "Key": "k"},
                                        ExpectedSourceBucketOwner=other)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _code(exc) == "AccessDenied"
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"x"  # nothing was written
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["c", "k"]


def test_canned_private_acls(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x", ACL="private")
    for acl in (s3.get_bucket_acl(Bucket=b), s3.get_object_acl(Bucket=b, Key="k")):
        assert acl["Owner"]["ID"] == s3cloud.demo.project_id
        assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    s3.put_bucket_acl(Bucket=b, ACL="private")
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=b, Key="k", ACL="public-read")
    assert _code(exc) == "NotImplemented"  # objects share their bucket's ACL
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=b, Key="missing")
    assert _code(exc) == "NoSuchKey"
