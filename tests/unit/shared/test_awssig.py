"""SigV4 canonicalisation and verification against botocore's signer and AWS's examples."""

from __future__ import annotations

import base64
import hashlib
import zlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from nubis.api.shared import awschunked, awssig
from nubis.api.shared.awssig import SigError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", SECRET)


def _signed(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
            presign: bool = False) -> tuple[str, str, dict[str, str]]:
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    if presign:
        S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(req)
    else:
        req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
        S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    parts = urlsplit(req.url)
    hdrs = {k.lower(): v for k, v in req.headers.items()}
    hdrs["host"] = parts.netloc
    return parts.path, parts.query, hdrs


def _check(method: str, path: str, query: str, headers: dict[str, str]) -> None:
    pairs = awssig.query_pairs(query)
    sreq = awssig.parse_request(headers, pairs)
    awssig.check_time(sreq, awssig.request_time(sreq))
    awssig.verify(sreq, SECRET, method, path, pairs, headers)


@pytest.mark.parametrize("key", ["plain.txt", "with space/and%percent", "ünï/cødé ✓",
                                 "a+b=c&d", "tilde~star*(paren)!"])
@pytest.mark.parametrize("query", ["", "?acl", "?prefix=&delimiter=%2F",
                                   "?list-type=2&prefix=a%20b&start-after=z%25"])
def test_header_signed_matches_botocore(key: str, query: str) -> None:
    from urllib.parse import quote

    url = f"http://127.0.0.1:8080/bucket/{quote(key, safe='/~')}{query}"
    path, q, headers = _signed("GET", url)
    _check("GET", path, q, headers)


def test_presigned_and_expiry() -> None:
    path, q, headers = _signed("GET", "http://127.0.0.1:8080/b/k?response-content-type=a%2Fb",
                               presign=True)
    headers.pop("x-amz-content-sha256", None)
    _check("GET", path, q, headers)
    sreq = awssig.parse_request(headers, awssig.query_pairs(q))
    with pytest.raises(SigError) as exc:
        awssig.check_time(sreq, awssig.request_time(sreq) + 61)
    assert exc.value.code == "AccessDenied" and "expired" in exc.value.message


def test_tampering_and_skew_refused() -> None:
    path, q, headers = _signed("PUT", "http://127.0.0.1:8080/b/k", b"data")
    pairs = awssig.query_pairs(q)
    sreq = awssig.parse_request(headers, pairs)
    with pytest.raises(SigError) as exc:
        awssig.verify(sreq, SECRET, "PUT", "/b/other", pairs, headers)
    assert exc.value.code == "SignatureDoesNotMatch"
    assert exc.value.extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    with pytest.raises(SigError) as exc:
        awssig.verify(sreq, "wrong", "PUT", path, pairs, headers)
    assert exc.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigError) as exc:
        awssig.check_time(sreq, awssig.request_time(sreq) + 16 * 60)
    assert exc.value.code == "RequestTimeTooSkewed"


def _aws_example_request() -> tuple[awssig.SignedRequest, bytes]:
    """AWS's documented STREAMING-AWS4-HMAC-SHA256-PAYLOAD example (66560 bytes of 'a')."""
    headers = {"host": "s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
               "x-amz-storage-class": "REDUCED_REDUNDANCY",
               "x-amz-content-sha256": awssig.STREAMING, "content-encoding": "aws-chunked",
               "x-amz-decoded-content-length": "66560", "content-length": "66824"}
    signed = ("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
              "x-amz-decoded-content-length;x-amz-storage-class")
    headers["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
        f"aws4_request,SignedHeaders={signed},Signature="
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
    sreq = awssig.parse_request(headers, [])
    key = awssig.verify(sreq, SECRET, "PUT", "/examplebucket/chunkObject.txt", [], headers)
    return sreq, key


def test_signed_chunks_aws_example() -> None:
    sreq, key = _aws_example_request()
    sigs = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]
    body = (b"10000;chunk-signature=" + sigs[0].encode() + b"\r\n" + b"a" * 65536 + b"\r\n"
            + b"400;chunk-signature=" + sigs[1].encode() + b"\r\n" + b"a" * 1024 + b"\r\n"
            + b"0;chunk-signature=" + sigs[2].encode() + b"\r\n\r\n")
    dec = awschunked.ChunkDecoder(awssig.STREAMING, sreq, key, None)
    out = b"".join(dec.feed(body[i:i + 777]) for i in range(0, len(body), 777))
    dec.finish()
    assert out == b"a" * 66560
    bad = body.replace(b"a" * 1024, b"b" + b"a" * 1023)
    dec = awschunked.ChunkDecoder(awssig.STREAMING, sreq, key, None)
    with pytest.raises(SigError) as exc:
        dec.feed(bad)
    assert exc.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("declared", [0, 9999, 11001, 20000])
