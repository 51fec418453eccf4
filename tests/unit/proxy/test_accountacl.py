"""Account ACLs, service tokens and required groups: the decisions, without a cloud."""

from __future__ import annotations

import asyncio
import json

import pytest
from nubis.api.proxy import accountacl, auth
from nubis.api.proxy.config import TempAuthConfig, TempAuthUser
from nubis.api.proxy.errors import HTTPError


def status_of(fn, *args):  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except HTTPError as exc:
        return exc.status
    return None


def tempauth() -> auth.TempAuth:
    conf = TempAuthConfig(
        users={"test:tester": TempAuthUser("testing", [".admin"]),
               "test:tester3": TempAuthUser("testing3", []),
               "test2:tester2": TempAuthUser("testing2", [".admin"]),
               "test5:tester5": TempAuthUser("testing5", ["service"]),
               "admin:admin": TempAuthUser("admin", [".admin", ".reseller_admin"])},
        extra_reseller_prefixes=["SERVICE_"], require_group={"SERVICE_": "service"})
    return auth.TempAuth(conf, b"secret")


def chain(ta: auth.TempAuth) -> auth.AuthChain:
    return auth.AuthChain([ta], require_group=ta.conf.require_group)


# --- X-Account-Access-Control values -----------------------------------------

@pytest.mark.parametrize("value,problem", [
    ("invalid", "Syntax error in input ('invalid')"),
    ("[]", "Syntax error in input ('[]')"),
    ('"admin"', "Syntax error in input"),
    ('{"admin":["a"],"invalid_key":"x"}', 'Key "invalid_key" not recognized'),
    ('{"admin":"a"}', 'Value for key "admin" must be a list'),
    ('{"read-only":[1]}', 'Elements of "read-only" list must be strings'),
])
def test_bad_acls_are_400_with_swifts_words(value: str, problem: str) -> None:
    with pytest.raises(HTTPError) as info:
        accountacl.clean(value)
    assert info.value.status == 400
    assert "X-Account-Access-Control invalid: " + problem in info.value.body
    assert info.value.headers["Content-Type"].startswith("text/plain")


def test_good_acls_are_stored_in_swifts_format() -> None:
    assert accountacl.clean('{ "read-only": ["b"], "admin": ["a"] }') == \
        '{"admin":["a"],"read-only":["b"]}'
    assert accountacl.clean("{}") == "" and accountacl.clean("") == ""
    # UTF-8 names (headers arrive as latin-1) are kept, shown as \\u escapes.
    raw = json.dumps({"admin": ["j\u00f6rg"]}, ensure_ascii=False).encode().decode("latin-1")
    assert accountacl.clean(raw) == '{"admin":["j\\u00f6rg"]}'


def test_stored_acl_levels() -> None:
    ta = tempauth()
    _, t3 = ta.login("test:tester3", "testing3")
    _, t2 = ta.login("test2:tester2", "testing2")
    headers = {accountacl.SYSMETA: accountacl.clean(
        '{"read-only":["test:tester3"],"read-write":["AUTH_test2"]}')}
    acl = accountacl.from_headers(headers)
    assert acl is not None
    assert acl.level_of(t3) == auth.READ_ONLY
    assert acl.level_of(t2) == auth.READ_WRITE  # owning AUTH_test2 names the grantee
    assert accountacl.shown(headers) == '{"read-only":["test:tester3"],"read-write":' \
                                        '["AUTH_test2"]}'
    # Unset, empty or damaged metadata grants nothing.
    for value in ("", "{}", "garbage", '{"admin":"x"}', '{"admin":[]}'):
        assert accountacl.from_headers({accountacl.SYSMETA: value}) is None
    assert accountacl.from_headers({}) is None


def test_levels_permit_like_tempauth() -> None:
    ta = tempauth()
    _, t3 = ta.login("test:tester3", "testing3")
    acct = "AUTH_test"
    ok = lambda *a: status_of(auth.authorize, t3, *a) is None  # noqa: E731
    every = {(m, p) for m in ("GET", "HEAD", "PUT", "POST", "DELETE")
             for p in (None, "c", "c/o")}
    writes = {(m, p) for m, p in every if m not in ("GET", "HEAD")}
    denied = {None: every, auth.READ_ONLY: writes,
              auth.READ_WRITE: {("PUT", None), ("POST", None), ("DELETE", None)},
              auth.ADMIN: {("PUT", None), ("DELETE", None)}}
    for level, refused in denied.items():
        for method, path in every:
            container, _, obj = (path or "").partition("/")
            got = ok(method, acct, container or None, obj or None, None, None, level)
            assert got == ((method, path) not in refused), (level, method, path)
    # Anonymous callers never get account-ACL rights.
    assert status_of(auth.authorize, None, "GET", acct, None, None, None, None,
                     auth.ADMIN) == 401


# --- service tokens and required groups --------------------------------------

def test_admin_owns_every_prefix_but_service_accounts_need_the_group() -> None:
    ta = tempauth()
    user, _ = ta.login("test:tester", "testing")
    svc, _ = ta.login("test5:tester5", "testing5")
    other, _ = ta.login("test2:tester2", "testing2")
    ac = chain(ta)
    alone = asyncio.run(ac.identify(user))
    assert alone is not None and alone.owned_accounts == {"AUTH_test"}
    both = asyncio.run(ac.identify(user, svc))
    assert both is not None and both.owned_accounts == {"AUTH_test", "SERVICE_test"}
    # The service user's own token does not own the user's service account...
    only_svc = asyncio.run(ac.identify(svc, svc))
    assert only_svc is not None and "SERVICE_test" not in only_svc.owned_accounts
    # ...a service token never counts without a valid X-Auth-Token...
    assert asyncio.run(ac.identify(None, svc)) is None
    assert asyncio.run(ac.identify("AUTH_tkbogus", svc)) is None
    # ...a user token in X-Service-Token adds no service group...
    twice = asyncio.run(ac.identify(user, user))
    assert twice is not None and twice.owned_accounts == {"AUTH_test"}
    # ...and another tenant with a service token owns only its own service account.
    cross = asyncio.run(ac.identify(other, svc))
    assert cross is not None and cross.owned_accounts == {"AUTH_test2", "SERVICE_test2"}
    assert status_of(auth.authorize, cross, "GET", "SERVICE_test", "c", None, None) == 403
    auth.authorize(both, "PUT", "SERVICE_test", "c", "o", None)


def test_joined_identity_keeps_the_earliest_expiry() -> None:
    a = auth.Identity("a", frozenset({"a"}), expires=100.0)
    b = auth.Identity("b", frozenset({"s"}), expires=50.0)
    j = auth.joined(a, b)
    assert j.user == "a" and j.groups == {"a", "s"} and j.expires == 50.0
    assert auth.joined(a, auth.Identity("c")).expires == 100.0
