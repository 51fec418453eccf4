"""The loopback benchmark measures both transports and reports positive costs."""

from __future__ import annotations

import json

import pytest
from nubis.bench import loopback


@pytest.mark.parametrize("kind", loopback.KINDS)
def test_each_transport_completes_its_round_trips(kind: str) -> None:
    got = loopback.measure(kind, 200, 4500, 200)
    assert set(got) == {"wall_us", "client_cpu_us", "server_cpu_us", "cpu_us"}
    assert got["wall_us"] > 0
    assert got["cpu_us"] == pytest.approx(got["client_cpu_us"] + got["server_cpu_us"])


def test_main_prints_both_transports(capsys: pytest.CaptureFixture[str]) -> None:
    assert loopback.main(["--round-trips", "100", "--rounds", "1", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"tcp", "unix"}
