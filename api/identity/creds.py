"""Application credentials and credentials (EC2 access/secret pairs for S3)."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from nubis.api.identity import schema as s
from nubis.api.identity.catalog import CatalogStore
from nubis.api.identity.limits import LimitStore
from nubis.api.identity.store import Row, _split_extra, duplicate, new_id
from nubis.api.identity.trusts import TrustStore
from nubis.api.shared.errors import BadRequestError, not_found


def ec2_credential_id(access: str) -> str:
    """Return Keystone's credential id for an EC2 access key (sha256 hex)."""
    return hashlib.sha256(access.encode()).hexdigest()


def new_secret() -> str:
    """Return a fresh application-credential secret (urlsafe, 64 characters)."""
    return secrets.token_urlsafe(48)


class CredentialStore(CatalogStore):
    """Application credentials and the ``/v3/credentials`` collection."""

    # --- application credentials -------------------------------------------
    def create_app_cred(self, user_id: str, project_id: str, name: str, secret: str,
                        role_ids: list[str], *, description: str = "",
                        expires_at: float | None = None, unrestricted: bool = False) -> Row:
        """Create an application credential; the secret is stored hashed."""
        ident = new_id()
        row: Row = {"id": ident, "name": name, "user_id": user_id, "project_id": project_id,
               "secret_hash": self.hasher.hash(secret), "description": description,
               "expires_at": expires_at, "unrestricted": unrestricted,
               "role_ids": json.dumps(role_ids)}
        self._insert(s.app_creds, row, duplicate("application credential", name))
        return self.get_app_cred(ident)

    def get_app_cred(self, ident: str) -> Row:
        """Return an application credential by id."""
        row = self._get(s.app_creds, ident, "application credential")
        row["role_ids"] = json.loads(row["role_ids"])
        return row

    def find_app_cred(self, user_id: str, name: str) -> Row | None:
        """Return a user's application credential by name, or None."""
        row = self._find(s.app_creds, user_id=user_id, name=name)
        if row is not None:
            row["role_ids"] = json.loads(row["role_ids"])
        return row

    def list_app_creds(self, user_id: str, name: str | None = None) -> list[Row]:
        """List a user's application credentials."""
        rows = self._list(s.app_creds, {"user_id": user_id, "name": name})
        for row in rows:
            row["role_ids"] = json.loads(row["role_ids"])
        return rows

    def delete_app_cred(self, ident: str) -> None:
        """Delete an application credential and revoke the tokens made with it."""
        self.get_app_cred(ident)
        with self.engine.begin() as conn:
            conn.execute(s.app_creds.delete().where(s.app_creds.c.id == ident))
            self.revoke(conn, app_cred_id=ident)

    # --- credentials -------------------------------------------------------
    def create_credential(self, values: Row) -> Row:
        """Create a credential; an ``ec2`` blob must carry ``access`` (its id derives from it)."""
        self.get_user(values["user_id"])
        if values.get("project_id"):
            self.get_project(values["project_id"])
        ident = values.get("id") or new_id()
        if values["type"] == "ec2":
            blob = _parse_blob(values["blob"])
            access = blob.get("access")
            if not isinstance(access, str) or not access:
                raise BadRequestError("Credential blob of type ec2 needs an 'access' key.")
            if not values.get("project_id"):
                raise BadRequestError("Credential of type ec2 needs a project_id.")
            ident = ec2_credential_id(access)
        values = {**values, "id": ident}
        self._insert(s.credentials, _split_extra(s.credentials, values),
                     "Conflict occurred attempting to store credential - Duplicate ID, "
                     f"{ident}.")
        return self.get_credential(ident)

    def get_credential(self, ident: str) -> Row:
        """Return a credential by id."""
        return self._get(s.credentials, ident, "credential")

    def list_credentials(self, **filters: Any) -> list[Row]:
        """List credentials matching column filters (user_id, type)."""
        return self._list(s.credentials, filters)

    def update_credential(self, ident: str, values: Row) -> Row:
        """Update a credential."""
        if "blob" in values:
            _parse_blob(values["blob"])
        return self._update(s.credentials, ident, "credential", values)

    def delete_credential(self, ident: str) -> None:
        """Delete a credential."""
        self.get_credential(ident)
        with self.engine.begin() as conn:
            conn.execute(s.credentials.delete().where(s.credentials.c.id == ident))

    def create_ec2(self, user_id: str, project_id: str) -> Row:
        """Create an EC2 access/secret pair for the user on the project."""
        access, secret = uuid_hex(), uuid_hex()
        blob = json.dumps({"access": access, "secret": secret, "trust_id": None})
        return self.create_credential({"user_id": user_id, "project_id": project_id,
                                       "type": "ec2", "blob": blob})

    def get_ec2(self, user_id: str, access: str) -> Row:
        """Return a user's EC2 credential by access key (404 if not theirs)."""
        row = self._find(s.credentials, id=ec2_credential_id(access), type="ec2")
        if row is None or row["user_id"] != user_id:
            raise not_found("credential", ec2_credential_id(access))
        return row

    def find_ec2(self, access: str) -> Row | None:
        """Return the EC2 credential with ``access`` key (for S3 signature checks)."""
        return self._find(s.credentials, id=ec2_credential_id(access), type="ec2")


def uuid_hex() -> str:
    """Return 32 random hex characters."""
    return secrets.token_hex(16)


def _parse_blob(blob: Any) -> dict[str, Any]:
    if not isinstance(blob, str):
        raise BadRequestError("Invalid input for field 'blob': must be a string.")
    try:
        doc = json.loads(blob)
    except ValueError:
        raise BadRequestError("Invalid blob in credential.") from None
    if not isinstance(doc, dict):
        raise BadRequestError("Invalid blob in credential.")
    return doc


class IdentityStore(CredentialStore, TrustStore, LimitStore):
    """Every identity entity, in one facade."""
