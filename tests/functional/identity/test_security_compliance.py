"""``[identity.security_compliance]`` and ``list_limit`` on their own ``nubis api``.

Lockout after N failures (kept in the database), forced change at first use
(PasswordExpired), the password regex, the history of the last N passwords and
the minimum password age, each answered with Keystone's status and message;
``list_limit`` truncation with ``"truncated": true``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.identity.conftest import Keystone, password_auth
from tests.functional.identity.server import ADMIN_PASSWORD, ApiServer, start_server
from tests.functional.identity.test_keystone_http import _error

pytestmark = pytest.mark.functional

COMPLIANCE = """list_limit = 3
[identity.security_compliance]
lockout_failure_attempts = 2
lockout_duration = 2
password_expires_days = 90
unique_last_password_count = 2
minimum_password_age = 1
password_regex = "^.{8,}$"
password_regex_description = "at least 8 characters"
change_password_upon_first_use = true
"""


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(Path(tmp_path_factory.mktemp("compliance")), COMPLIANCE)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sks(strict: ApiServer) -> Keystone:
    return Keystone(strict)


def test_security_compliance(sks: Keystone) -> None:
    admin, _ = sks.token("admin", ADMIN_PASSWORD, "admin")  # bootstrap users are exempt
    name = f"cu-{uuid.uuid4().hex[:6]}"
    weak = sks.call("POST", "/users", admin, json={"user": {"name": name, "password": "short"}})
    assert _error(weak, 400)["message"] == (
        "The password does not match the requirements: at least 8 characters.")
    user = sks.call("POST", "/users", admin, json={"user": {
        "name": name, "password": "first-pass"}}).json()["user"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", user["password_expires_at"])
    # set by an administrator: must be changed at first use
    expired = _error(sks.issue(password_auth(name, "first-pass")), 401)
    assert expired["message"] == ("The password is expired and needs to be changed for user: "
                                  f"{user['id']}.")
    change = f"/users/{user['id']}/password"
    ok = sks.call("POST", change, None, json={"user": {"original_password": "first-pass",
                                                       "password": "second-pass"}})
    assert ok.status_code == 204, ok.text
    token, body = sks.token(name, "second-pass")
    assert body["user"]["password_expires_at"].startswith(
        time.strftime("%Y", time.gmtime(time.time() + 90 * 86400)))
    # minimum age: the user may not change it again today
    young = _error(sks.call("POST", change, None, json={"user": {
        "original_password": "second-pass", "password": "third-pass"}}), 400)
    assert "minimum password age" in young["message"]
    # history: an administrator may not bring back one of the last 2 passwords
    again = _error(sks.call("PATCH", f"/users/{user['id']}", admin, json={"user": {
        "password": "first-pass"}}), 400)
    assert again["message"].startswith("The new password cannot be identical to a previous "
                                       "password. The total number which includes the new "
                                       "password must be unique is 2.")
    # lockout after 2 failures, kept in the database, for lockout_duration seconds
    for _ in range(2):
        _error(sks.issue(password_auth(name, "wrong-pass")), 401)
    locked = _error(sks.issue(password_auth(name, "second-pass")), 401)
    assert locked["message"] == f"The account is locked for user: {user['id']}."
    time.sleep(2.2)
    assert sks.issue(password_auth(name, "second-pass")).status_code == 201
    # list_limit: lists stop at 3 entries and say so
    for i in range(4):
        sks.call("POST", "/groups", admin, json={"group": {"name": f"{name}-g{i}"}})
    groups = sks.call("GET", "/groups", admin).json()
    assert len(groups["groups"]) == 3 and groups["truncated"] is True
    few = sks.call("GET", f"/groups?name={name}-g0", admin).json()
    assert "truncated" not in few and len(few["groups"]) == 1
    assert token
