"""Which fragment bytes a range GET of an erasure-coded object asks each archive for."""

from __future__ import annotations

from nubis.api.proxy.ec import SegmentSpan
from nubis.common.cluster import ClusterConfig
from nubis.common.policies import ECPolicy

MIB = 1 << 20


def _ec42() -> ECPolicy:
    policy = ClusterConfig().policies().by_name("ec42")
    assert isinstance(policy, ECPolicy)
    return policy


def test_segments_covering_a_range() -> None:
    ec = _ec42()
    assert SegmentSpan.covering(ec, 5, 10) == SegmentSpan(0, 0)
    assert SegmentSpan.covering(ec, MIB - 1, MIB) == SegmentSpan(0, 1)
    assert SegmentSpan.covering(ec, 3 * MIB + 7, 3 * MIB + 9) == SegmentSpan(3, 3)
    open_end = SegmentSpan.covering(ec, 2 * MIB, None)
    assert open_end.first == 2 and open_end.last > 10**15


def test_archive_range_is_the_segments_fragments() -> None:
    ec = _ec42()
    frag = ec.fragment_size(MIB)  # 256 KiB with k = 4
    assert frag == MIB // 4
    assert SegmentSpan(2, 3).archive_range(ec) == f"bytes={2 * frag}-{4 * frag - 1}"
    # the archive holds whole fragments of every segment before, at fixed offsets
    for length in (3 * MIB + 17, 5 * MIB):
        offsets = [sum(ec.fragment_size(s) for s in ec.segments(length)[:i])
                   for i in range(len(ec.segments(length)))]
        assert offsets == [i * frag for i in range(len(offsets))]
