"""Account ACLs, service tokens and reseller admins, driven with python-swiftclient.

One cloud with Swift's SAIO service profile (``SERVICE_`` reseller prefix whose
accounts also need the ``service`` group, user ``test5:tester5`` holding it).
Every grant is checked together with the denials around it: a tenant never gets
more than the owner granted.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.compat.run import EXTRA_USERS, TEMPAUTH_LINES
from tests.functional.proxy.cloud import Cloud, start_cloud
from tests.functional.proxy.test_core import conn_for, raw

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("nubis-acl"), extra_config=EXTRA_USERS,
                    section_lines={"tempauth": TEMPAUTH_LINES})
    try:
        yield c
    finally:
        c.down()


def login(cloud: Cloud, user: str) -> tuple[str, str]:
    url, token = conn_for(cloud, user).get_auth()
    return url, token


def status(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Return the HTTP status of a swiftclient call (2xx when it succeeds)."""
    try:
        fn(*args, **kwargs)
    except ClientException as exc:
        return int(exc.http_status or 0)
    return 200


@pytest.fixture
def owner(cloud: Cloud) -> Iterator[tuple[str, str]]:
    url, token = login(cloud, "test:tester")
    yield url, token
    sc.post_account(url, token, {"X-Account-Access-Control": "{}"})


def set_acl(owner: tuple[str, str], acl: dict[str, list[str]]) -> None:
    sc.post_account(owner[0], owner[1], {"X-Account-Access-Control": json.dumps(acl)})


def test_read_only_grant_and_its_limits(cloud: Cloud, owner: tuple[str, str]) -> None:
    url, token = owner
    name = "ro-" + uuid.uuid4().hex[:8]
    sc.put_container(url, token, name)
    sc.put_object(url, token, name, "o", b"data")
    sc.post_account(url, token, {"X-Account-Meta-Temp-Url-Key": "s3cret",
                                 "X-Account-Meta-Color": "blue"})
    _, t3 = login(cloud, "test:tester3")
    # Before the grant: nothing.
    assert status(sc.head_account, url, t3) == 403
    assert status(sc.get_object, url, t3, name, "o") == 403
    set_acl(owner, {"read-only": ["test:tester3"]})
    head = sc.head_account(url, t3)
    assert head["x-account-meta-color"] == "blue"
    assert "x-account-access-control" not in head          # privileged
    assert "x-account-meta-temp-url-key" not in head        # privileged
    assert sc.get_object(url, t3, name, "o")[1] == b"data"
    assert name in [c["name"] for c in sc.get_account(url, t3)[1]]
    # Reads only.
    assert status(sc.put_object, url, t3, name, "w", b"x") == 403
    assert status(sc.delete_object, url, t3, name, "o") == 403
    assert status(sc.put_container, url, t3, "ro-new") == 403
    assert status(sc.post_container, url, t3, name, {"X-Container-Meta-A": "1"}) == 403
    assert status(sc.post_account, url, t3, {"X-Account-Meta-Color": "red"}) == 403
    assert status(sc.post_account, url, t3, {"X-Account-Access-Control": json.dumps(
        {"admin": ["test:tester3"]})}) == 403
    assert sc.head_account(url, token)["x-account-meta-color"] == "blue"


def test_read_write_grant_cannot_touch_the_account_or_owner_headers(
        cloud: Cloud, owner: tuple[str, str]) -> None:
    url, token = owner
    set_acl(owner, {"read-write": ["test2"]})  # a whole other account
    _, t2 = login(cloud, "test2:tester2")
    name = "rw-" + uuid.uuid4().hex[:8]
    # Containers and objects: yes; owner-only headers are silently dropped.
    sc.put_container(url, t2, name, headers={"X-Container-Read": ".r:*",
                                             "X-Container-Meta-Temp-Url-Key": "k"})
    sc.put_object(url, t2, name, "o", b"rw")
    assert sc.get_object(url, token, name, "o")[1] == b"rw"
    sc.post_container(url, t2, name, {"X-Container-Write": "test2:tester2",
                                      "X-Container-Meta-Note": "kept"})
    seen = sc.head_container(url, token, name)
    assert seen["x-container-meta-note"] == "kept"
    assert "x-container-read" not in seen and "x-container-write" not in seen
    assert "x-container-meta-temp-url-key" not in seen
    path = urllib.parse.urlparse(url).path
    assert raw(cloud, "GET", f"{path}/{name}/o")[0] == 401  # no public read sneaked in
    # The account itself: read, never write.
    assert "x-account-access-control" not in sc.head_account(url, t2)
    assert status(sc.post_account, url, t2, {"X-Account-Meta-X": "1"}) == 403
    assert status(sc.post_account, url, t2, {"X-Account-Access-Control": "{}"}) == 403
    sc.delete_object(url, t2, name, "o")
    sc.delete_container(url, t2, name)
    # Another user of a third account gets nothing.
    _, t3 = login(cloud, "test:tester3")
    assert status(sc.head_account, url, t3) == 403


