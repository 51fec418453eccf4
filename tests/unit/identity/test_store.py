"""The identity store on a real SQLite file: effective roles, cascades, conflicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nubis.api.identity import schema
from nubis.api.identity.catalog import substitute
from nubis.api.identity.creds import IdentityStore, ec2_credential_id
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.errors import ConflictError, ForbiddenError, NotFoundError
from nubis.api.shared.revoke import RevocationList
from nubis.common.db import make_engine, migrate

from tests.unit.shared.test_tokens import payload


@pytest.fixture
def store(tmp_path: Path) -> IdentityStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'id.db'}")
    migrate(engine, "identity", schema.MIGRATIONS)
    s = IdentityStore(engine, PasswordHasher(1, 1024, 1), RevocationList(None, 1, 3600))
    s.create_domain({"id": "default", "name": "Default"})
    return s


def roles(store: IdentityStore) -> dict[str, str]:
    ids = {n: store.create_role({"name": n})["id"] for n in ("admin", "member", "reader")}
    store.add_implied_role(ids["admin"], ids["member"])
    store.add_implied_role(ids["member"], ids["reader"])
    return ids


def test_effective_roles_via_groups_and_implication(store: IdentityStore) -> None:
    r = roles(store)
    proj = store.create_project({"name": "p"})
    user = store.create_user({"name": "u", "password": "pw"})
    group = store.create_group({"name": "g"})
    assert store.effective_role_ids(user["id"], "project", proj["id"]) == []
    store.add_user_to_group(group["id"], user["id"])
    store.grant("group", group["id"], "project", proj["id"], r["admin"])
    eff = store.effective_role_ids(user["id"], "project", proj["id"])
    assert eff == [r["admin"], r["member"], r["reader"]]
    assert store.user_target_ids(user["id"], "project") == [proj["id"]]
    with pytest.raises(Exception, match="cycle"):
        store.add_implied_role(r["reader"], r["member"])
    with pytest.raises(Exception, match="cannot be an implied roles"):  # Keystone's text
        store.add_implied_role(r["reader"], r["admin"])


def test_revoking_a_grant_records_an_event(store: IdentityStore) -> None:
    r = roles(store)
    proj = store.create_project({"name": "p"})
    user = store.create_user({"name": "u", "password": "pw"})
    store.grant("user", user["id"], "project", proj["id"], r["member"])
    store.grant("user", user["id"], "project", proj["id"], r["member"])  # idempotent
    p = payload(user_id=user["id"], issued_at=store.clock() - 1,
                project=payload().project.__class__(proj["id"], "p", "default", "Default"))
    assert store.revocations is not None and not store.revocations.is_revoked(p)
    store.revoke_grant("user", user["id"], "project", proj["id"], r["member"])
    assert store.revocations.is_revoked(p)
    with pytest.raises(NotFoundError):
        store.revoke_grant("user", user["id"], "project", proj["id"], r["member"])


def test_conflicts_and_missing(store: IdentityStore) -> None:
    store.create_project({"name": "p"})
    with pytest.raises(ConflictError, match="Duplicate entry found with name p"):
        store.create_project({"name": "p"})
    dom = store.create_domain({"name": "other"})
    store.create_project({"name": "p", "domain_id": dom["id"]})  # other domain: fine
    with pytest.raises(NotFoundError, match="Could not find project: nope"):
        store.get_project("nope")
    with pytest.raises(NotFoundError):
        store.create_project({"name": "q", "domain_id": "missing"})


def test_domain_delete_cascades(store: IdentityStore) -> None:
    r = roles(store)
    dom = store.create_domain({"name": "d"})
    proj = store.create_project({"name": "p", "domain_id": dom["id"]})
    user = store.create_user({"name": "u", "domain_id": dom["id"]})
    store.grant("user", user["id"], "project", proj["id"], r["member"])
    with pytest.raises(ForbiddenError):
        store.delete_domain(dom["id"])
    store.update_domain(dom["id"], {"enabled": False})
    store.delete_domain(dom["id"])
    with pytest.raises(NotFoundError):
        store.get_user(user["id"])
    assert store.direct_assignments(actor_ids=[user["id"]]) == []


def test_catalog_and_credentials(store: IdentityStore) -> None:
    store.create_region({"id": "RegionOne"})
    svc = store.ensure_service("object-store", "swift", "d")
    assert store.ensure_service("object-store", "swift", "d")["id"] == svc["id"]
    store.ensure_endpoint(svc["id"], "public", "RegionOne", "http://h/v1/AUTH_%(project_id)s")
    store.ensure_endpoint(svc["id"], "public", "RegionOne", "http://h2/v1/AUTH_%(project_id)s")
    (entry,) = store.catalog("p1")
    assert [e["url"] for e in entry["endpoints"]] == ["http://h2/v1/AUTH_p1"]
    assert store.catalog(None)[0]["endpoints"] == []
    assert substitute("http://x/$(tenant_id)s", "t") == "http://x/t"
    proj = store.create_project({"name": "p"})
    user = store.create_user({"name": "u"})
    cred = store.create_ec2(user["id"], proj["id"])
    access = store.list_credentials(user_id=user["id"])[0]
    assert access["id"] == cred["id"]
    key = json.loads(cred["blob"])["access"]
    found = store.find_ec2(key)
    assert found is not None and found["id"] == ec2_credential_id(key)


def test_ec2_lookup_for_s3(store: IdentityStore) -> None:
    from nubis.api.identity.ec2 import Ec2Lookup

    r = roles(store)
    proj = store.create_project({"name": "p"})
    user = store.create_user({"name": "u"})
    store.grant("user", user["id"], "project", proj["id"], r["member"])
    blob = json.loads(store.create_ec2(user["id"], proj["id"])["blob"])
    now = [0.0]
    lookup = Ec2Lookup(store.engine, ttl=5, clock=lambda: now[0])
    found = lookup.lookup(blob["access"])
    assert found is not None and found.secret == blob["secret"]
    assert found.role_names == {"member", "reader"}
    assert found.owned_account() == f"AUTH_{proj['id']}"
    assert lookup.lookup("unknown") is None
    store.update_user(user["id"], {"enabled": False})
    assert lookup.lookup(blob["access"]) is not None  # cached for ttl
    now[0] = 6.0
    assert lookup.lookup(blob["access"]) is None


def test_ec2_lookup_renews_unchanged_and_reloads_changed(store: IdentityStore,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from nubis.api.identity.ec2 import Ec2Lookup

    r = roles(store)
    proj = store.create_project({"name": "p"})
    user = store.create_user({"name": "u"})
    cred = store.create_ec2(user["id"], proj["id"])
    access = json.loads(cred["blob"])["access"]
    now = [0.0]
    lookup = Ec2Lookup(store.engine, ttl=5, clock=lambda: now[0], max_age=60)
    loads: list[str] = []
    real_load = lookup._load
    monkeypatch.setattr(lookup, "_load", lambda a: loads.append(a) or real_load(a))
    first = lookup.lookup(access)
    assert first is not None and first.role_names == frozenset() and len(loads) == 1
    now[0] = 6.0  # past ttl, nothing changed: renewed without a reload
    assert lookup.lookup(access) == first and len(loads) == 1
    store.grant("user", user["id"], "project", proj["id"], r["member"])  # a grant added
    assert lookup.lookup(access) == first  # trusted for ttl
    now[0] = 12.0
    found = lookup.lookup(access)
    assert found is not None and "member" in found.role_names and len(loads) == 2
    now[0] = 75.0  # past max_age: reloaded even though nothing changed
    assert lookup.lookup(access) == found and len(loads) == 3
    store.revoke_grant("user", user["id"], "project", proj["id"], r["member"])  # an event
    now[0] = 81.0
    found = lookup.lookup(access)
    assert found is not None and "member" not in found.role_names and len(loads) == 4
    store.delete_credential(cred["id"])  # the key itself deleted
    now[0] = 87.0
    assert lookup.lookup(access) is None
