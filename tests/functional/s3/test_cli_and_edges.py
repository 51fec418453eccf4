"""The ``aws`` CLI end to end, Swift interplay, and hand-built edge cases (exact S3 errors)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import requests
import swiftclient
import yaml
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.functional.proxy.cloud import eventually
from tests.functional.s3.conftest import S3Cloud, ec2_credentials

MIB = 1024 * 1024


def test_done_when_aws_cli_20mib_round_trip(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """EC2 credentials from ``openstack`` -> ``aws s3 cp`` 20 MiB (multipart) and ``ls``."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * MIB))
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    s3cloud.aws("s3", "mb", f"s3://{bucket}")
    s3cloud.aws("s3", "cp", str(src), f"s3://{bucket}/big.bin", "--only-show-errors")
    listed = s3cloud.aws("s3", "ls", f"s3://{bucket}").stdout
    assert "big.bin" in listed and str(20 * MIB) in listed
    head = s3cloud.aws("s3api", "head-object", "--bucket", bucket, "--key", "big.bin").stdout
    assert '-3\\"' in head  # 8 MiB parts: a multipart ETag
    back = tmp_path / "back.bin"
    s3cloud.aws("s3", "cp", f"s3://{bucket}/big.bin", str(back), "--only-show-errors")
    assert hashlib.md5(back.read_bytes()).digest() == hashlib.md5(src.read_bytes()).digest()
    assert bucket in s3cloud.aws("s3", "ls").stdout
    # a server-side copy: parts copied with x-amz-copy-source-if-match: <the S3 ETag>
    s3cloud.aws("s3", "cp", f"s3://{bucket}/big.bin", f"s3://{bucket}/copy.bin",
                "--only-show-errors")
    copied = s3cloud.aws("s3api", "head-object", "--bucket", bucket, "--key", "copy.bin").stdout
    assert json.loads(copied)["ETag"] == json.loads(head)["ETag"]


def test_aws_cli_sync_ls_rm_recursive(s3cloud: S3Cloud, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    for rel in ("a.txt", "sub/b.txt", "sub/deeper/c d.txt"):
        (tree / rel).write_text(rel)
    bucket = f"sync-{uuid.uuid4().hex[:10]}"
    s3cloud.aws("s3", "mb", f"s3://{bucket}")
    s3cloud.aws("s3", "sync", str(tree), f"s3://{bucket}/t", "--only-show-errors")
    out = s3cloud.aws("s3", "ls", f"s3://{bucket}", "--recursive").stdout
    assert all(k in out for k in ("t/a.txt", "t/sub/b.txt", "t/sub/deeper/c d.txt"))
    top = s3cloud.aws("s3", "ls", f"s3://{bucket}/t/").stdout
    assert "PRE sub/" in top and "a.txt" in top
    again = s3cloud.aws("s3", "sync", str(tree), f"s3://{bucket}/t").stdout
    assert again.strip() == ""  # nothing changed: nothing uploaded
    s3cloud.aws("s3", "rm", f"s3://{bucket}", "--recursive", "--only-show-errors")
    assert s3cloud.aws("s3", "ls", f"s3://{bucket}", "--recursive",
                       check=False).stdout.strip() == ""
    s3cloud.aws("s3", "rb", f"s3://{bucket}")
    gone = s3cloud.aws("s3api", "head-bucket", "--bucket", bucket, check=False)
    assert gone.returncode != 0 and "404" in gone.stderr


def test_list_buckets_pages_by_prefix_and_region(s3cloud: S3Cloud) -> None:
    """boto3's ListBuckets paginator and ``aws s3 ls --bucket-name-prefix`` narrow it."""
    s3 = s3cloud.client()
    tag = f"lb-{uuid.uuid4().hex[:8]}"
    names = [f"{tag}-{c}" for c in "abc"]
    for name in names:
        s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket=f"x{tag}")  # the prefix must not match it
    s3.create_multipart_upload(Bucket=names[0], Key="k")  # a hidden a+segments
    pages = list(s3.get_paginator("list_buckets").paginate(
        Prefix=tag, PaginationConfig={"PageSize": 2}))
    assert [[b["Name"] for b in p["Buckets"]] for p in pages] == [names[:2], names[2:]]
    assert pages[0]["ContinuationToken"] and "ContinuationToken" not in pages[1]
    assert all(p["Prefix"] == tag for p in pages)
    assert {b["BucketRegion"] for p in pages for b in p["Buckets"]} == {"us-east-1"}
    plain = s3.list_buckets()  # no paging asked: every bucket, no region, no token
    assert set(names) <= {b["Name"] for b in plain["Buckets"]}
    assert "ContinuationToken" not in plain and "BucketRegion" not in plain["Buckets"][0]
    assert s3.list_buckets(Prefix=tag, BucketRegion="eu-west-1")["Buckets"] == []
    out = s3cloud.aws("s3", "ls", "--bucket-name-prefix", tag).stdout
    assert [line.split()[-1] for line in out.splitlines()] == names
    lax = s3cloud.client(parameter_validation=False)
    for bad in (0, 10001):
        with pytest.raises(ClientError) as exc:
            lax.list_buckets(MaxBuckets=bad)
        assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.list_buckets(ContinuationToken="not base64!")
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"


