"""Bootstrap identity after ``nubis up`` starts the daemons (a post-start hook).

Idempotent: creates what is missing and fixes what drifted — the ``Default``
domain, roles ``admin`` ⇒ ``member`` ⇒ ``reader``, the ``admin`` user (admin on
project ``admin`` and on the system), the ``demo`` user (member of project
``demo``), the service catalog for the services this deployment runs — and
writes ``<state>/clouds.yaml`` (clouds ``nubis-admin``, ``nubis-demo``) and
``<state>/openrc``. Passwords come from ``[identity]`` or are generated once
and kept in ``<state>/identity-passwords.json`` (mode 0600). Which services the
catalog lists, and where, is the caller's (the CLI layer's ``nubis.bootstrap``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from nubis.api.identity import schema
from nubis.api.identity.config import IdentityConfig
from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.identity.store import DEFAULT_DOMAIN_ID, Row
from nubis.common.db import make_engine, migrate
from nubis.common.fileutil import atomic_write


@dataclass(frozen=True)
class CatalogEntry:
    """One service of the catalog: type, name and endpoint URL (all interfaces)."""

    service_type: str
    name: str
    url: str


@dataclass(frozen=True)
class ServiceUser:
    """A service's own account (e.g. the image service's ``glance``), in ``project``."""

    name: str
    project: str
    password: str
    role: str = "member"


@dataclass(frozen=True)
class Credentials:
    """A cloud login as written to clouds.yaml."""

    cloud: str
    username: str
    password: str
    project: str


def bootstrap(cfg: IdentityConfig, database_url: str, public_url: str, state_dir: Path,
              catalog: Sequence[CatalogEntry],
              service_users: Sequence[ServiceUser] = ()) -> Row:
    """Create the bootstrap entities, ``catalog`` and ``service_users``; return the admin project.

    ``public_url`` is the base URL of the ``nubis api`` process (identity lives
    under ``/identity``); the CLI layer decides which services the catalog lists
    and which service accounts exist.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    migrate(engine, "identity", schema.MIGRATIONS)
    store = IdentityStore(engine, PasswordHasher.from_config(cfg))
    passwords = _passwords(cfg, state_dir)
    roles = _roles(store)
    admin_project = _project(store, "admin", "Bootstrap project for administrators")
    demo_project = _project(store, "demo", "Demo project")
    admin = _user(store, "admin", passwords["admin"])
    demo = _user(store, "demo", passwords["demo"])
    store.grant("user", admin["id"], "project", admin_project["id"], roles["admin"])
    store.grant("user", admin["id"], "system", "system", roles["admin"])
    store.grant("user", demo["id"], "project", demo_project["id"], roles["member"])
    _service_users(store, service_users, roles)
    _catalog(store, cfg.region, catalog)
    auth_url = f"{public_url}/identity/v3"
    logins = [Credentials("nubis-admin", "admin", passwords["admin"], "admin"),
              Credentials("nubis-demo", "demo", passwords["demo"], "demo")]
    write_clouds_yaml(state_dir / "clouds.yaml", auth_url, cfg.region, logins)
    write_openrc(state_dir / "openrc", auth_url, cfg.region, logins[0])
    engine.dispose()
    return admin_project


def _new_password() -> str:
    """Return a fresh random password a command line takes as one argument.

    A urlsafe token may start with ``-``; ``openstack --os-password -x…`` and
    ``swift --os-password -x…`` then read it as an option, so such draws are redrawn.
    """
    while True:
        token = secrets.token_urlsafe(18)
        if not token.startswith("-"):
            return token


def _passwords(cfg: IdentityConfig, state_dir: Path) -> dict[str, str]:
    path = state_dir / "identity-passwords.json"
    saved: dict[str, str] = {}
    if path.exists():
        saved = json.loads(path.read_text())
    out = {"admin": cfg.admin_password or saved.get("admin")
           or _new_password(),
           "demo": cfg.demo_password or saved.get("demo")
           or _new_password()}
    if out != saved:
        _write_private(path, json.dumps(out, indent=2) + "\n")
    return out


