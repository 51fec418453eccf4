"""Keystone's ``[security_compliance]`` rules: lockout, expiry, history, strength, age.

State lives in two tables (``identity_user_security``: failed-login count and
time, when the current password was set and when it expires;
``identity_password_history``: earlier hashes). Every rule is off unless its
option is set, as in Keystone, and the answers are Keystone's: 401 "The account
is locked for user: X." / "The password is expired and needs to be changed for
user: X.", 400 "The password does not match the requirements: ...", "The new
password cannot be identical to a previous password. ..." and the minimum-age
message. A user's ``options`` may carry ``ignore_lockout_failure_attempts``,
``ignore_password_expiry`` and ``ignore_change_password_upon_first_use``.

The lockout counter is kept in the database, so it holds across every ``nubis
api`` process; the in-memory :class:`~nubis.api.identity.passwords.FailureLimiter`
(always on) only protects the CPU from floods.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.config import SecurityComplianceConfig
from nubis.api.identity.passwords import PasswordHasher
from nubis.api.shared.errors import BadRequestError, UnauthorizedError
from sqlalchemy.engine import Connection, Engine

DAY = 86400.0
#: Earlier hashes kept per user beyond what the history rule needs (bounded table).
MAX_HISTORY = 24


def _option(user: Mapping[str, Any], name: str) -> bool:
    options = user.get("options")
    return isinstance(options, dict) and options.get(name) is True


class PasswordRules:
    """Apply the security-compliance options to one identity database."""

    def __init__(self, config: SecurityComplianceConfig, hasher: PasswordHasher,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.hasher = hasher
        self.clock = clock
        self._regex = re.compile(config.password_regex) if config.password_regex else None

    # --- setting a password --------------------------------------------------
    def check_strength(self, password: str) -> None:
        """Raise 400 unless ``password`` matches ``password_regex``."""
        if self._regex is not None and not self._regex.match(password):
            detail = self.config.password_regex_description or self.config.password_regex
            raise BadRequestError("The password does not match the requirements: "
                                  f"{detail}.")

    def check_history(self, conn: Connection, user_id: str, password: str) -> None:
        """Raise 400 if ``password`` is one of the user's last N passwords."""
        count = self.config.unique_last_password_count
        if count <= 0:
            return
        h = s.password_history
        hashes = conn.execute(sa.select(h.c.password_hash).where(h.c.user_id == user_id)
                              .order_by(h.c.created_at.desc(), h.c.id.desc())
                              .limit(count)).scalars().all()
        if any(self.hasher.verify(encoded, password) for encoded in hashes):
            raise BadRequestError(
                "The new password cannot be identical to a previous password. The total "
                f"number which includes the new password must be unique is {count}.")

    def check_minimum_age(self, conn: Connection, user_id: str) -> None:
        """Raise 400 if the user changed its password less than the minimum age ago."""
        days = self.config.minimum_password_age
        sec = self._security(conn, user_id)
        created = sec.get("password_created_at")
        if days <= 0 or created is None:
            return
        expires = sec.get("password_expires_at")
        if expires is not None and expires <= self.clock():
            return  # an expired password may always be replaced (as in Keystone)
        left = created + days * DAY - self.clock()
        if left > 0:
            raise BadRequestError(
                "You cannot change your password at this time due to the minimum password "
                f"age. Once you change your password, it must be used for {days} day(s) "
                f"before it can be changed. Please try again in {math.ceil(left / DAY)} "
                "day(s) or contact your administrator to reset your password.")

    def record(self, conn: Connection, user: Mapping[str, Any], encoded: str, *,
               by_admin: bool) -> None:
        """Remember a new password hash: history, set time, expiry; reset the lockout."""
        now = self.clock()
        user_id = str(user["id"])
        h = s.password_history
        conn.execute(h.insert().values(user_id=user_id, password_hash=encoded, created_at=now))
        stale = conn.execute(sa.select(h.c.id).where(h.c.user_id == user_id)
                             .order_by(h.c.created_at.desc(), h.c.id.desc())
                             .offset(MAX_HISTORY)).scalars().all()
        if stale:
            conn.execute(h.delete().where(h.c.id.in_(stale)))
        expires: float | None = None
        if self.config.password_expires_days > 0:
            expires = now + self.config.password_expires_days * DAY
        if by_admin and self.config.change_password_upon_first_use and not _option(
                user, "ignore_change_password_upon_first_use"):
            expires = now
        self._save(conn, user_id, failed_auth_count=0, failed_auth_at=None,
                   password_created_at=now, password_expires_at=expires)

    # --- authenticating ------------------------------------------------------
    def check_locked(self, engine: Engine, user: Mapping[str, Any]) -> None:
        """Raise Keystone's AccountLocked 401 while the user is locked out."""
        limit = self.config.lockout_failure_attempts
        if limit <= 0 or _option(user, "ignore_lockout_failure_attempts"):
            return
        with engine.connect() as conn:
            sec = self._security(conn, str(user["id"]))
        if int(sec.get("failed_auth_count") or 0) < limit:
            return
        duration = self.config.lockout_duration
        if duration and (sec.get("failed_auth_at") or 0) + duration <= self.clock():
            with engine.begin() as conn:
                self._save(conn, str(user["id"]), failed_auth_count=0, failed_auth_at=None)
            return
        raise UnauthorizedError(f"The account is locked for user: {user['id']}.")

    def check_expired(self, engine: Engine, user: Mapping[str, Any]) -> None:
        """Raise Keystone's PasswordExpired 401 once the password's lifetime is over."""
        if _option(user, "ignore_password_expiry"):
            return
        with engine.connect() as conn:
            expires = self._security(conn, str(user["id"])).get("password_expires_at")
        if expires is not None and expires <= self.clock():
            raise UnauthorizedError("The password is expired and needs to be changed for "
                                    f"user: {user['id']}.")

    def failed(self, engine: Engine, user_id: str) -> None:
        """Count one failed password authentication (when lockout is on)."""
        if self.config.lockout_failure_attempts <= 0:
            return
        with engine.begin() as conn:
            sec = self._security(conn, user_id)
            self._save(conn, user_id, failed_auth_count=int(sec.get("failed_auth_count")
                                                            or 0) + 1,
                       failed_auth_at=self.clock())

    def succeeded(self, engine: Engine, user_id: str) -> None:
        """Reset the failure count after a successful authentication."""
        if self.config.lockout_failure_attempts <= 0:
            return
        with engine.begin() as conn:
            if self._security(conn, user_id).get("failed_auth_count"):
                self._save(conn, user_id, failed_auth_count=0, failed_auth_at=None)

    def unlock(self, conn: Connection, user_id: str) -> None:
        """Clear the lockout (an administrator re-enabled the user)."""
        if self._security(conn, user_id):
            self._save(conn, user_id, failed_auth_count=0, failed_auth_at=None)

    # --- reading -------------------------------------------------------------
    def expiry_of(self, conn: Connection, user_ids: list[str]) -> dict[str, float | None]:
        """Return ``user id -> password_expires_at`` for the users that have a row."""
        if not user_ids:
            return {}
        t = s.user_security
        rows = conn.execute(sa.select(t.c.user_id, t.c.password_expires_at)
                            .where(t.c.user_id.in_(user_ids))).all()
        return {r[0]: r[1] for r in rows}

    @staticmethod
    def forget(conn: Connection, user_ids: list[str]) -> None:
        """Drop the compliance state of deleted users."""
        if user_ids:
            conn.execute(s.user_security.delete().where(s.user_security.c.user_id.in_(user_ids)))
            conn.execute(s.password_history.delete().where(
                s.password_history.c.user_id.in_(user_ids)))

    @staticmethod
    def _security(conn: Connection, user_id: str) -> dict[str, Any]:
        t = s.user_security
        row = conn.execute(sa.select(t).where(t.c.user_id == user_id)).mappings().first()
        return dict(row) if row else {}

    def _save(self, conn: Connection, user_id: str, **values: Any) -> None:
        t = s.user_security
        done = conn.execute(t.update().where(t.c.user_id == user_id).values(**values)).rowcount
        if not done:
            conn.execute(t.insert().values(user_id=user_id, **{
                "failed_auth_count": 0, **values}))