def test_chunks_must_add_up_to_the_decoded_length(declared: int) -> None:
    sreq, _ = _aws_example_request()
    data = b"x" * 11000
    body = (b"2000\r\n" + data[:8192] + b"\r\n" + f"{11000 - 8192:x}\r\n".encode()
            + data[8192:] + b"\r\n0\r\n\r\n")
    dec = awschunked.ChunkDecoder(awssig.STREAMING_UNSIGNED_TRAILER, sreq, None, None, 11000)
    assert dec.feed(body) == data
    dec.finish()
    dec = awschunked.ChunkDecoder(awssig.STREAMING_UNSIGNED_TRAILER, sreq, None, None, declared)
    with pytest.raises(SigError) as exc:
        dec.feed(body)
        dec.finish()
    assert (exc.value.code, exc.value.status) == ("IncompleteBody", 400)
    assert exc.value.extra["NumberBytesExpected"] == str(declared)
    # Too long: refused at the chunk that passes the length (its bytes never pass on).
    provided = 8192 if declared < 8192 else 11000
    assert exc.value.extra["NumberBytesProvided"] == str(provided)


def test_unsigned_trailer_checksums() -> None:
    sreq, _ = _aws_example_request()
    data = b"hello world" * 1000
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode())
    dec = awschunked.ChunkDecoder(awssig.STREAMING_UNSIGNED_TRAILER, sreq, None,
                              "x-amz-checksum-crc32")
    assert b"".join(dec.feed(body[i:i + 100]) for i in range(0, len(body), 100)) == data
    assert dec.finish()["x-amz-checksum-crc32"] == crc
    wrong = body.replace(crc.encode(), b"AAAAAA==")
    dec = awschunked.ChunkDecoder(awssig.STREAMING_UNSIGNED_TRAILER, sreq, None,
                              "x-amz-checksum-crc32")
    dec.feed(wrong)
    with pytest.raises(SigError) as exc:
        dec.finish()
    assert exc.value.code == "BadDigest"


@pytest.mark.parametrize(("algo", "data", "expected"), [
    ("crc32c", b"123456789", "4waSgw=="),  # 0xE3069283, the CRC-32C check value
    ("crc64nvme", b"123456789", "rosUhgp5mIg="),  # 0xAE8B14860A799888
    ("sha1", b"", base64.b64encode(hashlib.sha1(b"").digest()).decode()),
])
def test_checksum_algorithms(algo: str, data: bytes, expected: str) -> None:
    c = awssig.Checksum(algo)
    c.update(data)
    assert c.value() == expected


