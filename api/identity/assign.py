"""Roles, implied roles, grants and effective-role resolution."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.store import ResourceStore, Row, _row, _split_extra, duplicate, new_id
from nubis.api.shared.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)

ActorKind = Literal["user", "group"]
TargetKind = Literal["project", "domain", "system"]

SYSTEM_TARGET = "system"
#: Roles that may never be implied (Keystone's ``[assignment] prohibited_implied_role``).
PROHIBITED_IMPLIED_ROLES = frozenset({"admin"})


def assignment_type(actor: ActorKind, target: TargetKind) -> str:
    """Return the stored assignment type, e.g. ``UserProject``."""
    return actor.capitalize() + target.capitalize()


@dataclass(frozen=True, slots=True)
class Assignment:
    """One role assignment, stored or derived.

    ``inherited`` marks an OS-INHERIT grant (it applies to the target's subtree).
    A derived assignment names where it came from: the group (``via_group``),
    the prior role that implied it (``via_role``) and, when it was inherited, the
    target of the inherited grant (``source_target``/``source_target_id``).
    """

    actor: ActorKind
    actor_id: str
    target: TargetKind
    target_id: str
    role_id: str
    inherited: bool = False
    via_group: str | None = None
    via_role: str | None = None
    source_target: TargetKind | None = None
    source_target_id: str | None = None

    def grant_path(self) -> str:
        """Return the API path of the stored grant this assignment comes from."""
        role = self.via_role or self.role_id
        actor = f"groups/{self.via_group}" if self.via_group else f"{self.actor}s/{self.actor_id}"
        if self.source_target is not None:
            return (f"/OS-INHERIT/{self.source_target}s/{self.source_target_id}/{actor}/roles/"
                    f"{role}/inherited_to_projects")
        if self.inherited:
            return (f"/OS-INHERIT/{self.target}s/{self.target_id}/{actor}/roles/{role}/"
                    "inherited_to_projects")
        if self.target == "system":
            return f"/system/{actor}/roles/{role}"
        return f"/{self.target}s/{self.target_id}/{actor}/roles/{role}"


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
            conn.execute(s.trust_roles.delete().where(s.trust_roles.c.role_id == ident))
            conn.execute(s.roles.delete().where(s.roles.c.id == ident))
            self.revoke(conn, role_id=ident)

    # --- implied roles -----------------------------------------------------
    def add_implied_role(self, prior: str, implied: str) -> None:
        """Make ``prior`` imply ``implied`` (idempotent)."""
        self.get_role(prior)
        implied_role = self.get_role(implied)
        if implied_role.get("domain_id") or implied_role["name"] in PROHIBITED_IMPLIED_ROLES:
            raise ForbiddenError(f"{implied} cannot be an implied roles.")
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
                raise NotFoundError(f"{prior} does not imply {implied}.")
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

    def implied_by(self, prior: str) -> list[str]:
        """Return the roles ``prior`` implies directly."""
        return self.inference_rules().get(prior, [])

    # --- grants ------------------------------------------------------------
    def _check_parties(self, actor: ActorKind, actor_id: str, target: TargetKind,
                       target_id: str, role_id: str) -> None:
        (self.get_user if actor == "user" else self.get_group)(actor_id)
        role = self.get_role(role_id)
        if target == "project":
            domain_id = self.get_project(target_id)["domain_id"]
        elif target == "domain":
            domain_id = self.get_domain(target_id)["id"]
        else:
            domain_id = None
        if role.get("domain_id") and role["domain_id"] != domain_id:
            raise ForbiddenError(f"Project {target_id} must be in the same domain as the role "
                                 f"{role_id} being assigned.")

    @staticmethod
    def _grant_row(actor: ActorKind, actor_id: str, target: TargetKind, target_id: str,
                   role_id: str, inherited: bool) -> Row:
        return {"type": assignment_type(actor, target), "actor_id": actor_id,
                "target_id": target_id, "role_id": role_id, "inherited": inherited}

    def grant(self, actor: ActorKind, actor_id: str, target: TargetKind, target_id: str,
              role_id: str, inherited: bool = False) -> None:
        """Give ``role_id`` to the actor on the target, or on its subtree (idempotent)."""
        self._check_parties(actor, actor_id, target, target_id, role_id)
        row = self._grant_row(actor, actor_id, target, target_id, role_id, inherited)
        if self._find(s.assignments, **row) is not None:
            return
        try:
            self._insert(s.assignments, row, "Conflict occurred attempting to store grant.")
        except ConflictError:
            return

    def check_grant(self, actor: ActorKind, actor_id: str, target: TargetKind, target_id: str,
                    role_id: str, inherited: bool = False) -> None:
        """Raise 404 unless the direct (or inherited) grant exists."""
        self._check_parties(actor, actor_id, target, target_id, role_id)
        row = self._grant_row(actor, actor_id, target, target_id, role_id, inherited)
        if self._find(s.assignments, **row) is None:
            raise NotFoundError(f"Could not find role assignment with role: {role_id}, user or "
                                f"group: {actor_id}, project, domain, or system: {target_id}.")

    def revoke_grant(self, actor: ActorKind, actor_id: str, target: TargetKind,
                     target_id: str, role_id: str, inherited: bool = False) -> None:
        """Remove a grant (404 if absent) and revoke the tokens it may have shaped."""
        self.check_grant(actor, actor_id, target, target_id, role_id, inherited)
        a = s.assignments
        row = self._grant_row(actor, actor_id, target, target_id, role_id, inherited)
        users = [actor_id] if actor == "user" else [
            u["id"] for u in self.list_group_users(actor_id)]
        with self.engine.begin() as conn:
            conn.execute(a.delete().where(sa.and_(*(a.c[k] == v for k, v in row.items()))))
            for uid in users:
                if target == "project" and not inherited:
                    self.revoke(conn, user_id=uid, project_id=target_id)
                elif target == "domain":
                    self.revoke(conn, user_id=uid, domain_id=target_id)
                else:  # the system, or a project's whole subtree
                    self.revoke(conn, user_id=uid)

    def list_grants(self, actor: ActorKind, actor_id: str, target: TargetKind,
                    target_id: str, inherited: bool = False) -> list[Row]:
        """List the roles granted directly (or for inheritance) to the actor on the target."""
        self._check_target(actor, actor_id, target, target_id)
        a, r = s.assignments, s.roles
        stmt = (sa.select(r).join(a, a.c.role_id == r.c.id)
                .where((a.c.type == assignment_type(actor, target))
                       & (a.c.actor_id == actor_id) & (a.c.target_id == target_id)
                       & (a.c.inherited == inherited))
                .order_by(r.c.name))
        with self.engine.connect() as conn:
            return [_row(x) for x in conn.execute(stmt).mappings()]

    def _check_target(self, actor: ActorKind, actor_id: str, target: TargetKind,
                      target_id: str) -> None:
        (self.get_user if actor == "user" else self.get_group)(actor_id)
        if target == "project":
            self.get_project(target_id)
        elif target == "domain":
            self.get_domain(target_id)

    def direct_assignments(self, *, actor_ids: Iterable[str] | None = None,
                           target_ids: Iterable[str] | None = None,
                           role_id: str | None = None, types: Iterable[str] | None = None,
                           inherited: bool | None = None) -> list[Assignment]:
        """Return stored assignments matching the filters."""
        a = s.assignments
        stmt = sa.select(a)
        if actor_ids is not None:
            stmt = stmt.where(a.c.actor_id.in_(list(actor_ids)))
        if target_ids is not None:
            stmt = stmt.where(a.c.target_id.in_(list(target_ids)))
        if role_id is not None:
            stmt = stmt.where(a.c.role_id == role_id)
        if types is not None:
            stmt = stmt.where(a.c.type.in_(list(types)))
        if inherited is not None:
            stmt = stmt.where(a.c.inherited == inherited)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for row in rows:
            kind = str(row["type"])
            actor: ActorKind = "user" if kind.startswith("User") else "group"
            target = kind[len(actor):].lower()
            out.append(Assignment(actor, row["actor_id"], target,  # type: ignore[arg-type]
                                  row["target_id"], row["role_id"], bool(row["inherited"])))
        return out

    def role_refs(self, role_ids: Iterable[str], *, global_only: bool = False
                  ) -> list[tuple[str, str]]:
        """Return (id, name) for each existing role id, in order.

        ``global_only`` drops domain-specific roles, which Keystone never puts in a
        token (they only matter through the global roles they imply).
        """
        ids = list(role_ids)
        if not ids:
            return []
        r = s.roles
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(r.c.id, r.c.name, r.c.domain_id)
                                .where(r.c.id.in_(ids))).all()
        names = {rid: name for rid, name, dom in rows if not (global_only and dom)}
        return [(rid, names[rid]) for rid in ids if rid in names]
