"""Pure pieces of the web middleware: host remapping, bulk formats and names, sizes."""

from __future__ import annotations

import asyncio
import json

import pytest
from nubis.api.proxy import bulk
from nubis.api.proxy.context import Body, Resp
from nubis.api.proxy.domains import DomainRemap
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.staticweb import human_readable


def _remap() -> DomainRemap:
    remap = DomainRemap.of(["swift.localhost"], ["AUTH"], "")
    assert remap is not None
    return remap


def test_remap_account_and_container_hosts() -> None:
    remap = _remap()
    got = remap.remap("c.auth-test.swift.localhost:8080", "/o")
    assert got is not None and got.path == "/v1/AUTH_test/c/o"
    got = remap.remap("AUTH_test.swift.localhost", "/")
    assert got is not None and got.path == "/v1/AUTH_test/"
    assert remap.remap("127.0.0.1:8080", "/v1/AUTH_test") is None
    assert remap.remap("swift.localhost", "/") is None  # the bare domain passes through
    assert remap.remap("nope-x.swift.localhost", "/") is None  # unknown reseller prefix
    with pytest.raises(HTTPError) as info:
        remap.remap("a.b.AUTH_x.swift.localhost", "/")
    assert info.value.status == 400
    assert DomainRemap.of([], ["AUTH"], "") is None


def test_remap_fixes_locations_back() -> None:
    got = _remap().remap("AUTH_test.swift.localhost", "/site")
    assert got is not None
    resp = Resp(301, {"Location": "http://AUTH_test.swift.localhost/v1/AUTH_test/site/"})
    assert got.fix_location(resp).headers["Location"] == \
        "http://AUTH_test.swift.localhost/site/"


def test_bulk_accept_negotiation() -> None:
    assert bulk.out_format("") == "text/plain"
    assert bulk.out_format("application/json") == "application/json"
    assert bulk.out_format("text/xml;q=0.5, application/json;q=0.9") == "application/json"
    assert bulk.out_format("*/*") == "text/plain"
    assert bulk.out_format("image/png") is None


def test_bulk_summaries_in_swift_formats() -> None:
    result = {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 1}
    errors = [["c/o%20x", "409 Conflict"]]
    text = bulk.summary("text/plain", dict(result), errors, "delete").decode()
    assert text.startswith("Number Deleted: 1\n") and text.endswith("c/o%20x, 409 Conflict\n")
    data = json.loads(bulk.summary("application/json", dict(result), errors, "delete"))
    assert data["Errors"] == errors
    xml = bulk.summary("application/xml", dict(result), errors, "delete").decode()
    assert "<number_deleted>1</number_deleted>" in xml
    assert "<object><name>c/o%20x</name><status>409 Conflict</status></object>" in xml


def _body(data: bytes) -> Body:
    events = [{"type": "http.request", "body": data[i:i + 7], "more_body": i + 7 < len(data)}
              for i in range(0, len(data), 7)]

    async def receive() -> dict[str, object]:
        return events.pop(0)

    return Body(None, receive, len(data), 5.0)


def test_bulk_delete_names_are_unquoted_and_bounded() -> None:
    names = asyncio.run(bulk._names(_body(b"/c/%C3%B6%20x\n\nc/o\r\nc")))
    assert names == ["/c/ö x", "c/o", "c"]
    with pytest.raises(HTTPError) as info:
        asyncio.run(bulk._names(_body(b"x" * (bulk.MAX_PATH_LENGTH * 2 + 10))))
    assert info.value.status == 400


def test_extract_member_paths() -> None:
    assert bulk._member_path("./c/o", "") == "c/o"
    assert bulk._member_path("/c/o", "") == "c/o"
    assert bulk._member_path("top", "") is None
    assert bulk._member_path("x/y", "c/pre") == "c/pre/x/y"
    assert bulk._bad_segments("c/../AUTH_other/o") and bulk._bad_segments("c/./o")
    assert not bulk._bad_segments("c/a..b")


def test_human_readable_sizes() -> None:
    assert [human_readable(n) for n in (0, 1023, 1024, 1536, 1048576)] == \
        ["0", "1023", "1Ki", "2Ki", "1Mi"]
