"""Bucket and object tagging through boto3 and the ``aws`` CLI, bad input included."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any) -> str:
    name = f"tag-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _tags(**kv: str) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in kv.items()]}


def test_object_tagging_round_trip(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"data", Tagging="team=blue&env=prod",
                  Metadata={"m": "1"}, ContentType="text/x-mine")
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [
        {"Key": "team", "Value": "blue"}, {"Key": "env", "Value": "prod"}]
    s3.put_object_tagging(Bucket=b, Key="k", Tagging=_tags(only="one"))
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [
        {"Key": "only", "Value": "one"}]
    got = s3.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"data"  # the tag POST kept data and metadata
    assert got["Metadata"] == {"m": "1"} and got["ContentType"] == "text/x-mine"
    s3.delete_object_tagging(Bucket=b, Key="k")
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == []


def test_object_tagging_bad_input(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [
            {"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]})
    assert _code(exc) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=b, Key="k", Tagging=_tags(**{"k" * 129: "v"}))
    assert _code(exc) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=b, Key="k", Tagging=_tags(
            **{f"t{i}": "v" for i in range(11)}))
    assert _code(exc) == "BadRequest"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=b, Key="missing")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3cloud.client(s3cloud.admin).get_object_tagging(Bucket=b, Key="k")
    assert _code(exc) == "AccessDenied"


def test_bucket_tagging_round_trip_and_errors(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=b)
    assert _code(exc) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=b, Tagging=_tags(cost="42"))
    assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [{"Key": "cost", "Value": "42"}]
    other = s3cloud.client(s3cloud.admin)
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket=b)  # the registry entry still names its owner
    assert _code(exc) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [
            {"Key": "aws:reserved", "Value": "x"}]})
    assert _code(exc) == "InvalidTag"
    s3.delete_bucket_tagging(Bucket=b)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=b)
    assert _code(exc) == "NoSuchTagSet"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=f"missing-{uuid.uuid4().hex[:8]}")
    assert _code(exc) == "NoSuchBucket"


def test_tagging_with_the_aws_cli(s3cloud: S3Cloud) -> None:
    b = f"tag-{uuid.uuid4().hex[:12]}"
    s3cloud.aws("s3", "mb", f"s3://{b}")
    s3cloud.aws("s3api", "put-object", "--bucket", b, "--key", "k", "--tagging", "a=1")
    s3cloud.aws("s3api", "put-bucket-tagging", "--bucket", b, "--tagging",
                "TagSet=[{Key=owner,Value=ops}]")
    got = json.loads(s3cloud.aws("s3api", "get-bucket-tagging", "--bucket", b).stdout)
    assert got["TagSet"] == [{"Key": "owner", "Value": "ops"}]
    got = json.loads(s3cloud.aws("s3api", "get-object-tagging", "--bucket", b,
                                 "--key", "k").stdout)
    assert got["TagSet"] == [{"Key": "a", "Value": "1"}]
    bad = s3cloud.aws("s3api", "put-object-tagging", "--bucket", b, "--key", "k",
                      "--tagging", "TagSet=[{Key=x,Value=1},{Key=x,Value=2}]", check=False)
    assert bad.returncode != 0 and "InvalidTag" in bad.stderr
    s3cloud.aws("s3", "rm", "--recursive", f"s3://{b}")
    s3cloud.aws("s3", "rb", f"s3://{b}")


def test_object_tagging_by_version_id(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two", Tagging="gen=2")["VersionId"]
    got = s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)
    assert got["TagSet"] == [{"Key": "gen", "Value": "1"}] and got["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [
        {"Key": "gen", "Value": "2"}]
    put = s3.put_object_tagging(Bucket=b, Key="k", VersionId=v1, Tagging=_tags(old="yes"))
    assert put["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "old", "Value": "yes"}]
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v2)["TagSet"] == [
        {"Key": "gen", "Value": "2"}]  # other versions untouched
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    # The current version tagged by id: the current object's tags follow.
    s3.put_object_tagging(Bucket=b, Key="k", VersionId=v2, Tagging=_tags(now="2"))
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [{"Key": "now", "Value": "2"}]
    s3.delete_object_tagging(Bucket=b, Key="k", VersionId=v2)
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == []
    assert s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "old", "Value": "yes"}]
    marker = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=b, Key="k", VersionId=marker)
    assert _code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=b, Key="k", VersionId="1234567890.12345")
    assert _code(exc) == "NoSuchVersion"
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=b, Key="k", VersionId="nope", Tagging=_tags(a="b"))
    assert _code(exc) == "InvalidArgument"


def test_create_bucket_with_tags(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"tag-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b, CreateBucketConfiguration={
        "Tags": [{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": ""}]})
    assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [
        {"Key": "team", "Value": "storage"}, {"Key": "env", "Value": ""}]
    plain = f"tag-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=plain, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=plain)
    assert _code(exc) == "NoSuchTagSet"
    # refused before anything is created: bad tags, a directory bucket's configuration
    for bad, code in (({"Tags": [{"Key": "aws:x", "Value": "v"}]}, "InvalidTag"),
                      ({"Bucket": {"Type": "Directory", "DataRedundancy": "SingleAvailabilityZone"},
                        "Location": {"Type": "AvailabilityZone", "Name": "use1-az4"}},
                       "NotImplemented")):
        name = f"tag-{uuid.uuid4().hex[:12]}"
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration=bad)
        assert _code(exc) == code
        assert name not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_multipart_upload_tags_reach_the_object(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    long_value = "é" * 256  # past Swift's 256-byte user metadata values
    tagging = urllib.parse.urlencode({"team": "storage", "long": long_value})
    up = s3.create_multipart_upload(Bucket=b, Key="mp", Tagging=tagging,
                                    Metadata={"k": "v"})["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"x" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object_tagging(Bucket=b, Key="mp")["TagSet"] == [
        {"Key": "team", "Value": "storage"}, {"Key": "long", "Value": long_value}]
    assert s3.head_object(Bucket=b, Key="mp")["Metadata"] == {"k": "v"}
    with pytest.raises(ClientError) as exc:  # refused when the upload starts, as S3 does
        s3.create_multipart_upload(Bucket=b, Key="bad", Tagging="a=1&a=2")
    assert _code(exc) in ("InvalidArgument", "InvalidTag")
