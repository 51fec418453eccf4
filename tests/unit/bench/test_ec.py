"""The EC benchmark's own parts: the raw ISA-L loop builds, times and checks itself."""

from __future__ import annotations

import os
from pathlib import Path

from nubis.bench import ec as bench_ec
from nubis.fastpath import _ec_py, ec


def test_ceiling_loop_compiles_times_and_verifies(tmp_path: Path) -> None:
    binary = bench_ec.compile_ceiling(tmp_path)
    ceiling = bench_ec.Resident([str(binary), "4", "2", str(64 * 1024), "0", "1"])
    for mode in bench_ec.MODES:
        assert ceiling.round(mode, 3) > 0
    ceiling.close()  # exits non-zero if its decoded or rebuilt bytes were wrong


def test_nubis_rounds_check_the_round_trip() -> None:
    segment = os.urandom(64 * 1024)
    for codec in (ec.Codec(4, 2), _ec_py.Codec(4, 2)):
        rounds = bench_ec.NubisRounds(codec, segment, [0, 1])
        assert rounds.parity_sha == bench_ec.NubisRounds(codec, segment, [2]).parity_sha
        for mode in rounds.ops:
            assert rounds.round(mode, 1) > 0
        assert rounds.round("encode_fresh", 1, threads=2) > 0
