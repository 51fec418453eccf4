"""Store-level Keystone parity on a real SQLite file: inheritance, trusts, limits,
security compliance, the v2 token payload and trust revocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from nubis.api.identity import schema
from nubis.api.identity.config import IdentityConfig, SecurityComplianceConfig
from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from nubis.api.shared.revoke import RevocationEvent, RevocationList
from nubis.api.shared.tokens import TokenPayload, TrustRef
from nubis.common.db import make_engine, migrate

from tests.unit.identity.test_store import roles
from tests.unit.shared.test_tokens import payload


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_store(tmp_path: Path, clock: Clock, **compliance: object) -> IdentityStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'id.db'}")
    migrate(engine, "identity", schema.MIGRATIONS)
    config = IdentityConfig(security_compliance=SecurityComplianceConfig(**compliance))  # type: ignore[arg-type]
    s = IdentityStore(engine, PasswordHasher(1, 1024, 1), RevocationList(None, 1, 3600),
                      clock=clock, config=config)
    s.create_domain({"id": "default", "name": "Default"})
    return s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> IdentityStore:
    return make_store(tmp_path, clock)


def test_inherited_grants_reach_the_subtree_only(store: IdentityStore) -> None:
    r = roles(store)
    top = store.create_project({"name": "top"})
    mid = store.create_project({"name": "mid", "parent_id": top["id"]})
    leaf = store.create_project({"name": "leaf", "parent_id": mid["id"]})
    user = store.create_user({"name": "u"})
    group = store.create_group({"name": "g"})
    store.add_user_to_group(group["id"], user["id"])
    store.grant("group", group["id"], "project", top["id"], r["member"], inherited=True)
    assert store.effective_role_ids(user["id"], "project", top["id"]) == []
    assert store.effective_role_ids(user["id"], "project", leaf["id"]) == [r["member"],
                                                                          r["reader"]]
    assert store.user_target_ids(user["id"], "project") == sorted([mid["id"], leaf["id"]])
    eff = store.effective_assignments(store.direct_assignments(actor_ids=[group["id"]]))
    assert {(a.target_id, a.role_id) for a in eff} == {
        (p, rid) for p in (mid["id"], leaf["id"]) for rid in (r["member"], r["reader"])}
    assert all(a.grant_path().endswith("/inherited_to_projects") for a in eff)
    store.grant("user", user["id"], "domain", "default", r["admin"], inherited=True)
    assert r["admin"] in store.effective_role_ids(user["id"], "project", top["id"])
    assert store.effective_role_ids(user["id"], "domain", "default") == []
    store.revoke_grant("group", group["id"], "project", top["id"], r["member"], inherited=True)
    with pytest.raises(NotFoundError):
        store.check_grant("group", group["id"], "project", top["id"], r["member"],
                          inherited=True)


def test_hierarchy_depth_and_lists(store: IdentityStore) -> None:
    parent = store.create_project({"name": "p0"})
    chain = [parent]
    for i in range(1, 5):
        chain.append(store.create_project({"name": f"p{i}", "parent_id": chain[-1]["id"]}))
    with pytest.raises(ForbiddenError, match="Max hierarchy depth"):
        store.create_project({"name": "p5", "parent_id": chain[-1]["id"]})
    assert [p["id"] for p in store.project_parents(chain[2]["id"])] == [
        chain[1]["id"], chain[0]["id"]]
    assert [p["id"] for p in store.project_subtree(chain[2]["id"])] == [
        chain[3]["id"], chain[4]["id"]]


def test_trust_rules(store: IdentityStore, clock: Clock) -> None:
    r = roles(store)
    proj = store.create_project({"name": "p"})
    tor, tee = store.create_user({"name": "tor"}), store.create_user({"name": "tee"})
    store.grant("user", tor["id"], "project", proj["id"], r["member"])
    base = {"trustor_user_id": tor["id"], "trustee_user_id": tee["id"],
            "project_id": proj["id"], "impersonation": False}
    with pytest.raises(NotFoundError, match="Could not find role"):
        store.create_trust(dict(base), [r["admin"]])
    with pytest.raises(ForbiddenError, match="Redelegation is disabled"):
        store.create_trust({**base, "allow_redelegation": True}, [r["member"]])
    trust = store.create_trust({**base, "remaining_uses": 1,
                                "expires_at": clock.now + 60}, [r["member"]])
    assert store.trust_roles_now(trust) == [r["member"], r["reader"]]
    store.consume_trust(trust["id"])
    with pytest.raises(NotFoundError):
        store.get_trust(trust["id"])  # used up: not found
    with pytest.raises(ForbiddenError, match="No remaining uses"):
        store.consume_trust(trust["id"])
    other = store.create_trust(dict(base), [r["member"]])
    store.revoke_grant("user", tor["id"], "project", proj["id"], r["member"])
    with pytest.raises(ForbiddenError, match="Trustee has no delegated roles"):
        store.trust_roles_now(store.get_trust(other["id"]))
    clock.now += 120
    assert [t["id"] for t in store.list_trusts(trustor=tor["id"])] == [other["id"]]
    store.delete_trust(other["id"])
    with pytest.raises(NotFoundError):
        store.get_trust(other["id"], live=False)


def test_trust_revocation_events_match_trustor_and_trust(store: IdentityStore) -> None:
    p = payload(trust=TrustRef("t1", "tor", "u1", False))
    assert RevocationEvent(p.issued_at + 1, user_id="tor").matches(p)
    assert RevocationEvent(p.issued_at + 1, trust_id="t1").matches(p)
    assert not RevocationEvent(p.issued_at + 1, trust_id="t2").matches(p)
    revs = RevocationList(None, 1, 3600)
    revs.add(RevocationEvent(p.issued_at + 1, trust_id="t1"))
    assert revs.is_revoked(p) and not revs.is_revoked(payload())


def test_payload_v2_round_trip_and_v1_still_decodes() -> None:
    p = payload(trust=TrustRef("t1", "tor", "tee", True))
    assert TokenPayload.from_wire(p.to_wire()) == p
    v1 = json.loads(payload().to_wire())
    v1[0] = 1
    assert TokenPayload.from_wire(json.dumps(v1).encode()) == payload()


def test_limits(store: IdentityStore) -> None:
    svc = store.create_service({"type": "compute", "name": "nova"})
    proj = store.create_project({"name": "p"})
    (reg,) = store.create_registered_limits([{"service_id": svc["id"], "resource_name": "cores",
                                              "default_limit": 10}])
    with pytest.raises(ConflictError):
        store.create_registered_limits([{"service_id": svc["id"], "resource_name": "cores",
                                         "default_limit": 1}])
    with pytest.raises(ForbiddenError, match="no corresponding"):
        store.create_limits([{"project_id": proj["id"], "service_id": svc["id"],
                              "resource_name": "ram", "resource_limit": 1}])
    (lim,) = store.create_limits([{"project_id": proj["id"], "service_id": svc["id"],
                                   "resource_name": "cores", "resource_limit": 4}])
    assert store.list_limits(project_id=proj["id"])[0]["resource_limit"] == 4
    with pytest.raises(ForbiddenError):
        store.delete_registered_limit(reg["id"])
    store.delete_project(proj["id"])  # a project's limits go with it
    assert store.list_limits() == []
    store.delete_registered_limit(reg["id"])
    with pytest.raises(BadRequestError):
        store.create_registered_limits([{"service_id": "nope", "resource_name": "x",
                                         "default_limit": 1}])
    assert lim["domain_id"] is None


def test_security_compliance(tmp_path: Path, clock: Clock) -> None:
    store = make_store(tmp_path, clock, lockout_failure_attempts=2, lockout_duration=60,
                       unique_last_password_count=2, minimum_password_age=1,
                       password_regex="^.{6,}$", password_regex_description="6+",
                       password_expires_days=10)
    with pytest.raises(BadRequestError, match="does not match the requirements: 6"):
        store.create_user({"name": "weak", "password": "abc"})
    user = store.create_user({"name": "u", "password": "secret-1"})
    assert user["password_expires_at"] == clock.now + 10 * 86400
    rules, engine = store.passwords, store.engine
    rules.failed(engine, user["id"])
    rules.failed(engine, user["id"])
    with pytest.raises(UnauthorizedError, match="locked"):
        rules.check_locked(engine, user)
    clock.now += 61
    rules.check_locked(engine, user)  # the lockout has expired
    with pytest.raises(BadRequestError, match="minimum password age"):
        store.change_own_password(user["id"], "secret-2")
    clock.now += 86400
    store.change_own_password(user["id"], "secret-2")
    with pytest.raises(BadRequestError, match="identical to a previous password"):
        store.set_password(user["id"], "secret-1")
    clock.now += 11 * 86400
    with pytest.raises(UnauthorizedError, match="expired"):
        rules.check_expired(engine, store.get_user(user["id"]))
    store.delete_user(user["id"])
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.password_history)).all() == []


def test_v1_sqlite_database_migrates_to_v2(tmp_path: Path) -> None:
    check_v1_migrates(make_engine(f"sqlite:///{tmp_path / 'old.db'}"))


def check_v1_migrates(engine: sa.engine.Engine) -> None:
    """Migrate an empty database to version 1, add a grant, migrate to 2, check it."""
    migrate(engine, "identity", schema.MIGRATIONS[:1])
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO identity_assignment VALUES "
                             "('GroupDomain', 'g1', 'd1', 'r1')"))
    assert migrate(engine, "identity", schema.MIGRATIONS) == 2
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(schema.assignments)).mappings()]
        tables = set(sa.inspect(conn).get_table_names())
    assert rows == [{"type": "GroupDomain", "actor_id": "g1", "target_id": "d1",
                     "role_id": "r1", "inherited": False}]
    assert "identity_assignment" not in tables and "identity_trust" in tables
    with engine.connect() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("identity_revocation_event")}
    assert "trust_id" in cols
