"""Account ACLs: ``X-Account-Access-Control`` as Swift's tempauth implements them.

An account's owner (or a reseller admin) sets a JSON object with up to three
lists of grantees::

    X-Account-Access-Control: {"admin":["test:tester3"],"read-only":["test2"]}

- ``read-only``: GET/HEAD of the account, its containers and objects.
- ``read-write``: everything on containers and objects, GET/HEAD of the account
  (no account POST, so no account metadata or ACL changes).
- ``admin``: everything the owner may do, including changing the ACL (Swift's
  ``swift_owner``).

A grantee matches one of the caller's groups (``account``, ``account:user``,
extra tempauth groups, Keystone's ``project:user`` forms) or an account the caller
owns (``AUTH_test2``). The ACL is kept as account system metadata
(``X-Account-Sysmeta-Core-Access-Control``, as Swift stores it), is validated on
the way in (400 with Swift's message on bad JSON, unknown keys or non-list
values) and is shown only to callers with owner rights, re-serialised like
Swift's ``format_acl`` (sorted keys, no spaces, ASCII).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nubis.api.proxy.auth import ADMIN, READ_ONLY, READ_WRITE, Identity
from nubis.api.proxy.errors import HTTPError

#: Where the ACL lives on the account servers (never shown to clients as such).
SYSMETA = "x-account-sysmeta-core-access-control"
#: The client-facing header.
HEADER = "x-account-access-control"
LEVELS = (ADMIN, READ_WRITE, READ_ONLY)


@dataclass(frozen=True)
class AccountAcl:
    """The grantees of an account, per level."""

    admin: frozenset[str]
    read_write: frozenset[str]
    read_only: frozenset[str]

    def level_of(self, ident: Identity) -> str | None:
        """Return the highest level ``ident`` holds (``None``: not granted)."""
        names = ident.groups | ident.owned_accounts
        if names & self.admin:
            return ADMIN
        if names & self.read_write:
            return READ_WRITE
        if names & self.read_only:
            return READ_ONLY
        return None


def _as_text(value: str) -> str:
    """Return a header value as text (headers arrive decoded as latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _problem(data: Any) -> str | None:
    """Return what is wrong with a parsed ACL (Swift's wording), or None."""
    for key in data:
        if key not in LEVELS:
            return f"Key {json.dumps(key)} not recognized"
    for key in LEVELS:
        if key not in data:
            continue
        if not isinstance(data[key], list):
            return f"Value for key {json.dumps(key)} must be a list"
        if not all(isinstance(g, str) for g in data[key]):
            return f"Elements of {json.dumps(key)} list must be strings"
    return None


def clean(value: str) -> str:
    """Validate an ``X-Account-Access-Control`` value; return what to store.

    Returns:
        The ACL serialised like Swift's ``format_acl`` (empty for ``{}``/empty,
        which removes the ACL).

    Raises:
        HTTPError: 400 (plain text, Swift's message) when the value is not a JSON
            object of string lists under ``admin``/``read-write``/``read-only``.
    """
    text = _as_text(value)
    data: Any = {}
    problem: str | None = None
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            problem = f"Syntax error in input ({text!r})"
        else:
            problem = _problem(data)
    if problem is not None:
        raise HTTPError(400, f"X-Account-Access-Control invalid: {problem}\n\nInput: "
                             f"{text}\n", {"Content-Type": "text/plain; charset=UTF-8"})
    return format_acl(data) if data else ""


def format_acl(data: Mapping[str, Any]) -> str:
    """Serialise an ACL like Swift's ``format_acl(version=2)``."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def _stored(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """Return the stored ACL as a dict (None when unset or unreadable)."""
    raw = headers.get(SYSMETA)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data else None


def from_headers(headers: Mapping[str, str]) -> AccountAcl | None:
    """Return the ACL kept in an account's (backend) headers, None when unset."""
    data = _stored(headers)
    if data is None or _problem(data) is not None:
        return None
    acl = AccountAcl(*(frozenset(data.get(k, ())) for k in LEVELS))
    return acl if acl.admin or acl.read_write or acl.read_only else None


def shown(headers: Mapping[str, str]) -> str | None:
    """Return the ``X-Account-Access-Control`` value to show an owner, if any."""
    data = _stored(headers)
    return format_acl(data) if data else None
