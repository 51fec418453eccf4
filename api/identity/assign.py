"""Roles, implied roles, grants and effective-role resolution."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.store import ResourceStore, Row, _row, _split_extra, duplicate, new_id
from nubis.api.shared.errors import BadRequestError, ConflictError, not_found

ActorKind = Literal["user", "group"]
TargetKind = Literal["project", "domain", "system"]

SYSTEM_TARGET = "system"


def assignment_type(actor: ActorKind, target: TargetKind) -> str:
    """Return the stored assignment type, e.g. ``UserProject``."""
    return actor.capitalize() + target.capitalize()


@dataclass(frozen=True, slots=True)
class Assignment:
    """One (possibly derived) role assignment."""

    actor: ActorKind
    actor_id: str
    target: TargetKind
    target_id: str
    role_id: str
    via_group: str | None = None
    via_role: str | None = None


class AssignmentStore(ResourceStore):
    """Roles, implied roles, grants and effective roles."""

    # --- roles -------------------------------------------------------------
    def create_role(self, values: Row) -> Row:
        """Create a role (global when ``domain_id`` is empty)."""
        values = {"description": "", **values, "id": values.get("id") or new_id(),
                  "domain_id": values.get("domain_id") or ""}
        if values["domain_id"]:
            self.get_domain(values["domain_id"])
        self._insert(s.roles, _split_extra(s.roles, values), duplicate("role", values["name"]))
        return self.get_role(values["id"])

    def get_role(self, ident: str) -> Row:
        """Return a role by id."""
        return self._get(s.roles, ident, "role")

    def find_role(self, name: str, domain_id: str = "") -> Row | None:
        """Return a role by name, or None."""
        return self._find(s.roles, name=name, domain_id=domain_id)

    def list_roles(self, **filters: Any) -> list[Row]:
        """List roles matching column filters."""
        return self._list(s.roles, filters)

    def update_role(self, ident: str, values: Row) -> Row:
        """Update a role."""
        return self._update(s.roles, ident, "role", values,
                            duplicate("role", str(values.get("name"))))

    def delete_role(self, ident: str) -> None:
        """Delete a role with its grants and inference rules; revoke tokens carrying it."""
        self.get_role(ident)
        ir = s.implied_roles
        with self.engine.begin() as conn:
            conn.execute(s.assignments.delete().where(s.assignments.c.role_id == ident))
            conn.execute(ir.delete().where((ir.c.prior_role_id == ident)
                                           | (ir.c.implied_role_id == ident)))
            conn.execute(s.roles.delete().where(s.roles.c.id == ident))
            self.revoke(conn, role_id=ident)

    # --- implied roles -----------------------------------------------------
    def add_implied_role(self, prior: str, implied: str) -> None:
        """Make ``prior`` imply ``implied`` (idempotent)."""
        self.get_role(prior)
        self.get_role(implied)
        if prior == implied or prior in self.expand_roles([implied]):
            raise BadRequestError("Implied role would create a cycle.")
        if self.implies(prior, implied):
            return
        self._insert(s.implied_roles, {"prior_role_id": prior, "implied_role_id": implied},
                     "Conflict occurred attempting to store implied role.")

    def implies(self, prior: str, implied: str) -> bool:
        """Return whether the direct rule ``prior -> implied`` exists."""
        return self._find(s.implied_roles, prior_role_id=prior,
                          implied_role_id=implied) is not None

    def delete_implied_role(self, prior: str, implied: str) -> None:
        """Remove the rule ``prior -> implied`` (404 if absent)."""
        ir = s.implied_roles
        with self.engine.begin() as conn:
            gone = conn.execute(ir.delete().where((ir.c.prior_role_id == prior)
                                                  & (ir.c.implied_role_id == implied))).rowcount
            if not gone:
                raise not_found("implied role", f"{prior} -> {implied}")
            self.revoke(conn, role_id=prior)

    def inference_rules(self) -> dict[str, list[str]]:
        """Return ``prior -> [implied, ...]`` for every rule."""
        rules: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for prior, implied in conn.execute(sa.select(s.implied_roles)):
                rules.setdefault(prior, []).append(implied)
        return rules

    def expand_roles(self, role_ids: Iterable[str]) -> list[str]:
        """Return ``role_ids`` plus every role they imply, transitively (stable order)."""
        rules = self.inference_rules()
        out: list[str] = []
        todo = list(role_ids)
        while todo:
            rid = todo.pop(0)
            if rid in out:
                continue
            out.append(rid)
            todo.extend(rules.get(rid, ()))
        return out

    # --- grants ------------------------------------------------------------
    def _check_parties(self, actor: ActorKind, actor_id: str, target: TargetKind,
                       target_id: str, role_id: str) -> None:
        (self.get_user if actor == "user" else self.get_group)(actor_id)
        if target == "project":
            self.get_project(target_id)
        elif target == "domain":
            self.get_domain(target_id)
        self.get_role(role_id)

    def grant(self, actor: ActorKind, actor_id: str, target: TargetKind, target_id: str,
              role_id: str) -> None:
        """Give ``role_id`` to the actor on the target (idempotent)."""
        self._check_parties(actor, actor_id, target, target_id, role_id)
        row = {"type": assignment_type(actor, target), "actor_id": actor_id,
               "target_id": target_id, "role_id": role_id}
        if self._find(s.assignments, **row) is not None:
            return
        try:
            self._insert(s.assignments, row, "Conflict occurred attempting to store grant.")
        except ConflictError:
            return

    def check_grant(self, actor: ActorKind, actor_id: str, target: TargetKind, target_id: str,
                    role_id: str) -> None:
        """Raise 404 unless the direct grant exists."""
        self._check_parties(actor, actor_id, target, target_id, role_id)
        row = {"type": assignment_type(actor, target), "actor_id": actor_id,
               "target_id": target_id, "role_id": role_id}
        if self._find(s.assignments, **row) is None:
            raise not_found("role assignment",
                            f"role {role_id} for {actor} {actor_id} on {target} {target_id}")

    def revoke_grant(self, actor: ActorKind, actor_id: str, target: TargetKind,
                     target_id: str, role_id: str) -> None:
        """Remove a direct grant (404 if absent) and revoke the affected tokens."""
        self.check_grant(actor, actor_id, target, target_id, role_id)
        a = s.assignments
        users = [actor_id] if actor == "user" else [
            u["id"] for u in self.list_group_users(actor_id)]
        with self.engine.begin() as conn:
            conn.execute(a.delete().where(
                (a.c.type == assignment_type(actor, target)) & (a.c.actor_id == actor_id)
                & (a.c.target_id == target_id) & (a.c.role_id == role_id)))
            for uid in users:
                if target == "project":
                    self.revoke(conn, user_id=uid, project_id=target_id)
                elif target == "domain":
                    self.revoke(conn, user_id=uid, domain_id=target_id)
                else:
                    self.revoke(conn, user_id=uid)

    def list_grants(self, actor: ActorKind, actor_id: str, target: TargetKind,
                    target_id: str) -> list[Row]:
        """List the roles granted directly to the actor on the target."""
        a, r = s.assignments, s.roles
        stmt = (sa.select(r).join(a, a.c.role_id == r.c.id)
                .where((a.c.type == assignment_type(actor, target))
                       & (a.c.actor_id == actor_id) & (a.c.target_id == target_id))
                .order_by(r.c.name))
        with self.engine.connect() as conn:
            return [_row(x) for x in conn.execute(stmt).mappings()]

    # --- effective roles ---------------------------------------------------
    def direct_assignments(self, *, actor_ids: Iterable[str] | None = None,
                           target_id: str | None = None, role_id: str | None = None,
                           types: Iterable[str] | None = None) -> list[Assignment]:
        """Return stored assignments matching the filters."""
        a = s.assignments
        stmt = sa.select(a)
        if actor_ids is not None:
            stmt = stmt.where(a.c.actor_id.in_(list(actor_ids)))
        if target_id is not None:
            stmt = stmt.where(a.c.target_id == target_id)
        if role_id is not None:
            stmt = stmt.where(a.c.role_id == role_id)
        if types is not None:
            stmt = stmt.where(a.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for row in rows:
            kind = str(row["type"])
            actor: ActorKind = "user" if kind.startswith("User") else "group"
            target = kind[len(actor):].lower()
            out.append(Assignment(actor, row["actor_id"], target,  # type: ignore[arg-type]
                                  row["target_id"], row["role_id"]))
        return out

    def effective_role_ids(self, user_id: str, target: TargetKind, target_id: str) -> list[str]:
        """Return the user's roles on the target: direct, via groups, implied."""
        actors = [user_id, *self.user_group_ids(user_id)]
        types = [assignment_type("user", target), assignment_type("group", target)]
        direct = self.direct_assignments(actor_ids=actors, target_id=target_id, types=types)
        return self.expand_roles(sorted({x.role_id for x in direct}))

    def role_refs(self, role_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Return (id, name) for each existing role id, in order."""
        ids = list(role_ids)
        if not ids:
            return []
        with self.engine.connect() as conn:
            names = dict(conn.execute(sa.select(s.roles.c.id, s.roles.c.name)
                                      .where(s.roles.c.id.in_(ids))).all())
        return [(rid, names[rid]) for rid in ids if rid in names]

    def user_target_ids(self, user_id: str, target: TargetKind) -> list[str]:
        """Return the ids of the projects/domains where the user has any role."""
        actors = [user_id, *self.user_group_ids(user_id)]
        types = [assignment_type("user", target), assignment_type("group", target)]
        return sorted({x.target_id for x in self.direct_assignments(actor_ids=actors,
                                                                    types=types)})

    def effective_assignments(self, found: list[Assignment]) -> list[Assignment]:
        """Expand group grants into member users and implied roles (effective mode)."""
        rules = self.inference_rules()
        out: list[Assignment] = []
        for item in found:
            if item.actor == "group":
                members = [u["id"] for u in self.list_group_users(item.actor_id)]
                expanded = [Assignment("user", uid, item.target, item.target_id, item.role_id,
                                       via_group=item.actor_id) for uid in members]
            else:
                expanded = [item]
            for base in expanded:
                out.append(base)
                seen = {base.role_id}
                todo = list(rules.get(base.role_id, ()))
                while todo:
                    rid = todo.pop(0)
                    if rid in seen:
                        continue
                    seen.add(rid)
                    out.append(Assignment(base.actor, base.actor_id, base.target,
                                          base.target_id, rid, base.via_group,
                                          via_role=base.role_id))
                    todo.extend(rules.get(rid, ()))
        return out
