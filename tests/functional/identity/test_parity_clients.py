"""Keystone parity through the real ``openstack`` CLI and openstacksdk.

Groups and effective assignments, implied roles, inherited grants, trusts and
trust-scoped tokens, system scope, application credentials with roles, unified
limits; bad input through the clients; and the issue's "done when" scenario.
"""

from __future__ import annotations

import uuid
from typing import Any

import openstack
import pytest

from tests.functional.identity.server import ApiServer
from tests.functional.identity.test_openstack_clients import osc

pytestmark = pytest.mark.functional


def _sfx() -> str:
    return uuid.uuid4().hex[:6]


def _password_env(server: ApiServer, user: str, password: str, **os_vars: str) -> dict[str, str]:
    env = server.cli_env()
    env.update({"OS_AUTH_URL": server.auth_url, "OS_IDENTITY_API_VERSION": "3",
                "OS_USERNAME": user, "OS_PASSWORD": password,
                "OS_USER_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne",
                "OS_INTERFACE": "public"})
    env.update(os_vars)
    return env


def test_done_when_scenario(identity: ApiServer) -> None:
    """Group role on demo -> member's demo token; effective listing; trust; 65-char name."""
    done_when_scenario(identity)


def done_when_scenario(identity: ApiServer) -> None:
    """Run issue 15's acceptance scenario with the admin cloud of ``identity``'s clouds.yaml.

    Also run by ``tests/probe/test_openstacksdk_cloud.py`` on a whole ``nubis up`` cloud.
    """
    sfx = _sfx()
    member, group = f"member-{sfx}", f"team-{sfx}"
    osc(identity, "user", "create", "--password", "pw-member", member, "-f", "json")
    osc(identity, "group", "create", group, "-f", "json")
    osc(identity, "group", "add", "user", group, member)
    osc(identity, "role", "add", "--group", group, "--project", "demo", "member")
    env = _password_env(identity, member, "pw-member", OS_PROJECT_NAME="demo",
                        OS_PROJECT_DOMAIN_NAME="Default")
    tok = osc(identity, "token", "issue", "-f", "json", cloud="", env=env)
    demo = osc(identity, "project", "show", "demo", "-f", "json")
    assert tok["project_id"] == demo["id"]
    listed = osc(identity, "role", "assignment", "list", "--effective", "--names", "--user",
                 member, "-f", "json")
    assert {"member", "reader"} <= {a["Role"] for a in listed}
    assert all(a["User"] == f"{member}@Default" and a["Project"] == "demo@Default"
               for a in listed)
    # a trust from admin to demo (on the admin's project) yields a trust-scoped token
    trust = osc(identity, "trust", "create", "--project", "admin", "--role", "member",
                "--impersonate", "admin", "demo", "-f", "json")
    demo_password = str(identity.cloud("nubis-demo")["auth"]["password"])  # type: ignore[index]
    trust_env = _password_env(identity, "demo", demo_password, OS_TRUST_ID=trust["id"])
    ttok = osc(identity, "token", "issue", "-f", "json", cloud="", env=trust_env)
    assert ttok["project_id"] == osc(identity, "project", "show", "admin", "-f", "json")["id"]
    admin_user = osc(identity, "user", "show", "admin", "-f", "json")
    assert ttok["user_id"] == admin_user["id"]  # impersonation
    # a 65-character project name is refused with 400
    bad = osc(identity, "project", "create", "p" * 65, check=False)
    assert bad.returncode != 0 and "400" in bad.stderr
    osc(identity, "trust", "delete", trust["id"])


