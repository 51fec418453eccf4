"""TokenVerifier and the revocation list."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from nubis.api.shared.auth import AuthContext, TokenRejectedError, TokenVerifier
from nubis.api.shared.revoke import (
    RevocationEvent,
    RevocationList,
    record_event,
    revocation_events,
)
from nubis.api.shared.tokens import KeyRepository, TokenCodec
from nubis.common.db import make_engine

from tests.unit.shared.test_tokens import payload


class Clock:
    def __init__(self, now: float = 2000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> KeyRepository:
    r = KeyRepository(tmp_path / "keys")
    r.setup()
    return r


def make_verifier(repo: KeyRepository, clock: Clock,
                  engine: sa.engine.Engine | None = None) -> TokenVerifier:
    revocations = RevocationList(engine, poll_seconds=1.0, max_token_life=3600, clock=clock)
    return TokenVerifier(repo, revocations, clock=clock, key_check_seconds=0)


def test_verify_builds_context(repo: KeyRepository) -> None:
    clock = Clock()
    v = make_verifier(repo, clock)
    token = TokenCodec(repo.load()).encode(payload())
    ctx = v.verify(token)
    assert isinstance(ctx, AuthContext)
    assert ctx.user_id == "u1" and ctx.project_id == "p1" and ctx.project_name == "demo"
    assert ctx.roles == {"member", "reader"} and not ctx.is_admin and ctx.has_role("reader")
    assert v.verify(token) is ctx  # cached


def test_expired_and_invalid(repo: KeyRepository) -> None:
    clock = Clock()
    v = make_verifier(repo, clock)
    token = TokenCodec(repo.load()).encode(payload())
    v.verify(token)
    clock.now = 4600.5
    with pytest.raises(TokenRejectedError) as exc:
        v.verify(token)
    assert exc.value.reason == "expired"
    assert v.decode(token, allow_expired=True).user_id == "u1"
    with pytest.raises(TokenRejectedError):
        v.verify("garbage")


def test_revocation_applies_to_cached_tokens(repo: KeyRepository) -> None:
    clock = Clock()
    v = make_verifier(repo, clock)
    token = TokenCodec(repo.load()).encode(payload())
    v.verify(token)
    v.revocations.add(RevocationEvent(issued_before=1000.25, user_id="u1"))
    with pytest.raises(TokenRejectedError) as exc:
        v.verify(token)
    assert exc.value.reason == "revoked"
    later = TokenCodec(repo.load()).encode(payload(issued_at=1500.0))
    assert v.verify(later).user_id == "u1"  # issued after the event


@pytest.mark.parametrize(("event", "revoked"), [
    (RevocationEvent(2000, audit_id="a1"), True),
    (RevocationEvent(2000, audit_id="zz"), False),
    (RevocationEvent(2000, user_id="u1", project_id="p1"), True),
    (RevocationEvent(2000, user_id="u1", project_id="p2"), False),
    (RevocationEvent(2000, project_id="p1"), True),
    (RevocationEvent(2000, domain_id="default"), True),
    (RevocationEvent(2000, domain_id="other"), False),
    (RevocationEvent(2000, role_id="r2"), True),
    (RevocationEvent(2000, role_id="r9"), False),
    (RevocationEvent(2000, app_cred_id="ac"), False),
    (RevocationEvent(999, user_id="u1"), False),
])
def test_event_matching(event: RevocationEvent, revoked: bool) -> None:
    rl = RevocationList(None, 1.0, 3600)
    rl.add(event)
    assert rl.is_revoked(payload()) is revoked


def test_events_are_polled_from_the_database(repo: KeyRepository, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    revocation_events.create(engine, checkfirst=True)
    clock = Clock()
    v = make_verifier(repo, clock, engine)
    token = TokenCodec(repo.load()).encode(payload())
    v.verify(token)  # polls once (nothing yet)
    with engine.begin() as conn:  # another process revokes
        record_event(conn, RevocationEvent(issued_before=1500, user_id="u1"))
    assert v.verify(token).user_id == "u1"  # not polled again yet
    clock.now += 1.0
    with pytest.raises(TokenRejectedError):
        v.verify(token)


def test_missing_revocation_table_is_not_fatal(repo: KeyRepository, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    v = make_verifier(repo, Clock(), engine)
    token = TokenCodec(repo.load()).encode(payload())
    assert v.verify(token).user_id == "u1"


def test_keys_reload_after_rotation(repo: KeyRepository) -> None:
    clock = Clock()
    v = make_verifier(repo, clock)
    old = v.codec.encode(payload())
    repo.rotate()
    repo.rotate()  # the old primary is pruned (max 3 keys)
    new = TokenCodec(repo.load()).encode(payload())
    assert v.verify(new).user_id == "u1"
    with pytest.raises(TokenRejectedError):
        v.verify(old)
