"""Unit tests of FormPOST's form reader and signature, etag-quoter and ratelimit's schedule."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from nubis.api.proxy import etag_quoter, formpost, ratelimit
from nubis.api.proxy.config import RateLimitConfig
from nubis.api.proxy.context import Body
from nubis.api.proxy.errors import HTTPError


def _body(data: bytes, piece: int = 7) -> Body:
    """A request body arriving in ``piece``-byte events (boundaries fall anywhere)."""
    events = [{"type": "http.request", "body": data[i:i + piece],
               "more_body": i + piece < len(data)} for i in range(0, len(data), piece)]

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    return Body(None, receive, len(data), 5.0)


FORM = (b"\r\n--XyZ\r\n"
        b'Content-Disposition: form-data; name="Max_File_Size"\r\n\r\n'
        b"1024\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file1"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"line one\r\nline two --XyZ no boundary\r\n"
        b"--XyZ--\r\n")


async def _parts(data: bytes, piece: int) -> list[tuple[dict[str, str], bytes]]:
    reader = formpost.MimeReader(_body(data, piece), b"XyZ")
    await reader.begin()
    out = []
    while reader.next_part():
        headers = await reader.headers()
        chunks = []
        while chunk := await reader.read(5):
            chunks.append(chunk)
        out.append((headers, b"".join(chunks)))
    return out


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 4096])
def test_mime_reader_splits_parts_wherever_the_chunks_end(piece: int) -> None:
    parts = asyncio.run(_parts(FORM, piece))
    assert [p[1] for p in parts] == [b"1024", b"line one\r\nline two --XyZ no boundary"]
    assert parts[1][0]["content-type"] == "text/plain"
    disp, attrs = formpost.parse_disposition(parts[1][0]["content-disposition"])
    assert (disp, attrs) == ("form-data", {"name": "file1", "filename": "a.txt"})


def test_mime_reader_refuses_bad_starts_and_cut_parts() -> None:
    with pytest.raises(HTTPError) as exc:
        asyncio.run(_parts(b"--Other\r\n\r\nx\r\n--XyZ--", 4))
    assert exc.value.body == "FormPost: invalid starting boundary"
    with pytest.raises(HTTPError) as exc:
        asyncio.run(_parts(b"--XyZ\r\nA: b\r\n\r\ntruncated file", 4))
    assert exc.value.body == "FormPost: invalid ending boundary"


def test_boundary_only_for_multipart_posts() -> None:
    def ctx(method: str, ctype: str) -> Any:
        return types.SimpleNamespace(method=method, headers={"content-type": ctype})

    assert formpost.boundary_of(ctx("POST", 'multipart/form-data; boundary="b1"')) == "b1"
    assert formpost.boundary_of(ctx("PUT", "multipart/form-data; boundary=b1")) is None
    assert formpost.boundary_of(ctx("POST", "multipart/form-data")) is None
    assert formpost.boundary_of(ctx("POST", "text/plain; boundary=b1")) is None


def test_form_signature_hex_and_base64() -> None:
    attrs = {"redirect": "", "max_file_size": "10", "max_file_count": "2", "expires": "99"}
    msg = b"/v1/AUTH_a/c/p\n\n10\n2\n99"
    raw = hmac.new(b"k", msg, hashlib.sha512).digest()
    assert formpost.signed_by({**attrs, "signature": raw.hex()}, "/v1/AUTH_a/c/p", ["x", "k"])
    b64 = "sha512:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert formpost.signed_by({**attrs, "signature": b64}, "/v1/AUTH_a/c/p", ["k"])
    assert not formpost.signed_by({**attrs, "signature": raw.hex()}, "/v1/AUTH_a/c/q", ["k"])
    assert not formpost.signed_by({**attrs, "signature": "md5:abc"}, "/v1/AUTH_a/c/p", ["k"])


def test_form_answers() -> None:
    ok = formpost._answer(formpost._Outcome(201, "", {"Access-Control-Allow-Origin": "*",
                                                      "Etag": "x"}), None)
    assert (ok.status, ok.body) == (201, b"201 Created")
    assert ok.headers == {"Access-Control-Allow-Origin": "*", "Content-Type": "text/plain"}
    bad = formpost._answer(formpost._Outcome(400, "max file count exceeded"), None)
    assert bad.body == b"400 Bad Request\r\nFormPost: Max File Count Exceeded"
    failed = formpost._answer(formpost._Outcome(404, "", {}, b"Not Found"), None)
    assert (failed.status, failed.body) == (404, b"Not Found")
    moved = formpost._answer(formpost._Outcome(400, "no files to process"), "http://x/y")
    assert moved.status == 303
    assert moved.headers["Location"] == "http://x/y?status=400&message=no%20files%20to%20process"


# --- etag-quoter ---------------------------------------------------------------------

def test_etag_quoter_flags_and_quoting() -> None:
    assert etag_quoter.sysmeta_headers({"x-container-rfc-compliant-etags": "yes"},
                                       "container") == {
        "x-container-sysmeta-rfc-compliant-etags": "True"}
    assert etag_quoter.sysmeta_headers({"x-account-rfc-compliant-etags": ""}, "account") == {
        "x-account-sysmeta-rfc-compliant-etags": ""}
    assert etag_quoter.sysmeta_headers({"x-remove-account-rfc-compliant-etags": "1",
                                        "x-account-rfc-compliant-etags": "t"}, "account") == {
        "x-account-sysmeta-rfc-compliant-etags": ""}
    assert etag_quoter.sysmeta_headers({"x-object-meta-a": "b"}, "container") == {}
    out: dict[str, str] = {}
    etag_quoter.show({"x-account-sysmeta-rfc-compliant-etags": "False"}, "account", out)
    assert out == {"X-Account-Rfc-Compliant-Etags": "False"}
    assert etag_quoter.quoted("abc") == '"abc"'
    assert etag_quoter.quoted('"abc"') == '"abc"'
    assert etag_quoter.quoted('W/"abc"') == 'W/"abc"'
    assert etag_quoter.quoted('"') == '"""'