def _roles(store: IdentityStore) -> dict[str, str]:
    if store._find(schema.domains, id=DEFAULT_DOMAIN_ID) is None:
        store.create_domain({"id": DEFAULT_DOMAIN_ID, "name": "Default",
                             "description": "The default domain"})
    ids = {}
    for name in ("admin", "member", "reader"):
        row = store.find_role(name) or store.create_role({"name": name})
        ids[name] = row["id"]
    for prior, implied in (("admin", "member"), ("member", "reader")):
        store.add_implied_role(ids[prior], ids[implied])
    return ids


def _project(store: IdentityStore, name: str, description: str) -> Row:
    return store.find_project(name, DEFAULT_DOMAIN_ID) or store.create_project(
        {"name": name, "domain_id": DEFAULT_DOMAIN_ID, "description": description})


def _user(store: IdentityStore, name: str, password: str) -> Row:
    row = store.find_user(name, DEFAULT_DOMAIN_ID)
    if row is None:
        # The operator chose these passwords: no forced change at first use.
        return store.create_user({"name": name, "domain_id": DEFAULT_DOMAIN_ID,
                                  "password": password, "options": {
                                      "ignore_change_password_upon_first_use": True}})
    if not store.hasher.verify(row.get("password_hash"), password):
        store.set_password(row["id"], password)
    if not row["enabled"]:
        store.update_user(row["id"], {"enabled": True})
    return row


def _service_users(store: IdentityStore, users: Sequence[ServiceUser],
                   roles: dict[str, str]) -> None:
    """Create the service accounts of the mounted APIs that store data as a user.

    Like devstack's ``glance`` user: role ``member`` on the ``service`` project,
    so it owns that project's object-store account and nothing else.
    """
    for su in users:
        project = _project(store, su.project, "Service accounts")
        user = _user(store, su.name, su.password)
        store.grant("user", user["id"], "project", project["id"], roles[su.role])


def _catalog(store: IdentityStore, region: str, catalog: Sequence[CatalogEntry]) -> None:
    if store._find(schema.regions, id=region) is None:
        store.create_region({"id": region, "description": ""})
    for entry in catalog:
        svc = store.ensure_service(entry.service_type, entry.name,
                                   f"nubis {entry.service_type} service")
        for interface in ("public", "internal", "admin"):
            store.ensure_endpoint(svc["id"], interface, region, entry.url)


def write_clouds_yaml(path: Path, auth_url: str, region: str,
                      logins: list[Credentials]) -> None:
    """Write a clouds.yaml with one cloud per login."""
    clouds = {}
    for login in logins:
        clouds[login.cloud] = {
            "auth": {"auth_url": auth_url, "username": login.username,
                     "password": login.password, "project_name": login.project,
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": region, "identity_api_version": 3, "interface": "public"}
    _write_private(path, yaml.safe_dump({"clouds": clouds}, sort_keys=False))


def write_openrc(path: Path, auth_url: str, region: str, login: Credentials) -> None:
    """Write a shell file exporting the OS_* variables of ``login``."""
    lines = [
        f"# nubis {login.cloud}: source this file, then run `openstack ...`",
        f"export OS_AUTH_URL={auth_url}",
        "export OS_IDENTITY_API_VERSION=3",
        f"export OS_USERNAME={login.username}",
        f"export OS_PASSWORD='{login.password}'",
        f"export OS_PROJECT_NAME={login.project}",
        "export OS_USER_DOMAIN_NAME=Default",
        "export OS_PROJECT_DOMAIN_NAME=Default",
        f"export OS_REGION_NAME={region}",
        "export OS_INTERFACE=public",
    ]
    _write_private(path, "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    atomic_write(path, [text.encode()], mode=0o600)
