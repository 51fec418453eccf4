"""The proxy's ETag agreement rule for streamed uploads (it does not hash them itself)."""

from __future__ import annotations

from nubis.api.proxy.backend import Reply
from nubis.api.proxy.putter import _agreed_etag


def _ok(etag: str) -> Reply:
    return Reply(201, {"etag": etag})


def test_all_nodes_agree() -> None:
    replies = [_ok("a" * 32), _ok(f'"{"a" * 32}"'), _ok("A" * 32)]
    assert _agreed_etag(replies) == "a" * 32
    assert [r.status for r in replies] == [201, 201, 201]


def test_a_dissenting_node_counts_as_failed() -> None:
    replies = [_ok("a" * 32), _ok("b" * 32), _ok("a" * 32)]
    assert _agreed_etag(replies) == "a" * 32
    assert [r.status for r in replies] == [201, 503, 201]


def test_failures_are_left_alone_and_no_success_means_no_etag() -> None:
    replies = [Reply(503), Reply(422, {"etag": "c" * 32})]
    assert _agreed_etag(replies) == ""
    assert [r.status for r in replies] == [503, 422]
