"""Canned ACLs, tempauth keys, version listings and Swift-s3api parity answers.

Driven with boto3 and the ``aws`` CLI; each refusal is checked for S3's exact
error code. ACL effects are checked from the Swift side too (an anonymous
read of a ``public-read`` bucket's object through the Swift API).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any) -> str:
    name = f"acl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _grants(acl: dict[str, Any]) -> set[tuple[str, str]]:
    return {(g["Grantee"].get("URI") or g["Grantee"].get("ID", ""), g["Permission"])
            for g in acl["Grants"]}


def _anonymous_get(s3cloud: S3Cloud, bucket: str, key: str) -> int:
    url = f"{s3cloud.endpoint}/v1/AUTH_{s3cloud.demo.project_id}/{bucket}/{key}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_canned_bucket_acls_round_trip_and_take_effect(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"data")
    me = s3cloud.demo.project_id
    assert _anonymous_get(s3cloud, b, "k") == 401
    s3.put_bucket_acl(Bucket=b, ACL="public-read")
    assert _grants(s3.get_bucket_acl(Bucket=b)) == {(me, "FULL_CONTROL"), (ALL_USERS, "READ")}
    assert _grants(s3.get_object_acl(Bucket=b, Key="k")) == {(me, "FULL_CONTROL"),
                                                            (ALL_USERS, "READ")}
    assert _anonymous_get(s3cloud, b, "k") == 200
    s3.put_bucket_acl(Bucket=b, ACL="public-read-write")
    assert _grants(s3.get_bucket_acl(Bucket=b)) == {(me, "FULL_CONTROL"), (ALL_USERS, "READ"),
                                                    (AUTH_USERS, "WRITE")}
    s3.put_bucket_acl(Bucket=b, ACL="authenticated-read")
    assert _grants(s3.get_bucket_acl(Bucket=b)) == {(me, "FULL_CONTROL"), (AUTH_USERS, "READ")}
    assert _anonymous_get(s3cloud, b, "k") == 401
    s3.put_bucket_acl(Bucket=b, ACL="private")
    assert _grants(s3.get_bucket_acl(Bucket=b)) == {(me, "FULL_CONTROL")}
    assert _anonymous_get(s3cloud, b, "k") == 401


def test_acl_from_policy_document_and_create(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    name = f"acl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ACL="public-read")
    me = s3cloud.demo.project_id
    assert (ALL_USERS, "READ") in _grants(s3.get_bucket_acl(Bucket=name))
    owner = {"ID": me, "DisplayName": me}
    s3.put_bucket_acl(Bucket=name, AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": me}, "Permission": "FULL_CONTROL"}]})
    assert _grants(s3.get_bucket_acl(Bucket=name)) == {(me, "FULL_CONTROL")}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=name, AccessControlPolicy={"Owner": owner, "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": "someone-else"},
             "Permission": "READ"}]})
    assert _code(exc) == "NotImplemented"


def test_grant_headers_act_as_the_canned_acl_they_amount_to(s3cloud: S3Cloud) -> None:
    """Without ``s3_acl``: grants stating a canned ACL are it, others NotImplemented."""
    s3 = s3cloud.client()
    me = s3cloud.demo.project_id
    everyone = f'uri="{ALL_USERS}"'
    name = f"acl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, GrantRead=everyone)
    assert _grants(s3.get_bucket_acl(Bucket=name)) == {(me, "FULL_CONTROL"),
                                                        (ALL_USERS, "READ")}
    s3.put_object(Bucket=name, Key="k", Body=b"open")
    with urllib.request.urlopen(f"{s3cloud.endpoint}/{name}/k", timeout=10) as resp:
        assert resp.read() == b"open"  # anonymous: the grant took effect
    s3.put_bucket_acl(Bucket=name, GrantFullControl=f'id="{me}"')
    assert _grants(s3.get_bucket_acl(Bucket=name)) == {(me, "FULL_CONTROL")}
    other = f"acl-{uuid.uuid4().hex[:12]}"
    for call, kwargs in ((s3.create_bucket, {"Bucket": other, "GrantRead": 'id="someone"'}),
                         (s3.put_object, {"Bucket": name, "Key": "k2", "Body": b"x",
                                          "GrantRead": everyone})):
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert _code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=name, Key="k2", Body=b"x", ACL="private",
                      GrantFullControl=f'id="{me}"')
    assert _code(exc) == "InvalidRequest"
    assert other not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_objects_may_restate_their_buckets_canned_acl(s3cloud: S3Cloud,
                                                      tmp_path: Path) -> None:
    """``aws s3 sync --acl public-read`` into a public-read bucket: the object has it."""
    s3 = s3cloud.client()
    b = f"acl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b, ACL="public-read")
    s3.put_object(Bucket=b, Key="k", Body=b"x", ACL="public-read")
    s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k"}, ACL="public-read")
    uid = s3.create_multipart_upload(Bucket=b, Key="m", ACL="public-read")["UploadId"]
    s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=uid)
    s3.put_object_acl(Bucket=b, Key="k", ACL="public-read")
    for other in ("public-read-write", "authenticated-read"):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=b, Key="k2", Body=b"x", ACL=other)  # type: ignore[arg-type]
        assert _code(exc) == "NotImplemented", other
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<p>hi</p>")
    s3cloud.aws("s3", "sync", str(tmp_path / "site"), f"s3://{b}/site", "--acl", "public-read",
                "--only-show-errors")
    assert _anonymous_get(s3cloud, b, "site/index.html") == 200


def test_acl_bad_input(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=b, ACL="no-such-acl")  # type: ignore[arg-type]
    assert _code(exc) == "InvalidArgument"
    for call, kwargs in ((s3.put_object, {"Body": b"x"}),
                         (s3.copy_object, {"CopySource": {"Bucket": b, "Key": "k"}}),
                         (s3.create_multipart_upload, {})):
        with pytest.raises(ClientError) as exc:  # objects share their bucket's ACL
            call(Bucket=b, Key="k2", ACL="public-read", **kwargs)
        assert _code(exc) == "NotImplemented", call
    s3.copy_object(Bucket=b, Key="k2", CopySource={"Bucket": b, "Key": "k"}, ACL="private")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_acl(Bucket=f"missing-{uuid.uuid4().hex[:8]}")
    assert _code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3cloud.client(s3cloud.admin).get_bucket_acl(Bucket=b)
    assert _code(exc) == "AccessDenied"


def test_acl_with_the_aws_cli(s3cloud: S3Cloud) -> None:
    b = f"acl-{uuid.uuid4().hex[:12]}"
    s3cloud.aws("s3", "mb", f"s3://{b}")
    s3cloud.aws("s3api", "put-bucket-acl", "--bucket", b, "--acl", "public-read")
    got = json.loads(s3cloud.aws("s3api", "get-bucket-acl", "--bucket", b).stdout)
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} \
        in got["Grants"]
    bad = s3cloud.aws("s3api", "put-bucket-acl", "--bucket", b, "--acl", "bogus", check=False)
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr
    s3cloud.aws("s3", "rb", f"s3://{b}")


def test_tempauth_keys_act_on_the_tempauth_account(s3cloud: S3Cloud) -> None:
    key = s3cloud.cloud.config.tempauth.users["test:tester"].key
    s3 = boto3.client("s3", endpoint_url=s3cloud.endpoint, region_name="us-east-1",
                      aws_access_key_id="test:tester", aws_secret_access_key=key,
                      config=Config(retries={"max_attempts": 1}))
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"swift side")
    assert s3.list_buckets()["Owner"]["ID"] == "test:tester"
    storage, token = s3cloud.cloud.login("test:tester")
    req = urllib.request.Request(f"{storage}/{b}/k", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"swift side"
    wrong = boto3.client("s3", endpoint_url=s3cloud.endpoint, region_name="us-east-1",
                         aws_access_key_id="test:tester", aws_secret_access_key="wrong",
                         config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        wrong.list_buckets()
    assert _code(exc) == "SignatureDoesNotMatch"
    nobody = boto3.client("s3", endpoint_url=s3cloud.endpoint, region_name="us-east-1",
                          aws_access_key_id="test:nobody", aws_secret_access_key="x",
                          config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        nobody.list_buckets()
    assert _code(exc) == "InvalidAccessKeyId"
    s3.delete_object(Bucket=b, Key="k")
    s3.delete_bucket(Bucket=b)


def test_object_versions_of_an_unversioned_bucket(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    for key in ("a", "d/b", "d/c"):
        s3.put_object(Bucket=b, Key=key, Body=b"x")
    got = s3.list_object_versions(Bucket=b, Delimiter="/")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in got["Versions"]] == [
        ("a", "null", True)]
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["d/"]
    assert s3.get_object(Bucket=b, Key="a", VersionId="null")["Body"].read() == b"x"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=b, Key="a", VersionId="123")
    assert _code(exc) == "NoSuchVersion"
    listed = json.loads(s3cloud.aws("s3api", "list-object-versions", "--bucket", b).stdout)
    assert sorted(v["Key"] for v in listed["Versions"]) == ["a", "d/b", "d/c"]


def test_swift_parity_answers(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"abcdefghij")
    head = s3.head_object(Bucket=b, Key="k", Range="bytes=1-5")
    assert head["ContentLength"] == 5
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=b, Key="k", Body=b"x", IfNoneMatch="*")
    assert _code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:  # as Swift's s3api (S3 takes an ETag only)
        s3.put_object(Bucket=b, Key="n", Body=b"x", IfMatch="*")
    assert _code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.get_object_lock_configuration(Bucket=b)
    assert _code(exc) == "ObjectLockConfigurationNotFoundError"
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Key="k", UploadId="x",
                       PartNumber=1, Body=b"x")
    assert _code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        _put_with(s3, b, {"X-Delete-After": "-1"})
    assert _code(exc) == "InvalidArgument"
    _put_with(s3, b, {"X-Delete-After": "3600"})
    assert 'rule-id="swift-object-expiration"' in s3.head_object(Bucket=b, Key="e")[
        "Expiration"]
    when = s3.list_objects_v2(Bucket=b)["Contents"][0]["LastModified"]
    assert when.microsecond == 0  # whole seconds, as Swift's s3api lists them


def test_multipart_keeps_content_headers(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    uid = s3.create_multipart_upload(
        Bucket=b, Key="mp", ContentType="foo/bar", ContentEncoding="gzip",
        ContentLanguage="en-US", ContentDisposition="attachment", CacheControl="no-cache",
        Expires="Thu, 01 Dec 1994 16:00:00 GMT", Metadata={"baz": "quux"})["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1,
                          Body=b"z" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    head = s3.head_object(Bucket=b, Key="mp")["ResponseMetadata"]["HTTPHeaders"]
    assert {k: head.get(k) for k in ("content-type", "content-encoding", "content-language",
                                     "content-disposition", "cache-control", "expires",
                                     "x-amz-meta-baz")} == {
        "content-type": "foo/bar", "content-encoding": "gzip", "content-language": "en-US",
        "content-disposition": "attachment", "cache-control": "no-cache",
        "expires": "Thu, 01 Dec 1994 16:00:00 GMT", "x-amz-meta-baz": "quux"}


def _put_with(s3: Any, bucket: str, headers: dict[str, str]) -> Any:
    """PutObject with extra raw request headers (boto3 has no parameter for them)."""
    def add(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value
    s3.meta.events.register_first("before-sign.s3.PutObject", add)
    try:
        return s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", add)


def test_unconfigured_bucket_features_answer_as_s3(s3cloud: S3Cloud) -> None:
    """What a bucket without a policy, website, ... answers (read by Terraform, s3cmd).

    Each GET once fell through to ListObjects, whose answer the clients parsed
    as an empty configuration; writes stay NotImplemented.
    """
    s3 = s3cloud.client()
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    for call, code in ((s3.get_bucket_policy, "NoSuchBucketPolicy"),
                       (s3.get_bucket_policy_status, "NoSuchBucketPolicy"),
                       (s3.get_bucket_encryption,
                        "ServerSideEncryptionConfigurationNotFoundError"),
                       (s3.get_bucket_website, "NoSuchWebsiteConfiguration"),
                       (s3.get_bucket_replication, "ReplicationConfigurationNotFoundError"),
                       (s3.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
                       (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration"),
                       (s3.get_object_lock_configuration,
                        "ObjectLockConfigurationNotFoundError")):
        with pytest.raises(ClientError) as exc:
            call(Bucket=b)
        assert (_code(exc), exc.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            code, 404), call
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_analytics_configuration(Bucket=b, Id="x")
    assert _code(exc) == "NoSuchConfiguration"
    assert s3.get_bucket_request_payment(Bucket=b)["Payer"] == "BucketOwner"
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=b)
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=b)
    assert "TopicConfigurations" not in s3.get_bucket_notification_configuration(Bucket=b)
    for lister in (s3.list_bucket_analytics_configurations,
                   s3.list_bucket_metrics_configurations,
                   s3.list_bucket_inventory_configurations,
                   s3.list_bucket_intelligent_tiering_configurations):
        got = lister(Bucket=b)
        assert got["IsTruncated"] is False and "Contents" not in got, lister
    s3.delete_bucket_policy(Bucket=b)  # nothing to delete: 204, as S3
    s3.delete_public_access_block(Bucket=b)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=b, Policy="{}")
    assert _code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True})
    assert _code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=f"missing-{uuid.uuid4().hex[:8]}")
    assert _code(exc) == "NoSuchBucket"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["k"]
    out = s3cloud.aws("s3api", "get-bucket-policy", "--bucket", b, check=False)
    assert out.returncode != 0 and "NoSuchBucketPolicy" in out.stderr


def test_requests_for_features_not_offered_are_refused(s3cloud: S3Cloud,
                                                       tmp_path: Path) -> None:
    """Encryption, other storage classes, object lock: refused, never silently ignored."""
    s3 = s3cloud.client()
    b = _bucket(s3)
    for kwargs, code in (({"ServerSideEncryption": "AES256"}, "NotImplemented"),
                         ({"ServerSideEncryption": "aws:kms"}, "NotImplemented"),
                         ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
                          "NotImplemented"),
                         ({"StorageClass": "GLACIER"}, "InvalidStorageClass"),
                         ({"ObjectLockLegalHoldStatus": "ON"}, "InvalidRequest"),
                         ({"WebsiteRedirectLocation": "/x"}, "NotImplemented")):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=b, Key="k", Body=b"x", **kwargs)
        assert _code(exc) == code, kwargs
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=b, Key="m", ServerSideEncryption="AES256")
    assert _code(exc) == "NotImplemented"
    assert "Contents" not in s3.list_objects_v2(Bucket=b)
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    s3.put_object(Bucket=b, Key="k", Body=b"x", StorageClass="STANDARD")
    with pytest.raises(ClientError) as exc:  # one storage class: nothing to restore
        s3.restore_object(Bucket=b, Key="k", RestoreRequest={"Days": 1})
    assert _code(exc) == "NotImplemented"
    src = tmp_path / "sse.txt"
    src.write_bytes(b"data")
    out = s3cloud.aws("s3", "cp", str(src), f"s3://{b}/sse.txt", "--sse", "AES256",
                      check=False)
    assert out.returncode != 0 and "Server-side encryption is not supported" in out.stderr
