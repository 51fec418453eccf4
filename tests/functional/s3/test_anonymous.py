"""Unsigned S3 requests: public-read buckets are readable, everything else AccessDenied.

Driven with an unsigned boto3 client (``signature_version=UNSIGNED``), plain
HTTP (``http.client``, path style and virtual-hosted ``Host: <bucket>.s3.localhost``)
and ``aws s3 ... --no-sign-request``. Each refusal is checked for S3's XML
``<Error>`` (403 ``AccessDenied`` with ``x-amz-request-id``), never a Swift answer.
The Swift-side answers of the paths an unsigned request could be confused with
(``/v1``, ``/v2``, ``/nothing/here``) are checked unchanged.
"""

from __future__ import annotations

import http.client
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud, unsigned_client

BODY = b"0123456789abcdef"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def raw(endpoint: str, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send one plain HTTP request to the proxy (127.0.0.1); return status, headers, body."""
    port = urllib.parse.urlsplit(endpoint).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def assert_denied(answer: tuple[int, dict[str, str], bytes], head: bool = False) -> None:
    """Check an S3 AccessDenied answer: 403, XML ``<Error>``, a request id."""
    status, headers, body = answer
    assert status == 403, answer
    assert headers.get("x-amz-request-id"), headers
    if not head:
        assert headers["content-type"] == "application/xml"
        assert b"<Error><Code>AccessDenied</Code>" in body, body


def _bucket(s3: Any, acl: str | None = None) -> str:
    name = f"anon-{uuid.uuid4().hex[:12]}"
    if acl is None:
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, ACL=acl)
    return name


@pytest.fixture(scope="module")
def public(s3cloud: S3Cloud) -> str:
    """A ``public-read`` bucket with ``k`` (text, metadata), ``d/a`` and ``d/b``."""
    s3 = s3cloud.client()
    b = _bucket(s3, "public-read")
    s3.put_object(Bucket=b, Key="k", Body=BODY, ContentType="text/plain",
                  Metadata={"color": "blue"})
    for key in ("d/a", "d/b"):
        s3.put_object(Bucket=b, Key=key, Body=key.encode())
    return b


def test_unsigned_boto3_reads_objects_of_a_public_bucket(s3cloud: S3Cloud, public: str) -> None:
    anon = unsigned_client(s3cloud.endpoint)
    got = anon.get_object(Bucket=public, Key="k")
    assert got["Body"].read() == BODY
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    head = anon.head_object(Bucket=public, Key="k")
    assert head["ContentLength"] == len(BODY) and head["ETag"] == got["ETag"]
    part = anon.get_object(Bucket=public, Key="k", Range="bytes=2-5")
    assert part["Body"].read() == b"2345"
    assert part["ContentRange"] == f"bytes 2-5/{len(BODY)}"
    assert anon.head_object(Bucket=public, Key="k", Range="bytes=0-3")["ContentLength"] == 4
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=public, Key="k", IfNoneMatch=got["ETag"])
    assert _status(exc) == 304
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=public, Key="k", IfMatch='"0000"')
    assert _code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=public, Key="k", Range="bytes=100-200")
    assert _code(exc) == "InvalidRange"
    owner = s3cloud.demo.project_id
    assert anon.get_object(Bucket=public, Key="k", ExpectedBucketOwner=owner)["Body"].read() \
        == BODY
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=public, Key="k", ExpectedBucketOwner=s3cloud.admin.project_id)
    assert _code(exc) == "AccessDenied"
    # response-* overrides need a signature (S3): else anyone could have a public
    # object served as text/html from the storage host
    for call in (anon.get_object, anon.head_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket=public, Key="k", ResponseContentType="text/html")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    status, _, body = raw(s3cloud.endpoint, "GET",
                          f"/{public}/k?response-content-disposition=inline")
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body
    assert b"cannot be used for anonymous GET requests" in body
    signed = s3cloud.client().get_object(Bucket=public, Key="k",
                                         ResponseContentType="application/x-test")
    assert signed["ContentType"] == "application/x-test"


def test_unsigned_boto3_lists_a_public_bucket(s3cloud: S3Cloud, public: str) -> None:
    anon = unsigned_client(s3cloud.endpoint)
    v1 = anon.list_objects(Bucket=public)
    assert [o["Key"] for o in v1["Contents"]] == ["d/a", "d/b", "k"]
    assert "Owner" not in v1["Contents"][0]  # an anonymous caller is no owner
    v2 = anon.list_objects_v2(Bucket=public, Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["k"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["d/"]
    page = anon.list_objects_v2(Bucket=public, Prefix="d/", MaxKeys=1)
    assert [o["Key"] for o in page["Contents"]] == ["d/a"] and page["IsTruncated"]
    rest = anon.list_objects_v2(Bucket=public, Prefix="d/",
                                ContinuationToken=page["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["d/b"]
    assert anon.head_bucket(Bucket=public)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_missing_key_of_a_public_bucket_is_no_such_key(s3cloud: S3Cloud, public: str) -> None:
    anon = unsigned_client(s3cloud.endpoint)
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=public, Key="nope")
    assert (_code(exc), _status(exc)) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        anon.head_object(Bucket=public, Key="nope")
    assert _status(exc) == 404
    status, headers, body = raw(s3cloud.endpoint, "GET", f"/{public}/nope")
    assert status == 404 and b"<Code>NoSuchKey</Code>" in body
    assert headers["x-amz-request-id"]


def test_plain_http_path_style_and_virtual_hosted(s3cloud: S3Cloud, public: str) -> None:
    status, headers, body = raw(s3cloud.endpoint, "GET", f"/{public}/k")
    assert (status, body) == (200, BODY) and headers["x-amz-request-id"]
    status, _, body = raw(s3cloud.endpoint, "GET", f"/{public}/k",
                          {"Range": "bytes=-3"})
    assert (status, body) == (206, b"def")
    host = {"Host": f"{public}.s3.localhost"}
    status, headers, body = raw(s3cloud.endpoint, "GET", "/k", host)
    assert (status, body) == (200, BODY) and headers["x-amz-request-id"]
    status, headers, _ = raw(s3cloud.endpoint, "HEAD", "/k", host)
    assert status == 200 and headers["content-length"] == str(len(BODY))
    status, _, body = raw(s3cloud.endpoint, "GET", "/?list-type=2&prefix=d/", host)
    assert status == 200 and b"<Key>d/a</Key>" in body and b"<Key>k</Key>" not in body
    status, _, body = raw(s3cloud.endpoint, "GET", f"/{public}?prefix=d/")
    assert status == 200 and b"<ListBucketResult" in body and b"<Key>d/b</Key>" in body
    assert_denied(raw(s3cloud.endpoint, "GET", "/nope", {"Host": "no-such-bucket.s3.localhost"}))


def test_aws_cli_no_sign_request_reads_a_public_object(s3cloud: S3Cloud, public: str,
                                                       tmp_path: Path) -> None:
    got = s3cloud.aws("s3", "cp", f"s3://{public}/k", "-", "--no-sign-request")
    assert got.stdout.encode() == BODY
    listed = s3cloud.aws("s3", "ls", f"s3://{public}/d/", "--no-sign-request")
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == ["a", "b"]
    local = tmp_path / "up.txt"
    local.write_bytes(b"x")
    denied = s3cloud.aws("s3", "cp", str(local), f"s3://{public}/new", "--no-sign-request",
                         check=False)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr


def test_private_and_authenticated_read_buckets_are_denied(s3cloud: S3Cloud) -> None:
    s3, anon = s3cloud.client(), unsigned_client(s3cloud.endpoint)
    for acl in (None, "private", "authenticated-read"):
        b = _bucket(s3, acl)
        s3.put_object(Bucket=b, Key="k", Body=b"secret")
        for call, kwargs in ((anon.get_object, {"Key": "k"}),
                             (anon.get_object, {"Key": "missing"}),
                             (anon.list_objects, {}), (anon.list_objects_v2, {})):
            with pytest.raises(ClientError) as exc:
                call(Bucket=b, **kwargs)
            assert (_code(exc), _status(exc)) == ("AccessDenied", 403), (acl, call)
        with pytest.raises(ClientError) as exc:
            anon.head_object(Bucket=b, Key="k")
        assert _status(exc) == 403
        assert_denied(raw(s3cloud.endpoint, "GET", f"/{b}/k"))
        assert_denied(raw(s3cloud.endpoint, "HEAD", f"/{b}/k"), head=True)
        assert_denied(raw(s3cloud.endpoint, "GET", "/k", {"Host": f"{b}.s3.localhost"}))
        assert_denied(raw(s3cloud.endpoint, "GET", "/", {"Host": f"{b}.s3.localhost"}))
    # the authenticated-read bucket stays readable by signed callers of its project
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"secret"


def test_anonymous_writes_and_sub_resources_are_denied(s3cloud: S3Cloud) -> None:
    s3, anon = s3cloud.client(), unsigned_client(s3cloud.endpoint)
    b = _bucket(s3, "public-read-write")
    s3.put_object(Bucket=b, Key="k", Body=b"kept")
    refused = [
        (anon.put_object, {"Key": "new", "Body": b"x"}),
        (anon.put_object, {"Key": "k", "Body": b"overwrite"}),
        (anon.delete_object, {"Key": "k"}),
        (anon.delete_objects, {"Delete": {"Objects": [{"Key": "k"}]}}),
        (anon.create_multipart_upload, {"Key": "mp"}),
        (anon.copy_object, {"Key": "c", "CopySource": {"Bucket": b, "Key": "k"}}),
        (anon.get_bucket_acl, {}), (anon.put_bucket_acl, {"ACL": "private"}),
        (anon.get_object_acl, {"Key": "k"}), (anon.get_object_tagging, {"Key": "k"}),
        (anon.get_bucket_versioning, {}), (anon.list_object_versions, {}),
        (anon.list_multipart_uploads, {}), (anon.get_bucket_location, {}),
        (anon.get_bucket_cors, {}), (anon.delete_bucket, {}),
    ]
    for call, kwargs in refused:
        with pytest.raises(ClientError) as exc:
            call(Bucket=b, **kwargs)
        assert (_code(exc), _status(exc)) == ("AccessDenied", 403), call
    with pytest.raises(ClientError) as exc:
        anon.create_bucket(Bucket=f"anon-{uuid.uuid4().hex[:12]}")
    assert _code(exc) == "AccessDenied"
    assert_denied(raw(s3cloud.endpoint, "PUT", f"/{b}/raw", body=b"x"))
    assert_denied(raw(s3cloud.endpoint, "DELETE", f"/{b}/k"))
    assert_denied(raw(s3cloud.endpoint, "POST", f"/{b}/k?uploads"))
    assert_denied(raw(s3cloud.endpoint, "PUT", "/raw", {"Host": f"{b}.s3.localhost"}, b"x"))
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"kept"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["k"]
    # the bucket's public reads still work
    assert unsigned_client(s3cloud.endpoint).get_object(Bucket=b, Key="k")["Body"].read() == b"kept"


def test_anonymous_list_buckets_and_missing_buckets_are_denied(s3cloud: S3Cloud) -> None:
    anon = unsigned_client(s3cloud.endpoint)
    with pytest.raises(ClientError) as exc:
        anon.list_buckets()
    assert (_code(exc), _status(exc)) == ("AccessDenied", 403)
    assert_denied(raw(s3cloud.endpoint, "GET", "/"))
    missing = f"anon-missing-{uuid.uuid4().hex[:8]}"
    for call, kwargs in ((anon.get_object, {"Key": "k"}), (anon.list_objects_v2, {})):
        with pytest.raises(ClientError) as exc:
            call(Bucket=missing, **kwargs)
        assert (_code(exc), _status(exc)) == ("AccessDenied", 403)
    assert_denied(raw(s3cloud.endpoint, "GET", "/k", {"Host": f"{missing}.s3.localhost"}))


def test_swift_answers_of_unsigned_requests_are_unchanged(s3cloud: S3Cloud,
                                                          public: str) -> None:
    ep = s3cloud.endpoint
    assert raw(ep, "GET", "/v1")[::2] == (412, b"Bad URL")
    assert raw(ep, "GET", "/v2")[::2] == (412, b"Bad URL")
    assert raw(ep, "PUT", "/v1")[0] == 412
    assert raw(ep, "GET", "/ab/c")[::2] == (404, b"Not Found: the resource could not be found.")
    assert raw(ep, "GET", "//v1/AUTH_x")[0] == 404
    assert raw(ep, "GET", "/auth/v1.0")[0] == 401  # tempauth's login, no user given
    assert raw(ep, "GET", "/", {"Host": "other.swift.localhost"})[::2] == (412, b"Bad URL")
    assert raw(ep, "GET", "/healthcheck")[::2] == (200, b"OK")
    account = f"AUTH_{s3cloud.demo.project_id}"
    status, headers, body = raw(ep, "GET", f"/v1/{account}/{public}/k")  # Swift's read
    assert (status, body) == (200, BODY) and "x-amz-request-id" not in headers
    assert raw(ep, "GET", f"/v1/{account}")[0] == 401
    # a Swift token keeps a bucket-named path Swift's
    _, token = s3cloud.cloud.login()
    status, headers, _ = raw(ep, "GET", f"/{public}/k", {"X-Auth-Token": token})
    assert status == 404 and "x-amz-request-id" not in headers


def test_swift_read_acl_without_listings(s3cloud: S3Cloud) -> None:
    """``.r:*`` alone (set through Swift): objects readable, listing and misses denied."""
    s3, anon = s3cloud.client(), unsigned_client(s3cloud.endpoint)
    b = _bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"open")
    s3cloud.swift().post_container(b, {"X-Container-Read": ".r:*"})
    assert anon.get_object(Bucket=b, Key="k")["Body"].read() == b"open"
    for call, kwargs in ((anon.list_objects_v2, {}), (anon.get_object, {"Key": "nope"})):
        with pytest.raises(ClientError) as exc:  # no ListBucket: a miss is AccessDenied
            call(Bucket=b, **kwargs)
        assert (_code(exc), _status(exc)) == ("AccessDenied", 403)
    s3.put_bucket_acl(Bucket=b, ACL="private")
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=b, Key="k")
    assert _code(exc) == "AccessDenied"


def test_versions_of_a_public_bucket(s3cloud: S3Cloud) -> None:
    """The current version is public; older ones stay the owner's (Swift's rule)."""
    s3, anon = s3cloud.client(), unsigned_client(s3cloud.endpoint)
    b = _bucket(s3, "public-read")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=b, Key="v", Body=b"one")["VersionId"]
    s3.put_object(Bucket=b, Key="v", Body=b"two")
    assert anon.get_object(Bucket=b, Key="v")["Body"].read() == b"two"
    with pytest.raises(ClientError) as exc:  # Swift: versions are the owner's alone
        anon.get_object(Bucket=b, Key="v", VersionId=first)
    assert (_code(exc), _status(exc)) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="v", VersionId=first)["Body"].read() == b"one"
    s3.delete_object(Bucket=b, Key="v")
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=b, Key="v")
    assert _code(exc) == "NoSuchKey"


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> bytes:
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n,
                            Body=body)["ETag"] for n, body in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    return b"".join(parts)


def test_multipart_object_of_a_public_bucket(s3cloud: S3Cloud) -> None:
    """Its parts container shares the bucket's readers (no listings): it reads whole.

    Public from the start (the parts container is made with the bucket's
    readers), or made public later (PutBucketAcl shares them); private again,
    and the parts are refused with the object.
    """
    s3, anon = s3cloud.client(), unsigned_client(s3cloud.endpoint)
    b = _bucket(s3, "public-read")
    whole = _multipart(s3, b, "mp", [b"p" * (5 << 20), b"q" * 1024])
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=b)["Contents"]] == ["mp"]
    assert anon.get_object(Bucket=b, Key="mp")["Body"].read() == whole
    got = anon.get_object(Bucket=b, Key="mp", Range=f"bytes={(5 << 20) - 2}-{5 << 20}")
    assert got["Body"].read() == b"ppq"
    status, headers, _ = raw(s3cloud.endpoint, "HEAD", f"/{b}/mp")
    assert status == 200 and headers["content-length"] == str(len(whole))
    # the uploads in progress stay unlisted: the parts container grants no listings
    s3.create_multipart_upload(Bucket=b, Key="pending")
    conn = s3cloud.swift()
    url, _ = conn.get_auth()
    seg_path = urllib.parse.urlsplit(url).path + f"/{b}+segments"
    headers = conn.head_container(f"{b}+segments")
    assert headers["x-container-read"] == ".r:*"
    status, _, _ = raw(s3cloud.endpoint, "GET", seg_path)  # Swift: no anonymous listing
    assert status in (401, 403)
    status, _, part = raw(s3cloud.endpoint, "GET", f"{seg_path}/{s3cloud.segments(b)[0]}")
    assert status == 200 and part  # a part reads as its object does

    later = _bucket(s3)
    _multipart(s3, later, "mp", [b"r" * 1024])
    assert_denied(raw(s3cloud.endpoint, "GET", f"/{later}/mp"))
    s3.put_bucket_acl(Bucket=later, ACL="public-read")
    assert anon.get_object(Bucket=later, Key="mp")["Body"].read() == b"r" * 1024
    s3.put_bucket_acl(Bucket=later, ACL="private")
    assert_denied(raw(s3cloud.endpoint, "GET", f"/{later}/mp"))
    assert s3.get_object(Bucket=later, Key="mp")["Body"].read() == b"r" * 1024
