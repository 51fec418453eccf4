"""Key repository rotation and the token payload/codec."""

from __future__ import annotations

from pathlib import Path

import pytest
from nubis.api.shared.tokens import (
    KeyRepository,
    KeyRepositoryError,
    ProjectRef,
    TokenCodec,
    TokenError,
    TokenPayload,
    new_audit_id,
)


def payload(**kw: object) -> TokenPayload:
    base: dict[str, object] = dict(
        user_id="u1", user_name="alice", user_domain_id="default", user_domain_name="Default",
        methods=("password",), issued_at=1000.25, expires_at=4600.5, audit_ids=("a1",),
        roles=(("r1", "member"), ("r2", "reader")),
        project=ProjectRef("p1", "demo", "default", "Default"))
    base.update(kw)
    return TokenPayload(**base)  # type: ignore[arg-type]


def test_setup_creates_staged_and_primary(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.setup()
    assert repo.fingerprint() == (0, 1)
    keys = repo.load()
    assert keys[0] == (tmp_path / "keys" / "1").read_bytes()
    assert keys[-1] == (tmp_path / "keys" / "0").read_bytes()
    assert oct((tmp_path / "keys" / "1").stat().st_mode & 0o777) == "0o600"
    repo.setup()  # idempotent
    assert repo.fingerprint() == (0, 1)


def test_rotation_promotes_staged_and_prunes(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path, max_active_keys=3)
    repo.setup()
    staged = (tmp_path / "0").read_bytes()
    assert repo.rotate() == 2
    assert (tmp_path / "2").read_bytes() == staged
    assert repo.fingerprint() == (0, 1, 2)
    repo.rotate()
    assert repo.fingerprint() == (0, 2, 3)  # key 1 pruned: staged + primary + 1 secondary


def test_tokens_survive_rotation_until_pruned(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path, max_active_keys=3)
    repo.setup()
    token = TokenCodec(repo.load()).encode(payload())
    repo.rotate()
    assert TokenCodec(repo.load()).decode(token) == payload()  # now a secondary key
    repo.rotate()
    with pytest.raises(TokenError):
        TokenCodec(repo.load()).decode(token)


def test_staged_key_is_trusted_before_promotion(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path)
    repo.setup()
    old_keys = repo.load()
    repo.rotate()  # another node rotated: it now signs with the former staged key
    token = TokenCodec(repo.load()).encode(payload())
    assert TokenCodec(old_keys).decode(token).user_id == "u1"


@pytest.mark.parametrize("scope", [
    {"project": ProjectRef("p1", "demo", "d", "D")},
    {"project": None, "domain": ("d1", "Dom")},
    {"project": None, "system": "all"},
    {"project": None, "roles": ()},
    {"app_cred_id": "ac1", "audit_ids": ("x", "y")},
])
def test_payload_roundtrip(tmp_path: Path, scope: dict[str, object]) -> None:
    repo = KeyRepository(tmp_path)
    repo.setup()
    codec = TokenCodec(repo.load())
    p = payload(**scope)
    token = codec.encode(p)
    assert "=" not in token and token.startswith("gAAAAA")
    assert codec.decode(token) == p


def test_tampered_and_garbage_tokens(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path)
    repo.setup()
    codec = TokenCodec(repo.load())
    token = codec.encode(payload())
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    for bad in (flipped, "", "x" * 5000, "not-base64!!", token[:-10]):
        with pytest.raises(TokenError):
            codec.decode(bad)
    with pytest.raises(TokenError):
        TokenPayload.from_wire(b"[2, 1]")
    with pytest.raises(TokenError):
        TokenPayload.from_wire(b"{not json")


def test_empty_repository_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyRepositoryError):
        KeyRepository(tmp_path / "none").load()


def test_audit_ids_are_unique_and_short() -> None:
    ids = {new_audit_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 22 for i in ids)
