"""Unit tests of the scale benchmark's bookkeeping (no servers, no timing)."""

from __future__ import annotations

import os

from nubis.bench import procstat
from nubis.bench.scale import QUERIES, expected, label, parse_size
from nubis.bench.scale_servers import DIRS, row_headers, row_name


def test_sizes_parse_and_print_back() -> None:
    assert [parse_size(s) for s in ("10k", "1M", "250000", " 2.5k ")] == \
        [10_000, 1_000_000, 250_000, 2_500]
    assert [label(n) for n in (10_000, 1_000_000, 1234)] == ["10k", "1M", "1234"]


def test_expected_listing_lengths_match_the_row_names() -> None:
    for n in (1, 42, 43, 99, 100, 101, 5_000, 12_345):
        names = sorted(row_name(i) for i in range(n))
        want = {"limit=10000": names,
                "prefix": [x for x in names if x.startswith("d42/")],
                "delimiter": sorted({x.split("/")[0] + "/" for x in names}),
                "deep marker": [x for x in names if x > "d90/"]}
        for query in QUERIES:
            assert expected(query, n) == min(10_000, len(want[query])), (query, n)
    assert len({row_name(i).split("/")[0] for i in range(1000)}) == DIRS


def test_row_headers_are_what_an_object_server_sends() -> None:
    h = row_headers(123_456)
    assert h["X-Timestamp"] == "1700000001.23456" and h["X-Etag"] == f"{123_456:032x}"
    assert set(h) == {"X-Timestamp", "X-Size", "X-Content-Type", "X-Etag"}


def test_procstat_counts_this_process() -> None:
    before = procstat.snapshot([os.getpid()])
    sum(i * i for i in range(200_000))
    after = procstat.snapshot([os.getpid()])
    assert after[os.getpid()].cpu >= before[os.getpid()].cpu
    assert after[os.getpid()].switches >= before[os.getpid()].switches > 0
    assert procstat.per_op(before, after, 0) == ""
    assert "context switches/op" in procstat.per_op(before, after, 10)
    assert os.getpid() in procstat.group_pids([os.getpgid(0)])
