"""CopyObject's carried tags and checksum (the S3 layer over a stand-in Swift copy)."""

from __future__ import annotations

import asyncio
import base64
import zlib
from types import SimpleNamespace
from typing import Any

import pytest
from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import checksums, objects, tagging
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.shared.awssig import SigError

STORED = {"etag": "0123456789abcdef0123456789abcdef",
          checksums.CHECKSUM_META: "sha256:c2hh", tagging.OBJECT_META: "team=blue"}


class FakeReq:
    """Just what the copy helpers read: headers, and a Swift copy that may answer 412."""

    def __init__(self, headers: dict[str, str], fail_guarded: bool = False) -> None:
        self.ctx = SimpleNamespace(headers=headers,
                                   state=SimpleNamespace(conf=SimpleNamespace(
                                       client_timeout=5.0)))
        self.bucket, self.key = "b", "dst"
        self.fail_guarded = fail_guarded
        self.calls: list[tuple[dict[str, str], dict[str, str] | None]] = []
        self.footers: list[dict[str, str]] = []

    def header(self, name: str, default: str = "") -> str:
        return str(self.ctx.headers.get(name, default))

    async def swift(self, method: str, bucket: str, key: str, headers: dict[str, str],
                    query: Any, body: Any, report: Any = None,
                    sysmeta: dict[str, str] | None = None, digest: Any = None) -> Resp:
        self.calls.append((headers, sysmeta))
        if self.fail_guarded and headers.get("if-match") == f'"{STORED["etag"]}"':
            raise HTTPError(412)
        if digest is not None:  # the copy's bytes pass it
            digest.update(COPIED)
            self.footers.append(digest.footer())
        return Resp(201, {"Etag": STORED["etag"]})


COPIED = b"the copied bytes"


def _copy(req: FakeReq, headers: dict[str, str], compute: tuple[str, bool] | None = None
          ) -> tuple[Resp, dict[str, str]]:
    checksum = objects._carried_checksum(req, STORED)  # type: ignore[arg-type]
    sysmeta = objects._carried_sysmeta(STORED, objects._copy_tagging(req))  # type: ignore[arg-type]
    return asyncio.run(objects._copy_write(req, headers, None, None,  # type: ignore[arg-type]
                                           sysmeta, checksum, STORED, compute))


def test_checksum_travels_only_with_the_bytes_it_was_read_for() -> None:
    req = FakeReq({})
    _, checksum = _copy(req, {"x-copy-from": "/b/src"})
    assert checksum[checksums.CHECKSUM_META] == "sha256:c2hh"
    (headers, sysmeta), = req.calls
    assert headers["if-match"] == f'"{STORED["etag"]}"'
    assert sysmeta == {tagging.OBJECT_META: "team=blue", **checksum}


def test_a_source_changed_meanwhile_is_copied_without_the_checksum() -> None:
    req = FakeReq({}, fail_guarded=True)
    _, checksum = _copy(req, {"x-copy-from": "/b/src"})
    assert checksum == {}
    assert [("if-match" in h, s) for h, s in req.calls] == [
        (True, {tagging.OBJECT_META: "team=blue",
                checksums.CHECKSUM_META: "sha256:c2hh",
                checksums.TYPE_META: checksums.FULL_OBJECT}),
        (False, {tagging.OBJECT_META: "team=blue"})]


def test_a_copy_without_a_carried_checksum_computes_one() -> None:
    req = FakeReq({}, fail_guarded=True)
    _, checksum = _copy(req, {"x-copy-from": "/b/src"}, ("crc32", False))
    want = base64.b64encode(zlib.crc32(COPIED).to_bytes(4, "big")).decode()
    assert checksum == {checksums.CHECKSUM_META: f"crc32:{want}",
                        checksums.TYPE_META: checksums.FULL_OBJECT}
    assert req.footers == [checksum]  # stored with the copy, in its own write
    req = FakeReq({}, fail_guarded=True)
    _, checksum = _copy(req, {"x-copy-from": "/b/src"}, ("crc32", True))
    assert checksum[checksums.DEFAULT_META] == "true"


def test_what_a_copy_computes() -> None:
    req = FakeReq({"x-amz-checksum-algorithm": "SHA1"})
    assert objects._copy_compute(req) == ("sha1", False)  # type: ignore[arg-type]
    with pytest.raises(SigError) as exc:
        objects._copy_compute(FakeReq({"x-amz-checksum-algorithm": "CRC16"}))  # type: ignore[arg-type]
    assert exc.value.code == "InvalidRequest"
    req = FakeReq({})
    req.ctx.state.conf.s3_default_checksum = "none"
    assert objects._copy_compute(req) is None  # type: ignore[arg-type]


def test_the_callers_own_condition_is_not_retried() -> None:
    req = FakeReq({"x-amz-copy-source-if-match": f'"{STORED["etag"]}"'}, fail_guarded=True)
    with pytest.raises(HTTPError):
        _copy(req, {"x-copy-from": "/b/src", "if-match": f'"{STORED["etag"]}"'})
    assert len(req.calls) == 1


@pytest.mark.parametrize(("headers", "stored", "carried"), [
    ({"x-amz-checksum-algorithm": "CRC32"}, STORED, False),
    ({"x-amz-checksum-algorithm": "SHA256"}, STORED, True),
    ({"x-amz-copy-source-if-match": '"other"'}, STORED, False),
    ({}, {**STORED, "x-static-large-object": "True"}, False),
    ({}, {"etag": STORED["etag"]}, False),
])
def test_when_the_checksum_is_carried(headers: dict[str, str], stored: dict[str, str],
                                      carried: bool) -> None:
    got = objects._carried_checksum(FakeReq(headers), stored)  # type: ignore[arg-type]
    assert bool(got) is carried


def test_tagging_directive() -> None:
    assert objects._copy_tagging(FakeReq({})) is None  # type: ignore[arg-type]
    assert objects._copy_tagging(FakeReq(  # type: ignore[arg-type]
        {"x-amz-tagging-directive": "REPLACE"})) == ""
    replaced = objects._copy_tagging(FakeReq(  # type: ignore[arg-type]
        {"x-amz-tagging-directive": "replace", "x-amz-tagging": "a=1"}))
    assert replaced == tagging.encode(tagging.tags_from_header("a=1"))
    with pytest.raises(S3Error) as exc:
        objects._copy_tagging(FakeReq({"x-amz-tagging-directive": "X"}))  # type: ignore[arg-type]
    assert exc.value.code == "InvalidArgument"
