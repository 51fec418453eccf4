"""PostObject's policy check (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.postobject import check_policy

NOW = 1_800_000_000.0
LATER = "2027-01-15T08:00:00.000Z"  # after NOW


def _policy(*conditions: Any, expiration: str = LATER) -> dict[str, Any]:
    return {"expiration": expiration, "conditions": list(conditions)}


def _code(exc: pytest.ExceptionInfo[S3Error]) -> tuple[str, str]:
    return exc.value.code, exc.value.message


def test_conditions_that_hold_return_the_length_range() -> None:
    policy = _policy({"bucket": "b"}, ["starts-with", "$key", "user/"],
                     ["eq", "$Content-Type", "text/plain"], ["starts-with", "$x-amz-meta-a", ""],
                     ["content-length-range", 1, 100])
    fields = {"key": "user/x", "content-type": "text/plain", "x-amz-meta-a": "anything",
              "policy": "p", "x-amz-signature": "s", "x-ignore-me": "1"}
    assert check_policy(policy, fields, "b", NOW) == (1, 100)
    assert check_policy(_policy({"key": "k"}), {"key": "k"}, "b", NOW) is None


@pytest.mark.parametrize(("policy", "fields", "why"), [
    (_policy({"bucket": "other"}, {"key": "k"}), {"key": "k"}, "Policy Condition failed"),
    (_policy(["starts-with", "$key", "user/"]), {"key": "admin/x"}, "Policy Condition failed"),
    (_policy({"key": "k"}), {"key": "k", "acl": "public-read"}, "Extra input fields: acl"),
    (_policy({"key": "k"}, expiration="2020-01-01T00:00:00Z"), {"key": "k"}, "Policy expired."),
])
def test_a_policy_the_form_breaks_is_access_denied(policy: dict[str, Any],
                                                   fields: dict[str, str], why: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_policy(policy, fields, "b", NOW)
    code, message = _code(exc)
    assert code == "AccessDenied" and message.startswith("Invalid according to Policy: ")
    assert why in message


@pytest.mark.parametrize("policy", [
    {"conditions": []},  # no expiration
    _policy(expiration="tomorrow"),
    _policy(["in", "$key", "k"]),
    _policy(["content-length-range", 10, 1]),
    {"expiration": LATER, "conditions": {"key": "k"}},
])
def test_a_malformed_policy_is_invalid_policy_document(policy: dict[str, Any]) -> None:
    with pytest.raises(S3Error) as exc:
        check_policy(policy, {"key": "k"}, "b", NOW)
    assert exc.value.code == "InvalidPolicyDocument" and exc.value.status == 400