def _swift(s3cloud: S3Cloud) -> swiftclient.Connection:
    doc = yaml.safe_load((s3cloud.cloud.state / "clouds.yaml").read_text())
    a = doc["clouds"]["nubis-demo"]["auth"]
    return swiftclient.Connection(
        authurl=a["auth_url"], user=a["username"], key=a["password"], auth_version="3",
        os_options={"project_name": a["project_name"], "user_domain_name": "Default",
                    "project_domain_name": "Default"}, retries=0, timeout=30)


def test_s3_and_swift_see_the_same_objects(s3cloud: S3Cloud) -> None:
    s3, sw = s3cloud.client(), _swift(s3cloud)
    bucket = f"both-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="from-s3", Body=b"s3 bytes", Metadata={"who": "s3"},
                  ContentType="text/s3")
    headers, body = sw.get_object(bucket, "from-s3")
    assert body == b"s3 bytes" and headers["x-object-meta-who"] == "s3"
    assert headers["content-type"] == "text/s3"
    sw.put_object(bucket, "from-swift", b"swift bytes", headers={"X-Object-Meta-Who": "sw"})
    got = s3.get_object(Bucket=bucket, Key="from-swift")
    assert got["Body"].read() == b"swift bytes" and got["Metadata"] == {"who": "sw"}
    sw.put_container("swift-made")
    sw.put_object("swift-made", "k", b"v")
    assert s3.get_object(Bucket="swift-made", Key="k")["Body"].read() == b"v"


def _raw(s3cloud: S3Cloud, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None, when: float | None = None,
         host: str | None = None, send_as: str | None = None) -> requests.Response:
    """Send a request signed by botocore's SigV4 signer (for edge cases boto3 won't make).

    With ``send_as``, the request signed for ``method`` is sent with that method.
    """
    url = s3cloud.endpoint + path
    if host is not None:
        url = f"http://{host}{path}"
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    signer: Any = S3SigV4Auth(Credentials(s3cloud.demo.access, s3cloud.demo.secret), "s3",
                              "us-east-1")
    if when is None:
        signer.add_auth(req)
    else:
        fake = datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=fake):
            signer.add_auth(req)
    out = dict(req.headers.items())
    if host is not None:
        out["Host"] = host
    target = s3cloud.endpoint + urlsplit(req.url).path + (
        "?" + urlsplit(req.url).query if urlsplit(req.url).query else "")
    return requests.request(send_as or method, target, data=body, headers=out, timeout=10)


def _code(r: requests.Response) -> str:
    text = r.text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""


def test_skewed_clock_and_tampered_body(s3cloud: S3Cloud) -> None:
    bucket = f"edge-{uuid.uuid4().hex[:10]}"
    s3cloud.client().create_bucket(Bucket=bucket)
    r = _raw(s3cloud, "GET", f"/{bucket}", when=time.time() - 20 * 60)
    assert r.status_code == 403 and _code(r) == "RequestTimeTooSkewed"
    assert r.headers["x-amz-request-id"]
    # the signed sha256 does not match the bytes sent: refused, nothing stored
    url = f"{s3cloud.endpoint}/{bucket}/k"
    req = AWSRequest(method="PUT", url=url, data=b"good")
    req.headers["x-amz-content-sha256"] = hashlib.sha256(b"good").hexdigest()
    S3SigV4Auth(Credentials(s3cloud.demo.access, s3cloud.demo.secret), "s3",
                "us-east-1").add_auth(req)
    r = requests.put(url, data=b"evil", headers=dict(req.headers.items()), timeout=10)
    assert r.status_code == 400 and _code(r) == "XAmzContentSHA256Mismatch"
    assert _raw(s3cloud, "GET", f"/{bucket}/k").status_code == 404


