"""SigV4 request signatures (both implementations) against AWS's example and string building."""

from __future__ import annotations

import hashlib
import hmac
import random
import sys
from collections.abc import Callable
from types import ModuleType

import pytest
from nubis.fastpath import sigv4

Kernels = Callable[[str], ModuleType]
EMPTY = hashlib.sha256(b"").hexdigest()
SCOPE = "20130524/us-east-1/s3/aws4_request"


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _reference(key: bytes, method: str, uri: str, query: str, headers: dict[str, str],
               signed: tuple[str, ...], payload: str, amz_date: str, scope: str) -> str:
    """Sign by building every string, as AWS's documentation spells the steps."""
    lines = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    canonical = "\n".join([method, uri, query, lines, ";".join(signed), payload])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(key, to_sign.encode(), "sha256").hexdigest()


def test_aws_documented_get_object_example(kernels: Kernels) -> None:
    """AWS's "GET Object" example of header-based SigV4 signing (S3 API reference)."""
    k = kernels("sigv4")
    key = _signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1",
                       "s3")
    headers = {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9",
               "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z"}
    got = k.request_signature(k.key_state(key), "GET", "/test.txt", "", headers,
                              tuple(headers), EMPTY, "20130524T000000Z", SCOPE)
    assert got == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


VALUES = ["", " ", "a", " lead", "trail ", "in  ner", "tab\there", "a\r\nb", "ünï cödé",
          "x\u00a0y", "\u3000wide\u3000", "semi;colon,comma", "~" * 300, "\x7f", "end\x1f"]


@pytest.mark.parametrize("value", VALUES)
def test_header_values_fold_as_aws(kernels: Kernels, value: str) -> None:
    """Trimmed, inner whitespace runs folded to one space, non-ASCII kept."""
    k = kernels("sigv4")
    key = _signing_key("secret", "20130524", "us-east-1", "s3")
    headers = {"host": "h", "x-amz-meta-v": value, "x-amz-date": "20130524T000000Z"}
    signed = ("host", "x-amz-meta-v", "x-amz-date", "x-amz-missing")
    args = ("PUT", "/b/k%20%C3%BC", "a=&b=c%20d", headers, signed, EMPTY,
            "20130524T000000Z", SCOPE)
    assert k.request_signature(k.key_state(key), *args) == _reference(key, *args)


WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def test_every_unicode_whitespace_folds(kernels: Kernels) -> None:
    """Each whitespace character str.split knows, inside, leading and alone."""
    k = kernels("sigv4")
    state, key = k.key_state(b"k"), b"k"
    for w in WHITESPACE:
        for value in (f"a{w}b", f"{w}a", w, f"a{w}{w} b"):
            args = ("GET", "/", "", {"h": value}, ("h",), EMPTY, "20130524T000000Z", SCOPE)
            assert k.request_signature(state, *args) == _reference(key, *args), repr(value)


def test_random_requests_match_the_reference(kernels: Kernels) -> None:
    k = kernels("sigv4")
    rnd = random.Random(7)
    alphabet = "ab -_~%/é\t"
    for i in range(200):
        key = rnd.randbytes(rnd.choice([0, 1, 32, 64, 65, 200]))
        names = tuple(sorted({f"x-amz-meta-{rnd.randint(0, 9)}" for _ in range(4)}))
        headers = {n: "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 20)))
                   for n in names}
        args = (rnd.choice(["GET", "PUT"]), f"/b/{i}", "", headers, ("host", *names),
                rnd.choice([EMPTY, "UNSIGNED-PAYLOAD"]), "20130524T000000Z", SCOPE)
        assert k.request_signature(k.key_state(key), *args) == _reference(key, *args)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 300])
def test_sign_is_hmac_sha256(kernels: Kernels, size: int) -> None:
    """Keys shorter and longer than the block; messages of any size and buffer type."""
    k = kernels("sigv4")
    key = bytes(range(size % 256)) * (size // 256 + 1)
    key = key[:size]
    message = random.Random(size).randbytes(size * 3)
    want = hmac.new(key, message, "sha256").hexdigest()
    assert k.sign(k.key_state(key), message) == want
    assert k.sign(k.key_state(key), bytearray(message)) == want


def test_headers_may_be_any_mapping(kernels: Kernels) -> None:
    """A non-dict mapping is read through its ``get`` as a dict is."""
    k = kernels("sigv4")

    class Headers(dict[str, str]):
        pass

    state = k.key_state(b"k")
    plain = {"host": "h", "x-amz-date": "20130524T000000Z"}
    args = ("GET", "/", "", ("host", "x-amz-date"), EMPTY, "20130524T000000Z", SCOPE)
    assert k.request_signature(state, *args[:3], Headers(plain), *args[3:]) == \
        k.request_signature(state, *args[:3], plain, *args[3:])


def test_selector_loads_an_implementation() -> None:
    assert sigv4.IMPLEMENTATION in ("cython", "python")
    assert sigv4.sign(sigv4.key_state(b"k"), b"m") == hmac.new(b"k", b"m", "sha256").hexdigest()


def test_bad_arguments_raise(kernels: Kernels) -> None:
    """A missing state, header value or signed name is an error, never a crash."""
    k = kernels("sigv4")
    state = k.key_state(b"k")
    with pytest.raises((TypeError, AttributeError)):
        k.request_signature(None, "GET", "/", "", {}, (), EMPTY, "d", SCOPE)
    with pytest.raises((TypeError, AttributeError)):
        k.request_signature(state, "GET", "/", "", {"h": None}, ("h",), EMPTY, "d", SCOPE)
    with pytest.raises(TypeError):
        k.request_signature(state, "GET", "/", "", {}, (None,), EMPTY, "d", SCOPE)
    with pytest.raises((TypeError, AttributeError)):
        k.sign(None, b"m")
