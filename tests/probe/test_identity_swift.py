"""Probe: a whole cloud from ``nubis up``; Keystone v3 tokens on the object proxy.

The real ``swift`` CLI and python-swiftclient authenticate against ``nubis api``
(``auth_version=3``) and use the catalog's object-store endpoint; tempauth keeps
working; a demo token cannot touch the admin project's account; a revoked
token stops working on the proxy within the revocation poll bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import swiftclient
import yaml

from tests.compat import keystone
from tests.functional.proxy.cloud import Cloud, start_cloud

pytestmark = pytest.mark.probe


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("idcloud") / "state")
    try:
        yield c
    finally:
        c.down()


def _auth(cloud: Cloud, name: str) -> dict[str, Any]:
    doc = yaml.safe_load((cloud.state / "clouds.yaml").read_text())
    auth: dict[str, Any] = doc["clouds"][name]["auth"]
    return auth


def _conn(cloud: Cloud, name: str) -> swiftclient.Connection:
    a = _auth(cloud, name)
    return swiftclient.Connection(
        authurl=a["auth_url"], user=a["username"], key=a["password"], auth_version="3",
        os_options={"project_name": a["project_name"], "user_domain_name": "Default",
                    "project_domain_name": "Default"}, retries=0, timeout=30)


def test_swift_cli_v3_stat(cloud: Cloud) -> None:
    a = _auth(cloud, "nubis-admin")
    swift = Path(sys.executable).with_name("swift")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_"))}
    r = subprocess.run([str(swift), "--os-auth-url", a["auth_url"], "--auth-version", "3",
                        "--os-username", "admin", "--os-password", a["password"],
                        "--os-project-name", "admin", "--os-user-domain-name", "Default",
                        "--os-project-domain-name", "Default", "stat"],
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Account: AUTH_" in r.stdout


def test_swiftclient_v3_isolation_tempauth_and_revocation(cloud: Cloud) -> None:
    demo, admin = _conn(cloud, "nubis-demo"), _conn(cloud, "nubis-admin")
    demo.put_container("photos")
    demo.put_object("photos", "cat.jpg", b"meow" * 1024, content_type="image/jpeg")
    _, body = demo.get_object("photos", "cat.jpg")
    assert body == b"meow" * 1024
    demo_url, demo_token = demo.get_auth()
    admin_url, admin_token = admin.get_auth()
    assert demo_url != admin_url and demo_url.rsplit("/", 1)[1].startswith("AUTH_")
    admin.put_container("private")
    # the demo project's token can read nothing of the admin project's account
    for method, path in (("GET", ""), ("HEAD", ""), ("GET", "/private"),
                         ("PUT", "/private/x"), ("DELETE", "/private")):
        r = requests.request(method, admin_url + path, headers={"X-Auth-Token": demo_token},
                             timeout=10, data=b"x" if method == "PUT" else None)
        assert r.status_code == 403, (method, path, r.status_code)
    # tempauth still works beside Keystone
    url, token = cloud.login("test:tester")
    assert requests.head(url, headers={"X-Auth-Token": token}, timeout=10).status_code in (
        200, 204)
    # revoke the demo token at identity: the proxy refuses it within the poll bound
    identity = _auth(cloud, "nubis-demo")["auth_url"]
    r = requests.delete(f"{identity}/auth/tokens", timeout=10, headers={
        "X-Auth-Token": admin_token, "X-Subject-Token": demo_token})
    assert r.status_code == 204
    status = 0
    for _ in range(100):  # revocation_poll_seconds defaults to 2 s
        status = requests.head(demo_url, headers={"X-Auth-Token": demo_token},
                               timeout=10).status_code
        if status == 401:
            break
        time.sleep(0.1)
    assert status == 401


def test_acl_names_only_within_the_default_domain(cloud: Cloud) -> None:
    """Swift keystoneauth's rules: ACL ids work across domains, names only inside Default.

    The account also records its project's domain (``X-Account-Project-Domain-Id``).
    """
    conn, _ = keystone.admin_connection(cloud)
    idn = conn.identity
    domain = idn.create_domain(name="acme")
    project = idn.create_project(name="roadrunner", domain_id=domain.id)
    user = idn.create_user(name="wile", password="coyote-1", domain_id=domain.id,
                           default_project_id=project.id)
    idn.assign_project_role_to_user(project, user, idn.find_role("member"))
    wile = swiftclient.Connection(
        authurl=_auth(cloud, "nubis-admin")["auth_url"], user="wile", key="coyote-1",
        auth_version="3", retries=0, timeout=30,
        os_options={"project_name": "roadrunner", "user_domain_name": "acme",
                    "project_domain_name": "acme"})
    demo = _conn(cloud, "nubis-demo")
    demo_auth = _auth(cloud, "nubis-demo")
    demo.put_container("for-acme")
    demo.put_object("for-acme", "o", b"hello")
    assert demo.head_account()["x-account-project-domain-id"] == "default"
    wile.post_account({"X-Account-Meta-Color": "orange"})
    assert wile.head_account()["x-account-project-domain-id"] == domain.id
    wile.put_container("for-demo")
    wile.put_object("for-demo", "o", b"beep")

    def reads(reader: swiftclient.Connection, container: str) -> int:
        """Return the status of ``reader`` reading ``container``/o in its owner's account."""
        owner = demo if container == "for-acme" else wile
        try:
            swiftclient.get_object(owner.get_auth()[0], reader.get_auth()[1], container, "o")
        except swiftclient.ClientException as exc:
            return int(exc.http_status or 0)
        return 200

    # the reader's user and project live in another domain: its names are ambiguous
    demo.post_container("for-acme", {"X-Container-Read": "roadrunner:wile"})
    assert reads(wile, "for-acme") == 403
    demo.post_container("for-acme", {"X-Container-Read": f"{project.id}:*"})
    assert reads(wile, "for-acme") == 200
    # the account's project lives in another domain: names do not reach it either
    names = f"{demo_auth['project_name']}:{demo_auth['username']}"
    wile.post_container("for-demo", {"X-Container-Read": names})
    assert reads(demo, "for-demo") == 403
    demo_project = demo.get_auth()[0].rsplit("AUTH_", 1)[1]
    wile.post_container("for-demo", {"X-Container-Read": f"{demo_project}:*"})
    assert reads(demo, "for-demo") == 200
    # inside the default domain names work as before
    admin = _conn(cloud, "nubis-admin")
    admin_auth = _auth(cloud, "nubis-admin")
    demo.post_container("for-acme", {
        "X-Container-Read": f"{admin_auth['project_name']}:{admin_auth['username']}"})
    assert reads(admin, "for-acme") == 200