def test_unknown_methods_are_refused_before_the_signature(s3cloud: S3Cloud) -> None:
    """S3's MethodNotAllowed (Swift's s3api: even for a request signed for another method)."""
    bucket = f"lick-{uuid.uuid4().hex[:10]}"
    for method, send_as, path, kind in (("PUT", "GETPUT", f"/{bucket}", "BUCKET"),
                                        ("LICK", None, f"/{bucket}/k", "OBJECT"),
                                        ("PATCHY", None, "/", "SERVICE")):
        r = _raw(s3cloud, method, path, send_as=send_as)
        assert r.status_code == 405 and _code(r) == "MethodNotAllowed", r.text
        assert (f"<Method>{send_as or method}</Method><ResourceType>{kind}</ResourceType>"
                in r.text)
        assert r.headers["x-amz-request-id"]
    r = _raw(s3cloud, "HEAD", f"/{bucket}")
    assert r.status_code == 404  # nothing was created


def test_malformed_xml_and_virtual_host(s3cloud: S3Cloud) -> None:
    bucket = f"vh-{uuid.uuid4().hex[:10]}"
    s3cloud.client().create_bucket(Bucket=bucket)
    bad = b"<Delete><Object>"
    r = _raw(s3cloud, "POST", f"/{bucket}?delete", body=bad,
             headers={"Content-Type": "application/xml"})
    assert r.status_code == 400 and _code(r) == "InvalidRequest"  # S3 requires a digest
    assert "Content-MD5 OR x-amz-checksum-*" in r.text
    md5 = base64.b64encode(hashlib.md5(bad).digest()).decode()
    r = _raw(s3cloud, "POST", f"/{bucket}?delete", body=bad,
             headers={"Content-Type": "application/xml", "Content-MD5": md5})
    assert r.status_code == 400 and _code(r) == "MalformedXML"
    r = _raw(s3cloud, "POST", f"/{bucket}/k?uploads")
    upload = r.text.split("<UploadId>", 1)[1].split("</UploadId>", 1)[0]
    r = _raw(s3cloud, "POST", f"/{bucket}/k?uploadId={upload}", body=b"not xml at all")
    assert r.status_code == 400 and _code(r) == "MalformedXML"
    port = s3cloud.cloud.config.proxy.port
    host = f"{bucket}.s3.localhost:{port}"
    r = _raw(s3cloud, "PUT", "/virtual%20key", body=b"vh", host=host)
    assert r.status_code == 200, r.text
    r = _raw(s3cloud, "GET", "/virtual%20key", host=host)
    assert r.status_code == 200 and r.content == b"vh"
    r = _raw(s3cloud, "GET", "/?list-type=2", host=host)
    assert "<Key>virtual key</Key>" in r.text
    r = requests.get(f"{s3cloud.endpoint}/{bucket}", headers={"Host": host}, timeout=10)
    assert r.status_code == 403 and _code(r) == "AccessDenied"


def test_keys_with_carriage_returns_survive_xml_answers(s3cloud: S3Cloud) -> None:
    """A key's ``\\r`` goes out as ``&#13;``: a raw one is read back as ``\\n``."""
    s3 = s3cloud.client()
    bucket = f"cr-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for key in ("cr\rkey", "crlf\r\nkey", "nl\nkey"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    r = _raw(s3cloud, "GET", f"/{bucket}?list-type=2")  # no encoding-type: keys as they are
    assert r.status_code == 200
    assert "<Key>cr&#13;key</Key>" in r.text and "<Key>crlf&#13;\nkey</Key>" in r.text
    done = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "cr\rkey"}, {"Key": "crlf\r\nkey"}]})
    assert sorted(d["Key"] for d in done["Deleted"]) == ["cr\rkey", "crlf\r\nkey"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["nl\nkey"]


def _streaming_put(s3cloud: S3Cloud, path: str, mode: str, chunks: list[bytes],
                   trailer: str = "", tamper: bool = False,
                   signed_headers: dict[str, str] | None = None,
                   declared: int | None = None) -> requests.Response:
    """PUT an aws-chunked body (signed chunks, or unsigned with a checksum trailer)."""
    from nubis.api.shared import awssig

    data = b"".join(chunks)
    url = s3cloud.endpoint + path
    req = AWSRequest(method="PUT", url=url, data=b"")
    req.headers["x-amz-content-sha256"] = mode
    req.headers["content-encoding"] = "aws-chunked"
    req.headers["x-amz-decoded-content-length"] = str(len(data) if declared is None
                                                      else declared)
    if trailer:
        req.headers["x-amz-trailer"] = trailer.split(":", 1)[0]
    for name, value in (signed_headers or {}).items():
        req.headers[name] = value
    class _Streaming(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: AWSRequest) -> str:
            return mode

    _Streaming(Credentials(s3cloud.demo.access, s3cloud.demo.secret), "s3",
               "us-east-1").add_auth(req)
    headers = dict(req.headers.items())
    seed = headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key = awssig.signing_key(s3cloud.demo.secret, amz_date[:8], "us-east-1", "s3")
    body, prev = b"", seed
    for chunk in [*chunks, b""]:
        ext = ""
        if mode == awssig.STREAMING:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev,
                                 awssig.EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()])
            prev = awssig.signature_of(key, to_sign)
            ext = f";chunk-signature={prev}"
        sent = chunk.replace(b"a", b"b", 1) if tamper and chunk else chunk
        body += f"{len(chunk):x}{ext}\r\n".encode() + sent + (b"\r\n" if chunk else b"")
    body += (trailer.encode() + b"\r\n" if trailer else b"") + b"\r\n"
    return requests.put(url, data=body, headers=headers, timeout=30)


