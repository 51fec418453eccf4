"""Who may do what: one readable policy table per API, enforced in one place.

Roles form a chain, ``admin`` ⇒ ``member`` ⇒ ``reader`` (implied roles are
expanded into the token, so ``READER`` also admits members and admins). The
``admin`` role on any scope is the cloud administrator, as in devstack's
default Keystone policy. A rule is a small predicate object over the caller's
:class:`~nubis.api.shared.auth.AuthContext` and a *target* mapping (the attributes of
the entity acted on); rules combine with ``|`` and ``&``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import forbidden_action

Target = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """A named predicate ``(context, target) -> bool``."""

    name: str
    check: Callable[[AuthContext, Target], bool]

    def __call__(self, ctx: AuthContext, target: Target) -> bool:
        """Evaluate the rule."""
        return self.check(ctx, target)

    def __or__(self, other: Rule) -> Rule:
        return Rule(f"({self.name} or {other.name})",
                    lambda c, t: self.check(c, t) or other.check(c, t))

    def __and__(self, other: Rule) -> Rule:
        return Rule(f"({self.name} and {other.name})",
                    lambda c, t: self.check(c, t) and other.check(c, t))


def role(name: str) -> Rule:
    """Require role ``name`` (directly or implied) on the token's scope."""
    return Rule(f"role:{name}", lambda c, t: name in c.roles)


def owner(attr: str = "user_id") -> Rule:
    """Require the target's ``attr`` to be the caller's user id."""
    return Rule(f"user_id:%(target.{attr})s", lambda c, t: t.get(attr) == c.user_id)


def scoped_to(attr: str = "project_id") -> Rule:
    """Require the caller's token to be scoped to the target's project ``attr``."""
    return Rule(f"project_id:%(target.{attr})s",
                lambda c, t: c.project_id is not None and t.get(attr) == c.project_id)


def domain_of_scope(attr: str = "domain_id") -> Rule:
    """Require the target's domain ``attr`` to be the domain of the caller's scope."""
    def check(c: AuthContext, t: Target) -> bool:
        value = t.get(attr)
        return value is not None and value in (c.domain_id, c.project_domain_id)
    return Rule(f"domain_id:%(target.{attr})s", check)


ANYONE = Rule("@", lambda c, t: True)
ADMIN = role("admin")
MEMBER = role("member")
READER = role("reader")


class Policy:
    """A table of ``action -> rule``; unknown actions are denied."""

    def __init__(self, table: Mapping[str, Rule]) -> None:
        self.table = dict(table)

    def allowed(self, action: str, ctx: AuthContext | None, target: Target | None = None) -> bool:
        """Return whether ``ctx`` may perform ``action`` on ``target``."""
        rule = self.table.get(action)
        if rule is None or ctx is None:
            return False
        return rule(ctx, target or {})

    def enforce(self, action: str, ctx: AuthContext | None, target: Target | None = None) -> None:
        """Raise 403 (Keystone's message) unless ``ctx`` may perform ``action``."""
        if not self.allowed(action, ctx, target):
            raise forbidden_action(action)


