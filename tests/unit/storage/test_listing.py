"""Listing cursor walks against a brute-force reference, over a real LMDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.daemons.storage.listing import (
    SHORT_MAX,
    ListingParams,
    increment,
    reference,
    row_key,
    walk,
    wrap_value,
)

SCOPE = b"\x01" * 16
OTHER_BEFORE = b"\x00" * 15 + b"\xff"
OTHER_AFTER = b"\x01" * 15 + b"\x02"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lmdb.Environment]:
    e = lmdb.open(str(tmp_path_factory.mktemp("listing")), map_size=1 << 26, sync=False)
    yield e
    e.close()


def load(env: lmdb.Environment, names: list[bytes]) -> None:
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(None, txn=txn), delete=False)
        for n in names:
            txn.put(row_key(SCOPE, n), wrap_value(n, b"v:" + n))
        # neighbours in other scopes must never leak into the listing
        txn.put(OTHER_BEFORE + b"zzz", b"x")
        txn.put(OTHER_AFTER + b"", b"x")
        txn.put(OTHER_AFTER + b"a", b"x")


def listing(env: lmdb.Environment, p: ListingParams) -> list[tuple[bytes, bool]]:
    with env.begin() as txn:
        entries = walk(txn.cursor(), SCOPE, p)
    for e in entries:
        if e.value is not None:
            assert e.value == b"v:" + e.name
    return [(e.name, e.value is None) for e in entries]


ALPHABET = st.sampled_from([b"a", b"b", b"/", b"-", b"\xc3\xa9", b"z"])
NAME = st.lists(ALPHABET, min_size=1, max_size=5).map(b"".join)
SMALL = st.lists(ALPHABET, min_size=0, max_size=3).map(b"".join)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAME, max_size=25), prefix=SMALL,
       delimiter=st.sampled_from([b"", b"/", b"-", b"a"]),
       marker=SMALL, end_marker=SMALL, limit=st.integers(1, 30), reverse=st.booleans())
def test_walk_matches_reference(env: lmdb.Environment, names: list[bytes], prefix: bytes,
                                delimiter: bytes, marker: bytes, end_marker: bytes, limit: int,
                                reverse: bool) -> None:
    load(env, names)
    p = ListingParams(prefix, delimiter, marker, end_marker, limit, reverse)
    assert listing(env, p) == reference(names, p)


def test_delimiter_pages_like_swift(env: lmdb.Environment) -> None:
    load(env, [b"a/1", b"a/2", b"b", b"c/x/y", b"d"])
    p = ListingParams(delimiter=b"/", limit=2)
    assert listing(env, p) == [(b"a/", True), (b"b", False)]
    # the next page starts after the last entry, a subdir is not repeated
    p = ListingParams(delimiter=b"/", marker=b"a/", limit=10)
    assert listing(env, p) == [(b"b", False), (b"c/", True), (b"d", False)]
    p = ListingParams(delimiter=b"/", prefix=b"c/", limit=10)
    assert listing(env, p) == [(b"c/x/", True)]


def test_reverse_with_markers(env: lmdb.Environment) -> None:
    load(env, [b"a", b"b", b"c", b"d", b"e"])
    p = ListingParams(marker=b"d", end_marker=b"a", reverse=True)
    assert listing(env, p) == [(b"c", False), (b"b", False)]
    p = ListingParams(reverse=True, limit=2)
    assert listing(env, p) == [(b"e", False), (b"d", False)]


def test_large_scope_first_page_touches_few_rows(tmp_path: Path) -> None:
    e = lmdb.open(str(tmp_path / "big"), map_size=1 << 28, sync=False)
    with e.begin(write=True) as txn:
        for i in range(20000):
            txn.put(SCOPE + b"dir%02d/obj%06d" % (i % 20, i), b"v")

    class Counting:
        def __init__(self, cur: object) -> None:
            self.cur = cur
            self.steps = 0

        def __getattr__(self, name: str) -> object:
            fn = getattr(self.cur, name)

            def wrapped(*a: object) -> object:
                self.steps += 1
                return fn(*a)
            return wrapped

    with e.begin() as txn:
        cur = Counting(txn.cursor())
        out = walk(cur, SCOPE, ListingParams(limit=10))
        assert len(out) == 10 and cur.steps < 40
        cur = Counting(txn.cursor())
        out = walk(cur, SCOPE, ListingParams(delimiter=b"/"))
        assert [x.name for x in out] == [b"dir%02d/" % i for i in range(20)]
        assert cur.steps < 100  # 20 seeks, not 20000 steps
    e.close()


def test_increment() -> None:
    assert increment(b"ab") == b"ac"
    assert increment(b"a\xff") == b"b"
    assert increment(b"\xff\xff") == b""
    assert increment(b"") == b""


# Long names (up to Swift's 1,024 bytes) share a hashed key layout past SHORT_MAX bytes:
# names built around that boundary, sharing long heads, exercise the bucket reordering.
HEAD = b"h" * (SHORT_MAX - 3)
LONG_PIECE = st.sampled_from([b"a", b"/", b"b", b"\xc3\xa9", b"z" * 40, b"m" * 300])
LONG_NAME = st.tuples(st.sampled_from([b"", HEAD, HEAD + b"ab"]),
                      st.lists(LONG_PIECE, min_size=0, max_size=8).map(b"".join)).map(
    lambda t: (t[0] + t[1])[:1024] or b"x")
LONG_BOUND = st.one_of(SMALL, LONG_NAME)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(LONG_NAME, max_size=25), prefix=st.sampled_from([b"", HEAD, b"h"]),
       delimiter=st.sampled_from([b"", b"/", b"z"]), marker=LONG_BOUND,
       end_marker=LONG_BOUND, limit=st.integers(1, 30), reverse=st.booleans())
def test_long_names_walk_matches_reference(env: lmdb.Environment, names: list[bytes],
                                           prefix: bytes, delimiter: bytes, marker: bytes,
                                           end_marker: bytes, limit: int,
                                           reverse: bool) -> None:
    load(env, names)
    p = ListingParams(prefix, delimiter, marker, end_marker, limit, reverse)
    assert listing(env, p) == reference(names, p)


def test_every_allowed_name_fits_an_lmdb_key(env: lmdb.Environment) -> None:
    names = [b"n" * k for k in (SHORT_MAX - 1, SHORT_MAX, SHORT_MAX + 1, 511, 1000, 1024)]
    load(env, names)
    assert all(len(row_key(SCOPE, n)) <= 511 for n in names)
    assert listing(env, ListingParams()) == [(n, False) for n in sorted(names)]
    assert listing(env, ListingParams(reverse=True)) == [(n, False) for n in
                                                         sorted(names, reverse=True)]
    assert listing(env, ListingParams(marker=b"n" * 1000)) == [(b"n" * 1024, False)]


def test_migrate_moves_old_full_name_keys(tmp_path: Path) -> None:
    from nubis.daemons.storage.containerdb import DBS, migrate

    e = lmdb.open(str(tmp_path), map_size=1 << 24, max_dbs=len(DBS), sync=False)
    objects, deleted, meta = (e.open_db(n.encode()) for n in ("objects", "deleted", "meta"))
    old = [b"k" * n for n in (SHORT_MAX, SHORT_MAX + 1, SHORT_MAX + 8, 511 - len(SCOPE))]
    with e.begin(write=True) as txn:
        for n in old:
            txn.put(SCOPE + n, b"v:" + n, db=objects)  # layout 1: the full name as key
        txn.put(SCOPE + old[2], b"ts", db=deleted)
    assert migrate(e, objects, deleted, meta) == 4
    assert migrate(e, objects, deleted, meta) == 0  # the format marker makes it once only
    with e.begin(db=objects) as txn:
        entries = walk(txn.cursor(), SCOPE, ListingParams())
    assert [(x.name, x.value) for x in entries] == [(n, b"v:" + n) for n in sorted(old)]
    with e.begin(db=deleted) as txn:
        assert txn.get(row_key(SCOPE, old[2])) == wrap_value(old[2], b"ts")
    e.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAME, max_size=25), prefix=st.sampled_from([b"", b"a/", b"a/b/"]),
       marker=SMALL, limit=st.integers(1, 30), reverse=st.booleans())
def test_path_mode_matches_reference(env: lmdb.Environment, names: list[bytes], prefix: bytes,
                                     marker: bytes, limit: int, reverse: bool) -> None:
    load(env, names)
    p = ListingParams(prefix, b"/", marker, b"", limit, reverse, path=True)
    assert listing(env, p) == reference(names, p)


def test_path_mode_lists_one_level(env: lmdb.Environment) -> None:
    load(env, [b"d/", b"d/f", b"d/s/", b"d/s/g", b"e"])
    p = ListingParams(b"d/", b"/", limit=10, path=True)
    assert listing(env, p) == [(b"d/f", False), (b"d/s/", False)]
    assert listing(env, ListingParams(b"d/", b"/", limit=10, reverse=True, path=True)) == \
        [(b"d/s/", False), (b"d/f", False)]
