"""S3's conditional writes and deletes, driven with boto3 and the ``aws`` CLI.

PutObject and CopyObject take ``If-None-Match: *`` and ``If-Match: <etag>``,
CompleteMultipartUpload ``If-None-Match: *`` (as Swift's s3api); DeleteObject
takes ``If-Match: <etag>|*`` and DeleteObjects an ``<ETag>`` per key. Each
refusal is S3's exact error code, and nothing is written or deleted by a
request whose condition failed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any, versioned: bool = False) -> str:
    name = f"cond-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name,
                                 VersioningConfiguration={"Status": "Enabled"})
    return name


def _body(s3: Any, b: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=b, Key=key)["Body"].read())


def test_put_if_match(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    first = s3.put_object(Bucket=b, Key="k", Body=b"one")["ETag"]
    second = s3.put_object(Bucket=b, Key="k", Body=b"two", IfMatch=first)["ETag"]
    assert _body(s3, b, "k") == b"two"
    with pytest.raises(ClientError) as exc:  # the ETag read before is stale now
        s3.put_object(Bucket=b, Key="k", Body=b"three", IfMatch=first)
    assert _code(exc) == "PreconditionFailed"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert _body(s3, b, "k") == b"two"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="absent", Body=b"x", IfMatch=second)
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="absent")
    # A list of ETags and an unquoted one are ETags too.
    s3.put_object(Bucket=b, Key="k", Body=b"four", IfMatch=f'"0123", {second}')
    third = s3.head_object(Bucket=b, Key="k")["ETag"]
    s3.put_object(Bucket=b, Key="k", Body=b"five", IfMatch=third.strip('"'))
    assert _body(s3, b, "k") == b"five"


def test_put_conditions_not_taken(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"one")
    for cond in ({"IfMatch": "*"}, {"IfNoneMatch": '"0123"'}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=b, Key="k", Body=b"x", **cond)
        assert _code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=b, Key="k", IfMatchSize=3)
    assert _code(exc) == "NotImplemented"
    assert _body(s3, b, "k") == b"one"


def test_multipart_object_matches_its_s3_etag(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 10)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    done = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up,
                                        MultipartUpload=parts, IfNoneMatch="*")
    assert done["ETag"].endswith('-1"')
    # a second upload may replace it only while it is still the one read
    up2 = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    part2 = s3.upload_part(Bucket=b, Key="mp", UploadId=up2, PartNumber=1, Body=b"q" * 10)
    parts2 = {"Parts": [{"PartNumber": 1, "ETag": part2["ETag"]}]}
    # Swift's s3api takes no If-Match on completion (its suite checks the 501)
    for cond, code in (({"IfNoneMatch": "*"}, "PreconditionFailed"),
                       ({"IfMatch": done["ETag"]}, "NotImplemented")):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up2,
                                         MultipartUpload=parts2, **cond)
        assert _code(exc) == code
    # the multipart object's own ETag (md5-of-md5s-1) is the one a condition names
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=b, Key="mp", IfMatch=f'"{part["ETag"].strip(chr(34))}"')
    assert _code(exc) == "PreconditionFailed"
    s3.put_object(Bucket=b, Key="mp", Body=b"plain now", IfMatch=done["ETag"])
    latest = s3.head_object(Bucket=b, Key="mp")["ETag"]
    s3.delete_object(Bucket=b, Key="mp", IfMatch=latest)
    s3.abort_multipart_upload(Bucket=b, Key="mp", UploadId=up2)
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0


def test_copy_destination_conditions(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    src = s3.put_object(Bucket=b, Key="src", Body=b"source")["ETag"]
    dst = s3.put_object(Bucket=b, Key="dst", Body=b"dest")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="dst", CopySource=f"{b}/src", IfNoneMatch="*")
    assert _code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:  # the source's ETag is not the destination's
        s3.copy_object(Bucket=b, Key="dst", CopySource=f"{b}/src", IfMatch=src)
    assert _code(exc) == "PreconditionFailed"
    assert _body(s3, b, "dst") == b"dest"
    s3.copy_object(Bucket=b, Key="dst", CopySource=f"{b}/src", IfMatch=dst,
                   CopySourceIfMatch=src)
    s3.copy_object(Bucket=b, Key="new", CopySource=f"{b}/src", IfNoneMatch="*")
    assert _body(s3, b, "dst") == _body(s3, b, "new") == b"source"


def test_conditional_delete(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    etag = s3.put_object(Bucket=b, Key="k", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=b, Key="k", IfMatch='"0123"')
    assert _code(exc) == "PreconditionFailed"
    assert _body(s3, b, "k") == b"one"
    s3.delete_object(Bucket=b, Key="k", IfMatch=etag)
    for cond in (etag, "*"):  # gone: If-Match names nothing
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=b, Key="k", IfMatch=cond)
        assert _code(exc) == "NoSuchKey"
    s3.delete_object(Bucket=b, Key="k")  # unconditional: 204 as ever
    s3.put_object(Bucket=b, Key="k2", Body=b"two")
    s3.delete_object(Bucket=b, Key="k2", IfMatch="*")
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0


def test_delete_objects_with_etags(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    keep = s3.put_object(Bucket=b, Key="keep", Body=b"1")["ETag"]
    good = s3.put_object(Bucket=b, Key="good", Body=b"2")["ETag"]
    s3.put_object(Bucket=b, Key="any", Body=b"3")
    s3.put_object(Bucket=b, Key="plain", Body=b"4")
    got = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "keep", "ETag": good}, {"Key": "good", "ETag": good},
        {"Key": "any", "ETag": "*"}, {"Key": "gone", "ETag": "*"}, {"Key": "plain"},
        {"Key": "keep", "Size": 2}]})  # a directory bucket's condition: not taken
    assert sorted(d["Key"] for d in got["Deleted"]) == ["any", "good", "plain"]
    assert [(e["Key"], e["Code"]) for e in got["Errors"]] == [
        ("keep", "PreconditionFailed"), ("gone", "NoSuchKey"), ("keep", "NotImplemented")]
    listed = s3.list_objects_v2(Bucket=b)["Contents"]
    assert [(o["Key"], o["ETag"]) for o in listed] == [("keep", keep)]


def test_versioned_bucket_conditions(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, versioned=True)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two", IfMatch=v1["ETag"])
    with pytest.raises(ClientError) as exc:  # v1 is not the current version any more
        s3.delete_object(Bucket=b, Key="k", IfMatch=v1["ETag"])
    assert _code(exc) == "PreconditionFailed"
    marker = s3.delete_object(Bucket=b, Key="k", IfMatch=v2["ETag"])
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:  # a delete marker is no object
        s3.delete_object(Bucket=b, Key="k", IfMatch="*")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="k", Body=b"x", IfMatch=v2["ETag"])
    assert _code(exc) == "NoSuchKey"
    # with a versionId the condition is that version's
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=b, Key="k", VersionId=v1["VersionId"], IfMatch=v2["ETag"])
    assert _code(exc) == "PreconditionFailed"
    s3.delete_object(Bucket=b, Key="k", VersionId=v1["VersionId"], IfMatch=v1["ETag"])
    versions = s3.list_object_versions(Bucket=b)
    assert [v["VersionId"] for v in versions["Versions"]] == [v2["VersionId"]]
    s3.put_object(Bucket=b, Key="k", Body=b"three", IfNoneMatch="*")
    assert _body(s3, b, "k") == b"three"


def test_aws_cli_conditional_put_and_delete(s3cloud: S3Cloud, tmp_path: Any) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    src = tmp_path / "f.txt"
    src.write_bytes(b"cli body")
    put = json.loads(s3cloud.aws("s3api", "put-object", "--bucket", b, "--key", "f",
                                 "--body", str(src), "--if-none-match", "*").stdout)
    again = s3cloud.aws("s3api", "put-object", "--bucket", b, "--key", "f",
                        "--body", str(src), "--if-none-match", "*", check=False)
    assert again.returncode != 0 and "PreconditionFailed" in again.stderr
    wrong = s3cloud.aws("s3api", "delete-object", "--bucket", b, "--key", "f",
                        "--if-match", '"0123"', check=False)
    assert wrong.returncode != 0 and "PreconditionFailed" in wrong.stderr
    s3cloud.aws("s3api", "delete-object", "--bucket", b, "--key", "f",
                "--if-match", put["ETag"])
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0


def test_etag_condition_overrides_date_condition(s3cloud: S3Cloud) -> None:
    """An If-Match that holds reads (and copies) even if the object changed since the date.

    S3's documented precedence (RFC 9110's): If-Unmodified-Since is ignored beside
    If-Match, If-Modified-Since beside If-None-Match; Swift alone answers 412.
    """
    s3 = s3cloud.client()
    b = _bucket(s3)
    etag = s3.put_object(Bucket=b, Key="src", Body=b"hello")["ETag"]
    past, future = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
    got = s3.get_object(Bucket=b, Key="src", IfMatch=etag, IfUnmodifiedSince=past)
    assert got["Body"].read() == b"hello"
    assert s3.head_object(Bucket=b, Key="src", IfMatch=etag,
                          IfUnmodifiedSince=past)["ContentLength"] == 5
    with pytest.raises(ClientError) as exc:  # If-Match alone still decides
        s3.get_object(Bucket=b, Key="src", IfMatch='"0123"', IfUnmodifiedSince=future)
    assert _code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:  # an If-None-Match naming it: 304 whatever the date
        s3.get_object(Bucket=b, Key="src", IfNoneMatch=etag, IfModifiedSince=past)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert s3.get_object(Bucket=b, Key="src", IfNoneMatch='"0123"',
                         IfModifiedSince=future)["ContentLength"] == 5
    src = {"Bucket": b, "Key": "src"}
    s3.copy_object(Bucket=b, Key="copy", CopySource=src, CopySourceIfMatch=etag,
                   CopySourceIfUnmodifiedSince=past)
    assert _body(s3, b, "copy") == b"hello"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="copy2", CopySource=src, CopySourceIfNoneMatch=etag,
                       CopySourceIfModifiedSince=past)
    assert _code(exc) == "PreconditionFailed"
    upload = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    part = s3.upload_part_copy(Bucket=b, Key="mp", UploadId=upload, PartNumber=1,
                               CopySource=src, CopySourceIfMatch=etag,
                               CopySourceIfUnmodifiedSince=past)
    assert part["CopyPartResult"]["ETag"] == etag
    s3.abort_multipart_upload(Bucket=b, Key="mp", UploadId=upload)