def test_admin_grant_is_owner_like_and_revocable(cloud: Cloud,
                                                 owner: tuple[str, str]) -> None:
    url, token = owner
    acl = {"admin": ["test:tester3"]}
    set_acl(owner, acl)
    _, t3 = login(cloud, "test:tester3")
    head = sc.head_account(url, t3)
    assert head["x-account-access-control"] == json.dumps(acl, separators=(",", ":"))
    sc.post_account(url, t3, {"X-Account-Meta-By-Admin": "yes"})
    assert sc.head_account(url, token)["x-account-meta-by-admin"] == "yes"
    name = "adm-" + uuid.uuid4().hex[:8]
    sc.put_container(url, t3, name, headers={"X-Container-Read": "test2:tester2"})
    assert sc.head_container(url, token, name)["x-container-read"] == "test2:tester2"
    sc.delete_container(url, t3, name)
    # Not the account's PUT/DELETE, and revoking works (even by the grantee).
    assert status(sc.post_account, url, t3, {"X-Account-Access-Control": "{}"}) == 200
    assert status(sc.head_account, url, t3) == 403
    assert "x-account-access-control" not in sc.head_account(url, token)


@pytest.mark.parametrize("value,words", [
    ("yuck", "Syntax error in input"),
    ('["test:tester3"]', "Syntax error in input"),
    ('{"admin":"test:tester3"}', 'Value for key "admin" must be a list'),
    ('{"admin":[1]}', 'Elements of "admin" list must be strings'),
    ('{"owner":["test:tester3"]}', 'Key "owner" not recognized'),
])
def test_bad_acl_is_400_and_changes_nothing(cloud: Cloud, owner: tuple[str, str],
                                           value: str, words: str) -> None:
    url, token = owner
    set_acl(owner, {"read-only": ["bob"]})
    with pytest.raises(ClientException) as info:
        sc.post_account(url, token, {"X-Account-Access-Control": value})
    assert info.value.http_status == 400
    assert words in str(info.value.http_response_content)
    assert sc.head_account(url, token)["x-account-access-control"] == '{"read-only":["bob"]}'
    # A caller without rights gets the same 400 for garbage (validated first)...
    _, t3 = login(cloud, "test:tester3")
    assert status(sc.post_account, url, t3, {"X-Account-Access-Control": value}) == 400
    # ...and 403 for a well-formed ACL on an account it does not own.
    assert status(sc.post_account, url, t3, {"X-Account-Access-Control": "{}"}) == 403


def test_non_admin_user_cannot_grant_itself(cloud: Cloud) -> None:
    url, t3 = login(cloud, "test:tester3")  # member of "test", not its admin
    acl = json.dumps({"admin": ["test:tester3"]})
    assert status(sc.post_account, url, t3, {"X-Account-Access-Control": acl}) == 403
    assert status(sc.head_account, url, t3) == 403


# --- service tokens and reseller admins ---------------------------------------

def test_service_account_needs_user_and_service_token(cloud: Cloud) -> None:
    url, user_token = login(cloud, "test:tester")
    _, svc_token = login(cloud, "test5:tester5")
    service_url = url.replace("/AUTH_test", "/SERVICE_test")
    name = "svc-" + uuid.uuid4().hex[:8]
    # The user alone, the service alone, or the service twice: refused.
    assert status(sc.put_container, service_url, user_token, name) == 403
    assert status(sc.put_container, service_url, svc_token, name) == 403
    assert status(sc.put_container, service_url, svc_token, name,
                  service_token=svc_token) == 403
    assert status(sc.put_container, service_url, user_token, name,
                  service_token=user_token) == 403
    # A service token never stands in for a missing X-Auth-Token.
    path = urllib.parse.urlparse(service_url).path
    assert raw(cloud, "HEAD", path, {"X-Service-Token": svc_token})[0] == 401
    status_code, headers, _ = raw(cloud, "OPTIONS", path)  # no Origin: Swift's Allow
    assert status_code == 200 and "POST" in headers["allow"]
    # Both together: the user owns its service account.
    sc.put_container(service_url, user_token, name, service_token=svc_token)
    sc.put_object(service_url, user_token, name, "o", b"svc", service_token=svc_token)
    assert sc.get_object(service_url, user_token, name, "o",
                         service_token=svc_token)[1] == b"svc"
    assert status(sc.get_object, service_url, user_token, name, "o") == 403
    # Another tenant with the same service token does not reach test's service account.
    _, other = login(cloud, "test2:tester2")
    assert status(sc.get_object, service_url, other, name, "o", service_token=svc_token) \
        == 403
    sc.delete_object(service_url, user_token, name, "o", service_token=svc_token)
    sc.delete_container(service_url, user_token, name, service_token=svc_token)
    # The user's own account does not need the service token.
    assert status(sc.head_account, url, user_token) == 200


def test_reseller_admin_reaches_every_account_and_sets_quotas(cloud: Cloud) -> None:
    url, token = login(cloud, "test:tester")
    _, admin = login(cloud, "admin:admin")
    assert status(sc.head_account, url, admin) == 200
    assert status(sc.post_account, url, token, {"X-Account-Quota-Bytes": "10"}) == 403
    assert status(sc.post_account, url, token, {"X-Remove-Account-Quota-Bytes": "t"}) == 403
    assert status(sc.post_account, url, admin, {"X-Account-Quota-Bytes": "ten"}) == 400
    sc.post_account(url, admin, {"X-Account-Quota-Bytes": "10"})
    try:
        assert sc.head_account(url, token)["x-account-quota-bytes"] == "10"
        name = "q-" + uuid.uuid4().hex[:8]
        sc.put_container(url, token, name)
        assert status(sc.put_object, url, token, name, "big", b"x" * 11) == 413
        sc.put_object(url, token, name, "small", b"x" * 5)
        sc.delete_object(url, token, name, "small")
        sc.delete_container(url, token, name)
    finally:
        sc.post_account(url, admin, {"X-Remove-Account-Quota-Bytes": "t"})
    assert "x-account-quota-bytes" not in sc.head_account(url, token)
