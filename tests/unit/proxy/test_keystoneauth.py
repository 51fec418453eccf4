"""The proxy's Keystone adapter: token context -> Swift identity fields."""

from __future__ import annotations

from nubis.api.proxy.keystoneauth import swift_identity_fields
from nubis.api.shared.auth import AuthContext

from tests.unit.shared.test_tokens import payload


def test_swift_identity_fields() -> None:
    ctx = AuthContext.from_payload(payload())
    f = swift_identity_fields(ctx)
    assert f["owned_accounts"] == frozenset({"AUTH_p1"})
    assert {"p1:u1", "demo:alice", "p1:*", "*:u1"} <= f["groups"]
    assert f["reseller_admin"] is False and f["user"] == "u1"
    reader = AuthContext.from_payload(payload(roles=(("r2", "reader"),)))
    assert swift_identity_fields(reader)["owned_accounts"] == frozenset()
    unscoped = AuthContext.from_payload(payload(project=None, roles=()))
    assert swift_identity_fields(unscoped)["owned_accounts"] == frozenset()
    reseller = AuthContext.from_payload(payload(roles=(("x", "ResellerAdmin"),)))
    assert swift_identity_fields(reseller)["reseller_admin"] is True
