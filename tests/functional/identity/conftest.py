"""A real ``nubis api`` process for the identity functional tests (one per session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.functional.identity.server import (
    ADMIN_PASSWORD,
    DEMO_PASSWORD,
    ApiServer,
    start_server,
)


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(tmp_path_factory.mktemp("identity"))
    try:
        yield server
    finally:
        server.stop()


def password_auth(user: str, password: str, project: str | None = None,
                  domain: str = "Default", scope: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": domain}, "password": password}}}}}
    if project is not None:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


class Keystone:
    """A tiny raw-HTTP helper (so the tests see exact status codes and bodies)."""

    def __init__(self, server: ApiServer) -> None:
        self.base = server.auth_url
        self.http = requests.Session()

    def issue(self, body: dict[str, Any]) -> requests.Response:
        return self.http.post(f"{self.base}/auth/tokens", json=body, timeout=30)

    def token(self, user: str, password: str, project: str | None = None,
              **kw: Any) -> tuple[str, dict[str, Any]]:
        r = self.issue(password_auth(user, password, project, **kw))
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"], r.json()["token"]

    def call(self, method: str, path: str, token: str | None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["X-Auth-Token"] = token
        return self.http.request(method, f"{self.base}{path}", headers=headers, timeout=30,
                                 **kw)


@pytest.fixture(scope="session")
def ks(identity: ApiServer) -> Keystone:
    return Keystone(identity)


@pytest.fixture(scope="session")
def admin_token(ks: Keystone) -> str:
    return ks.token("admin", ADMIN_PASSWORD, "admin")[0]


@pytest.fixture(scope="session")
def demo_token(ks: Keystone) -> str:
    return ks.token("demo", DEMO_PASSWORD, "demo")[0]
