"""Bootstrap identity after ``nubis up`` starts the daemons (a post-start hook).

Idempotent: creates what is missing and fixes what drifted — the ``Default``
domain, roles ``admin`` ⇒ ``member`` ⇒ ``reader``, the ``admin`` user (admin on
project ``admin`` and on the system), the ``demo`` user (member of project
``demo``), the service catalog for the services this deployment runs — and
writes ``<state>/clouds.yaml`` (clouds ``nubis-admin``, ``nubis-demo``) and
``<state>/openrc``. Passwords come from ``[identity]`` or are generated once
and kept in ``<state>/identity-passwords.json`` (mode 0600).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from nubis.api.identity import schema
from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.identity.store import DEFAULT_DOMAIN_ID, Row
from nubis.common.db import make_engine, migrate
from nubis.common.fileutil import atomic_write
from nubis.common.net import http_base

if TYPE_CHECKING:
    from nubis.settings import Config

#: sub-application prefix -> (service type, service name, path after the public URL).
CATALOG_SERVICES: dict[str, tuple[str, str, str]] = {
    "/identity": ("identity", "keystone", "/identity"),
    "/compute": ("compute", "nova", "/compute/v2.1"),
    "/image": ("image", "glance", "/image"),
    "/network": ("network", "neutron", "/network"),
    "/volume": ("volumev3", "cinderv3", "/volume/v3/%(project_id)s"),
}


@dataclass(frozen=True)
class Credentials:
    """A cloud login as written to clouds.yaml."""

    cloud: str
    username: str
    password: str
    project: str


def post_start(config: Config, state_dir: Path) -> None:
    """Bootstrap identity and write clouds.yaml/openrc (the ``nubis up`` hook)."""
    from nubis.api.app import SUBAPPS  # the composition root lists the mounted APIs

    try:
        from nubis.registry import DAEMONS  # which daemons this deployment runs
        has_proxy = "proxy" in DAEMONS
        has_scheduler = "scheduler" in DAEMONS
    except ImportError:
        has_proxy = has_scheduler = False
    state = Path(state_dir)
    bootstrap(config, state, list(SUBAPPS), has_proxy, has_placement=has_scheduler)
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    print(f"\nIdentity (Keystone v3): {public}/identity/v3")
    print(f"  wrote {state / 'clouds.yaml'} (clouds nubis-admin, nubis-demo) and "
          f"{state / 'openrc'}")
    print(f"  OS_CLIENT_CONFIG_FILE={state / 'clouds.yaml'} openstack --os-cloud nubis-admin "
          "token issue")


def bootstrap(config: Config, state_dir: Path, prefixes: list[str], has_proxy: bool,
              *, has_placement: bool = False) -> Row:
    """Create the bootstrap entities; return the admin project row."""
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.api.resolved_database_url(state_dir))
    migrate(engine, "identity", schema.MIGRATIONS)
    ic = config.identity
    store = IdentityStore(engine, PasswordHasher(ic.password_time_cost, ic.password_memory_kib,
                                                 ic.password_parallelism))
    passwords = _passwords(config, state_dir)
    roles = _roles(store)
    admin_project = _project(store, "admin", "Bootstrap project for administrators")
    demo_project = _project(store, "demo", "Demo project")
    admin = _user(store, "admin", passwords["admin"])
    demo = _user(store, "demo", passwords["demo"])
    store.grant("user", admin["id"], "project", admin_project["id"], roles["admin"])
    store.grant("user", admin["id"], "system", "system", roles["admin"])
    store.grant("user", demo["id"], "project", demo_project["id"], roles["member"])
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    _catalog(store, config, public, prefixes, has_proxy, has_placement)
    auth_url = f"{public}/identity/v3"
    logins = [Credentials("nubis-admin", "admin", passwords["admin"], "admin"),
              Credentials("nubis-demo", "demo", passwords["demo"], "demo")]
    write_clouds_yaml(state_dir / "clouds.yaml", auth_url, ic.region, logins)
    write_openrc(state_dir / "openrc", auth_url, ic.region, logins[0])
    engine.dispose()
    return admin_project


def _passwords(config: Config, state_dir: Path) -> dict[str, str]:
    path = state_dir / "identity-passwords.json"
    saved: dict[str, str] = {}
    if path.exists():
        saved = json.loads(path.read_text())
    out = {"admin": config.identity.admin_password or saved.get("admin")
           or secrets.token_urlsafe(18),
           "demo": config.identity.demo_password or saved.get("demo")
           or secrets.token_urlsafe(18)}
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
        return store.create_user({"name": name, "domain_id": DEFAULT_DOMAIN_ID,
                                  "password": password})
    if not store.hasher.verify(row.get("password_hash"), password):
        store.set_password(row["id"], password)
    if not row["enabled"]:
        store.update_user(row["id"], {"enabled": True})
    return row


def _catalog(store: IdentityStore, config: Config, public: str, prefixes: list[str],
             has_proxy: bool, has_placement: bool = False) -> None:
    region = config.identity.region
    if store._find(schema.regions, id=region) is None:
        store.create_region({"id": region, "description": ""})
    wanted: list[tuple[str, str, str]] = []
    for prefix in prefixes:
        if prefix in CATALOG_SERVICES:
            svc_type, name, path = CATALOG_SERVICES[prefix]
            wanted.append((svc_type, name, f"{public}{path}"))
    if has_proxy:
        wanted.append(("object-store", "swift", object_store_url(config)))
    if has_placement:
        wanted.append(("placement", "placement", placement_url(config)))
    for svc_type, name, url in wanted:
        svc = store.ensure_service(svc_type, name, f"nubis {svc_type} service")
        for interface in ("public", "internal", "admin"):
            store.ensure_endpoint(svc["id"], interface, region, url)


def object_store_url(config: Config) -> str:
    """Return the object-store endpoint template (from ``[identity]`` or the proxy's port)."""
    if config.identity.object_store_url:
        return config.identity.object_store_url
    return f"{_service_base(config, 'proxy', 8080)}/v1/AUTH_%(project_id)s"


def placement_url(config: Config) -> str:
    """Return the placement endpoint (served by the scheduler process)."""
    return f"{_service_base(config, 'scheduler', 8775)}/placement"


def _service_base(config: Config, section: str, default_port: int) -> str:
    """Return ``http://host:port`` of the service configured in ``[section]``."""
    conf = getattr(config, section, None)
    bind_ip = (getattr(conf, "bind_ip", "") or config.cluster.bind_ip) if conf else ""
    return http_base(bind_ip, getattr(conf, "port", default_port))


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
