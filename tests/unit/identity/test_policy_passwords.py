"""Policy rules and tables; argon2 hashing; the failed-login limiter."""

from __future__ import annotations

import pytest
from nubis.api.identity.passwords import FailureLimiter, PasswordHasher
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import ForbiddenError
from nubis.api.shared.policy import ADMIN, IDENTITY, READER, Policy, owner, scoped_to

from tests.unit.shared.test_tokens import payload

MEMBER_CTX = AuthContext.from_payload(payload())
ADMIN_CTX = AuthContext.from_payload(payload(roles=(("a", "admin"), ("m", "member"),
                                                    ("r", "reader"))))


def test_rules_combine() -> None:
    rule = ADMIN | (READER & scoped_to("project_id"))
    assert rule(MEMBER_CTX, {"project_id": "p1"})
    assert not rule(MEMBER_CTX, {"project_id": "p2"})
    assert rule(ADMIN_CTX, {"project_id": "p2"})
    assert "or" in rule.name and "and" in rule.name
    assert owner()(MEMBER_CTX, {"user_id": "u1"})
    assert not owner()(MEMBER_CTX, {"user_id": "u2"})


def test_identity_table() -> None:
    policy = Policy(IDENTITY)
    assert policy.allowed("identity:create_project", ADMIN_CTX)
    assert not policy.allowed("identity:create_project", MEMBER_CTX)
    assert policy.allowed("identity:get_project", MEMBER_CTX, {"id": "p1"})
    assert not policy.allowed("identity:get_project", MEMBER_CTX, {"id": "p2"})
    assert policy.allowed("identity:get_user", MEMBER_CTX, {"id": "u1"})
    assert policy.allowed("identity:list_services", MEMBER_CTX)
    assert not policy.allowed("identity:no_such_action", ADMIN_CTX)
    assert not policy.allowed("identity:list_services", None)
    with pytest.raises(ForbiddenError) as exc:
        policy.enforce("identity:list_users", MEMBER_CTX)
    assert "identity:list_users" in exc.value.message


def test_argon2_hasher() -> None:
    hasher = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    encoded = hasher.hash("s3cret")
    assert encoded.startswith("$argon2id$") and "s3cret" not in encoded
    assert hasher.verify(encoded, "s3cret")
    assert not hasher.verify(encoded, "wrong")
    assert not hasher.verify(None, "s3cret")
    assert not hasher.verify("not-a-hash", "s3cret")


def test_failure_limiter_window() -> None:
    now = [100.0]
    lim = FailureLimiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(2):
        lim.fail("k")
    assert not lim.blocked("k")
    lim.fail("k")
    assert lim.blocked("k") and not lim.blocked("other")
    now[0] += 61
    assert not lim.blocked("k")
    lim.fail("k")
    lim.reset("k")
    assert not lim.blocked("k")
    off = FailureLimiter(limit=1, window=0)
    off.fail("k")
    assert not off.blocked("k")


def test_generated_password_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    from nubis.api.identity import bootstrap

    draws = iter(["-looks-like-an-option", "_fine-token"])
    monkeypatch.setattr(bootstrap.secrets, "token_urlsafe", lambda n: next(draws))
    assert bootstrap._new_password() == "_fine-token"