def test_streaming_uploads_signed_chunks_and_trailers(s3cloud: S3Cloud) -> None:
    import base64
    import zlib

    from nubis.api.shared import awssig

    s3 = s3cloud.client()
    bucket = f"chunk-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    chunks = [b"a" * 65536, b"a" * 1000]
    r = _streaming_put(s3cloud, f"/{bucket}/signed", awssig.STREAMING, chunks)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="signed")["Body"].read() == b"".join(chunks)
    r = _streaming_put(s3cloud, f"/{bucket}/tampered", awssig.STREAMING, chunks, tamper=True)
    assert r.status_code == 403 and _code(r) == "SignatureDoesNotMatch"
    data = b"".join(chunks)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    r = _streaming_put(s3cloud, f"/{bucket}/trailer", awssig.STREAMING_UNSIGNED_TRAILER,
                       chunks, trailer=f"x-amz-checksum-crc32:{crc}")
    assert r.status_code == 200, r.text
    head = s3.head_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc and head["ContentLength"] == len(data)
    r = _streaming_put(s3cloud, f"/{bucket}/badcrc", awssig.STREAMING_UNSIGNED_TRAILER,
                       chunks, trailer="x-amz-checksum-crc32:AAAAAA==")
    assert r.status_code == 400 and _code(r) == "BadDigest"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["signed", "trailer"]


def test_trailer_checksums_are_stored_with_the_object(s3cloud: S3Cloud) -> None:
    """A trailer's checksum is stored in the object's own write (no later metadata write).

    Streamed (past the proxy's one-request size) into a plain, an erasure-coded and a
    versioned bucket, and as a multipart part: the checksum reads back, and Swift's
    X-Timestamp of the object is its data's (the listing's), which a metadata POST
    after the upload would have moved on.
    """
    import base64
    import datetime
    import zlib

    from nubis.api.shared import awssig

    s3, swift = s3cloud.client(), s3cloud.swift()
    chunks = [b"t" * 65536] * 40 + [b"u" * 77]
    data = b"".join(chunks)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    trailer = f"x-amz-checksum-crc32:{crc}"
    for kind in ("plain", "ec", "versioned"):
        bucket = f"trl-{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "ec":
            swift.put_container(bucket, headers={"X-Storage-Policy": "ec42"})
        else:
            s3.create_bucket(Bucket=bucket)
        if kind == "versioned":
            s3.put_bucket_versioning(Bucket=bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
        r = _streaming_put(s3cloud, f"/{bucket}/k", awssig.STREAMING_UNSIGNED_TRAILER,
                           chunks, trailer=trailer)
        assert r.status_code == 200 and r.headers["x-amz-checksum-crc32"] == crc, r.text
        head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        assert head["ChecksumCRC32"] == crc and head["ContentLength"] == len(data), kind
        if kind == "versioned":
            version = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED",
                                     VersionId=r.headers["x-amz-version-id"])
            assert version["ChecksumCRC32"] == crc
            continue
        listed = swift.get_container(bucket)[1][0]["last_modified"]
        stamp = datetime.datetime.fromisoformat(listed).replace(tzinfo=datetime.UTC)
        assert abs(float(swift.head_object(bucket, "k")["x-timestamp"])
                   - stamp.timestamp()) < 1e-5, kind
    bucket = f"trl-mpu-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m",
                                        ChecksumAlgorithm="CRC32")["UploadId"]
    r = _streaming_put(s3cloud, f"/{bucket}/m?partNumber=1&uploadId={upload}",
                       awssig.STREAMING_UNSIGNED_TRAILER, chunks, trailer=trailer)
    assert r.status_code == 200 and r.headers["x-amz-checksum-crc32"] == crc, r.text
    part = s3.list_parts(Bucket=bucket, Key="m", UploadId=upload)["Parts"][0]
    assert part["ChecksumCRC32"] == crc and part["Size"] == len(data)
    s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC32": crc}]})
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == data


