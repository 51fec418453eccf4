"""Unit tests of the pure parts of S3's conditional writes and deletes."""

from __future__ import annotations

import pytest
from nubis.api.proxy.s3.conditions import (
    ETAG_META,
    drop_overridden,
    etag_matches,
    refuse_unsupported,
    s3_etag,
)
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.unconfigured import check_headers

ETAG = "5d41402abc4b2a76b9719d911017c592"


@pytest.mark.parametrize(("condition", "expected"), [
    (f'"{ETAG}"', True),
    (ETAG, True),
    (f'W/"{ETAG}"', True),
    (f'"0123", "{ETAG}"', True),
    ("*", True),
    ('"0123"', False),
    ("", False),
    (f'"{ETAG}-2"', False),
])
def test_etag_matches(condition: str, expected: bool) -> None:
    assert etag_matches(condition, ETAG) is expected


def test_s3_etag_prefers_the_multipart_etag() -> None:
    assert s3_etag({"etag": f'"{ETAG}"'}) == ETAG
    assert s3_etag({"etag": ETAG, ETAG_META: "abc-3"}) == "abc-3"
    assert s3_etag({}) == ""


@pytest.mark.parametrize("headers", [
    {"if-match": "*"},
    {"if-match": ""},
    {"if-none-match": '"0123"'},
    {"if-modified-since": "Sat, 27 Jun 2015 00:00:00 GMT"},
    {"if-unmodified-since": "Sat, 27 Jun 2015 00:00:00 GMT"},
])
def test_refuse_unsupported_write_conditions(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as exc:
        refuse_unsupported(headers)
    assert (exc.value.code, exc.value.status) == ("NotImplemented", 501)


@pytest.mark.parametrize("headers", [
    {}, {"if-none-match": "*"}, {"if-match": f'"{ETAG}"'},
    {"if-none-match": " * ", "if-match": ETAG},
])
def test_taken_write_conditions_pass(headers: dict[str, str]) -> None:
    refuse_unsupported(headers)


@pytest.mark.parametrize("name", ["x-amz-if-match-size", "x-amz-if-match-last-modified-time"])
def test_directory_bucket_delete_conditions_are_refused(name: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_headers({name: "3"})
    assert exc.value.code == "NotImplemented"


def test_completion_takes_no_if_match() -> None:
    refuse_unsupported({"if-none-match": "*"}, if_match=False)
    with pytest.raises(S3Error) as exc:
        refuse_unsupported({"if-match": f'"{ETAG}"'}, if_match=False)
    assert exc.value.code == "NotImplemented"


@pytest.mark.parametrize(("given", "kept"), [
    ({"if-match": "e", "if-unmodified-since": "d"}, {"if-match": "e"}),
    ({"if-none-match": "e", "if-modified-since": "d"}, {"if-none-match": "e"}),
    ({"if-unmodified-since": "d", "if-modified-since": "d"},
     {"if-unmodified-since": "d", "if-modified-since": "d"}),
    ({"if-match": "e", "if-modified-since": "d", "range": "bytes=0-1"},
     {"if-match": "e", "if-modified-since": "d", "range": "bytes=0-1"}),
])
def test_drop_overridden(given: dict[str, str], kept: dict[str, str]) -> None:
    assert drop_overridden(dict(given)) == kept