# --- ratelimit -----------------------------------------------------------------------

def test_rate_curve_interpolates_like_swift() -> None:
    lines = ratelimit.curve({"10": 100.0, "50": 20.0, "100": 10.0})
    assert ratelimit.max_rate(lines, 0) is None
    assert ratelimit.max_rate(lines, 5) is None
    assert ratelimit.max_rate(lines, 10) == 100.0
    assert ratelimit.max_rate(lines, 30) == 60.0
    assert ratelimit.max_rate(lines, 75) == 15.0
    assert ratelimit.max_rate(lines, 10 ** 6) == 10.0
    conf = RateLimitConfig(container_ratelimits={"100": 1.0, "10": 2.0})
    assert ratelimit.info(conf)["container_ratelimits"] == [[10, 2.0], [100, 1.0]]


def test_schedule_books_slots_and_refuses_long_waits(tmp_path: Path) -> None:
    sched = ratelimit.Schedule(tmp_path / "rl")
    acc = 1000
    # 10 requests/s: 100 ticks each; a 5 s burst buffer; 1 s longest wait.
    take = lambda now: sched.take("k", 100, now, 5 * acc, 1 * acc, acc)  # noqa: E731
    assert take(50_000) == 0          # an idle key starts afresh
    assert take(50_000) == 100        # the next slot is 100 ticks away
    assert take(50_000) == 200
    for _ in range(7):
        take(50_000)
    with pytest.raises(ratelimit.MaxSleepError):
        take(50_000)                  # a 1 s wait: refused, and not booked
    assert take(50_500) == 500
    assert take(60_000) == 0          # idle past the buffer: afresh
    assert sched.sweep(10 ** 9) == 1  # every key is stale then


def test_schedule_is_shared_between_processes(tmp_path: Path) -> None:
    assert ratelimit.Schedule(tmp_path / "rl").take("k", 100, 1000, 0, 10_000, 1000) == 0
    code = ("import sys; from nubis.api.proxy.ratelimit import Schedule; "
            "print(Schedule(__import__('pathlib').Path(sys.argv[1])).take("
            "'k', 100, 1000, 0, 10_000, 1000))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rl")], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "100"  # another worker process sees the booked slot


def test_limiter_keys_and_lists(tmp_path: Path) -> None:
    limiter = ratelimit.RateLimiter(RateLimitConfig(account_ratelimit=2.0,
                                                    account_whitelist=["AUTH_w"],
                                                    account_blacklist=[" AUTH_b "]),
                                    tmp_path)
    assert limiter.active
    assert not ratelimit.RateLimiter(RateLimitConfig(account_whitelist=["a"]), tmp_path).active

    def ctx(method: str, container: str | None, obj: str | None = None,
            account: str = "AUTH_a") -> Any:
        return types.SimpleNamespace(account=account, container=container, obj=obj,
                                     method=method)

    assert asyncio.run(limiter.keys(ctx("PUT", "c"))) == [("ratelimit/AUTH_a", 2.0)]
    assert asyncio.run(limiter.keys(ctx("DELETE", "c"))) == [("ratelimit/AUTH_a", 2.0)]
    assert asyncio.run(limiter.keys(ctx("POST", "c"))) == []
    assert asyncio.run(limiter.keys(ctx("PUT", "c", "o"))) == []
    asyncio.run(limiter.check(ctx("PUT", "c", account="AUTH_w")))  # whitelisted: no wait
    limiter.BLACKLIST_SLEEP = 0.0
    with pytest.raises(HTTPError) as exc:
        asyncio.run(limiter.check(ctx("GET", None, account="AUTH_b")))
    assert (exc.value.status, exc.value.body) == (497, "Your account has been blacklisted")
