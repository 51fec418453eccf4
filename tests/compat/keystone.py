"""The Keystone pass of Swift's functional suite: its ``auth_version = 3`` tests.

Swift's suite runs its tempauth configuration first (:mod:`tests.compat.run`);
the tests that need Keystone (``TestRBAC``, the cross-account ACLs by id and by
name across domains, the account's project domain) are skipped there. This
pass starts a second cloud, creates the users Swift's Keystone gate job creates
(devstack's ``lib/swift``) through openstacksdk, writes an ``auth_version = 3``
``test.conf`` and runs those tests. The cloud also enables ``allow_open_expired``
so the tests that need it run here (the first pass checks it is off by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openstack
import yaml

from tests.functional.proxy.cloud import Cloud

#: The tests this pass runs (pytest node ids under the suite's root).
TARGETS: tuple[str, ...] = (
    "test/functional/test_access_control.py",
    "test/functional/test_account.py::TestAccountInNonDefaultDomain",
    "test/functional/test_container.py::TestContainerACLsAccount1",
    "test/functional/test_container.py::TestContainerACLsAccount4",
    "test/functional/test_object.py::TestObject::test_open_expired_enabled",
    "test/functional/test_slo.py::TestSlo::test_x_delete_at_with_part_number_and_open_expired",
    "test/functional/test_slo.py::TestSloUTF8"
    "::test_x_delete_at_with_part_number_and_open_expired",
)
#: ``[proxy]`` lines of this pass's cloud.
PROXY_LINES = "allow_open_expired = true"
#: Sections appended to this pass's config: no object expirer, as Swift's gate runs
#: its functional suite with the main servers only. With ``allow_open_expired`` on,
#: an expirer pass (every 30 s) that falls between an object's expiry and the
#: test's ``X-Open-Expired`` read deletes what the test reads (404 != 200).
EXTRA_CONFIG = "\n[object_expirer]\nenabled = false\n"
#: The suite's users: (config index, project, user, password, role, domain).
#: Index 3 lives in another domain; 3 (tester3) holds no operator role; 5 has the
#: ``service`` role ``SERVICE_`` asks of a service token; 6 is the reseller admin.
USERS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("", "test", "tester", "testing", "admin", "Default"),
    ("2", "test2", "tester2", "testing2", "admin", "Default"),
    ("3", "test", "tester3", "testing3", "anotherrole", "Default"),
    ("4", "test4", "tester4", "testing4", "admin", "test-domain"),
    ("5", "test5", "tester5", "testing5", "service", "Default"),
    ("6", "test6", "tester6", "testing6", "ResellerAdmin", "Default"),
)


def module_of_target(target: str) -> str:
    """Return the suite module of a target (``test/functional/test_slo.py::X`` -> test_slo)."""
    return target.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


def admin_connection(cloud: Cloud) -> tuple[Any, str]:
    """Return an openstacksdk connection as the cloud's admin, and the identity URL."""
    clouds = yaml.safe_load((cloud.state / "clouds.yaml").read_text())["clouds"]
    admin = clouds["nubis-admin"]
    conn = openstack.connect(**admin["auth"], identity_api_version="3",
                             region_name=admin.get("region_name", "RegionOne"))
    return conn, str(admin["auth"]["auth_url"])


def create_users(cloud: Cloud) -> str:
    """Create the suite's domains, projects, users and roles; return the v3 auth URL."""
    conn, auth_url = admin_connection(cloud)
    identity = conn.identity
    domains = {"Default": "default",
               "test-domain": identity.create_domain(name="test-domain").id}
    roles: dict[str, Any] = {}
    for _, project_name, user_name, password, role_name, domain in USERS:
        domain_id = domains[domain]
        project = (identity.find_project(project_name, domain_id=domain_id)
                   or identity.create_project(name=project_name, domain_id=domain_id))
        user = identity.create_user(name=user_name, password=password, domain_id=domain_id,
                                    default_project_id=project.id)
        if role_name not in roles:
            roles[role_name] = (identity.find_role(role_name)
                                or identity.create_role(name=role_name))
        identity.assign_project_role_to_user(project, user, roles[role_name])
    return auth_url.rstrip("/") + "/"


def test_conf(auth_url: str) -> str:
    """Return the suite's ``test.conf`` for Keystone v3 (``[func_test]``)."""
    lines = ["[func_test]", f"auth_uri = {auth_url}", "auth_version = 3"]
    for index, project, user, password, _, domain in USERS:
        if index != "3":
            lines.append(f"account{index} = {project}")
        lines += [f"username{index} = {user}", f"password{index} = {password}",
                  f"domain{index} = {domain}"]
    lines += ["service_prefix = SERVICE", "collate = C", "insecure = no", "",
              "[unit_test]", "fake_syslog = False", ""]
    return "\n".join(lines)


def write_conf(cloud: Cloud, path: Path) -> None:
    """Create the users on ``cloud`` and write the pass's ``test.conf`` to ``path``."""
    path.write_text(test_conf(create_users(cloud)))
