"""S3 bucket versioning driven with boto3: configuration, versions, delete markers.

Each step checks what S3 answers (version ids, ``IsLatest``, delete-marker
headers, error codes) and, where it matters, what the Swift side holds.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud

MIB = 1024 * 1024


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _versioned_bucket(s3: Any, status: str = "Enabled") -> str:
    name = f"ver-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    return name


def _versions(s3: Any, bucket: str, **kw: Any) -> list[tuple[str, str, bool, bool]]:
    """Return (key, version id, is latest, is delete marker) rows, as listed."""
    got = s3.list_object_versions(Bucket=bucket, **kw)
    rows = [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in got.get("Versions", [])]
    rows += [(m["Key"], m["VersionId"], m["IsLatest"], True)
             for m in got.get("DeleteMarkers", [])]
    return rows


def _empty(s3: Any, bucket: str) -> None:
    for key, vid, _, _ in _versions(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    s3.delete_bucket(Bucket=bucket)


def test_configuration_never_returns_to_unversioned(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"ver-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b)
    got = s3.get_bucket_versioning(Bucket=b)
    assert "Status" not in got
    for status in ("Suspended", "Enabled", "Suspended"):
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": status})
        assert s3.get_bucket_versioning(Bucket=b)["Status"] == status
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Off"})
    assert _code(exc) == "MalformedXML"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket=f"nope-{uuid.uuid4().hex[:8]}")
    assert _code(exc) == "NoSuchBucket"
    s3.delete_bucket(Bucket=b)


def test_versions_reads_and_delete_markers(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _versioned_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    got = s3.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.head_object(Bucket=b, Key="k", VersionId=v1)["ContentLength"] == 3
    assert _versions(s3, b) == [("k", v2, True, False), ("k", v1, False, False)]

    deleted = s3.delete_object(Bucket=b, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="k")
    assert _code(exc) == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == \
        "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="k", VersionId=marker)
    assert _code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="k", VersionId=marker)
    assert _status(exc) == 405
    rows = _versions(s3, b)
    assert ("k", marker, True, True) in rows
    assert ("k", v2, False, False) in rows and ("k", v1, False, False) in rows
    assert s3.list_objects_v2(Bucket=b).get("KeyCount") == 0

    # removing the marker brings the newest version back; removing it, the older one
    out = s3.delete_object(Bucket=b, Key="k", VersionId=marker)
    assert out["DeleteMarker"] is True and out["VersionId"] == marker
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    assert s3.delete_object(Bucket=b, Key="k", VersionId=v2)["VersionId"] == v2
    got = s3.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"one" and got["VersionId"] == v1
    assert _versions(s3, b) == [("k", v1, True, False)]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="k", VersionId=v2)
    assert _code(exc) == "NoSuchVersion"
    _empty(s3, b)


def test_listing_markers_prefix_and_delimiter(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _versioned_bucket(s3)
    ids: dict[str, list[str]] = {}
    for key in ("a", "d/x", "d/y", "e"):
        for n in range(2):
            ids.setdefault(key, []).insert(0, s3.put_object(Bucket=b, Key=key,
                                                            Body=b"%d" % n)["VersionId"])
    full = _versions(s3, b)
    assert [(k, v) for k, v, _, _ in full] == [(k, v) for k in ("a", "d/x", "d/y", "e")
                                               for v in ids[k]]
    assert [latest for _, _, latest, _ in full] == [True, False] * 4
    top = s3.list_object_versions(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["d/"]
    assert {v["Key"] for v in top["Versions"]} == {"a", "e"}
    assert [(k, v) for k, v, _, _ in _versions(s3, b, Prefix="d/")] == \
        [("d/x", ids["d/x"][0]), ("d/x", ids["d/x"][1]), ("d/y", ids["d/y"][0]),
         ("d/y", ids["d/y"][1])]
    page = s3.list_object_versions(Bucket=b, MaxKeys=3)
    assert page["IsTruncated"] is True and len(page["Versions"]) == 3
    assert (page["NextKeyMarker"], page["NextVersionIdMarker"]) == ("d/x", ids["d/x"][0])
    rest = _versions(s3, b, KeyMarker=page["NextKeyMarker"],
                     VersionIdMarker=page["NextVersionIdMarker"])
    assert [(k, v) for k, v, _, _ in rest] == [(k, v) for k, v, _, _ in full[3:]]
    after = _versions(s3, b, KeyMarker="d/y")
    assert [k for k, _, _, _ in after] == ["e", "e"]
    # the paginator walks every version exactly once
    walked = [v["VersionId"] for p in s3.get_paginator("list_object_versions").paginate(
        Bucket=b, PaginationConfig={"PageSize": 3}) for v in p.get("Versions", [])]
    assert walked == [v for _, v, _, _ in full]
    _empty(s3, b)


def test_suspended_null_version_and_copy_of_a_version(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"ver-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"plain")  # before versioning: the null version
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"versioned")["VersionId"]
    rows = _versions(s3, b)
    assert rows[0] == ("k", v1, True, False) and len(rows) == 2
    old = rows[1][1]
    assert s3.get_object(Bucket=b, Key="k", VersionId=old)["Body"].read() == b"plain"

    copied = s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k",
                                                           "VersionId": old})
    assert copied["CopySourceVersionId"] == old and copied["VersionId"]
    assert s3.get_object(Bucket=b, Key="c")["Body"].read() == b"plain"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=b, Key="c2", CopySource={"Bucket": b, "Key": "k",
                                                       "VersionId": "1.00000"})
    assert _code(exc) == "NoSuchVersion"

    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=b, Key="k", Body=b"null again")
    got = s3.get_object(Bucket=b, Key="k", VersionId="null")
    assert got["Body"].read() == b"null again"
    assert ("k", "null", True, False) in _versions(s3, b)
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"versioned"
    _empty(s3, b)


def test_multipart_completion_is_a_version(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _versioned_bucket(s3)
    first = s3.put_object(Bucket=b, Key="big", Body=b"small")["VersionId"]
    up = s3.create_multipart_upload(Bucket=b, Key="big")["UploadId"]
    parts = []
    for n, body in ((1, b"a" * (5 * MIB)), (2, b"b" * 10)):
        etag = s3.upload_part(Bucket=b, Key="big", UploadId=up, PartNumber=n,
                              Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    done = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=up,
                                        MultipartUpload={"Parts": parts})
    assert done["VersionId"] and done["VersionId"] != first
    assert done["ETag"].endswith('-2"')
    head = s3.head_object(Bucket=b, Key="big")
    assert head["ContentLength"] == 5 * MIB + 10 and head["VersionId"] == done["VersionId"]
    assert head["ETag"] == done["ETag"]
    rows = s3.list_object_versions(Bucket=b)["Versions"]
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in rows] == [
        (done["VersionId"], True, 5 * MIB + 10), (first, False, 5)]
    assert rows[0]["ETag"] == done["ETag"]
    assert s3.get_object(Bucket=b, Key="big", VersionId=first)["Body"].read() == b"small"
    # a streamed body's checksum is kept with its version
    put = s3.put_object(Bucket=b, Key="sum", Body=b"c" * (2 * MIB), ChecksumAlgorithm="SHA256")
    for kw in ({}, {"VersionId": put["VersionId"]}):
        head = s3.head_object(Bucket=b, Key="sum", ChecksumMode="ENABLED", **kw)
        assert head["ChecksumSHA256"] == put["ChecksumSHA256"]
    _empty(s3, b)


def test_version_errors(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _versioned_bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="k", VersionId="not-a-version")
    assert _code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="k", VersionId="1.00000")
    assert _code(exc) == "NoSuchVersion"
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=b, VersionIdMarker="1.00000")
    assert _code(exc) == "InvalidArgument"
    # a bucket holding only old versions and markers is not empty
    s3.delete_object(Bucket=b, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=b)
    assert _code(exc) == "BucketNotEmpty"
    _empty(s3, b)


def test_delete_objects_with_versions(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _versioned_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="a", Body=b"1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=b, Key="b", Body=b"x")
    got = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "a", "VersionId": v2}, {"Key": "b"}]})
    deleted = {d["Key"]: d for d in got["Deleted"]}
    assert deleted["a"]["VersionId"] == v2 and "DeleteMarker" not in deleted["a"]
    marker = deleted["b"]["DeleteMarkerVersionId"]
    assert deleted["b"]["DeleteMarker"] is True and marker
    assert s3.get_object(Bucket=b, Key="a")["Body"].read() == b"1"
    got = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "b", "VersionId": marker}, {"Key": "a", "VersionId": "bad id"}]})
    assert got["Deleted"] == [{"Key": "b", "VersionId": marker, "DeleteMarker": True,
                               "DeleteMarkerVersionId": marker}]
    assert [(e["Key"], e["Code"]) for e in got["Errors"]] == [("a", "InvalidArgument")]
    assert s3.get_object(Bucket=b, Key="b")["Body"].read() == b"x"
    assert ("a", v1, True, False) in _versions(s3, b)
    _empty(s3, b)
