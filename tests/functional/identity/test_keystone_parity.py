"""Keystone parity over real HTTP: the behaviours of issue 15, each with its bad input.

Extras and name limits, groups and effective assignments, implied roles,
OS-INHERIT and the project hierarchy, domain and system scope, trusts,
application-credential roles, unified limits, pagination and filters.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from tests.functional.identity.conftest import Keystone, password_auth
from tests.functional.identity.server import ADMIN_PASSWORD
from tests.functional.identity.test_keystone_http import _error, _wait_rejected

pytestmark = pytest.mark.functional


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(ks: Keystone, token: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    r = ks.call("POST", f"/{kind}s", token, json={kind: body})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()[kind]
    return out


def _roles(ks: Keystone, token: str) -> dict[str, str]:
    return {r["name"]: r["id"] for r in ks.call("GET", "/roles", token).json()["roles"]}


def _user(ks: Keystone, token: str, password: str = "pw-parity",
          **extra: Any) -> dict[str, Any]:
    return _create(ks, token, "user", {"name": _name("u"), "password": password, **extra})


def test_extra_attributes_and_name_limits(ks: Keystone, admin_token: str) -> None:
    group = _create(ks, admin_token, "group", {"name": _name("g"), "project_id": "p-1"})
    assert group["project_id"] == "p-1"
    assert ks.call("GET", f"/groups/{group['id']}", admin_token).json()["group"][
        "project_id"] == "p-1"
    dom = _create(ks, admin_token, "domain", {"name": _name("d"), "color": "blue"})
    assert dom["color"] == "blue"
    upd = ks.call("PATCH", f"/domains/{dom['id']}", admin_token,
                  json={"domain": {"color": "red", "enabled": False}}).json()["domain"]
    assert upd["color"] == "red" and upd["enabled"] is False
    proj = _create(ks, admin_token, "project", {"name": "p" * 64, "owner": "ops"})
    assert proj["owner"] == "ops" and len(proj["name"]) == 64
    user = _user(ks, admin_token, team="blue")
    assert user["team"] == "blue"
    # the known fields stay strict
    for kind, body in (("project", {"name": "p" * 65}), ("domain", {"name": "d" * 65}),
                       ("user", {"name": "u" * 256}), ("group", {"name": "g" * 256}),
                       ("group", {"name": 5}), ("domain", {"name": "x", "enabled": "yes"})):
        _error(ks.call("POST", f"/{kind}s", admin_token, json={kind: body}), 400)
    assert _create(ks, admin_token, "user", {"name": "u" * 255})["name"] == "u" * 255
    _error(ks.call("PATCH", f"/projects/{proj['id']}", admin_token,
                   json={"project": {"name": "n" * 65}}), 400)


def test_groups_effective_assignments_and_implied_roles(ks: Keystone,
                                                        admin_token: str) -> None:
    roles = _roles(ks, admin_token)
    parent = _create(ks, admin_token, "project", {"name": _name("parent")})
    child = _create(ks, admin_token, "project", {"name": _name("child"),
                                                 "parent_id": parent["id"]})
    user = _user(ks, admin_token)
    group = _create(ks, admin_token, "group", {"name": _name("g")})
    ks.call("PUT", f"/groups/{group['id']}/users/{user['id']}", admin_token)
    # implied roles: a new prior role that implies member (and so reader)
    prior = _create(ks, admin_token, "role", {"name": _name("prior")})
    put = ks.call("PUT", f"/roles/{prior['id']}/implies/{roles['member']}", admin_token)
    assert put.status_code == 201
    assert put.json()["role_inference"]["implies"]["id"] == roles["member"]
    listed = ks.call("GET", f"/roles/{prior['id']}/implies", admin_token).json()
    assert [r["id"] for r in listed["role_inference"]["implies"]] == [roles["member"]]
    _error(ks.call("PUT", f"/roles/{roles['member']}/implies/{prior['id']}", admin_token), 400)
    _error(ks.call("PUT", f"/roles/{prior['id']}/implies/{roles['admin']}", admin_token), 403)
    _error(ks.call("PUT", f"/roles/{prior['id']}/implies/nope", admin_token), 404)
    _error(ks.call("DELETE", f"/roles/{roles['reader']}/implies/{prior['id']}",
                   admin_token), 404)
    # group grant on the parent, plus a domain grant: effective, names, subtree
    grant = f"/projects/{parent['id']}/groups/{group['id']}/roles/{prior['id']}"
    assert ks.call("PUT", grant, admin_token).status_code == 204
    ks.call("PUT", f"/projects/{child['id']}/users/{user['id']}/roles/{roles['reader']}",
            admin_token)
    eff = ks.call("GET", f"/role_assignments?effective&include_names&user.id={user['id']}",
                  admin_token).json()["role_assignments"]
    on_parent = {a["role"]["name"] for a in eff if a["scope"]["project"]["id"] == parent["id"]}
    assert on_parent == {prior["name"], "member", "reader"}
    implied = next(a for a in eff if a["role"]["name"] == "member")
    assert implied["links"]["prior_role"].endswith(f"/roles/{prior['id']}")
    assert implied["links"]["membership"].endswith(f"/groups/{group['id']}/users/{user['id']}")
    assert implied["user"]["domain"]["name"] == "Default"
    sub = ks.call("GET", f"/role_assignments?scope.project.id={parent['id']}&include_subtree",
                  admin_token).json()["role_assignments"]
    assert {a["scope"]["project"]["id"] for a in sub} == {parent["id"], child["id"]}
    _error(ks.call("GET", "/role_assignments?include_subtree", admin_token), 400)
    _error(ks.call("GET", f"/role_assignments?effective&group.id={group['id']}",
                   admin_token), 400)
    # the token carries the group-derived and implied roles; /auth/projects lists both
    token, body = ks.token(user["name"], "pw-parity", parent["name"])
    assert {r["name"] for r in body["roles"]} == {prior["name"], "member", "reader"}
    mine = ks.call("GET", "/auth/projects", token).json()["projects"]
    assert {p["id"] for p in mine} == {parent["id"], child["id"]}
    # unknown ids are 404 JSON everywhere
    _error(ks.call("PUT", f"/groups/nope/users/{user['id']}", admin_token), 404)
    _error(ks.call("PUT", f"/projects/{parent['id']}/groups/nope/roles/{prior['id']}",
                   admin_token), 404)
    _error(ks.call("GET", f"/projects/{child['id']}/groups/{group['id']}/roles/"
                           f"{prior['id']}", admin_token), 404)


def test_inherited_grants_and_project_hierarchy(ks: Keystone, admin_token: str) -> None:
    roles = _roles(ks, admin_token)
    dom = _create(ks, admin_token, "domain", {"name": _name("dom")})
    top = _create(ks, admin_token, "project", {"name": _name("top"), "domain_id": dom["id"]})
    mid = _create(ks, admin_token, "project", {"name": _name("mid"), "parent_id": top["id"]})
    leaf = _create(ks, admin_token, "project", {"name": _name("leaf"), "parent_id": mid["id"]})
    user = _create(ks, admin_token, "user", {"name": _name("u"), "password": "pw-inh",
                                             "domain_id": dom["id"]})
    shown = ks.call("GET", f"/projects/{mid['id']}?subtree_as_list&parents_as_list",
                    admin_token).json()["project"]
    assert [p["project"]["id"] for p in shown["subtree"]] == [leaf["id"]]
    assert [p["project"]["id"] for p in shown["parents"]] == [top["id"]]
    ids = ks.call("GET", f"/projects/{top['id']}?subtree_as_ids", admin_token).json()
    assert ids["project"]["subtree"] == {mid["id"]: {leaf["id"]: None}}
    # inherited on the top project: applies below it, not on it
    inh = (f"/OS-INHERIT/projects/{top['id']}/users/{user['id']}/roles/{roles['member']}"
           "/inherited_to_projects")
    assert ks.call("PUT", inh, admin_token).status_code == 204
    assert ks.call("HEAD", inh, admin_token).status_code == 204
    listed = ks.call("GET", f"/OS-INHERIT/projects/{top['id']}/users/{user['id']}/roles/"
                            "inherited_to_projects", admin_token).json()["roles"]
    assert [r["id"] for r in listed] == [roles["member"]]
    direct = ks.call("GET", f"/role_assignments?user.id={user['id']}",
                     admin_token).json()["role_assignments"]
    assert direct[0]["scope"]["OS-INHERIT:inherited_to"] == "projects"
    assert direct[0]["links"]["assignment"].endswith(inh)
    only_inh = ks.call("GET", "/role_assignments?scope.OS-INHERIT:inherited_to=projects"
                              f"&user.id={user['id']}", admin_token).json()
    assert len(only_inh["role_assignments"]) == 1
    eff = ks.call("GET", f"/role_assignments?effective&user.id={user['id']}",
                  admin_token).json()["role_assignments"]
    assert {a["scope"]["project"]["id"] for a in eff} == {mid["id"], leaf["id"]}
    _error(ks.issue(password_auth(user["name"], "pw-inh", top["name"], dom["name"])), 401)
    _, body = ks.token(user["name"], "pw-inh", leaf["name"], domain=dom["name"])
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}
    # inherited on the domain: every project of the domain; domain scope needs a real grant
    dinh = (f"/OS-INHERIT/domains/{dom['id']}/users/{user['id']}/roles/{roles['reader']}"
            "/inherited_to_projects")
    assert ks.call("PUT", dinh, admin_token).status_code == 204
    _, body = ks.token(user["name"], "pw-inh", top["name"], domain=dom["name"])
    assert {r["name"] for r in body["roles"]} == {"reader"}
    scope = {"domain": {"id": dom["id"]}}
    _error(ks.issue(password_auth(user["name"], "pw-inh", scope=scope, domain=dom["name"])),
           401)
    ks.call("PUT", f"/domains/{dom['id']}/users/{user['id']}/roles/{roles['reader']}",
            admin_token)
    dtok, dbody = ks.token(user["name"], "pw-inh", scope=scope, domain=dom["name"])
    assert dbody["domain"]["id"] == dom["id"] and dbody["roles"][0]["name"] == "reader"
    assert [d["id"] for d in ks.call("GET", "/auth/domains", dtok).json()["domains"]] == [
        dom["id"]]
    # removing the inherited grant takes the role away
    assert ks.call("DELETE", inh, admin_token).status_code == 204
    _error(ks.call("DELETE", inh, admin_token), 404)
    # hierarchy bad input
    _error(ks.call("GET", "/projects/nope?subtree_as_list", admin_token), 404)
    deep = leaf  # depth 3; Keystone's default max_project_tree_depth is 5
    for _ in range(2):
        deep = _create(ks, admin_token, "project", {"name": _name("deep"),
                                                    "parent_id": deep["id"]})
    _error(ks.call("POST", "/projects", admin_token, json={"project": {
        "name": _name("too-deep"), "parent_id": deep["id"]}}), 403)
    _error(ks.call("PUT", f"/OS-INHERIT/projects/nope/users/{user['id']}/roles/"
                          f"{roles['member']}/inherited_to_projects", admin_token), 404)


def test_trusts(ks: Keystone, admin_token: str) -> None:
    roles = _roles(ks, admin_token)
    trustor = _user(ks, admin_token, "pw-trustor")
    trustee = _user(ks, admin_token, "pw-trustee")
    project = _create(ks, admin_token, "project", {"name": _name("p")})
    ks.call("PUT", f"/projects/{project['id']}/users/{trustor['id']}/roles/{roles['member']}",
            admin_token)
    tor_token, _ = ks.token(trustor["name"], "pw-trustor", project["name"])
    tee_token, _ = ks.token(trustee["name"], "pw-trustee")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"trustor_user_id": trustor["id"], "trustee_user_id": trustee["id"],
            "project_id": project["id"], "impersonation": True, "remaining_uses": 2,
            "roles": [{"name": "member"}], "expires_at": expires}
    r = ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": body})
    assert r.status_code == 201, r.text
    trust = r.json()["trust"]
    assert trust["roles"][0]["name"] == "member" and trust["allow_redelegation"] is False
    assert trust["expires_at"].endswith(".000000Z") and trust["remaining_uses"] == 2
    # the trustee gets a trust-scoped token; impersonation makes the trustor its user
    scope = {"OS-TRUST:trust": {"id": trust["id"]}}
    auth = {"auth": {"identity": {"methods": ["token"], "token": {"id": tee_token}},
                     "scope": scope}}
    first = ks.issue(auth)
    assert first.status_code == 201, first.text
    tok = first.json()["token"]
    assert tok["OS-TRUST:trust"] == {"id": trust["id"], "impersonation": True,
                                     "trustee_user": {"id": trustee["id"]},
                                     "trustor_user": {"id": trustor["id"]}}
    assert tok["user"]["id"] == trustor["id"] and tok["project"]["id"] == project["id"]
    assert {x["name"] for x in tok["roles"]} == {"member", "reader"}
    assert ks.issue(auth).status_code == 201
    _error(ks.issue(auth), 401)  # remaining_uses spent: the trust is gone
    _error(ks.call("GET", f"/OS-TRUST/trusts/{trust['id']}", tor_token), 404)
    # bad input and refusals
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "trustor_user_id": trustee["id"]}}), 403)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "roles": [{"name": "admin"}]}}), 404)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "roles": []}}), 403)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "remaining_uses": 0}}), 400)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "trustee_user_id": "nobody"}}), 404)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "impersonation": "yes"}}), 400)
    _error(ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "allow_redelegation": True, "remaining_uses": None}}), 403)
    # not impersonating: the token's user is the trustee; only the trustee may use it
    plain = ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "impersonation": False, "remaining_uses": None}}).json()["trust"]
    pauth = {"auth": {"identity": {"methods": ["token"], "token": {"id": tee_token}},
                      "scope": {"OS-TRUST:trust": {"id": plain["id"]}}}}
    ptok = ks.issue(pauth)
    assert ptok.json()["token"]["user"]["id"] == trustee["id"]
    trust_token = ptok.headers["X-Subject-Token"]
    _error(ks.issue({"auth": {"identity": {"methods": ["token"], "token": {"id": tor_token}},
                              "scope": {"OS-TRUST:trust": {"id": plain["id"]}}}}), 403)
    # redelegation is off by default
    _error(ks.call("POST", "/OS-TRUST/trusts", trust_token, json={"trust": {
        **body, "trustor_user_id": trustee["id"], "trustee_user_id": trustor["id"],
        "remaining_uses": None}}), 403)
    _error(ks.issue({"auth": {"identity": {"methods": ["token"], "token": {
        "id": trust_token}}, "scope": {"project": {"id": project["id"]}}}}), 403)
    listed = ks.call("GET", f"/OS-TRUST/trusts?trustee_user_id={trustee['id']}",
                     tee_token).json()["trusts"]
    assert [t["id"] for t in listed] == [plain["id"]] and "roles" not in listed[0]
    _error(ks.call("GET", "/OS-TRUST/trusts", tee_token), 403)
    roles_of = ks.call("GET", f"/OS-TRUST/trusts/{plain['id']}/roles", tee_token).json()
    assert [x["name"] for x in roles_of["roles"]] == ["member"]
    _error(ks.call("GET", f"/OS-TRUST/trusts/{plain['id']}/roles/{roles['admin']}",
                   tee_token), 404)
    _error(ks.call("DELETE", f"/OS-TRUST/trusts/{plain['id']}", tee_token), 403)
    # an expired trust: 404 to read, 401 to authenticate with
    past = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    short = ks.call("POST", "/OS-TRUST/trusts", tor_token, json={"trust": {
        **body, "expires_at": past, "remaining_uses": None}}).json()["trust"]
    time.sleep(2.5)
    _error(ks.call("GET", f"/OS-TRUST/trusts/{short['id']}", tor_token), 404)
    _error(ks.issue({"auth": {"identity": {"methods": ["token"], "token": {"id": tee_token}},
                              "scope": {"OS-TRUST:trust": {"id": short["id"]}}}}), 401)
    # deleting the trust revokes its tokens
    assert ks.call("DELETE", f"/OS-TRUST/trusts/{plain['id']}", tor_token).status_code == 204
    assert _wait_rejected(ks, trust_token) == 401
    _error(ks.call("DELETE", f"/OS-TRUST/trusts/{plain['id']}", tor_token), 404)


def test_application_credential_roles_from_assignments(ks: Keystone,
                                                        admin_token: str) -> None:
    roles = _roles(ks, admin_token)
    project = _create(ks, admin_token, "project", {"name": _name("p")})
    user = _user(ks, admin_token, "pw-ac")
    group = _create(ks, admin_token, "group", {"name": _name("g")})
    ks.call("PUT", f"/groups/{group['id']}/users/{user['id']}", admin_token)
    ks.call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{roles['reader']}",
            admin_token)
    token, _ = ks.token(user["name"], "pw-ac", project["name"])  # reader only
    ks.call("PUT", f"/projects/{project['id']}/groups/{group['id']}/roles/{roles['member']}",
            admin_token)  # granted after the token was issued
    path = f"/users/{user['id']}/application_credentials"
    expires = "2031-05-06T07:08:09.123456"
    r = ks.call("POST", path, token, json={"application_credential": {
        "name": "via-group", "roles": [{"name": "member"}], "expires_at": expires}})
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    assert cred["expires_at"] == expires and [x["name"] for x in cred["roles"]] == ["member"]
    assert ks.call("GET", f"{path}/{cred['id']}", token).json()[
        "application_credential"]["expires_at"] == expires
    _error(ks.call("POST", path, token, json={"application_credential": {
        "name": "too-much", "roles": [{"name": "admin"}]}}), 403)
    _error(ks.call("POST", path, token, json={"application_credential": {
        "name": "bad-time", "expires_at": "next tuesday"}}), 400)
    _error(ks.call("POST", path, token, json={"application_credential": {
        "name": "past", "expires_at": "2001-01-01T00:00:00"}}), 400)


def test_unified_limits(ks: Keystone, admin_token: str, demo_token: str) -> None:
    services = ks.call("GET", "/services", admin_token).json()["services"]
    svc = next(s for s in services if s["type"] == "identity")
    resource = _name("cores")
    r = ks.call("POST", "/registered_limits", admin_token, json={"registered_limits": [
        {"service_id": svc["id"], "region_id": "RegionOne", "resource_name": resource,
         "default_limit": 10, "description": "cores"}]})
    assert r.status_code == 201, r.text
    (reg,) = r.json()["registered_limits"]
    assert reg["default_limit"] == 10 and reg["links"]["self"].endswith(reg["id"])
    demo = ks.call("GET", "/auth/tokens", demo_token,
                   headers={"X-Subject-Token": demo_token}).json()["token"]["project"]
    r = ks.call("POST", "/limits", admin_token, json={"limits": [
        {"project_id": demo["id"], "service_id": svc["id"], "region_id": "RegionOne",
         "resource_name": resource, "resource_limit": 5}]})
    assert r.status_code == 201, r.text
    (lim,) = r.json()["limits"]
    assert lim["project_id"] == demo["id"] and lim["domain_id"] is None
    # the demo project reads its own limits and every registered limit
    seen = ks.call("GET", f"/limits?resource_name={resource}", demo_token).json()["limits"]
    assert [x["resource_limit"] for x in seen] == [5]
    regs = ks.call("GET", f"/registered_limits?service_id={svc['id']}", demo_token).json()
    assert resource in {x["resource_name"] for x in regs["registered_limits"]}
    assert ks.call("GET", "/limits/model", demo_token).json()["model"]["name"] == "flat"
    upd = ks.call("PATCH", f"/limits/{lim['id']}", admin_token,
                  json={"limit": {"resource_limit": 7}})
    assert upd.json()["limit"]["resource_limit"] == 7
    # bad input
    _error(ks.call("POST", "/limits", demo_token, json={"limits": [
        {"project_id": demo["id"], "service_id": svc["id"], "resource_name": resource,
         "resource_limit": 1}]}), 403)
    _error(ks.call("POST", "/registered_limits", admin_token, json={"registered_limits": [
        {"service_id": svc["id"], "region_id": "RegionOne", "resource_name": resource,
         "default_limit": 1}]}), 409)
    _error(ks.call("POST", "/registered_limits", admin_token, json={"registered_limits": [
        {"service_id": "nope", "resource_name": "x", "default_limit": 1}]}), 400)
    _error(ks.call("POST", "/registered_limits", admin_token, json={"registered_limits": [
        {"service_id": svc["id"], "resource_name": "x", "default_limit": "ten"}]}), 400)
    _error(ks.call("POST", "/registered_limits", admin_token,
                   json={"registered_limits": []}), 400)
    _error(ks.call("POST", "/limits", admin_token, json={"limits": [
        {"project_id": demo["id"], "service_id": svc["id"], "resource_name": _name("none"),
         "resource_limit": 1}]}), 403)
    _error(ks.call("POST", "/limits", admin_token, json={"limits": [
        {"service_id": svc["id"], "resource_name": resource, "resource_limit": 1}]}), 400)
    _error(ks.call("GET", "/limits/nope", admin_token), 404)
    _error(ks.call("GET", "/registered_limits/nope", admin_token), 404)
    _error(ks.call("DELETE", f"/registered_limits/{reg['id']}", admin_token), 403)
    assert ks.call("DELETE", f"/limits/{lim['id']}", admin_token).status_code == 204
    assert ks.call("DELETE", f"/registered_limits/{reg['id']}",
                   admin_token).status_code == 204


def test_filters_and_pagination(ks: Keystone, admin_token: str) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [_create(ks, admin_token, "project", {"name": f"pg-{tag}-{i}"}) for i in range(5)]
    found = ks.call("GET", f"/projects?name__startswith=pg-{tag}", admin_token).json()
    assert {p["id"] for p in found["projects"]} == {p["id"] for p in made}
    upper = ks.call("GET", f"/projects?name__icontains=PG-{tag.upper()}", admin_token).json()
    assert len(upper["projects"]) == 5
    assert ks.call("GET", f"/projects?name__contains=PG-{tag}", admin_token).json()[
        "projects"] == []
    page = ks.call("GET", f"/projects?name__startswith=pg-{tag}&limit=2", admin_token).json()
    assert len(page["projects"]) == 2 and "marker=" in page["links"]["next"]
    ids = [p["id"] for p in page["projects"]]
    nxt = page["links"]["next"].split("/v3", 1)[1]
    while nxt:
        more = ks.call("GET", nxt, admin_token).json()
        ids += [p["id"] for p in more["projects"]]
        nxt = more["links"]["next"] and more["links"]["next"].split("/v3", 1)[1]
    assert sorted(ids) == sorted(p["id"] for p in made) and len(ids) == 5
    enabled = ks.call("GET", "/users?enabled=true", admin_token).json()["users"]
    assert all(u["enabled"] for u in enabled)
    _error(ks.call("GET", "/projects?limit=0", admin_token), 400)
    _error(ks.call("GET", "/projects?limit=x", admin_token), 400)
    _error(ks.call("GET", "/projects?marker=nope", admin_token), 400)


def test_system_scope_and_password_auth_by_name(ks: Keystone) -> None:
    token, body = ks.token("admin", ADMIN_PASSWORD, scope={"system": {"all": True}})
    assert body["system"] == {"all": True}
    assert ks.call("GET", "/auth/system", token).json()["system"] == [{"all": True}]
    _error(ks.issue(password_auth("admin", ADMIN_PASSWORD,
                                  scope={"system": {"all": False}})), 400)
    _error(ks.issue(password_auth("admin", ADMIN_PASSWORD,
                                  scope={"domain": {"id": "nope"}})), 401)
