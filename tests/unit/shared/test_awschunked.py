"""aws-chunked decoding: chunk signatures, sizes, trailers, as S3 (and Swift's s3api) read them."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from nubis.api.shared import awschunked, awssig
from nubis.api.shared.awssig import SigError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
SREQ = awssig.SignedRequest("AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3",
                            "20130524T000000Z", ("host",), SEED, awssig.STREAMING, False)
KEY = awssig.signing_key(SECRET, "20130524", "us-east-1", "s3")


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _signed_body(chunks: list[bytes], trailer: bytes | None = None) -> bytes:
    """Return ``chunks`` (and a zero chunk) signed as a STREAMING client signs them."""
    prev, out = SEED, b""
    for data in [*chunks, b""]:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", SREQ.amz_date, SREQ.scope, prev,
                             awssig.EMPTY_SHA256, hashlib.sha256(data).hexdigest()])
        prev = awssig.signature_of(KEY, to_sign)
        out += f"{len(data):x};chunk-signature={prev}\r\n".encode() + data + b"\r\n"
    if trailer is not None:
        lines = trailer.replace(b"\r", b"")
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", SREQ.amz_date, SREQ.scope, prev,
                             hashlib.sha256(lines).hexdigest()])
        out = out[:-2] + trailer + b"x-amz-trailer-signature:" \
            + awssig.signature_of(KEY, to_sign).encode() + b"\r\n\r\n"
    return out


def _decode(body: bytes, mode: str = awssig.STREAMING, trailer: str | None = None,
            length: int | None = None, step: int = 0) -> tuple[bytes, dict[str, str]]:
    key = KEY if mode != awssig.STREAMING_UNSIGNED_TRAILER else None
    dec = awschunked.ChunkDecoder(mode, SREQ, key, trailer, length,
                                  canonical=lambda: "CANONICAL")
    step = step or len(body) or 1
    out = b"".join(dec.feed(body[i:i + step]) for i in range(0, len(body), step))
    return out, dec.finish()


def _error(body: bytes, **kwargs: object) -> SigError:
    with pytest.raises(SigError) as exc:
        _decode(body, **kwargs)  # type: ignore[arg-type]
    return exc.value


@pytest.mark.parametrize("step", [1, 7, 0])
def test_signed_chunks_decode_in_any_pieces(step: int) -> None:
    data = [b"a" * 8192, b"b" * 100]
    out, _ = _decode(_signed_body(data), length=8292, step=step)
    assert out == b"".join(data)


def test_a_bad_chunk_signature_shows_what_was_signed() -> None:
    body = _signed_body([b"a" * 8192]).replace(b"a" * 10, b"b" * 10, 1)
    err = _error(body, length=8192)
    assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)
    assert err.extra["StringToSign"].startswith("AWS4-HMAC-SHA256-PAYLOAD\n")
    assert err.extra["CanonicalRequest"] == "CANONICAL"
    assert err.extra["AWSAccessKeyId"] == SREQ.access and "StringToSignBytes" in err.extra


def test_chunk_parameters_may_be_spaced_out() -> None:
    body = _signed_body([b"x" * 5]).replace(b";chunk-signature=", b" ; chunk-signature = ")
    assert _decode(body, length=5)[0] == b"x" * 5


@pytest.mark.parametrize(("mangle", "code"), [
    (lambda b: b.replace(b";chunk-signature=", b";", 1), "SignatureDoesNotMatch"),
    (lambda b: b.replace(b";chunk-signature=", b";chunk-signature=;", 1), "IncompleteBody"),
    (lambda b: b.split(b";", 1)[0] + b"\r\n" + b.split(b"\r\n", 1)[1], "IncompleteBody"),
])
def test_a_missing_or_odd_chunk_signature_is_refused(mangle: object, code: str) -> None:
    body = mangle(_signed_body([b"x" * 5]))  # type: ignore[operator]
    assert _error(body, length=5).code == code


def test_only_the_last_chunk_may_be_small() -> None:
    err = _error(_signed_body([b"a" * 100, b"b" * 100]), length=200)
    assert (err.code, err.status) == ("InvalidChunkSizeError", 403)
    assert err.extra == {"Chunk": "2", "BadChunkSize": "100"}


@pytest.mark.parametrize("body", [
    b"5\nhello\n0\n\n",  # LF without CR
    b"5\r\nhello\r\n",  # no zero chunk
    b"5\r\nhel",  # cut mid-chunk
    b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the data
    b"zz\r\nhello\r\n0\r\n\r\n",  # not a size
    b"5\r\nhello\r\n0\r\n\r",  # half a final CRLF
])
def test_broken_framing_is_an_incomplete_body(body: bytes) -> None:
    err = _error(body, mode=awssig.STREAMING_UNSIGNED_TRAILER, length=5)
    assert (err.code, err.message) == ("IncompleteBody",
                                       "The request body terminated unexpectedly")


def test_the_chunks_must_add_up_to_the_decoded_length() -> None:
    err = _error(b"5\r\nhello\r\n0\r\n\r\n", mode=awssig.STREAMING_UNSIGNED_TRAILER, length=9)
    assert err.extra == {"NumberBytesExpected": "9", "NumberBytesProvided": "5"}


def test_unsigned_trailer_checksum() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + _crc32(b"hello").encode() + b"\r\n"
    out, trailers = _decode(body, mode=awssig.STREAMING_UNSIGNED_TRAILER,
                            trailer="x-amz-checksum-crc32", length=5)
    assert out == b"hello" and trailers == {"x-amz-checksum-crc32": _crc32(b"hello")}
    # The last value of a repeated trailer counts; what follows a blank line is ignored.
    again = body.replace(b"0\r\n", b"0\r\nx-amz-checksum-crc32:" + _crc32(b"x").encode()
                         + b"\r\n") + b"\r\nbonus: ignored\r\n"
    assert _decode(again, mode=awssig.STREAMING_UNSIGNED_TRAILER,
                   trailer="x-amz-checksum-crc32", length=5)[0] == b"hello"


@pytest.mark.parametrize(("trailer_lines", "code", "message"), [
    (b"", "MalformedTrailerError", None),
    (b"bonus: trailer\r\n", "MalformedTrailerError", None),
    (b"x-amz-checksum-crc32:" + _crc32(b"hellO").encode() + b"\r\n", "BadDigest",
     "The CRC32 you specified did not match the calculated checksum."),
    (b"x-amz-checksum-crc32:y/Q5Jh==\r\n", "InvalidRequest",
     "Value for x-amz-checksum-crc32 trailing header is invalid."),
])
def test_trailer_errors(trailer_lines: bytes, code: str, message: str | None) -> None:
    body = b"5\r\nhello\r\n0\r\n" + trailer_lines + b"\r\n"
    err = _error(body, mode=awssig.STREAMING_UNSIGNED_TRAILER,
                 trailer="x-amz-checksum-crc32", length=5)
    assert err.code == code
    if message is not None:
        assert err.message == message


def test_signed_trailer() -> None:
    trailer = b"x-amz-checksum-crc32:" + _crc32(b"hello").encode() + b"\r\n"
    body = _signed_body([b"hello"], trailer)
    out, trailers = _decode(body, mode=awssig.STREAMING_TRAILER,
                            trailer="x-amz-checksum-crc32", length=5)
    assert out == b"hello" and trailers["x-amz-checksum-crc32"] == _crc32(b"hello")
    tampered = body.replace(b"x-amz-trailer-signature:", b"x-amz-trailer-signature:0", 1)
    err = _error(tampered, mode=awssig.STREAMING_TRAILER, trailer="x-amz-checksum-crc32",
                 length=5)
    assert err.code == "SignatureDoesNotMatch"
    assert err.extra["StringToSign"].startswith("AWS4-HMAC-SHA256-TRAILER\n")
    unsigned = body.split(b"x-amz-trailer-signature", 1)[0] + b"\r\n"
    assert _error(unsigned, mode=awssig.STREAMING_TRAILER, trailer="x-amz-checksum-crc32",
                  length=5).code == "IncompleteBody"


def test_trailer_names_split_as_s3_does() -> None:
    assert awssig.trailer_names("x-amz-checksum-crc32,") == ["x-amz-checksum-crc32"]
    assert awssig.trailer_names(", X-Amz-Checksum-CRC32, ,") == \
        ["", "x-amz-checksum-crc32", ""]
    assert awssig.trailer_names(None) == []
