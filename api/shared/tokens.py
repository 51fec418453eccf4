"""Fernet-style tokens: the key repository and the token payload format.

Key repository (like ``keystone-manage fernet_setup``/``fernet_rotate``): a
directory of files named by integer index, each one urlsafe-base64 Fernet key.
Key ``0`` is the *staged* key (the next primary, already trusted for
decryption so every verifier knows it before it signs anything), the highest
index is the *primary* (encrypts new tokens), everything in between is a
*secondary* (decrypts tokens issued before the last rotation). Rotation renames
the staged key to ``max + 1`` (making it primary), writes a new staged key and
drops the oldest secondaries beyond ``max_active_keys``.

Payload: a compact JSON array carrying every id and name a service needs to
rebuild the request context without calling identity, see
:class:`TokenPayload`. The Fernet envelope gives AES-128-CBC + HMAC-SHA256.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from nubis.common.errors import NubisError
from nubis.common.fileutil import atomic_write

#: Version 2 adds the trust (version 1 payloads still decode: tokens survive an upgrade).
PAYLOAD_VERSION = 2


class TokenError(NubisError):
    """A token cannot be decrypted, is malformed or has expired."""


class KeyRepositoryError(NubisError):
    """The key repository is missing, empty or unreadable."""


class KeyRepository:
    """A directory of Fernet keys with staged/primary/secondary roles."""

    def __init__(self, path: str | Path, max_active_keys: int = 3) -> None:
        self.path = Path(path)
        self.max_active_keys = max(2, max_active_keys)

    def setup(self) -> None:
        """Create the repository with a staged and a primary key if it is empty."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            if not self._indexes():
                self._write(0, Fernet.generate_key())
                self._rotate_locked()

    def rotate(self) -> int:
        """Promote the staged key to primary and stage a new one; return the primary index."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            return self._rotate_locked()

    def load(self) -> list[bytes]:
        """Return the keys in decryption order: primary, newest secondary ..., staged."""
        indexes = self._indexes()
        if not indexes:
            raise KeyRepositoryError(f"no Fernet keys in {self.path}")
        ordered = sorted((i for i in indexes if i != 0), reverse=True)
        if 0 in indexes:
            ordered.append(0)
        return [(self.path / str(i)).read_bytes().strip() for i in ordered]

    def fingerprint(self) -> tuple[int, ...]:
        """Return the key indexes; a change means the keys must be reloaded."""
        return tuple(sorted(self._indexes()))

    def _rotate_locked(self) -> int:
        indexes = self._indexes()
        if 0 not in indexes:
            self._write(0, Fernet.generate_key())
            indexes.add(0)
        new_primary = max(indexes) + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        self._write(0, Fernet.generate_key())
        survivors = sorted(i for i in self._indexes() if i != 0)
        for old in survivors[: max(0, len(survivors) - (self.max_active_keys - 1))]:
            (self.path / str(old)).unlink(missing_ok=True)
        return new_primary

    def _indexes(self) -> set[int]:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return set()
        return {int(n) for n in names if n.isdigit()}

    def _write(self, index: int, key: bytes) -> None:
        atomic_write(self.path / str(index), [key], mode=0o600)

    def _locked(self) -> _FileLock:
        return _FileLock(self.path / ".lock")


class _FileLock:
    """An exclusive ``flock`` held for a ``with`` block (cross-process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """A project with its domain, as a token carries it."""

    id: str
    name: str
    domain_id: str
    domain_name: str


@dataclass(frozen=True, slots=True)
class TrustRef:
    """The OS-TRUST trust a trust-scoped token was issued through."""

    id: str
    trustor_id: str
    trustee_id: str
    impersonation: bool


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """Everything a token asserts.

    ``scope`` is exactly one of ``project``, ``domain`` (id, name) or ``system``
    (``"all"``), or none of them for an unscoped token. ``roles`` are (id, name)
    pairs with group-derived, inherited and implied roles already expanded at
    issue time, so verification never looks anything up. A trust-scoped token
    carries its ``trust`` (its ``user_*`` fields name the trustor when the trust
    allows impersonation, the trustee otherwise). Times are epoch seconds.
    """

    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    methods: tuple[str, ...]
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]
    roles: tuple[tuple[str, str], ...] = ()
    project: ProjectRef | None = None
    domain: tuple[str, str] | None = None
    system: str | None = None
    app_cred_id: str | None = None
    trust: TrustRef | None = None

    def to_wire(self) -> bytes:
        """Serialise to the compact JSON array that goes inside the Fernet envelope."""
        scope: list[Any] | None = None
        if self.project is not None:
            p = self.project
            scope = ["p", p.id, p.name, p.domain_id, p.domain_name]
        elif self.domain is not None:
            scope = ["d", self.domain[0], self.domain[1]]
        elif self.system is not None:
            scope = ["s", self.system]
        doc = [PAYLOAD_VERSION, self.user_id, self.user_name, self.user_domain_id,
               self.user_domain_name, list(self.methods), scope,
               [list(r) for r in self.roles], round(self.issued_at, 6),
               round(self.expires_at, 6), list(self.audit_ids), self.app_cred_id]
        if self.trust is not None:
            t = self.trust
            doc.append([t.id, t.trustor_id, t.trustee_id, t.impersonation])
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, raw: bytes) -> TokenPayload:
        """Parse :meth:`to_wire` output (raises TokenError on anything else)."""
        try:
            doc = json.loads(raw)
            version = doc[0]
            trust = None
            if version == PAYLOAD_VERSION and len(doc) == 13:
                t = doc.pop()
                trust = TrustRef(str(t[0]), str(t[1]), str(t[2]), bool(t[3]))
            elif version not in (1, PAYLOAD_VERSION):
                raise TokenError("unsupported token payload version")
            (_v, uid, uname, udid, udname, methods, scope, roles, iat, exp,
             audit, acid) = doc
            project = domain = system = None
            if scope is not None:
                if scope[0] == "p":
                    project = ProjectRef(scope[1], scope[2], scope[3], scope[4])
                elif scope[0] == "d":
                    domain = (str(scope[1]), str(scope[2]))
                elif scope[0] == "s":
                    system = str(scope[1])
            return cls(uid, uname, udid, udname, tuple(methods), float(iat), float(exp),
                       tuple(audit), tuple((str(r[0]), str(r[1])) for r in roles),
                       project, domain, system, acid, trust)
        except (ValueError, TypeError, IndexError) as exc:
            raise TokenError("malformed token payload") from exc


def new_audit_id() -> str:
    """Return a fresh audit id (22 urlsafe characters, like Keystone's)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


class TokenCodec:
    """Encrypt payloads with the primary key; decrypt with any trusted key."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyRepositoryError("no keys")
        self._fernets = [Fernet(k) for k in keys]
        self._multi = MultiFernet(self._fernets)

    def encode(self, payload: TokenPayload) -> str:
        """Return the token string for ``payload``."""
        token: bytes = self._fernets[0].encrypt(payload.to_wire())
        # Keystone strips the base64 padding so tokens are URL-safe as-is.
        return token.rstrip(b"=").decode()

    def decode(self, token: str) -> TokenPayload:
        """Return the payload of ``token``; TokenError if no key opens it."""
        if not token or len(token) > 4096:
            raise TokenError("invalid token")
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = self._multi.decrypt(padded.encode())
        except (InvalidToken, ValueError, TypeError) as exc:
            raise TokenError("invalid token") from exc
        return TokenPayload.from_wire(raw)