#: Keystone v3. Writes are admin-only; readers see their own project, user,
#: application and EC2 credentials; the catalog is readable by every token.
IDENTITY: dict[str, Rule] = {
    # tokens and the caller's own view
    "identity:validate_token": ADMIN | owner("token_user_id"),
    "identity:revoke_token": ADMIN | owner("token_user_id"),
    # domains
    "identity:get_domain": ADMIN | domain_of_scope("id"),
    "identity:list_domains": ADMIN,
    "identity:create_domain": ADMIN,
    "identity:update_domain": ADMIN,
    "identity:delete_domain": ADMIN,
    # projects
    "identity:get_project": ADMIN | scoped_to("id"),
    "identity:list_projects": ADMIN,
    "identity:list_user_projects": ADMIN | owner("user_id"),
    "identity:create_project": ADMIN,
    "identity:update_project": ADMIN,
    "identity:delete_project": ADMIN,
    # users
    "identity:get_user": ADMIN | owner("id"),
    "identity:list_users": ADMIN,
    "identity:create_user": ADMIN,
    "identity:update_user": ADMIN,
    "identity:delete_user": ADMIN,
    # groups and membership
    "identity:get_group": ADMIN,
    "identity:list_groups": ADMIN,
    "identity:list_groups_for_user": ADMIN | owner("user_id"),
    "identity:create_group": ADMIN,
    "identity:update_group": ADMIN,
    "identity:delete_group": ADMIN,
    "identity:list_users_in_group": ADMIN,
    "identity:add_user_to_group": ADMIN,
    "identity:remove_user_from_group": ADMIN,
    "identity:check_user_in_group": ADMIN,
    # roles, implied roles and grants
    "identity:get_role": READER | ADMIN,
    "identity:list_roles": READER | ADMIN,
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:create_implied_role": ADMIN,
    "identity:get_implied_role": ADMIN,
    "identity:list_implied_roles": ADMIN,
    "identity:delete_implied_role": ADMIN,
    "identity:list_role_inference_rules": ADMIN,
    "identity:check_grant": ADMIN,
    "identity:list_grants": ADMIN,
    "identity:create_grant": ADMIN,
    "identity:revoke_grant": ADMIN,
    "identity:list_role_assignments": ADMIN | (READER & scoped_to("scope.project.id")),
    # catalog
    "identity:get_service": ANYONE,
    "identity:list_services": ANYONE,
    "identity:create_service": ADMIN,
    "identity:update_service": ADMIN,
    "identity:delete_service": ADMIN,
    "identity:get_endpoint": ANYONE,
    "identity:list_endpoints": ANYONE,
    "identity:create_endpoint": ADMIN,
    "identity:update_endpoint": ADMIN,
    "identity:delete_endpoint": ADMIN,
    "identity:get_region": ANYONE,
    "identity:list_regions": ANYONE,
    "identity:create_region": ADMIN,
    "identity:update_region": ADMIN,
    "identity:delete_region": ADMIN,
    # application credentials: the owner, or an admin
    "identity:get_application_credential": ADMIN | owner("user_id"),
    "identity:list_application_credentials": ADMIN | owner("user_id"),
    "identity:create_application_credential": owner("user_id"),
    "identity:delete_application_credential": ADMIN | owner("user_id"),
    # OS-TRUST: the trustor creates and deletes; trustor or trustee reads
    "identity:create_trust": ANYONE,  # the handler requires caller == trustor_user_id
    "identity:list_trusts": ADMIN,
    "identity:list_trusts_for_trustor": ADMIN | owner("trust.trustor_user_id"),
    "identity:list_trusts_for_trustee": ADMIN | owner("trust.trustee_user_id"),
    "identity:get_trust": ADMIN | owner("trust.trustor_user_id")
    | owner("trust.trustee_user_id"),
    "identity:list_roles_for_trust": ADMIN | owner("trust.trustor_user_id")
    | owner("trust.trustee_user_id"),
    "identity:get_role_for_trust": ADMIN | owner("trust.trustor_user_id")
    | owner("trust.trustee_user_id"),
    "identity:delete_trust": ADMIN | owner("trust.trustor_user_id"),
    # unified limits: registered limits are public to every token; limits to their project
    "identity:list_registered_limits": ANYONE,
    "identity:get_registered_limit": ANYONE,
    "identity:create_registered_limits": ADMIN,
    "identity:update_registered_limit": ADMIN,
    "identity:delete_registered_limit": ADMIN,
    "identity:list_limits": ANYONE,  # the handler narrows non-admins to their scope
    "identity:get_limit": ADMIN | scoped_to("project_id") | domain_of_scope("domain_id"),
    "identity:create_limits": ADMIN,
    "identity:update_limit": ADMIN,
    "identity:delete_limit": ADMIN,
    "identity:get_limit_model": ANYONE,
    # credentials (EC2 and generic)
    "identity:get_credential": ADMIN | owner("user_id"),
    "identity:list_credentials": ADMIN | owner("user_id"),
    "identity:create_credential": ADMIN | owner("user_id"),
    "identity:update_credential": ADMIN | owner("user_id"),
    "identity:delete_credential": ADMIN | owner("user_id"),
    "identity:ec2_get_credential": ADMIN | owner("user_id"),
    "identity:ec2_list_credentials": ADMIN | owner("user_id"),
    "identity:ec2_create_credential": ADMIN | owner("user_id"),
    "identity:ec2_delete_credential": ADMIN | owner("user_id"),
}