def test_signed_chunks_with_a_checksum_header(s3cloud: S3Cloud) -> None:
    """A checksum header beside signed aws-chunked chunks is verified, then stored."""
    import base64
    import zlib

    from nubis.api.shared import awssig

    s3 = s3cloud.client()
    bucket = f"chunksum-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    chunks = [b"c" * 65536] * 20 + [b"d" * 123]  # past the proxy's one-write size
    data = b"".join(chunks)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    r = _streaming_put(s3cloud, f"/{bucket}/good", awssig.STREAMING, chunks,
                       signed_headers={"x-amz-checksum-crc32": crc})
    assert r.status_code == 200, r.text
    assert r.headers["x-amz-checksum-crc32"] == crc
    head = s3.head_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc and head["ContentLength"] == len(data)
    wrong = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    for size, chunk_list in (("large", chunks), ("small", chunks[-1:])):
        r = _streaming_put(s3cloud, f"/{bucket}/{size}", awssig.STREAMING, chunk_list,
                           signed_headers={"x-amz-checksum-crc32": wrong})
        assert r.status_code == 400 and _code(r) == "BadDigest", (size, r.text)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["good"]


def test_aws_chunked_body_must_match_its_decoded_length(s3cloud: S3Cloud) -> None:
    """Chunks adding up to more or less than x-amz-decoded-content-length: IncompleteBody."""
    from nubis.api.shared import awssig

    s3 = s3cloud.client()
    bucket = f"declen-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    big = [b"e" * 65536] * 20
    for chunks in ([b"e" * 200], big):
        size = sum(map(len, chunks))
        for mode in (awssig.STREAMING, awssig.STREAMING_UNSIGNED_TRAILER):
            for declared in (size - 100, size + 100):
                r = _streaming_put(s3cloud, f"/{bucket}/k{size}", mode, chunks,
                                   declared=declared)
                assert r.status_code == 400 and _code(r) == "IncompleteBody", r.text
                assert f"<NumberBytesExpected>{declared}<" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_bad_checksum_headers_are_refused(s3cloud: S3Cloud) -> None:
    """Two checksums, an unknown algorithm, a malformed value: S3's InvalidRequest."""
    import base64
    import zlib

    s3 = s3cloud.client()
    bucket = f"cksum-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"checked"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    sha1 = base64.b64encode(hashlib.sha1(body).digest()).decode()
    for headers, message in [
            ({"x-amz-checksum-crc32": crc, "x-amz-checksum-sha1": sha1}, "Multiple checksum"),
            ({"x-amz-checksum-blake3": crc}, "x-amz-checksum- header is invalid"),
            ({"x-amz-checksum-crc32": crc[:-4]}, "Value for x-amz-checksum-crc32 header"),
            ({"x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "SHA1"},
             "x-amz-sdk-checksum-algorithm")]:
        r = _raw(s3cloud, "PUT", f"/{bucket}/k", body, headers)
        assert r.status_code == 400 and _code(r) == "InvalidRequest", r.text
        assert message in r.text
    r = _raw(s3cloud, "PUT", f"/{bucket}/k", body, {"x-amz-checksum-crc32": crc,
                                                     "x-amz-sdk-checksum-algorithm": "CRC32"})
    assert r.status_code == 200 and r.headers["x-amz-checksum-crc32"] == crc
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_deleted_credential_stops_working(s3cloud: S3Cloud) -> None:
    keys = ec2_credentials(s3cloud.cloud, "nubis-demo")
    fresh = S3Cloud(s3cloud.cloud, keys, s3cloud.admin)
    assert fresh.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(s3cloud.cloud.state / "clouds.yaml")
    osc = Path(sys.executable).with_name("openstack")
    subprocess.run([str(osc), "--os-cloud", "nubis-demo", "ec2", "credentials", "delete",
                    keys.access], env=env, check=True, timeout=120, capture_output=True)
    def refused() -> None:
        try:
            fresh.client().list_buckets()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidAccessKeyId"
            return
        raise AssertionError("still accepted")

    eventually(refused, timeout=30, interval=0.5)
