"""The per-request shortcuts of SigV4 checking give the same answers as the long way."""

from __future__ import annotations

import pytest
from nubis.api.proxy.s3.auth import IDENTITY_PERIOD, identity_of
from nubis.api.shared import awssig
from nubis.api.shared.awssig import S3Credential, SigError

HEAD = ("AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date")
HEADERS = {"host": "127.0.0.1:8080", "x-amz-date": "20261203T120000Z",
           "x-amz-content-sha256": awssig.EMPTY_SHA256}


def _with_auth(auth: str) -> dict[str, str]:
    return {**HEADERS, "authorization": auth}


def test_cached_header_head_parses_like_the_full_split() -> None:
    for sig in ("a" * 64, "b" * 64):
        fast = awssig.parse_request(_with_auth(f"{HEAD}, Signature={sig}"), [])
        # No space after the commas: not the cached shape, parsed the long way.
        slow = awssig.parse_request(_with_auth(HEAD.replace(", ", ",") + f",Signature={sig}"),
                                    [])
        assert fast == slow
        assert fast.signature == sig and fast.access == "AKID"
        assert fast.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date")


@pytest.mark.parametrize("auth", [
    "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/s3/aws4_request, Signature=ab",
    "AWS4-HMAC-SHA1 Credential=AKID/20261203/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=ab",
    "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/s3, SignedHeaders=host, "
    "Signature=ab",
])
def test_malformed_heads_fail_every_time(auth: str) -> None:
    codes = set()
    for _ in range(2):  # a failure is never cached as an answer
        with pytest.raises(SigError) as exc:
            awssig.parse_request(_with_auth(auth), [])
        codes.add(exc.value.code)
    assert len(codes) == 1 and codes <= {"AuthorizationHeaderMalformed", "InvalidArgument"}


def test_signature_with_odd_tail_takes_the_long_way() -> None:
    sreq = awssig.parse_request(_with_auth(f"{HEAD}, Signature=ab, Extra=1"), [])
    assert sreq.signature == "ab"


def test_canonical_query_of_no_pairs() -> None:
    assert awssig.canonical_query([]) == ""
    assert awssig.canonical_query([("acl", "")]) == "acl="


def test_request_time_cache_and_bad_dates() -> None:
    sreq = awssig.parse_request(_with_auth(f"{HEAD}, Signature=ab"), [])
    assert awssig.request_time(sreq) == awssig.request_time(sreq) == 1796299200.0
    for bad in ("20261303T120000Z", "20261203T250000Z", "2026120XT120000Z"):
        for _ in range(2):
            with pytest.raises(SigError):
                awssig._amz_epoch(bad)


def _cred(secret: str = "s", roles: frozenset[str] = frozenset({"member"})) -> S3Credential:
    return S3Credential("AKID", secret, "u1", "p1", roles)


def test_identity_reused_within_a_period_and_always_valid_300s() -> None:
    start = 1000 * IDENTITY_PERIOD
    first = identity_of(_cred(), "AUTH_", start)
    assert identity_of(_cred(), "AUTH_", start + IDENTITY_PERIOD - 1) is first
    later = identity_of(_cred(), "AUTH_", start + IDENTITY_PERIOD)
    assert later is not first and later == identity_of(_cred(), "AUTH_",
                                                       start + IDENTITY_PERIOD)
    for when in (start, start + IDENTITY_PERIOD - 1):
        assert identity_of(_cred(), "AUTH_", when).expires >= when + 300
    assert first.owned_accounts == frozenset({"AUTH_p1"})
    assert first.groups == frozenset({"u1", "*:u1", "*:*", "p1:u1", "p1:*"})


def test_identity_follows_a_changed_credential_at_once() -> None:
    now = 2000.0 * IDENTITY_PERIOD
    assert identity_of(_cred(), "AUTH_", now).owned_accounts
    demoted = identity_of(_cred(roles=frozenset({"reader"})), "AUTH_", now)
    assert not demoted.owned_accounts and not demoted.reseller_admin
    assert identity_of(_cred(roles=frozenset({"ResellerAdmin"})), "AUTH_",
                       now).reseller_admin
    assert identity_of(_cred(), "SVC_", now).owned_accounts == frozenset({"SVC_p1"})