def test_cli_implied_inherited_system_appcred_limits(identity: ApiServer) -> None:
    sfx = _sfx()
    prior = f"prior-{sfx}"
    osc(identity, "role", "create", prior, "-f", "json")
    made = osc(identity, "implied", "role", "create", prior, "--implied-role", "reader",
               "-f", "json")
    assert set(made) == {"implies", "prior_role"}
    rules = osc(identity, "implied", "role", "list", "-f", "json")
    assert any(r["Prior Role Name"] == prior and r["Implied Role Name"] == "reader"
               for r in rules)
    # inherited grant on a parent project reaches the child
    parent, child, user = f"par-{sfx}", f"chi-{sfx}", f"inh-{sfx}"
    osc(identity, "project", "create", parent, "-f", "json")
    osc(identity, "project", "create", "--parent", parent, child, "-f", "json")
    osc(identity, "user", "create", "--password", "pw-inh", user, "-f", "json")
    osc(identity, "role", "add", "--project", parent, "--user", user, "--inherited", prior)
    direct = osc(identity, "role", "assignment", "list", "--names", "--user", user,
                 "-f", "json")
    assert direct == [{"Role": prior, "User": f"{user}@Default", "Group": "",
                       "Project": f"{parent}@Default", "Domain": "", "System": "",
                       "Inherited": True}]
    env = _password_env(identity, user, "pw-inh", OS_PROJECT_NAME=child,
                        OS_PROJECT_DOMAIN_NAME="Default")
    assert osc(identity, "token", "issue", "-f", "json", cloud="", env=env)["project_id"]
    # system scope
    sys_env = _password_env(identity, "admin", str(identity.cloud("nubis-admin")["auth"][
        "password"]), OS_SYSTEM_SCOPE="all")  # type: ignore[index]
    assert osc(identity, "token", "issue", "-f", "json", cloud="", env=sys_env)["id"]
    # application credential with an explicit role
    cred = osc(identity, "application", "credential", "create", "--role", "reader",
               f"ac-{sfx}", "-f", "json")
    assert "reader" in str(cred["Roles"])
    bad = osc(identity, "application", "credential", "create", "--role", "nosuchrole",
              f"ac2-{sfx}", check=False)
    assert bad.returncode != 0
    # unified limits
    res = f"cores{sfx}"
    reg = osc(identity, "registered", "limit", "create", "--service", "identity",
              "--default-limit", "10", "--region", "RegionOne", res, "-f", "json")
    assert reg["default_limit"] == 10
    lim = osc(identity, "limit", "create", "--project", "demo", "--service", "identity",
              "--resource-limit", "4", "--region", "RegionOne", res, "-f", "json")
    assert lim["resource_limit"] == 4
    assert res in {x["Resource Name"] for x in osc(identity, "limit", "list", "-f", "json")}
    dup = osc(identity, "registered", "limit", "create", "--service", "identity",
              "--default-limit", "1", "--region", "RegionOne", res, check=False)
    assert dup.returncode != 0 and "409" in dup.stderr
    osc(identity, "limit", "delete", lim["id"])
    osc(identity, "registered", "limit", "delete", reg["id"])


def test_openstacksdk_groups_trusts_limits(identity: ApiServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(identity.clouds_yaml))
    admin = openstack.connect(cloud="nubis-admin")
    try:
        sfx = _sfx()
        ident = admin.identity
        project = ident.create_project(name=f"sdk-{sfx}", domain_id="default")
        user = ident.create_user(name=f"sdk-{sfx}", password="pw-sdk", domain_id="default")
        group = ident.create_group(name=f"sdk-{sfx}", domain_id="default")
        ident.add_user_to_group(user, group)
        assert ident.check_user_in_group(user, group)
        member = ident.find_role("member")
        ident.assign_project_role_to_group(project, group, member)
        found = list(ident.role_assignments(user_id=user.id, effective=True))
        assert {a.role["id"] for a in found} >= {member.id}
        assert all(a.scope["project"]["id"] == project.id for a in found)
        # a trust from the admin (trustor) to the new user on the admin's project
        me = admin.current_user_id
        trust = ident.create_trust(trustor_user_id=me, trustee_user_id=user.id,
                                   project_id=admin.current_project_id,
                                   roles=[{"name": "member"}], impersonation=False)
        assert ident.get_trust(trust.id).trustee_user_id == user.id
        assert trust.id in {t.id for t in ident.trusts()}
        # unified limits through the SDK
        svc = next(s for s in ident.services() if s.type == "identity")
        reg = ident.create_registered_limit(service_id=svc.id, resource_name=f"ram{sfx}",
                                            default_limit=1024)
        assert reg.id in {r.id for r in ident.registered_limits()}
        lim = ident.create_limit(project_id=project.id, service_id=svc.id,
                                 resource_name=f"ram{sfx}", resource_limit=512)
        assert ident.get_limit(lim.id).resource_limit == 512
        # bad input through the SDK: unknown ids -> NotFound, forbidden -> Forbidden
        with pytest.raises(openstack.exceptions.NotFoundException):
            ident.get_trust("no-such-trust")
        with pytest.raises(openstack.exceptions.NotFoundException):
            ident.get_limit("no-such-limit")
        with pytest.raises(openstack.exceptions.BadRequestException):
            ident.create_project(name="x" * 65, domain_id="default")
        ident.delete_limit(lim)
        ident.delete_registered_limit(reg)
        ident.delete_trust(trust)
    finally:
        admin.close()
    demo = openstack.connect(cloud="nubis-demo")
    try:
        with pytest.raises(openstack.exceptions.ForbiddenException):
            list(demo.identity.trusts())
        demo_limits: list[Any] = list(demo.identity.limits())
        assert all(x.project_id == demo.current_project_id for x in demo_limits)
    finally:
        demo.close()
