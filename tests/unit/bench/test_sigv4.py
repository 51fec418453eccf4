"""The SigV4 benchmark's requests are accepted by nubis's check (no timing asserted)."""

from __future__ import annotations

import pytest
from nubis.bench import sigv4


def test_requests_are_signed_as_boto3_signs_them() -> None:
    reqs = sigv4.signed_requests()
    assert set(reqs) == {"GET", "PUT 4KiB"}
    put = reqs["PUT 4KiB"]["headers"]
    signed = put["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-md5", "content-type", "host", "x-amz-meta-note"} <= set(signed)


def test_measure_here_checks_each_request() -> None:
    result = sigv4.measure_here(sigv4.signed_requests(), n=3, rounds=1)
    assert set(result) == {"GET", "PUT 4KiB"}
    assert all(v["check"] > 0 and v["kernel"] > 0 for v in result.values())


def test_a_wrong_signature_fails_the_run() -> None:
    reqs = sigv4.signed_requests()
    auth = reqs["GET"]["headers"]["authorization"]
    reqs["GET"]["headers"]["authorization"] = auth[:-4] + "0000"
    with pytest.raises(Exception, match="signature"):
        sigv4.measure_here(reqs, n=1, rounds=1)


def test_main_without_swift_prints_both_twins(capsys: pytest.CaptureFixture[str]) -> None:
    assert sigv4.main(["--n", "2", "--rounds", "1", "--no-swift"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["request", "nubis", "pure", "swift"]
    assert len(out.splitlines()) == 3