def test_acl_entry_naming_a_role(cloud: Cloud) -> None:
    """Swift keystoneauth: a bare ACL entry is a role of the account's own project."""
    conn, auth_url = keystone.admin_connection(cloud)
    idn = conn.identity
    demo_auth = _auth(cloud, "nubis-demo")
    project = idn.find_project(demo_auth["project_name"], domain_id="default")
    viewer = idn.create_user(name="viewer", password="look-only-1", domain_id="default",
                             default_project_id=project.id)
    idn.assign_project_role_to_user(project, viewer, idn.find_role("reader"))
    outsider_project = idn.create_project(name="elsewhere", domain_id="default")
    outsider = idn.create_user(name="outsider", password="look-only-2", domain_id="default")
    idn.assign_project_role_to_user(outsider_project, outsider, idn.find_role("reader"))

    def connect(user: str, password: str, project_name: str) -> swiftclient.Connection:
        return swiftclient.Connection(
            authurl=auth_url, user=user, key=password, auth_version="3", retries=0,
            timeout=30, os_options={"project_name": project_name,
                                    "user_domain_name": "Default",
                                    "project_domain_name": "Default"})

    demo = _conn(cloud, "nubis-demo")
    demo.put_container("by-role")
    demo.put_object("by-role", "o", b"for readers")
    demo_url = demo.get_auth()[0]

    def reads(reader: swiftclient.Connection) -> int:
        try:
            swiftclient.get_object(demo_url, reader.get_auth()[1], "by-role", "o")
        except swiftclient.ClientException as exc:
            return int(exc.http_status or 0)
        return 200

    view = connect("viewer", "look-only-1", demo_auth["project_name"])
    other = connect("outsider", "look-only-2", "elsewhere")
    assert reads(view) == 403  # the reader role owns nothing by itself
    demo.post_container("by-role", {"X-Container-Read": "Reader"})
    assert reads(view) == 200  # matched case-insensitively
    assert reads(other) == 403  # the same role in another project does not count
