"""Effective role assignments: Keystone's rules, in one place.

A user's effective roles on a target are the roles granted

* to the user or to any of its groups directly on the target;
* for a project, also *inherited* (OS-INHERIT) grants on any of the project's
  ancestors and on its domain (an inherited grant never applies to the target
  it was made on, only to the projects below it);
* plus every role those imply, transitively (implied roles).

Tokens get the result at issue time (so verification stays local); the
``/v3/role_assignments?effective`` listing, ``/v3/auth/projects``,
``/v3/users/{id}/projects``, application credentials and trusts use the same
functions, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.assign import (
    ActorKind,
    Assignment,
    AssignmentStore,
    TargetKind,
    assignment_type,
)
from nubis.api.shared.errors import NotFoundError

_PROJECT_TYPES = (assignment_type("user", "project"), assignment_type("group", "project"))
_DOMAIN_TYPES = (assignment_type("user", "domain"), assignment_type("group", "domain"))


class EffectiveStore(AssignmentStore):
    """Resolve effective roles and expand assignments (groups, inheritance, implied)."""

    # --- one user, one target (token issue) --------------------------------
    def effective_role_ids(self, user_id: str, target: TargetKind, target_id: str) -> list[str]:
        """Return the user's effective roles on the target (direct, group, inherited, implied)."""
        actors = [user_id, *self.user_group_ids(user_id)]
        if target == "project":
            found = self._project_grants(actors, target_id)
        else:
            types = [assignment_type("user", target), assignment_type("group", target)]
            found = self.direct_assignments(actor_ids=actors, target_ids=[target_id],
                                            types=types, inherited=False)
        return self.expand_roles(sorted({x.role_id for x in found}))

    def _project_grants(self, actors: list[str], project_id: str) -> list[Assignment]:
        try:
            project = self.get_project(project_id)
        except NotFoundError:  # an unknown project simply has no grants
            return []
        ancestors = [p["id"] for p in self.project_parents(project_id)]
        a = s.assignments
        direct = (a.c.type.in_(_PROJECT_TYPES) & (a.c.target_id == project_id)
                  & (a.c.inherited == sa.false()))
        from_parents = (a.c.type.in_(_PROJECT_TYPES) & a.c.target_id.in_(ancestors)
                        & (a.c.inherited == sa.true()))
        from_domain = (a.c.type.in_(_DOMAIN_TYPES) & (a.c.target_id == project["domain_id"])
                       & (a.c.inherited == sa.true()))
        stmt = sa.select(a.c.role_id).where(a.c.actor_id.in_(actors)
                                            & (direct | from_parents | from_domain))
        with self.engine.connect() as conn:
            roles = {r[0] for r in conn.execute(stmt)}
        return [Assignment("user", actors[0], "project", project_id, rid) for rid in roles]

    def user_target_ids(self, user_id: str, target: TargetKind) -> list[str]:
        """Return the projects/domains where the user has any effective role."""
        actors = [user_id, *self.user_group_ids(user_id)]
        if target == "domain":
            found = self.direct_assignments(actor_ids=actors, types=_DOMAIN_TYPES,
                                            inherited=False)
            return sorted({x.target_id for x in found})
        found = self.direct_assignments(actor_ids=actors)
        expanded = self._inherit(found)
        return sorted({x.target_id for x in expanded if x.target == "project"})

    # --- listings (role_assignments?effective) ------------------------------
    def effective_assignments(self, found: list[Assignment]) -> list[Assignment]:
        """Expand stored assignments: group grants to members, inheritance, implied roles."""
        return self._imply(self._inherit(self._members(found)))

    def _members(self, found: list[Assignment]) -> list[Assignment]:
        groups = sorted({x.actor_id for x in found if x.actor == "group"})
        members = self.group_members(groups)
        out: list[Assignment] = []
        for item in found:
            if item.actor == "user":
                out.append(item)
                continue
            out.extend(Assignment("user", uid, item.target, item.target_id, item.role_id,
                                  item.inherited, via_group=item.actor_id)
                       for uid in members.get(item.actor_id, ()))
        return out

    def _inherit(self, found: list[Assignment]) -> list[Assignment]:
        """Replace each inherited grant by the projects it applies to."""
        out: list[Assignment] = []
        for item in found:
            if not item.inherited:
                out.append(item)
                continue
            if item.target == "domain":
                targets = [p["id"] for p in self.list_projects(domain_id=item.target_id)]
            else:
                targets = [p["id"] for p in self.project_subtree(item.target_id)]
            out.extend(Assignment(item.actor, item.actor_id, "project", pid, item.role_id,
                                  via_group=item.via_group, source_target=item.target,
                                  source_target_id=item.target_id) for pid in targets)
        return out

    def _imply(self, found: list[Assignment]) -> list[Assignment]:
        rules = self.inference_rules()
        out: list[Assignment] = []
        for base in found:
            out.append(base)
            seen = {base.role_id}
            todo = list(rules.get(base.role_id, ()))
            while todo:
                rid = todo.pop(0)
                if rid in seen:
                    continue
                seen.add(rid)
                out.append(Assignment(base.actor, base.actor_id, base.target, base.target_id,
                                      rid, False, base.via_group, base.role_id,
                                      base.source_target, base.source_target_id))
                todo.extend(rules.get(rid, ()))
        return out

    def group_members(self, group_ids: Iterable[str]) -> dict[str, list[str]]:
        """Return ``group id -> member user ids`` for the given groups (one query)."""
        ids = list(group_ids)
        if not ids:
            return {}
        m = s.memberships
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for uid, gid in conn.execute(sa.select(m.c.user_id, m.c.group_id)
                                         .where(m.c.group_id.in_(ids))
                                         .order_by(m.c.user_id)):
                out.setdefault(gid, []).append(uid)
        return out

    def actor_kind(self, actor_id: str) -> ActorKind:
        """Return whether ``actor_id`` names a user or a group."""
        return "group" if self._find(s.groups, id=actor_id) is not None else "user"
