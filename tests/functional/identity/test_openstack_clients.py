"""The real ``openstack`` CLI and openstacksdk against a real ``nubis api``.

Each ``openstack`` run costs about a second of start-up, so every test batches
several commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import openstack
import pytest

from tests.functional.identity.server import ApiServer

pytestmark = pytest.mark.functional

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


def osc(server: ApiServer, *args: str, cloud: str = "nubis-admin",
        env: dict[str, str] | None = None, check: bool = True) -> Any:
    """Run ``openstack`` and return its parsed JSON output (or the process when not -f json)."""
    cmd = [OPENSTACK]
    if cloud:
        cmd += ["--os-cloud", cloud]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=env or server.cli_env())
    if check:
        assert proc.returncode == 0, (cmd, proc.stderr)
    if "-f" in args and "json" in args and proc.returncode == 0:
        return json.loads(proc.stdout)
    return proc


def test_token_issue_revoke_and_catalog(identity: ApiServer) -> None:
    tok = osc(identity, "token", "issue", "-f", "json")
    assert tok["project_id"] and tok["user_id"] and tok["id"].startswith("gAAAA")
    catalog = osc(identity, "catalog", "list", "-f", "json")
    assert {c["Type"] for c in catalog} >= {"identity", "object-store"}
    swift = next(c for c in catalog if c["Type"] == "object-store")
    assert f"AUTH_{tok['project_id']}" in json.dumps(swift["Endpoints"])
    osc(identity, "token", "revoke", tok["id"])
    # the revoked token no longer authenticates the CLI
    env = identity.cli_env()
    env.update({"OS_AUTH_TYPE": "token", "OS_TOKEN": tok["id"],
                "OS_AUTH_URL": identity.auth_url, "OS_PROJECT_ID": tok["project_id"]})
    proc = osc(identity, "project", "list", cloud="", env=env, check=False)
    assert proc.returncode != 0 and "401" in proc.stderr


@pytest.mark.timeout(900)  # some 25 `openstack` CLI runs, each seconds on a loaded machine
def test_domain_project_user_group_role_lifecycle(identity: ApiServer) -> None:
    sfx = uuid.uuid4().hex[:6]
    dom, proj, user, group, role = (f"d-{sfx}", f"p-{sfx}", f"u-{sfx}", f"g-{sfx}",
                                    f"r-{sfx}")
    d = osc(identity, "domain", "create", dom, "-f", "json")
    assert osc(identity, "domain", "show", dom, "-f", "json")["id"] == d["id"]
    p = osc(identity, "project", "create", "--domain", dom, "--description", "x", proj,
            "-f", "json")
    shown = osc(identity, "project", "show", "--domain", dom, proj, "-f", "json")
    assert shown["id"] == p["id"] and shown["description"] == "x"
    u = osc(identity, "user", "create", "--domain", dom, "--password", "pw", user, "-f", "json")
    r = osc(identity, "role", "create", role, "-f", "json")
    g = osc(identity, "group", "create", "--domain", dom, group, "-f", "json")
    osc(identity, "group", "add", "user", "--group-domain", dom, "--user-domain", dom,
        group, user)
    osc(identity, "role", "add", "--project", proj, "--project-domain", dom, "--user", user,
        "--user-domain", dom, role)
    listed = osc(identity, "role", "assignment", "list", "--names", "-f", "json")
    assert {"Role": role, "User": f"{user}@{dom}", "Group": "", "Project": f"{proj}@{dom}",
            "Domain": "", "System": "", "Inherited": False} in listed
    assert user in {x["Name"] for x in osc(identity, "user", "list", "--domain", dom,
                                           "-f", "json")}
    assert group in {x["Name"] for x in osc(identity, "group", "list", "-f", "json")}
    assert role in {x["Name"] for x in osc(identity, "role", "list", "-f", "json")}
    assert proj in {x["Name"] for x in osc(identity, "project", "list", "-f", "json")}
    osc(identity, "role", "remove", "--project", p["id"], "--user", u["id"], r["id"])
    for kind, ident in (("group", g["id"]), ("user", u["id"]), ("project", p["id"]),
                        ("role", r["id"])):
        osc(identity, kind, "delete", ident)
    osc(identity, "domain", "set", "--disable", d["id"])
    osc(identity, "domain", "delete", d["id"])
    gone = osc(identity, "domain", "show", d["id"], check=False)
    assert gone.returncode != 0


def test_application_credential_and_ec2(identity: ApiServer) -> None:
    name = f"ac-{uuid.uuid4().hex[:6]}"
    cred = osc(identity, "application", "credential", "create", name, "-f", "json")
    env = identity.cli_env()
    env.update({"OS_AUTH_TYPE": "v3applicationcredential", "OS_AUTH_URL": identity.auth_url,
                "OS_APPLICATION_CREDENTIAL_ID": cred["ID"],
                "OS_APPLICATION_CREDENTIAL_SECRET": cred["Secret"]})
    tok = osc(identity, "token", "issue", "-f", "json", cloud="", env=env)
    assert tok["project_id"] == cred["Project ID"]
    ec2 = osc(identity, "ec2", "credentials", "create", "-f", "json")
    assert ec2["access"] and ec2["secret"] and ec2["project_id"] == cred["Project ID"]
    listed = osc(identity, "ec2", "credentials", "list", "-f", "json")
    assert ec2["access"] in {x["Access"] for x in listed}
    osc(identity, "application", "credential", "delete", name)


def test_openstacksdk_connect(identity: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(identity.clouds_yaml))
    admin = openstack.connect(cloud="nubis-admin")
    demo = openstack.connect(cloud="nubis-demo")
    try:
        admin_project = admin.current_project_id
        assert {p.name for p in admin.identity.projects()} >= {"admin", "demo"}
        assert admin.identity.find_user("demo").name == "demo"
        names = {r.name for r in admin.identity.roles()}
        assert {"admin", "member", "reader"} <= names
        assert admin.identity.get_project(admin_project).name == "admin"
        # the demo user sees only its own project; admin things are forbidden
        assert [p.name for p in demo.identity.user_projects(demo.current_user_id)] == ["demo"]
        with pytest.raises(openstack.exceptions.ForbiddenException):
            demo.identity.get_project(admin_project)
        with pytest.raises(openstack.exceptions.ForbiddenException):
            list(demo.identity.users())
        endpoint = demo.session.get_endpoint(service_type="object-store", interface="public")
        assert endpoint.endswith(f"AUTH_{demo.current_project_id}")
    finally:
        admin.close()
        demo.close()
