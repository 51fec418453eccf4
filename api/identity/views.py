"""Keystone JSON shapes: entity renderers, token body, and request-body checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from nubis.api.identity.store import Row
from nubis.api.shared.errors import BadRequestError
from nubis.api.shared.tokens import TokenPayload

_HIDDEN = frozenset({"password_hash", "secret_hash", "created_at"})


def iso(ts: float | None) -> str | None:
    """Format an epoch time as Keystone's ``isotime(subsecond=True)``.

    Keystone drops the microseconds but keeps the field:
    ``2026-11-25T18:00:00.000000Z`` (tokens' ``expires_at``/``issued_at``, trusts).
    """
    if ts is None:
        return None
    t = dt.datetime.fromtimestamp(ts, dt.UTC).replace(microsecond=0)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_micro(ts: float | None) -> str | None:
    """Format an epoch time as Keystone serializes a stored datetime (no zone suffix).

    ``2026-11-25T18:00:00.123456``: application credentials' ``expires_at`` and
    users' ``password_expires_at`` keep the microseconds that were sent.
    """
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_iso(value: Any, field: str) -> float | None:
    """Parse an ISO 8601 time (naive means UTC); 400 on garbage."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"Invalid input for field '{field}': must be a date-time string.")
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(f"Invalid input for field '{field}': {value!r} is not a "
                         "'date-time'") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def links(base: str, path: str) -> dict[str, str]:
    """Return an entity's ``links`` member."""
    return {"self": f"{base}/{path}"}


def collection(key: str, items: list[dict[str, Any]], self_url: str, *,
               truncated: bool = False, next_url: str | None = None) -> dict[str, Any]:
    """Wrap a list the way Keystone does (``truncated`` only when ``list_limit`` cut it)."""
    out: dict[str, Any] = {key: items,
                           "links": {"self": self_url, "previous": None, "next": next_url}}
    if truncated:
        out["truncated"] = True
    return out


def _public(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _HIDDEN}


def domain(row: Row, base: str) -> dict[str, Any]:
    """Render a domain."""
    return {"tags": [], "options": {}, **_public(row), "links": links(base, f"domains/{row['id']}")}


def project(row: Row, base: str) -> dict[str, Any]:
    """Render a project (a top-level project's parent is its domain, as in Keystone)."""
    out = {"tags": [], "options": {}, **_public(row), "is_domain": False,
           "links": links(base, f"projects/{row['id']}")}
    out["parent_id"] = row.get("parent_id") or row["domain_id"]
    return out


def user(row: Row, base: str) -> dict[str, Any]:
    """Render a user (never its password hash)."""
    out = {"options": {}, **_public(row), "links": links(base, f"users/{row['id']}")}
    out["password_expires_at"] = iso_micro(row.get("password_expires_at"))
    if out.get("default_project_id") is None:
        out.pop("default_project_id", None)
    return out


def group(row: Row, base: str) -> dict[str, Any]:
    """Render a group."""
    return {**_public(row), "links": links(base, f"groups/{row['id']}")}


def role(row: Row, base: str) -> dict[str, Any]:
    """Render a role (``domain_id`` null for global roles)."""
    return {"options": {}, **_public(row), "domain_id": row.get("domain_id") or None,
            "links": links(base, f"roles/{row['id']}")}


def region(row: Row, base: str) -> dict[str, Any]:
    """Render a region."""
    return {**_public(row), "links": links(base, f"regions/{row['id']}")}


def service(row: Row, base: str) -> dict[str, Any]:
    """Render a service."""
    return {"name": "", **_public(row), "links": links(base, f"services/{row['id']}")}


def endpoint(row: Row, base: str) -> dict[str, Any]:
    """Render an endpoint (``region`` duplicates ``region_id`` like Keystone)."""
    return {**_public(row), "region": row.get("region_id"),
            "links": links(base, f"endpoints/{row['id']}")}


def credential(row: Row, base: str) -> dict[str, Any]:
    """Render a credential."""
    return {**_public(row), "links": links(base, f"credentials/{row['id']}")}


def ec2(row: Row, base: str, blob: Mapping[str, Any]) -> dict[str, Any]:
    """Render an EC2 credential as ``/users/{id}/credentials/OS-EC2`` does."""
    access = blob.get("access")
    return {"user_id": row["user_id"], "tenant_id": row.get("project_id"), "access": access,
            "secret": blob.get("secret"), "trust_id": blob.get("trust_id"),
            "links": links(base, f"users/{row['user_id']}/credentials/OS-EC2/{access}")}


def app_cred(row: Row, base: str, role_refs: list[tuple[str, str]]) -> dict[str, Any]:
    """Render an application credential (the secret only appears at creation)."""
    return {"id": row["id"], "name": row["name"], "description": row.get("description") or None,
            "user_id": row["user_id"], "project_id": row["project_id"],
            "expires_at": iso_micro(row.get("expires_at")),
            "unrestricted": bool(row["unrestricted"]),
            "access_rules": [], "system": None,
            "roles": [{"id": rid, "name": name, "domain_id": None} for rid, name in role_refs],
            "links": links(base, f"users/{row['user_id']}/application_credentials/{row['id']}")}


def token(p: TokenPayload, catalog: list[dict[str, Any]] | None,
          app_cred_name: str | None = None,
          password_expires_at: float | None = None) -> dict[str, Any]:
    """Render the ``token`` document of POST/GET /v3/auth/tokens."""
    body: dict[str, Any] = {
        "methods": list(p.methods),
        "user": {"domain": {"id": p.user_domain_id, "name": p.user_domain_name},
                 "id": p.user_id, "name": p.user_name,
                 "password_expires_at": iso_micro(password_expires_at)},
        "audit_ids": list(p.audit_ids),
        "expires_at": iso(p.expires_at),
        "issued_at": iso(p.issued_at),
    }
    if p.trust is not None:
        body["OS-TRUST:trust"] = {"id": p.trust.id, "impersonation": p.trust.impersonation,
                                  "trustee_user": {"id": p.trust.trustee_id},
                                  "trustor_user": {"id": p.trust.trustor_id}}
    if p.project is not None:
        body["project"] = {"domain": {"id": p.project.domain_id, "name": p.project.domain_name},
                           "id": p.project.id, "name": p.project.name}
        body["is_domain"] = False
    elif p.domain is not None:
        body["domain"] = {"id": p.domain[0], "name": p.domain[1]}
    elif p.system is not None:
        body["system"] = {p.system: True}
    if p.project is not None or p.domain is not None or p.system is not None:
        body["roles"] = [{"id": rid, "name": name} for rid, name in p.roles]
        if catalog is not None:
            body["catalog"] = catalog
    if p.app_cred_id is not None:
        body["application_credential"] = {"id": p.app_cred_id, "name": app_cred_name or "",
                                          "restricted": True}
    return {"token": body}


# --- request bodies ---------------------------------------------------------

def member(body: Any, key: str) -> dict[str, Any]:
    """Return ``body[key]`` as an object (400 otherwise)."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequestError(f"Invalid input for field '{key}': '{key}' is a required property "
                         "and must be an object.")
    value: dict[str, Any] = body[key]
    return value


def text(obj: Mapping[str, Any], key: str, *, required: bool = False, max_len: int = 255,
         allow_empty: bool = False) -> str | None:
    """Return a string field (400 when the type, length or presence is wrong)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRequestError(f"Invalid input for field '{key}': '{key}' is a required "
                             "property.")
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"Invalid input for field '{key}': {value!r} is not of type "
                              "'string'.")
    if len(value) > max_len or (not value.strip() and not allow_empty):
        raise BadRequestError(f"Invalid input for field '{key}': length must be 1 to "
                              f"{max_len}.")
    return value


def flag(obj: Mapping[str, Any], key: str) -> bool | None:
    """Return a boolean field (400 when not a boolean)."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise BadRequestError(f"Invalid input for field '{key}': {value!r} is not of type "
                         "'boolean'.")
    return value


def query_true(value: str | None) -> bool:
    """Interpret a query flag like Keystone (present and not 0/false)."""
    return value is not None and value.lower() not in ("0", "false", "no")
