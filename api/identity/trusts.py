"""OS-TRUST: a trustor delegates some of its roles on a project to a trustee.

Keystone's rules: the trustor must hold every delegated role on the project
(effective: direct, group, inherited, implied); a trust may expire and may be
limited to ``remaining_uses`` tokens (each trust-scoped token consumes one, in
one conditional UPDATE so concurrent issuers cannot overspend it); an expired or
used-up trust is "not found". Redelegation is off unless
``[identity] trust_allow_redelegation``; a redelegated trust never outlives,
outgrows or out-delegates its parent. Deleting a trust deletes the trusts
redelegated from it and revokes every token issued through them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.effective import EffectiveStore
from nubis.api.identity.store import Row, _row, new_id
from nubis.api.shared.errors import BadRequestError, ForbiddenError, NotFoundError


def trust_not_found(ident: str) -> NotFoundError:
    """Return Keystone's TrustNotFound."""
    return NotFoundError(f"Could not find trust: {ident}.")


class TrustStore(EffectiveStore):
    """Trusts and the roles they delegate."""

    def create_trust(self, values: Row, role_ids: list[str],
                     redelegated: Row | None = None) -> Row:
        """Create a trust after checking the trustor's roles and the redelegation rules."""
        self.get_user(values["trustee_user_id"])
        project_id = values.get("project_id")
        if project_id:
            self.get_project(project_id)
            held = set(self.effective_role_ids(
                (redelegated or values)["trustor_user_id"], "project", project_id))
            for rid in role_ids:
                if rid not in held:
                    raise NotFoundError(f"Could not find role: {rid}.")
        values = self._redelegation(values, role_ids, redelegated)
        ident = new_id()
        row = {"id": ident, "trustor_user_id": values["trustor_user_id"],
               "trustee_user_id": values["trustee_user_id"], "project_id": project_id or None,
               "impersonation": bool(values["impersonation"]),
               "expires_at": values.get("expires_at"),
               "remaining_uses": values.get("remaining_uses"),
               "redelegation_count": values["redelegation_count"],
               "redelegated_trust_id": redelegated["id"] if redelegated else None,
               "extra": "{}"}
        with self.engine.begin() as conn:
            conn.execute(s.trusts.insert().values(**row))
            if role_ids:
                conn.execute(s.trust_roles.insert(),
                             [{"trust_id": ident, "role_id": rid} for rid in role_ids])
        return self.get_trust(ident)

    def _redelegation(self, values: Row, role_ids: list[str], parent: Row | None) -> Row:
        cfg = self.config
        wanted = bool(values.get("allow_redelegation"))
        count = values.get("redelegation_count")
        if wanted and not cfg.trust_allow_redelegation:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "Redelegation is disabled.")
        if parent is not None:
            left = int(parent["redelegation_count"]) - 1
            if left < 0 or not cfg.trust_allow_redelegation:
                raise ForbiddenError("You are not authorized to perform the requested "
                                     "action: Trust redelegation is not allowed.")
            if values.get("remaining_uses") is not None:
                raise ForbiddenError('Field "remaining_uses" must not be set in order to '
                                     "redelegate a trust.")
            if not set(role_ids) <= set(parent["role_ids"]):
                raise ForbiddenError("Some of requested roles are not in redelegated trust.")
            expires = values.get("expires_at")
            if parent["expires_at"] is not None and (expires is None
                                                     or expires > parent["expires_at"]):
                if expires is not None:
                    raise ForbiddenError("Requested expiration time is more than redelegated "
                                         "trust can provide.")
                values["expires_at"] = parent["expires_at"]
            return {**values, "redelegation_count": left if wanted else 0}
        if not wanted:
            return {**values, "redelegation_count": 0}
        if values.get("remaining_uses") is not None:
            raise BadRequestError("remaining_uses must not be set if redelegation is allowed")
        limit = cfg.trust_max_redelegation_count
        if count is not None and count > limit:
            raise ForbiddenError(f"Requested redelegation depth of {count} is greater than "
                                 f"allowed {limit}.")
        return {**values, "redelegation_count": limit if count is None else count}

    def get_trust(self, ident: str, *, live: bool = True) -> Row:
        """Return a trust with its ``role_ids``; an expired or used-up one is 404 when ``live``."""
        t = s.trusts
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == ident)).mappings().first()
            if row is None:
                raise trust_not_found(ident)
            out = _row(row)
            tr = s.trust_roles
            out["role_ids"] = sorted(conn.execute(sa.select(tr.c.role_id)
                                                  .where(tr.c.trust_id == ident)).scalars())
        if live and not self._alive(out):
            raise trust_not_found(ident)
        return out

    def _alive(self, row: Row) -> bool:
        expires = row.get("expires_at")
        uses = row.get("remaining_uses")
        return (expires is None or expires > self.clock()) and (uses is None or uses > 0)

    def list_trusts(self, trustor: str | None = None, trustee: str | None = None) -> list[Row]:
        """List live trusts, optionally of one trustor or trustee."""
        t = s.trusts
        stmt = sa.select(t).order_by(t.c.id)
        if trustor is not None:
            stmt = stmt.where(t.c.trustor_user_id == trustor)
        if trustee is not None:
            stmt = stmt.where(t.c.trustee_user_id == trustee)
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(stmt).mappings()]
        return [r for r in rows if self._alive(r)]

    def consume_trust(self, ident: str) -> None:
        """Spend one use of a limited trust (403 TrustUseLimitReached if none is left)."""
        t = s.trusts
        with self.engine.begin() as conn:
            limited = conn.execute(sa.select(t.c.remaining_uses)
                                   .where(t.c.id == ident)).scalar_one_or_none()
            if limited is None:
                return
            done = conn.execute(t.update().where((t.c.id == ident) & (t.c.remaining_uses > 0))
                                .values(remaining_uses=t.c.remaining_uses - 1)).rowcount
        if not done:
            raise ForbiddenError(f"No remaining uses for trust: {ident}.")

    def delete_trust(self, ident: str) -> None:
        """Delete a trust and those redelegated from it; revoke their tokens."""
        self.get_trust(ident, live=False)
        todo, doomed = [ident], []
        t = s.trusts
        with self.engine.begin() as conn:
            while todo:
                current = todo.pop()
                doomed.append(current)
                todo.extend(conn.execute(sa.select(t.c.id).where(
                    t.c.redelegated_trust_id == current)).scalars())
            conn.execute(s.trust_roles.delete().where(s.trust_roles.c.trust_id.in_(doomed)))
            conn.execute(t.delete().where(t.c.id.in_(doomed)))
            for trust_id in doomed:
                self.revoke(conn, trust_id=trust_id)

    def trust_roles_now(self, trust: Row) -> list[str]:
        """Return the roles a trust-scoped token gets now (403 if the trustor lost one).

        Keystone expands the delegated roles with their implied roles and requires
        the trustor to still hold every one of them on the project.
        """
        delegated = self.expand_roles(trust["role_ids"])
        if not trust.get("project_id"):
            return []
        held = set(self.effective_role_ids(self._original_trustor(trust), "project",
                                           trust["project_id"]))
        if any(rid not in held for rid in delegated):
            raise ForbiddenError("Trustee has no delegated roles.")
        return delegated

    def _original_trustor(self, trust: Row) -> str:
        seen = {trust["id"]}
        while trust.get("redelegated_trust_id") and trust["redelegated_trust_id"] not in seen:
            seen.add(trust["redelegated_trust_id"])
            trust = self.get_trust(trust["redelegated_trust_id"], live=False)
        return str(trust["trustor_user_id"])


def trust_view(row: Row, base: str, roles: list[dict[str, Any]] | None,
               iso: Any) -> dict[str, Any]:
    """Render a trust (``roles`` omitted in listings, as Keystone does)."""
    out: dict[str, Any] = {
        "id": row["id"], "trustor_user_id": row["trustor_user_id"],
        "trustee_user_id": row["trustee_user_id"], "project_id": row["project_id"],
        "impersonation": bool(row["impersonation"]),
        "expires_at": iso(row.get("expires_at")),
        "remaining_uses": row.get("remaining_uses"),
        "allow_redelegation": int(row.get("redelegation_count") or 0) > 0,
        "redelegation_count": int(row.get("redelegation_count") or 0),
        "redelegated_trust_id": row.get("redelegated_trust_id"),
        "links": {"self": f"{base}/OS-TRUST/trusts/{row['id']}"}}
    if roles is not None:
        out["roles"] = roles
        out["roles_links"] = {"self": f"{base}/OS-TRUST/trusts/{row['id']}/roles",
                              "next": None, "previous": None}
    return out
