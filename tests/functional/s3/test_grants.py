"""Per-user S3 ACLs (``[proxy] s3_acl = true``), driven with boto3.

Three tempauth users of one account, as in Swift's SAIO: ``test:tester`` and
``test:tester2`` own the account (``.admin``), ``test:tester3`` does not. In
this mode a bucket or object belongs to the user who wrote it and the grants
decide everything else; a project's EC2 credential (Keystone) acts as
``project:user``, and another project's buckets stay AccessDenied whatever
their grants say. Each refusal is checked for S3's exact error code.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.compat.run import EXTRA_USERS
from tests.functional.proxy.cloud import Cloud, start_cloud
from tests.functional.s3.conftest import Keys, ec2_credentials, unsigned_client

USERS = {"test:tester": "testing", "test:tester2": "testing2", "test:tester3": "testing3"}
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("s3grants"), extra_config=EXTRA_USERS,
                    section_lines={"proxy": "s3_acl = true"})
    try:
        yield c
    finally:
        c.down()


def _client(cloud: Cloud, access: str, secret: str | None = None) -> Any:
    return boto3.client("s3", endpoint_url=cloud.proxy_url, region_name="us-east-1",
                        aws_access_key_id=access,
                        aws_secret_access_key=secret or USERS[access],
                        config=Config(retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


@pytest.fixture(scope="module")
def users(cloud: Cloud) -> dict[str, Any]:
    return {name.split(":")[1]: _client(cloud, name) for name in USERS}


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _denied(call: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    assert _code(exc) in ("AccessDenied", "403"), exc.value.response


def _grants(acl: dict[str, Any]) -> set[tuple[str, str]]:
    return {(g["Grantee"].get("URI") or g["Grantee"].get("ID", ""), g["Permission"])
            for g in acl["Grants"]}


def _bucket(s3: Any) -> str:
    name = f"g-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _policy(owner: str, *grants: tuple[str, str]) -> dict[str, Any]:
    return {"Owner": {"ID": owner}, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": who}, "Permission": perm}
        for who, perm in grants]}


def test_info_says_s3_acl(cloud: Cloud) -> None:
    import json
    with urllib.request.urlopen(f"{cloud.proxy_url}/info", timeout=10) as resp:
        assert json.load(resp)["s3api"]["s3_acl"] is True


def test_buckets_belong_to_their_creator(users: dict[str, Any]) -> None:
    tester, tester2, tester3 = users["tester"], users["tester2"], users["tester3"]
    b = _bucket(tester)
    tester.put_object(Bucket=b, Key="k", Body=b"data")
    acl = tester.get_bucket_acl(Bucket=b)
    assert acl["Owner"]["ID"] == "test:tester"
    assert _grants(acl) == {("test:tester", "FULL_CONTROL")}
    for other in (tester2, tester3):  # an account owner is not the bucket's owner
        _denied(other.list_objects_v2, Bucket=b)
        _denied(other.get_object, Bucket=b, Key="k")
        _denied(other.put_object, Bucket=b, Key="k2", Body=b"x")
        _denied(other.delete_bucket, Bucket=b)
        _denied(other.get_bucket_acl, Bucket=b)
    with pytest.raises(ClientError) as exc:
        tester2.create_bucket(Bucket=b)
    assert _code(exc) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as exc:
        tester.create_bucket(Bucket=b)
    assert _code(exc) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as exc:  # not an owner of the account
        tester3.create_bucket(Bucket=f"g-{uuid.uuid4().hex[:12]}")
    assert _code(exc) == "AccessDenied"
    assert _grants(tester.get_bucket_acl(Bucket=b)) == {("test:tester", "FULL_CONTROL")}


def test_list_buckets_shows_what_the_caller_may_read(users: dict[str, Any]) -> None:
    """Swift s3api's ``check_bucket_owner``: another user's private bucket is not listed."""
    tester, tester2, tester3 = users["tester"], users["tester2"], users["tester3"]
    mine, shared = _bucket(tester), _bucket(tester)
    tester.put_bucket_acl(Bucket=shared, GrantRead='id="test:tester3"',
                          GrantFullControl='id="test:tester"')
    theirs = _bucket(tester2)

    def listed(s3: Any) -> set[str]:
        return {x["Name"] for x in s3.list_buckets()["Buckets"]} & {mine, shared, theirs}

    assert listed(tester) == {mine, shared}
    assert listed(tester2) == {theirs}
    assert listed(tester3) == {shared}


def test_bucket_and_object_grants_take_effect(users: dict[str, Any]) -> None:
    tester, tester3 = users["tester"], users["tester3"]
    b = _bucket(tester)
    tester.put_object(Bucket=b, Key="k", Body=b"data")
    tester.put_bucket_acl(Bucket=b, AccessControlPolicy=_policy(
        "test:tester", ("test:tester", "FULL_CONTROL"), ("test:tester3", "READ")))
    assert [o["Key"] for o in tester3.list_objects_v2(Bucket=b)["Contents"]] == ["k"]
    _denied(tester3.get_bucket_policy, Bucket=b)  # READ lists; the configuration is the owner's
    with pytest.raises(ClientError) as exc:
        tester.get_bucket_policy(Bucket=b)
    assert _code(exc) == "NoSuchBucketPolicy"
    _denied(tester3.get_object, Bucket=b, Key="k")  # the object is still private
    tester.put_object_acl(Bucket=b, Key="k", GrantRead='id="test:tester3"')
    assert tester3.get_object(Bucket=b, Key="k")["Body"].read() == b"data"
    _denied(tester3.get_object_acl, Bucket=b, Key="k")
    _denied(tester3.put_object, Bucket=b, Key="mine", Body=b"x")
    tester.put_bucket_acl(Bucket=b, GrantWrite='id="test:tester3"',
                          GrantFullControl='id="test:tester"')
    tester3.put_object(Bucket=b, Key="mine", Body=b"x")
    assert tester3.get_object_acl(Bucket=b, Key="mine")["Owner"]["ID"] == "test:tester3"
    _denied(tester.get_object, Bucket=b, Key="mine")  # the writer's, not the bucket's
    tester3.put_object(Bucket=b, Key="shared", Body=b"y", ACL="bucket-owner-read")
    assert tester.get_object(Bucket=b, Key="shared")["Body"].read() == b"y"
    tester.delete_object(Bucket=b, Key="mine")  # deleting needs WRITE on the bucket only


def test_an_acl_never_changes_the_owner(users: dict[str, Any]) -> None:
    tester = users["tester"]
    b = _bucket(tester)
    with pytest.raises(ClientError) as exc:
        tester.put_bucket_acl(Bucket=b, AccessControlPolicy=_policy(
            "test:tester2", ("test:tester2", "FULL_CONTROL")))
    assert _code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        tester.put_bucket_acl(Bucket=b, ACL="public-read", GrantRead='id="test:tester3"')
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        tester.put_bucket_acl(Bucket=b, GrantRead='emailAddress="a@example.com"')
    assert _code(exc) == "NotImplemented"


def test_entities_in_a_policy_are_dropped(cloud: Cloud, users: dict[str, Any]) -> None:
    tester = users["tester"]
    b = _bucket(tester)
    url = tester.generate_presigned_url("put_bucket_acl", Params={"Bucket": b}, ExpiresIn=60)
    url = url.replace("?", "/?", 1)  # SigV2 signs the bucket path with its slash
    body = (f'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>'
            f"<AccessControlPolicy><Owner><ID>test:tester</ID></Owner><AccessControlList>"
            f'<Grant><Grantee {XSI} xsi:type="CanonicalUser"><ID>id&xxe;</ID></Grantee>'
            f"<Permission>WRITE</Permission></Grant></AccessControlList>"
            f"</AccessControlPolicy>").encode()
    # SigV2 presigned: the (empty) Content-Type is signed, so urllib must not add one
    req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert b"root:" not in resp.read()
    assert _grants(tester.get_bucket_acl(Bucket=b)) == {("id", "WRITE")}


def test_copy_needs_read_on_its_source(users: dict[str, Any]) -> None:
    tester, tester3 = users["tester"], users["tester3"]
    src, dst = _bucket(tester), _bucket(tester)
    tester.put_object(Bucket=src, Key="s", Body=b"source")
    tester.put_bucket_acl(Bucket=dst, GrantWrite='id="test:tester3"',
                          GrantFullControl='id="test:tester"')
    _denied(tester3.copy_object, Bucket=dst, Key="c", CopySource={"Bucket": src, "Key": "s"})
    tester.put_object_acl(Bucket=src, Key="s", GrantRead='id="test:tester3"')
    tester3.copy_object(Bucket=dst, Key="c", CopySource={"Bucket": src, "Key": "s"})
    acl = tester3.get_object_acl(Bucket=dst, Key="c")  # the copy is its copier's
    assert acl["Owner"]["ID"] == "test:tester3"
    assert _grants(acl) == {("test:tester3", "FULL_CONTROL")}


def test_multipart_object_gets_the_acl_asked_at_create(users: dict[str, Any]) -> None:
    tester, tester3 = users["tester"], users["tester3"]
    b = _bucket(tester)
    up = tester.create_multipart_upload(Bucket=b, Key="mp", ACL="authenticated-read")
    etag = tester.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                              Body=b"p" * 1024)["ETag"]
    tester.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                 "ETag": etag}]})
    assert ("http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "READ") in \
        _grants(tester.get_object_acl(Bucket=b, Key="mp"))
    assert tester3.get_object(Bucket=b, Key="mp")["Body"].read() == b"p" * 1024


def test_swift_written_objects_are_the_account_owners(cloud: Cloud,
                                                      users: dict[str, Any]) -> None:
    tester, tester2, tester3 = users["tester"], users["tester2"], users["tester3"]
    b = _bucket(tester)
    tester.put_bucket_acl(Bucket=b, GrantRead='id="test:tester3"',
                          GrantFullControl='id="test:tester"')
    url, token = cloud.login("test:tester")
    req = urllib.request.Request(f"{url}/{b}/swift-obj", data=b"from swift", method="PUT",
                                 headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    assert tester.get_object(Bucket=b, Key="swift-obj")["Body"].read() == b"from swift"
    _denied(tester3.get_object, Bucket=b, Key="swift-obj")  # a READ grant on the bucket
    # no stored policy: the account's owners control it, whoever owns the bucket
    assert tester2.get_object(Bucket=b, Key="swift-obj")["Body"].read() == b"from swift"
    acl = tester.get_object_acl(Bucket=b, Key="swift-obj")
    assert acl["Owner"]["ID"] == "test:tester"


def test_projects_stay_isolated_whatever_the_grants(cloud: Cloud) -> None:
    demo: Keys = ec2_credentials(cloud, "nubis-demo")
    admin: Keys = ec2_credentials(cloud, "nubis-admin")
    mine, theirs = _client(cloud, demo.access, demo.secret), \
        _client(cloud, admin.access, admin.secret)
    b = f"g-{uuid.uuid4().hex[:12]}"
    mine.create_bucket(Bucket=b, ACL="public-read-write")
    mine.put_object(Bucket=b, Key="k", Body=b"d", ACL="public-read")
    owner = mine.get_bucket_acl(Bucket=b)["Owner"]["ID"]
    assert owner.startswith(f"{demo.project_id}:")
    _denied(theirs.list_objects_v2, Bucket=b)
    _denied(theirs.get_object, Bucket=b, Key="k")
    _denied(theirs.put_object, Bucket=b, Key="k2", Body=b"x")
    with pytest.raises(ClientError) as exc:
        theirs.create_bucket(Bucket=b)
    assert _code(exc) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as exc:
        _client(cloud, "test:tester", "wrong").list_buckets()
    assert _code(exc) == "SignatureDoesNotMatch"


def test_a_swift_users_bucket_acl_headers_do_not_open_s3(cloud: Cloud,
                                                         users: dict[str, Any]) -> None:
    tester, tester3 = users["tester"], users["tester3"]
    b = _bucket(tester)
    url, token = cloud.login("test:tester")
    req = urllib.request.Request(f"{url}/{b}", method="POST", headers={
        "X-Auth-Token": token, "X-Container-Read": ".r:*,.rlistings"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    _denied(tester3.list_objects_v2, Bucket=b)  # S3 is governed by the S3 policy
    _denied(unsigned_client(cloud.proxy_url).list_objects_v2, Bucket=b)
    try:
        urllib.request.urlopen(f"{url}/{b}?format=json", timeout=10).close()
    except urllib.error.HTTPError as exc:  # pragma: no cover - the Swift ACL does open it
        pytest.fail(f"anonymous Swift listing refused: {exc.code}")


def test_anonymous_reads_follow_all_users_grants(cloud: Cloud, users: dict[str, Any]) -> None:
    """Unsigned requests hold AllUsers' grants (never AuthenticatedUsers'), reads only."""
    tester, tester3 = users["tester"], users["tester3"]
    anon = unsigned_client(cloud.proxy_url)
    b = f"g-{uuid.uuid4().hex[:12]}"
    tester.create_bucket(Bucket=b, ACL="public-read")
    tester.put_object(Bucket=b, Key="pub", Body=b"p", ACL="public-read")
    tester.put_object(Bucket=b, Key="priv", Body=b"s")
    tester.put_object(Bucket=b, Key="auth", Body=b"a", ACL="authenticated-read")
    assert anon.get_object(Bucket=b, Key="pub")["Body"].read() == b"p"
    assert anon.get_object(Bucket=b, Key="pub", Range="bytes=0-0")["ContentLength"] == 1
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=b)["Contents"]] == [
        "auth", "priv", "pub"]
    _denied(anon.get_object, Bucket=b, Key="priv")  # the bucket's READ is no object's
    _denied(anon.get_object, Bucket=b, Key="auth")
    assert tester3.get_object(Bucket=b, Key="auth")["Body"].read() == b"a"
    with pytest.raises(ClientError) as exc:  # the bucket's READ lets anyone list: NoSuchKey
        anon.get_object(Bucket=b, Key="missing")
    assert _code(exc) == "NoSuchKey"
    for call, kwargs in ((anon.get_object_acl, {"Key": "pub"}), (anon.get_bucket_acl, {}),
                         (anon.delete_object, {"Key": "pub"}),
                         (anon.put_object, {"Key": "new", "Body": b"x"})):
        _denied(call, Bucket=b, **kwargs)
    # a private bucket: a public-read object is readable, the rest is not
    private = _bucket(tester)
    tester.put_object(Bucket=private, Key="pub", Body=b"p", ACL="public-read")
    up = tester.create_multipart_upload(Bucket=private, Key="mp", ACL="public-read")
    etag = tester.upload_part(Bucket=private, Key="mp", UploadId=up["UploadId"],
                              PartNumber=1, Body=b"m" * 1024)["ETag"]
    tester.complete_multipart_upload(Bucket=private, Key="mp", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                 "ETag": etag}]})
    assert anon.get_object(Bucket=private, Key="pub")["Body"].read() == b"p"
    assert anon.get_object(Bucket=private, Key="mp")["Body"].read() == b"m" * 1024
    _denied(anon.list_objects_v2, Bucket=private)
    _denied(anon.get_object, Bucket=private, Key="missing")  # no ListBucket: AccessDenied
    # AuthenticatedUsers READ and AllUsers WRITE open nothing to an unsigned caller
    for acl in ("authenticated-read", "public-read-write"):
        other = f"g-{uuid.uuid4().hex[:12]}"
        tester.create_bucket(Bucket=other, ACL=acl)
        if acl == "authenticated-read":
            _denied(anon.list_objects_v2, Bucket=other)
            assert tester3.list_objects_v2(Bucket=other)["KeyCount"] == 0
        _denied(anon.put_object, Bucket=other, Key="k", Body=b"x")
    _denied(anon.list_buckets)