def test_detection_is_cheap_and_exact() -> None:
    assert awssig.is_s3_request({"authorization": "AWS4-HMAC-SHA256 Credential=x"}, b"")
    assert awssig.is_s3_request({}, b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a")
    assert not awssig.is_s3_request({"x-auth-token": "AUTH_tk"}, b"format=json")


@pytest.mark.parametrize("presign", [False, True])
def test_sigv2_matches_botocore(presign: bool) -> None:
    from botocore.auth import HmacV1Auth, HmacV1QueryAuth

    url = "http://127.0.0.1:8080/bucket/a%20b/%C3%BC?uploadId=x%2By&partNumber=2"
    req = AWSRequest(method="PUT", url=url, data=b"", headers={"x-amz-meta-a": " b  c "})
    (HmacV1QueryAuth(CREDS, expires=60) if presign else HmacV1Auth(CREDS)).add_auth(req)
    parts = urlsplit(req.url)
    headers = {k.lower(): v for k, v in req.headers.items()}
    pairs = awssig.query_pairs(parts.query)
    assert awssig.is_v2(headers, pairs)
    sreq = awssig.parse_v2(headers, pairs)
    awssig.verify_v2(sreq, SECRET, "PUT", parts.path, parts.query, headers)
    with pytest.raises(SigError):
        awssig.verify_v2(sreq, "wrong", "PUT", parts.path, parts.query, headers)


_CRC = base64.b64encode(b"\0\0\0\1").decode()


@pytest.mark.parametrize(("headers", "message"), [
    ({"x-amz-checksum-crc32": _CRC}, None),
    ({"x-amz-trailer": "x-amz-checksum-crc64nvme", "x-amz-sdk-checksum-algorithm": "CRC64NVME",
      "x-amz-content-sha256": awssig.STREAMING_UNSIGNED_TRAILER}, None),
    ({"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "COMPOSITE"}, None),
    ({"x-amz-checksum-blake3": _CRC}, "The algorithm type you specified in x-amz-checksum- "
                                   "header is invalid."),
    ({"x-amz-trailer": "x-amz-checksum-crc99"}, "The value specified in the x-amz-trailer "
                                                "header is not supported"),
    ({"x-amz-trailer": ", x-amz-checksum-crc32, ,"}, "The value specified in the x-amz-trailer "
                                                     "header is not supported"),
    ({"x-amz-checksum-crc32": "y/Q5Jh=="}, "Value for x-amz-checksum-crc32 header is invalid."),
    ({"x-amz-checksum-crc32": _CRC, "x-amz-checksum-sha1": _CRC},
     "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."),
    ({"x-amz-checksum-crc32": _CRC, "x-amz-trailer": "x-amz-checksum-crc32"},
     "Expecting a single x-amz-checksum- header"),
    ({"x-amz-checksum-crc32": "AAAA"}, "Value for x-amz-checksum-crc32 header is invalid."),
    ({"x-amz-checksum-crc32": "not base64!"},
     "Value for x-amz-checksum-crc32 header is invalid."),
    ({"x-amz-sdk-checksum-algorithm": "CRC32"}, "x-amz-sdk-checksum-algorithm specified, "
     "but no corresponding x-amz-checksum-* or x-amz-trailer headers were found."),
    ({"x-amz-checksum-crc32": _CRC, "x-amz-sdk-checksum-algorithm": "SHA256"},
     "Value for x-amz-sdk-checksum-algorithm header is invalid."),
])
def test_request_checksum_headers(headers: dict[str, str], message: str | None) -> None:
    if message is None:
        awssig.check_request_checksums(headers)
        return
    with pytest.raises(SigError) as exc:
        awssig.check_request_checksums(headers)
    assert (exc.value.code, exc.value.status, exc.value.message) == \
        ("InvalidRequest", 400, message)


def test_a_trailer_needs_a_streaming_payload() -> None:
    with pytest.raises(SigError) as exc:
        awssig.check_request_checksums({"x-amz-trailer": "x-amz-checksum-crc32",
                                        "x-amz-content-sha256": awssig.EMPTY_SHA256})
    assert (exc.value.code, exc.value.status) == ("MalformedTrailerError", 400)


def test_multiple_checksums_name_no_resource() -> None:
    with pytest.raises(SigError) as exc:
        awssig.check_request_checksums({"x-amz-checksum-crc32": _CRC,
                                        "x-amz-checksum-sha1": _CRC})
    assert not exc.value.resource


@pytest.mark.parametrize(("algo", "empty_digest"), [
    ("sha512", hashlib.sha512(b"").hexdigest()),
    ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    # xxHash's own test vectors of the empty input (seed 0), big-endian as S3 shows them
    ("xxhash64", "ef46db3751d8e999"),
    ("xxhash3", "2d06800538d394c2"),
    ("xxhash128", "99aa06d3014798d86001c324468d497f"),
])
def test_newer_checksum_algorithms(algo: str, empty_digest: str) -> None:
    """S3's later additional checksums: value and size, as headers carry them."""
    want = base64.b64encode(bytes.fromhex(empty_digest)).decode()
    summed = awssig.Checksum(algo)
    summed.update(b"")
    assert summed.value() == want
    summed.check(want)
    awssig.check_request_checksums({f"x-amz-checksum-{algo}": want})
    with pytest.raises(SigError):
        awssig.check_request_checksums({f"x-amz-checksum-{algo}": _CRC})
    with pytest.raises(SigError) as exc:
        summed.check(base64.b64encode(b"\1" * len(bytes.fromhex(empty_digest))).decode())
    assert exc.value.code == "BadDigest"
