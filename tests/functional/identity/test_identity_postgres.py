"""The identity functional tests again, with ``nubis api`` on a real PostgreSQL server.

Every test of ``test_keystone_http`` (raw HTTP) and ``test_openstack_clients``
(the ``openstack`` CLI and openstacksdk) is imported here; this module overrides
the ``identity`` fixture (and the ones built on it) so they run against an api
process whose ``[api] database_url`` is a ``postgresql://`` URL on a throwaway
cluster (:mod:`tests.pg`). Bootstrap, migrations, token issue, CRUD, grants,
revocation polling and application credentials all go through PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openstack
import pytest
import requests
import sqlalchemy as sa
from nubis.api.identity import schema
from nubis.api.identity.store import StoreBase
from nubis.api.shared.revoke import RevocationList
from nubis.api.shared.tokens import TokenPayload
from nubis.common.db import make_engine, migrate

from tests.functional.identity.conftest import Keystone
from tests.functional.identity.server import ADMIN_PASSWORD, DEMO_PASSWORD, ApiServer
from tests.functional.identity.test_keystone_http import (  # noqa: F401
    test_application_credentials,
    test_bootstrap_is_idempotent,
    test_client_errors_are_keystone_json,
    test_crud_and_filters,
    test_ec2_and_generic_credentials,
    test_failed_logins_are_locked_out,
    test_groups_grants_assignments_and_implied_roles,
    test_project_token_shape_and_validation,
    test_revocation_on_role_removal_password_change_and_disable,
    test_scopes_and_rescoping,
    test_tenant_isolation,
    test_version_discovery,
)
from tests.functional.identity.test_keystone_parity import (  # noqa: F401
    test_application_credential_roles_from_assignments,
    test_extra_attributes_and_name_limits,
    test_filters_and_pagination,
    test_groups_effective_assignments_and_implied_roles,
    test_inherited_grants_and_project_hierarchy,
    test_system_scope_and_password_auth_by_name,
    test_trusts,
    test_unified_limits,
)
from tests.functional.identity.test_openstack_clients import (  # noqa: F401
    osc,
    test_application_credential_and_ec2,
    test_openstacksdk_connect,
    test_token_issue_revoke_and_catalog,
)
from tests.functional.identity.test_parity_clients import (  # noqa: F401
    test_done_when_scenario,
    test_openstacksdk_groups_trusts_limits,
)
from tests.pg import PgCluster, pg_cluster  # noqa: F401
from tests.ports import free_port
from tests.probe.test_identity_multiprocess import (  # noqa: F401
    test_cross_process_validation_revocation_rotation,
)
from tests.procs import terminate
from tests.unit.identity.test_parity_store import check_v1_migrates

pytestmark = pytest.mark.functional

# test_openstack_clients' CLI lifecycle test (~20 `openstack` runs, ~20 s) is replaced
# here by the same flow through openstacksdk plus one CLI `role assignment list`.


@dataclass
class PgApiServer(ApiServer):
    """An :class:`ApiServer` whose control-plane database is ``database_url``."""

    database_url: str = ""

    def write_config(self, port: int | None = None) -> Path:
        path = super().write_config(port)
        setting = f'database_url = "{self.database_url}"\n'
        path.write_text(path.read_text().replace("[api]\n", "[api]\n" + setting, 1))
        return path


@pytest.fixture(scope="module")
def identity(pg: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = PgApiServer(tmp_path_factory.mktemp("identity-pg"), free_port(),
                         database_url=pg.new_database())
    server.state.mkdir(parents=True, exist_ok=True)
    try:
        server.write_config()
        server.bootstrap()
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pair(identity: ApiServer) -> Iterator[tuple[ApiServer, str]]:
    """A second ``nubis api`` process on the same PostgreSQL database and keys."""
    port = free_port()
    proc = identity.start(port)
    try:
        yield identity, f"http://127.0.0.1:{port}/identity/v3"
    finally:
        terminate(proc)


@pytest.fixture(scope="module")
def ks(identity: ApiServer) -> Keystone:
    return Keystone(identity)


@pytest.fixture(scope="module")
def admin_token(ks: Keystone) -> str:
    return ks.token("admin", ADMIN_PASSWORD, "admin")[0]


@pytest.fixture(scope="module")
def demo_token(ks: Keystone) -> str:
    return ks.token("demo", DEMO_PASSWORD, "demo")[0]


def test_state_is_in_postgresql(identity: ApiServer, ks: Keystone, admin_token: str) -> None:
    assert isinstance(identity, PgApiServer)
    assert not (identity.state / "nubis.db").exists()  # no SQLite fallback
    engine = make_engine(identity.database_url)
    try:
        with engine.connect() as conn:
            assert engine.dialect.name == "postgresql"
            names = {r[0] for r in conn.execute(sa.text("SELECT name FROM identity_user"))}
            version = conn.execute(sa.text(
                "SELECT version FROM nubis_schema_versions WHERE component = 'identity'"
            )).scalar_one()
    finally:
        engine.dispose()
    assert {"admin", "demo"} <= names
    assert version == len(schema.MIGRATIONS)
    users = ks.call("GET", "/users", admin_token).json()["users"]
    assert {u["name"] for u in users} == names


def _payload(user_id: str) -> TokenPayload:
    now = time.time() - 5
    return TokenPayload(user_id=user_id, user_name=user_id, user_domain_id="default",
                        user_domain_name="Default", methods=("password",), issued_at=now,
                        expires_at=now + 600, audit_ids=(f"audit-{user_id}",))


def test_revocations_become_visible_in_id_order(pg: PgCluster) -> None:
    # A verifier polls "id > last seen". Writer A takes event id 1 and commits late;
    # writer B (id 2) must not become visible before it, or the poll skips A's event.
    engine = make_engine(pg.new_database())
    try:
        migrate(engine, "identity", schema.MIGRATIONS)
        store = StoreBase(engine, hasher=None)  # type: ignore[arg-type]  # revoke only
        reader = RevocationList(engine, 0.0, 3600.0)
        with engine.connect() as conn_a:
            tx = conn_a.begin()
            store.revoke(conn_a, user_id="user-a")  # event id 1, not committed yet

            def writer_b() -> None:
                with engine.begin() as conn_b:
                    store.revoke(conn_b, user_id="user-b")

            thread = threading.Thread(target=writer_b)
            thread.start()
            thread.join(timeout=0.5)  # B waits for A's transaction (it must)
            reader.refresh(force=True)
            tx.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
        reader.refresh(force=True)
        assert reader.is_revoked(_payload("user-a"))
        assert reader.is_revoked(_payload("user-b"))
    finally:
        engine.dispose()


def test_values_postgresql_cannot_hold_are_keystone_400s(ks: Keystone, admin_token: str) -> None:
    # SQLite stores a NUL or an over-long id; PostgreSQL refuses: the client hears 400.
    long_id = "x" * 100
    cases: list[tuple[str, str, object]] = [
        ("POST", "/projects", {"project": {"name": "a\u0000b"}}),
        ("POST", "/users", {"user": {"name": "nul-extra", "email": "e\u0000"}}),
        ("POST", "/users", {"user": {"name": "long-ref", "default_project_id": long_id}}),
        ("GET", "/users?name=%00", None),
        ("GET", "/users/a%00b", None),
        ("PATCH", "/projects/%00", {"project": {"name": "x"}}),
        ("PUT", "/projects/%00/users/%00/roles/%00", None),
        ("GET", "/role_assignments?user.id=%00", None),
    ]
    for method, path, body in cases:
        r = ks.call(method, path, admin_token, **({"json": body} if body is not None else {}))
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == 400
    r = ks.issue({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin\u0000", "domain": {"name": "Default"}, "password": "x"}}}}})
    assert r.status_code == 400, r.text


def test_domain_project_user_group_role_flow(identity: ApiServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(identity.clouds_yaml))
    sfx = uuid.uuid4().hex[:6]
    admin = openstack.connect(cloud="nubis-admin")
    try:
        idn = admin.identity
        dom = idn.create_domain(name=f"d-{sfx}")
        proj = idn.create_project(name=f"p-{sfx}", domain_id=dom.id, description="x")
        user = idn.create_user(name=f"u-{sfx}", domain_id=dom.id, password="pw-" + sfx)
        group = idn.create_group(name=f"g-{sfx}", domain_id=dom.id)
        role = idn.create_role(name=f"r-{sfx}")
        member = idn.find_role("member")
        idn.add_user_to_group(user, group)
        idn.assign_project_role_to_user(proj, user, member)
        idn.assign_project_role_to_group(proj, group, role)
        assert idn.validate_user_has_project_role(proj, user, member)
        assert idn.get_project(proj.id).description == "x"
        assert [u.id for u in idn.users(domain_id=dom.id)] == [user.id]
        listed = osc(identity, "role", "assignment", "list", "--names", "-f", "json")
        assert {"Role": "member", "User": f"u-{sfx}@d-{sfx}", "Group": "",
                "Project": f"p-{sfx}@d-{sfx}", "Domain": "", "System": "",
                "Inherited": False} in listed
        assert {"Role": f"r-{sfx}", "User": "", "Group": f"g-{sfx}@d-{sfx}",
                "Project": f"p-{sfx}@d-{sfx}", "Domain": "", "System": "",
                "Inherited": False} in listed
        _user_flow(identity, proj.id, user.id, dom.id, "pw-" + sfx, {member.id, role.id})
        for kind, ident in (("group", group.id), ("user", user.id), ("project", proj.id),
                            ("role", role.id)):
            getattr(idn, f"delete_{kind}")(ident, ignore_missing=False)
        idn.update_domain(dom, is_enabled=False)
        idn.delete_domain(dom, ignore_missing=False)
        assert idn.find_domain(dom.id) is None
    finally:
        admin.close()


def _user_flow(identity: ApiServer, project_id: str, user_id: str, domain_id: str,
               password: str, role_ids: set[str]) -> None:
    """Log in as the new user, check the effective roles, use an application credential."""
    user = openstack.connect(auth_url=identity.auth_url, user_id=user_id, password=password,
                             project_id=project_id, user_domain_id=domain_id,
                             region_name="RegionOne")
    try:
        effective = {a.role["id"] for a in user.identity.role_assignments(
            user_id=user_id, scope_project_id=project_id, effective=True)}
        assert role_ids <= effective  # the group's role too (and member's implied reader)
        cred = user.identity.create_application_credential(user_id, "ac", secret="s3cret")
        assert [c.name for c in user.identity.application_credentials(user_id)] == ["ac"]
    finally:
        user.close()
    via_cred = openstack.connect(auth_url=identity.auth_url, auth_type="v3applicationcredential",
                                 application_credential_id=cred.id,
                                 application_credential_secret="s3cret",
                                 region_name="RegionOne")
    try:
        assert via_cred.current_project_id == project_id
        assert via_cred.current_user_id == user_id
    finally:
        via_cred.close()


def test_two_processes_racing_on_one_name_conflict_cleanly(pair: tuple[ApiServer, str],
                                                           admin_token: str) -> None:
    # Unique constraints under real concurrency: one 201, every other answer a 409.
    server, other = pair
    name = f"race-{uuid.uuid4().hex[:6]}"
    codes: list[int] = []
    lock = threading.Lock()

    def create(base: str) -> None:
        r = requests.post(f"{base}/projects", json={"project": {"name": name}}, timeout=30,
                          headers={"X-Auth-Token": admin_token})
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=create, args=(base,))
               for base in (server.auth_url, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes) == [201] + [409] * 7


def test_v1_database_migrates_to_v2(pg: PgCluster) -> None:
    """A version-1 database keeps its grants when it gains inherited grants and trusts."""
    engine = make_engine(pg.new_database())
    try:
        check_v1_migrates(engine)
    finally:
        engine.dispose()
