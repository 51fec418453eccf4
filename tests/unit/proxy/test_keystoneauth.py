"""The proxy's Keystone adapter: token context -> Swift identity fields."""

from __future__ import annotations

import pytest
from nubis.api.proxy.auth import Identity, authorize, gated, joined, names_allowed
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.keystoneauth import swift_identity_fields
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.tokens import ProjectRef

from tests.unit.shared.test_tokens import payload


def test_swift_identity_fields() -> None:
    ctx = AuthContext.from_payload(payload())
    f = swift_identity_fields(ctx)
    assert f["owned_accounts"] == frozenset({"AUTH_p1"})
    assert {"p1:u1", "p1:*", "*:u1", "*:*"} <= f["groups"]
    assert {"demo:alice", "demo:*", "p1:alice", "demo:u1", "*:alice"} == f["name_groups"]
    assert f["project_accounts"] == frozenset({"AUTH_p1"})
    assert f["default_domain"] is True and f["project_domain_id"] == "default"
    assert f["reseller_admin"] is False and f["user"] == "u1"
    reader = AuthContext.from_payload(payload(roles=(("r2", "reader"),)))
    assert swift_identity_fields(reader)["owned_accounts"] == frozenset()
    unscoped = AuthContext.from_payload(payload(project=None, roles=()))
    assert swift_identity_fields(unscoped)["owned_accounts"] == frozenset()
    reseller = AuthContext.from_payload(payload(roles=(("x", "ResellerAdmin"),)))
    assert swift_identity_fields(reseller)["reseller_admin"] is True


def _ident(**kw: object) -> Identity:
    return Identity(**swift_identity_fields(AuthContext.from_payload(payload(**kw))))


def test_names_in_acls_only_within_the_default_domain() -> None:
    """Swift keystoneauth's rules: ids always match, names only where unambiguous."""
    home = _ident(roles=(("r2", "reader"),))
    assert names_allowed(home, "AUTH_p1", True, "d2")  # its own project's account
    assert names_allowed(home, "AUTH_x", True, None)  # domain never recorded
    assert names_allowed(home, "AUTH_x", True, "default")
    assert not names_allowed(home, "AUTH_x", True, "d2")  # another domain's project
    assert not names_allowed(home, "AUTH_x", False, None)  # no such account yet
    away = _ident(user_domain_id="d2")
    assert away.default_domain is False and not names_allowed(away, "AUTH_p1", True, None)
    elsewhere = _ident(project=ProjectRef("p1", "demo", "d2", "D2"))
    assert elsewhere.default_domain is False

    def check(acl: str, names_ok: bool) -> None:
        authorize(home, "GET", "AUTH_x", "c", None, acl, names_ok=names_ok)

    check("p1:u1", names_ok=False)
    check("*:u1", names_ok=False)
    check("demo:alice", names_ok=True)
    with pytest.raises(HTTPError) as err:
        check("demo:alice", names_ok=False)
    assert err.value.status == 403
    with pytest.raises(HTTPError):
        check("alice", names_ok=True)  # a bare name is a role in keystoneauth, not a user


def test_acl_entry_naming_a_role_counts_on_the_callers_project_account() -> None:
    """Swift keystoneauth's last check: a bare entry is a role, matched case-insensitively."""
    reader = _ident(roles=(("r2", "Reader"),))
    authorize(reader, "GET", "AUTH_p1", "c", "o", "READER")
    authorize(reader, "PUT", "AUTH_p1", "c", "o", "other,reader")
    for account, acl in (("AUTH_x", "reader"),  # another project's account
                         ("AUTH_p1", "member"),  # a role the token lacks
                         ("AUTH_p1", None)):
        with pytest.raises(HTTPError) as err:
            authorize(reader, "GET", account, "c", "o", acl)
        assert err.value.status == 403
    tempauth = Identity(user="test:tester", groups=frozenset({"test", "test:tester"}))
    with pytest.raises(HTTPError):  # tempauth callers have no roles
        authorize(tempauth, "GET", "AUTH_test2", "c", "o", "reader")


def test_service_prefix_needs_a_service_token_role() -> None:
    """Swift keystoneauth's ``SERVICE_service_roles``: the role comes from X-Service-Token."""
    prefixes = ("AUTH_", "SERVICE_")
    user = Identity(**swift_identity_fields(AuthContext.from_payload(payload()),
                                            reseller_prefixes=prefixes))
    service = Identity(**swift_identity_fields(AuthContext.from_payload(payload(
        user_id="u5", project=ProjectRef("p5", "svc", "default", "Default"),
        roles=(("r9", "service"),))), reseller_prefixes=prefixes))
    gate = {"SERVICE_": "service"}
    assert user.owned_accounts == {"AUTH_p1", "SERVICE_p1"}
    assert gated(user, gate).owned_accounts == {"AUTH_p1"}
    both = gated(joined(user, service), gate)
    assert both.owned_accounts == {"AUTH_p1", "SERVICE_p1"}
    assert both.user == "u1" and "p5:*" not in both.groups  # the service user adds no rights
    assert service.owned_accounts == frozenset()  # no operator role on its own project
    # A role on the user's own token does not open the service prefix.
    with_role = Identity(**swift_identity_fields(AuthContext.from_payload(payload(
        roles=(("r1", "member"), ("r9", "service")))), reseller_prefixes=prefixes))
    assert gated(with_role, gate).owned_accounts == {"AUTH_p1"}
