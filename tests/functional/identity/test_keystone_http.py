"""Keystone v3 over real HTTP: shapes, scopes, errors, revocation, policy."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from tests.functional.identity.conftest import Keystone, password_auth
from tests.functional.identity.server import ADMIN_PASSWORD, DEMO_PASSWORD, ApiServer

pytestmark = pytest.mark.functional


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(r: requests.Response, code: int) -> dict[str, Any]:
    assert r.status_code == code, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code and err["title"] and err["message"]
    return err


def _wait_rejected(ks: Keystone, token: str, path: str = "/auth/catalog") -> int:
    """Poll until the server rejects ``token`` (bounded: revocation poll is 0.5 s)."""
    for _ in range(50):
        code = ks.call("GET", path, token).status_code
        if code == 401:
            return code
        time.sleep(0.1)
    return code


def test_version_discovery(identity: ApiServer) -> None:
    root = requests.get(f"{identity.url}/identity", timeout=10)
    assert root.status_code == 300
    (v3,) = root.json()["versions"]["values"]
    assert v3["id"].startswith("v3.") and v3["status"] == "stable"
    assert v3["links"][0]["href"] == f"{identity.auth_url}/"
    assert v3["media-types"][0]["type"] == "application/vnd.openstack.identity-v3+json"
    doc = requests.get(f"{identity.auth_url}/", timeout=10)
    assert doc.status_code == 200 and doc.json()["version"]["id"] == v3["id"]
    missing = requests.get(f"{identity.url}/nothing-here", timeout=10)
    _error(missing, 404)


def test_project_token_shape_and_validation(ks: Keystone, admin_token: str) -> None:
    r = ks.issue(password_auth("admin", ADMIN_PASSWORD, "admin"))
    assert r.status_code == 201
    token = r.headers["X-Subject-Token"]
    body = r.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"]["name"] == "admin" and body["user"]["domain"]["id"] == "default"
    assert body["project"]["name"] == "admin"
    assert body["project"]["domain"] == {"id": "default", "name": "Default"}
    assert {x["name"] for x in body["roles"]} == {"admin", "member", "reader"}
    assert body["expires_at"].endswith("Z") and body["issued_at"].endswith("Z")
    assert len(body["audit_ids"]) == 1
    types = {svc["type"]: svc for svc in body["catalog"]}
    assert "identity" in types and "object-store" in types
    swift = {ep["interface"]: ep["url"] for ep in types["object-store"]["endpoints"]}
    assert swift["public"] == f"http://127.0.0.1:8080/v1/AUTH_{body['project']['id']}"
    assert {ep["region_id"] for ep in types["identity"]["endpoints"]} == {"RegionOne"}
    # validate (GET), check (HEAD), nocatalog
    v = ks.call("GET", "/auth/tokens", admin_token, headers={"X-Subject-Token": token})
    assert v.status_code == 200 and v.headers["X-Subject-Token"] == token
    assert v.json()["token"]["audit_ids"] == body["audit_ids"]
    h = ks.call("HEAD", "/auth/tokens", admin_token, headers={"X-Subject-Token": token})
    assert h.status_code == 200
    nc = ks.call("GET", "/auth/tokens?nocatalog", admin_token,
                 headers={"X-Subject-Token": token})
    assert "catalog" not in nc.json()["token"]
    bad = ks.call("GET", "/auth/tokens", admin_token, headers={"X-Subject-Token": "garbage"})
    _error(bad, 404)
    # revoke: the subject token stops working, the caller's does not
    d = ks.call("DELETE", "/auth/tokens", admin_token, headers={"X-Subject-Token": token})
    assert d.status_code == 204
    _error(ks.call("GET", "/auth/tokens", admin_token, headers={"X-Subject-Token": token}), 404)
    _error(ks.call("GET", "/auth/catalog", token), 401)
    assert ks.call("GET", "/auth/catalog", admin_token).status_code == 200


def test_scopes_and_rescoping(ks: Keystone) -> None:
    unscoped, body = ks.token("admin", ADMIN_PASSWORD)
    assert "project" not in body and "roles" not in body and "catalog" not in body
    projects = ks.call("GET", "/auth/projects", unscoped).json()["projects"]
    assert {p["name"] for p in projects} >= {"admin"}
    assert ks.call("GET", "/auth/domains", unscoped).json()["domains"] == []
    assert ks.call("GET", "/auth/system", unscoped).json()["system"] == [{"all": True}]
    # token method: rescope to the admin project; audit chain and expiry carried over
    admin_project = next(p for p in projects if p["name"] == "admin")
    r = ks.issue({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
                           "scope": {"project": {"id": admin_project["id"]}}}})
    assert r.status_code == 201, r.text
    scoped = r.json()["token"]
    assert scoped["methods"] == ["password", "token"]
    assert scoped["project"]["id"] == admin_project["id"]
    assert scoped["audit_ids"][1] == body["audit_ids"][0]
    assert scoped["expires_at"] == body["expires_at"]
    # project -> another project: the chain keeps the first audit id and the expiry
    demo_project = ks.call("GET", "/projects?name=demo", ks.token("admin", ADMIN_PASSWORD,
                                                                   "admin")[0]).json()
    demo_id = demo_project["projects"][0]["id"]
    ks.call("PUT", f"/projects/{demo_id}/users/{body['user']['id']}/roles/"
                   f"{scoped['roles'][0]['id']}", r.headers["X-Subject-Token"])
    again = ks.issue({"auth": {"identity": {"methods": ["token"],
                                            "token": {"id": r.headers["X-Subject-Token"]}},
                               "scope": {"project": {"id": demo_id}}}})
    assert again.status_code == 201, again.text
    hop = again.json()["token"]
    assert hop["project"]["id"] == demo_id and hop["methods"] == ["password", "token"]
    assert hop["audit_ids"][1] == body["audit_ids"][0] and hop["expires_at"] == body["expires_at"]
    assert hop["expires_at"].endswith(".000000Z") and hop["issued_at"].endswith(".000000Z")
    # system scope
    _, system = ks.token("admin", ADMIN_PASSWORD, scope={"system": {"all": True}})
    assert system["system"] == {"all": True} and "admin" in {x["name"] for x in system["roles"]}
    # demo has no role on the admin project / the system
    _error(ks.issue(password_auth("demo", DEMO_PASSWORD, "admin")), 401)
    _error(ks.issue(password_auth("demo", DEMO_PASSWORD, scope={"system": {"all": True}})), 401)
    # user by id
    me = ks.call("GET", "/auth/projects", unscoped)
    assert me.status_code == 200
    uid = body["user"]["id"]
    by_id = ks.issue({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": uid, "password": ADMIN_PASSWORD}}}}})
    assert by_id.status_code == 201


def test_client_errors_are_keystone_json(ks: Keystone, admin_token: str,
                                         demo_token: str) -> None:
    _error(ks.issue(password_auth("admin", "wrong-password")), 401)
    _error(ks.issue(password_auth("nobody-at-all", "x")), 401)
    _error(ks.http.post(f"{ks.base}/auth/tokens", data=b"{not json", timeout=10,
                        headers={"Content-Type": "application/json"}), 400)
    _error(ks.issue({"auth": {"identity": {"methods": "password"}}}), 400)
    _error(ks.issue({"nothing": 1}), 400)
    _error(ks.call("GET", "/projects", None), 401)
    _error(ks.call("GET", "/projects", "not-a-token"), 401)
    _error(ks.call("GET", "/projects/does-not-exist", admin_token), 404)
    _error(ks.call("GET", "/users", demo_token), 403)
    _error(ks.call("POST", "/projects", demo_token, json={"project": {"name": "x"}}), 403)
    _error(ks.call("POST", "/projects", admin_token, json={"project": {"name": "admin"}}), 409)
    _error(ks.call("POST", "/projects", admin_token, json={"project": {}}), 400)
    _error(ks.call("POST", "/projects", admin_token, json={"project": {"name": 5}}), 400)
    _error(ks.call("POST", "/roles", admin_token, json={"role": {"name": "r", "bogus": 1}}), 400)
    _error(ks.call("PATCH", "/domains/default", admin_token, json=[]), 400)
    _error(ks.call("PUT", "/projects", admin_token, json={}), 405)
    big = {"project": {"name": "x", "description": "y" * (2 << 20)}}
    assert ks.call("POST", "/projects", admin_token, json=big).status_code == 413
    r = ks.call("GET", "/projects", None)
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_crud_and_filters(ks: Keystone, admin_token: str) -> None:
    dom = ks.call("POST", "/domains", admin_token,
                  json={"domain": {"name": _name("dom")}}).json()["domain"]
    parent = ks.call("POST", "/projects", admin_token, json={"project": {
        "name": _name("parent"), "domain_id": dom["id"]}}).json()["project"]
    assert parent["parent_id"] == dom["id"] and parent["links"]["self"].endswith(parent["id"])
    child = ks.call("POST", "/projects", admin_token, json={"project": {
        "name": _name("child"), "parent_id": parent["id"]}}).json()["project"]
    assert child["domain_id"] == dom["id"] and child["parent_id"] == parent["id"]
    listed = ks.call("GET", f"/projects?parent_id={parent['id']}", admin_token).json()
    assert [p["id"] for p in listed["projects"]] == [child["id"]]
    assert "self" in listed["links"]
    top = ks.call("GET", f"/projects?parent_id={dom['id']}", admin_token).json()["projects"]
    assert [p["id"] for p in top] == [parent["id"]]
    by_name = ks.call("GET", f"/projects?name={child['name']}", admin_token).json()
    assert [p["id"] for p in by_name["projects"]] == [child["id"]]
    _error(ks.call("DELETE", f"/projects/{parent['id']}", admin_token), 403)
    upd = ks.call("PATCH", f"/projects/{child['id']}", admin_token,
                  json={"project": {"description": "hello", "enabled": False}})
    assert upd.json()["project"]["description"] == "hello"
    assert upd.json()["project"]["enabled"] is False
    user = ks.call("POST", "/users", admin_token, json={"user": {
        "name": _name("u"), "domain_id": dom["id"], "password": "pw-1",
        "email": "u@example.org"}}).json()["user"]
    assert user["email"] == "u@example.org" and "password" not in user
    assert "password_hash" not in user
    users = ks.call("GET", f"/users?domain_id={dom['id']}", admin_token).json()["users"]
    assert [u["id"] for u in users] == [user["id"]]
    # a domain must be disabled before it can be deleted; deletion cascades
    _error(ks.call("DELETE", f"/domains/{dom['id']}", admin_token), 403)
    ks.call("PATCH", f"/domains/{dom['id']}", admin_token, json={"domain": {"enabled": False}})
    assert ks.call("DELETE", f"/domains/{dom['id']}", admin_token).status_code == 204
    _error(ks.call("GET", f"/projects/{child['id']}", admin_token), 404)
    _error(ks.call("GET", f"/users/{user['id']}", admin_token), 404)
    # catalog entities
    svc = ks.call("POST", "/services", admin_token, json={"service": {
        "type": "test-svc", "name": _name("svc")}}).json()["service"]
    ep = ks.call("POST", "/endpoints", admin_token, json={"endpoint": {
        "service_id": svc["id"], "interface": "public", "url": "http://127.0.0.1:9/x",
        "region_id": "RegionOne"}})
    assert ep.status_code == 201 and ep.json()["endpoint"]["region"] == "RegionOne"
    _error(ks.call("POST", "/endpoints", admin_token, json={"endpoint": {
        "service_id": svc["id"], "interface": "sideways", "url": "http://x"}}), 400)
    assert ks.call("DELETE", f"/services/{svc['id']}", admin_token).status_code == 204
    assert ks.call("GET", f"/endpoints/{ep.json()['endpoint']['id']}",
                   admin_token).status_code == 404
    regions = ks.call("GET", "/regions", admin_token).json()["regions"]
    assert "RegionOne" in {r["id"] for r in regions}


def test_groups_grants_assignments_and_implied_roles(ks: Keystone, admin_token: str) -> None:
    roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles", admin_token).json()["roles"]}
    project = ks.call("POST", "/projects", admin_token,
                      json={"project": {"name": _name("p")}}).json()["project"]
    user = ks.call("POST", "/users", admin_token, json={"user": {
        "name": _name("u"), "password": "pw-2"}}).json()["user"]
    group = ks.call("POST", "/groups", admin_token,
                    json={"group": {"name": _name("g")}}).json()["group"]
    assert ks.call("PUT", f"/groups/{group['id']}/users/{user['id']}",
                   admin_token).status_code == 204
    assert ks.call("HEAD", f"/groups/{group['id']}/users/{user['id']}",
                   admin_token).status_code == 204
    grant = f"/projects/{project['id']}/groups/{group['id']}/roles/{roles['member']}"
    assert ks.call("PUT", grant, admin_token).status_code == 204
    assert ks.call("HEAD", grant, admin_token).status_code == 204
    listed = ks.call("GET", f"/projects/{project['id']}/groups/{group['id']}/roles",
                     admin_token).json()["roles"]
    assert [r["name"] for r in listed] == ["member"]
    # effective: group grant -> user, member -> implied reader
    eff = ks.call("GET", f"/role_assignments?effective&user.id={user['id']}"
                  "&include_names=1", admin_token).json()["role_assignments"]
    names = sorted(a["role"]["name"] for a in eff)
    assert names == ["member", "reader"]
    assert all(a["scope"]["project"]["name"] == project["name"] for a in eff)
    assert all("membership" in a["links"] for a in eff)
    direct = ks.call("GET", f"/role_assignments?scope.project.id={project['id']}",
                     admin_token).json()["role_assignments"]
    assert direct == [{"scope": {"project": {"id": project["id"]}},
                       "group": {"id": group["id"]}, "role": {"id": roles["member"]},
                       "links": {"assignment": f"{ks.base}{grant}"}}]
    _error(ks.call("GET", "/role_assignments?user.id=a&group.id=b", admin_token), 400)
    # the group member can scope to the project and gets implied roles in its token
    token, body = ks.token(user["name"], "pw-2", project["name"])
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}
    # removing the user from the group revokes its tokens
    assert ks.call("DELETE", f"/groups/{group['id']}/users/{user['id']}",
                   admin_token).status_code == 204
    assert _wait_rejected(ks, token) == 401
    _error(ks.issue(password_auth(user["name"], "pw-2", project["name"])), 401)
    inferences = ks.call("GET", "/role_inferences", admin_token).json()["role_inferences"]
    admin_rule = next(i for i in inferences if i["prior_role"]["name"] == "admin")
    assert [i["name"] for i in admin_rule["implies"]] == ["member"]


def test_revocation_on_role_removal_password_change_and_disable(
        ks: Keystone, admin_token: str) -> None:
    roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles", admin_token).json()["roles"]}
    project = ks.call("POST", "/projects", admin_token,
                      json={"project": {"name": _name("p")}}).json()["project"]
    user = ks.call("POST", "/users", admin_token, json={"user": {
        "name": _name("u"), "password": "old-pw"}}).json()["user"]
    grant = f"/projects/{project['id']}/users/{user['id']}/roles/{roles['member']}"
    ks.call("PUT", grant, admin_token)
    t1, _ = ks.token(user["name"], "old-pw", project["name"])
    assert ks.call("GET", "/auth/catalog", t1).status_code == 200
    assert ks.call("DELETE", grant, admin_token).status_code == 204
    assert _wait_rejected(ks, t1) == 401
    ks.call("PUT", grant, admin_token)
    t2, _ = ks.token(user["name"], "old-pw", project["name"])
    # the user changes its own password (no token needed, original password checked)
    bad = ks.call("POST", f"/users/{user['id']}/password", None, json={"user": {
        "original_password": "nope", "password": "new-pw"}})
    _error(bad, 401)
    ok = ks.call("POST", f"/users/{user['id']}/password", None, json={"user": {
        "original_password": "old-pw", "password": "new-pw"}})
    assert ok.status_code == 204
    assert _wait_rejected(ks, t2) == 401
    _error(ks.issue(password_auth(user["name"], "old-pw", project["name"])), 401)
    t3, _ = ks.token(user["name"], "new-pw", project["name"])
    ks.call("PATCH", f"/users/{user['id']}", admin_token, json={"user": {"enabled": False}})
    assert _wait_rejected(ks, t3) == 401
    _error(ks.issue(password_auth(user["name"], "new-pw", project["name"])), 401)


def test_failed_logins_are_locked_out(ks: Keystone, admin_token: str) -> None:
    user = ks.call("POST", "/users", admin_token, json={"user": {
        "name": _name("victim"), "password": "right-pw"}}).json()["user"]
    for _ in range(6):  # max_failures_per_user default
        _error(ks.issue(password_auth(user["name"], "wrong")), 401)
    locked = _error(ks.issue(password_auth(user["name"], "right-pw")), 401)
    assert "locked" in locked["message"]


def test_application_credentials(ks: Keystone, admin_token: str) -> None:
    roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles", admin_token).json()["roles"]}
    project = ks.call("POST", "/projects", admin_token,
                      json={"project": {"name": _name("p")}}).json()["project"]
    user = ks.call("POST", "/users", admin_token, json={"user": {
        "name": _name("u"), "password": "pw-3"}}).json()["user"]
    ks.call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{roles['member']}",
            admin_token)
    token, _ = ks.token(user["name"], "pw-3", project["name"])
    path = f"/users/{user['id']}/application_credentials"
    r = ks.call("POST", path, token, json={"application_credential": {
        "name": "ci", "roles": [{"name": "reader"}]}})
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    assert cred["project_id"] == project["id"] and len(cred["secret"]) > 20
    assert [x["name"] for x in cred["roles"]] == ["reader"]
    _error(ks.call("POST", path, token, json={"application_credential": {
        "name": "too-much", "roles": [{"name": "admin"}]}}), 403)
    _error(ks.call("POST", path, token, json={"application_credential": {"name": "ci"}}), 409)
    auth = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred["id"],
                                                             "secret": cred["secret"]}}}}
    r = ks.issue(auth)
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["project"]["id"] == project["id"]
    assert [x["name"] for x in body["roles"]] == ["reader"]
    assert body["application_credential"]["id"] == cred["id"]
    by_name = {"auth": {"identity": {"methods": ["application_credential"],
                                     "application_credential": {
                                         "name": "ci", "secret": cred["secret"],
                                         "user": {"id": user["id"]}}}}}
    assert ks.issue(by_name).status_code == 201
    ac_token = r.headers["X-Subject-Token"]
    listed = ks.call("GET", path, token).json()["application_credentials"]
    assert [c["id"] for c in listed] == [cred["id"]] and "secret" not in listed[0]
    assert ks.call("DELETE", f"{path}/{cred['id']}", token).status_code == 204
    assert _wait_rejected(ks, ac_token) == 401
    _error(ks.issue(auth), 401)


def test_ec2_and_generic_credentials(ks: Keystone, admin_token: str, demo_token: str) -> None:
    demo = ks.call("GET", "/auth/tokens", demo_token,
                   headers={"X-Subject-Token": demo_token}).json()["token"]
    uid, pid = demo["user"]["id"], demo["project"]["id"]
    r = ks.call("POST", f"/users/{uid}/credentials/OS-EC2", demo_token, json={"tenant_id": pid})
    assert r.status_code == 201, r.text
    ec2 = r.json()["credential"]
    assert ec2["tenant_id"] == pid and ec2["user_id"] == uid and ec2["secret"]
    got = ks.call("GET", f"/users/{uid}/credentials/OS-EC2/{ec2['access']}", demo_token)
    assert got.json()["credential"]["secret"] == ec2["secret"]
    generic = ks.call("GET", "/credentials?type=ec2", demo_token).json()["credentials"]
    assert all(c["user_id"] == uid for c in generic) and generic
    # the admin sees it, another user's token does not
    admin_view = ks.call("GET", f"/credentials/{generic[0]['id']}", admin_token)
    assert admin_view.status_code == 200
    admin_uid = ks.call("GET", "/auth/tokens", admin_token,
                        headers={"X-Subject-Token": admin_token}).json()["token"]["user"]["id"]
    _error(ks.call("GET", f"/users/{admin_uid}/credentials/OS-EC2", demo_token), 403)
    assert ks.call("DELETE", f"/users/{uid}/credentials/OS-EC2/{ec2['access']}",
                   demo_token).status_code == 204
    _error(ks.call("GET", f"/users/{uid}/credentials/OS-EC2/{ec2['access']}", demo_token), 404)


def test_tenant_isolation(ks: Keystone, admin_token: str, demo_token: str) -> None:
    admin_body = ks.call("GET", "/auth/tokens", admin_token,
                         headers={"X-Subject-Token": admin_token}).json()["token"]
    admin_pid, admin_uid = admin_body["project"]["id"], admin_body["user"]["id"]
    for path in (f"/projects/{admin_pid}", f"/users/{admin_uid}", "/projects", "/users",
                 "/groups", "/domains", f"/role_assignments?scope.project.id={admin_pid}",
                 f"/users/{admin_uid}/projects", f"/users/{admin_uid}/application_credentials",
                 f"/users/{admin_uid}/credentials/OS-EC2"):
        assert ks.call("GET", path, demo_token).status_code == 403, path
    _error(ks.call("GET", "/auth/tokens", demo_token,
                   headers={"X-Subject-Token": admin_token}), 403)
    _error(ks.call("DELETE", "/auth/tokens", demo_token,
                   headers={"X-Subject-Token": admin_token}), 403)
    own = ks.call("GET", "/credentials", demo_token).json()["credentials"]
    assert all(c["user_id"] != admin_uid for c in own)
    demo_catalog = ks.call("GET", "/auth/catalog", demo_token).json()["catalog"]
    urls = [ep["url"] for svc in demo_catalog for ep in svc["endpoints"]]
    assert not any(admin_pid in u for u in urls)


def test_bootstrap_is_idempotent(identity: ApiServer, ks: Keystone, admin_token: str) -> None:
    before = ks.call("GET", "/endpoints", admin_token).json()["endpoints"]
    users = ks.call("GET", "/users", admin_token).json()["users"]
    identity.bootstrap()
    after = ks.call("GET", "/endpoints", admin_token).json()["endpoints"]
    assert sorted(e["id"] for e in after) == sorted(e["id"] for e in before)
    assert len(ks.call("GET", "/users", admin_token).json()["users"]) == len(users)
    assert ks.call("GET", "/auth/catalog", admin_token).status_code == 200  # not revoked
    cloud = identity.cloud("nubis-demo")
    assert cloud["region_name"] == "RegionOne"
    assert cloud["auth"]["auth_url"] == identity.auth_url  # type: ignore[index]
    openrc = (identity.state / "openrc").read_text()
    assert f"OS_AUTH_URL={identity.auth_url}" in openrc and "OS_USERNAME=admin" in openrc
    assert (identity.state / "clouds.yaml").stat().st_mode & 0o077 == 0
