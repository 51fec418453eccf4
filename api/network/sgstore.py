"""Security groups and their rules (SQLAlchemy Core), with each project's ``default`` group.

A project's ``default`` group is made the first time the project needs it (listing
groups, creating a port) as Neutron does: egress to anywhere (IPv4 and IPv6) and
ingress only from members of the same group. The ``network_default_security_group``
row (primary key: project) makes that creation happen once under concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from nubis.api.network import schema as s
from nubis.api.network.errors import conflict, group_not_found, rule_not_found
from nubis.api.network.model import Rule, SecurityGroup
from nubis.api.network.store import NetworkStore, new_id
from sqlalchemy.engine import Connection


class SecurityGroupStore:
    """Security group rows on the network store's engine."""

    def __init__(self, store: NetworkStore) -> None:
        self.store = store
        self.engine = store.engine

    def ensure_default(self, project_id: str) -> str:
        """Return the id of the project's ``default`` group, creating it when missing."""
        d = s.default_groups
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(d.c.security_group_id).where(
                d.c.project_id == project_id)).first()
        if row is not None:
            return str(row[0])
        sg_id = new_id()
        try:
            with self.engine.begin() as conn:
                self._insert_group(conn, sg_id, project_id, "default", "Default security group")
                conn.execute(d.insert().values(project_id=project_id, security_group_id=sg_id))
                for ethertype in ("IPv4", "IPv6"):
                    self._insert_rule(conn, {"security_group_id": sg_id, "project_id": project_id,
                                             "direction": "egress", "ethertype": ethertype})
                    self._insert_rule(conn, {"security_group_id": sg_id, "project_id": project_id,
                                             "direction": "ingress", "ethertype": ethertype,
                                             "remote_group_id": sg_id})
        except sa.exc.IntegrityError:
            pass  # another request made it first
        except sa.exc.OperationalError:
            pass  # locked by the concurrent creator; read what it wrote
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(d.c.security_group_id).where(
                d.c.project_id == project_id)).first()
        if row is None:
            return self.ensure_default(project_id)
        return str(row[0])

    def _insert_group(self, conn: Connection, sg_id: str, project_id: str, name: str,
                      description: str, stateful: bool = True) -> None:
        now = self.store.clock()
        conn.execute(s.security_groups.insert().values(
            id=sg_id, project_id=project_id, name=name, description=description,
            stateful=stateful, revision_number=0, created_at=now, updated_at=now))

    def _insert_rule(self, conn: Connection, values: Mapping[str, Any]) -> str:
        now = self.store.clock()
        rule_id = new_id()
        conn.execute(s.sg_rules.insert().values(
            id=rule_id, **{"description": "", **values}, revision_number=0,
            created_at=now, updated_at=now))
        return rule_id

    def create_group(self, project_id: str, name: str, description: str,
                     stateful: bool = True) -> SecurityGroup:
        """Insert a group with Neutron's two default egress rules; return it."""
        sg_id = new_id()
        with self.engine.begin() as conn:
            self._insert_group(conn, sg_id, project_id, name, description, stateful)
            for ethertype in ("IPv4", "IPv6"):
                self._insert_rule(conn, {"security_group_id": sg_id, "project_id": project_id,
                                         "direction": "egress", "ethertype": ethertype})
        group = self.get_group(sg_id)
        assert group is not None
        return group

    def get_group(self, sg_id: str) -> SecurityGroup | None:
        """Return a group with its rules, or None."""
        groups = self.list_groups([s.security_groups.c.id == sg_id])
        return groups[0] if groups else None

    def list_groups(self, where: Sequence[Any] = ()) -> list[SecurityGroup]:
        """Return groups matching ``where`` with their rules."""
        g, r = s.security_groups, s.sg_rules
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(g).where(*where).order_by(g.c.created_at, g.c.id)
                                ).mappings().all()
            ids = [row["id"] for row in rows]
            rules: dict[str, list[Rule]] = {i: [] for i in ids}
            if ids:
                for rule in conn.execute(sa.select(r).where(r.c.security_group_id.in_(ids))
                                         .order_by(r.c.created_at, r.c.id)).mappings():
                    rules[rule["security_group_id"]].append(Rule(dict(rule)))
        return [SecurityGroup(dict(row), tuple(rules[row["id"]])) for row in rows]

    def update_group(self, sg_id: str, values: Mapping[str, Any]) -> SecurityGroup:
        """Change a group's name/description."""
        t = s.security_groups
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.id == sg_id).values(
                **values, updated_at=self.store.clock(),
                revision_number=t.c.revision_number + 1))
        group = self.get_group(sg_id)
        if group is None:
            raise group_not_found(sg_id)
        return group

    def delete_group(self, sg_id: str) -> None:
        """Delete a group; 409 while a port uses it or for a project's ``default`` group."""
        pg, d = s.port_groups, s.default_groups
        with self.engine.begin() as conn:
            if conn.execute(sa.select(d.c.project_id).where(
                    d.c.security_group_id == sg_id)).first() is not None:
                raise conflict("SecurityGroupCannotRemoveDefault",
                               "Insufficient rights for removing default security group.")
            if conn.execute(sa.select(pg.c.port_id).where(
                    pg.c.security_group_id == sg_id).limit(1)).first() is not None:
                raise conflict("SecurityGroupInUse", f"Security Group {sg_id} in use.")
            conn.execute(s.sg_rules.delete().where(s.sg_rules.c.security_group_id == sg_id))
            conn.execute(s.sg_rules.delete().where(s.sg_rules.c.remote_group_id == sg_id))
            if not conn.execute(s.security_groups.delete().where(
                    s.security_groups.c.id == sg_id)).rowcount:
                raise group_not_found(sg_id)

    def delete_project_default(self, project_id: str) -> None:
        """Forget a project's default group mapping (admin deleting the group)."""
        with self.engine.begin() as conn:
            conn.execute(s.default_groups.delete().where(
                s.default_groups.c.project_id == project_id))

    # --- rules -------------------------------------------------------------------------

    def create_rule(self, values: Mapping[str, Any]) -> Rule:
        """Insert a rule; 409 when the group already has an identical one."""
        r = s.sg_rules
        keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                "remote_ip_prefix", "remote_group_id")
        with self.engine.begin() as conn:
            for row in conn.execute(sa.select(r).where(
                    r.c.security_group_id == values["security_group_id"])).mappings():
                if all(row[k] == values.get(k) for k in keys):
                    raise conflict("SecurityGroupRuleExists", "Security group rule already "
                                   f"exists. Rule id is {row['id']}.")
            rule_id = self._insert_rule(conn, values)
            t = s.security_groups
            conn.execute(t.update().where(t.c.id == values["security_group_id"]).values(
                revision_number=t.c.revision_number + 1))
        rule = self.get_rule(rule_id)
        assert rule is not None
        return rule

    def get_rule(self, rule_id: str) -> Rule | None:
        """Return a rule, or None."""
        rules = self.list_rules([s.sg_rules.c.id == rule_id])
        return rules[0] if rules else None

    def list_rules(self, where: Sequence[Any] = ()) -> list[Rule]:
        """Return rules matching ``where``."""
        r = s.sg_rules
        with self.engine.connect() as conn:
            return [Rule(dict(row)) for row in conn.execute(
                sa.select(r).where(*where).order_by(r.c.created_at, r.c.id)).mappings()]

    def delete_rule(self, rule_id: str) -> str:
        """Delete a rule; return its group id."""
        r, t = s.sg_rules, s.security_groups
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(r.c.security_group_id).where(r.c.id == rule_id)).first()
            if row is None:
                raise rule_not_found(rule_id)
            conn.execute(r.delete().where(r.c.id == rule_id))
            conn.execute(t.update().where(t.c.id == row[0]).values(
                revision_number=t.c.revision_number + 1))
        return str(row[0])
