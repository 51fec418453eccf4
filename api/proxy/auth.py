"""Who is asking and may they: identities, a pluggable token chain, ACLs.

Authentication is a chain of :class:`TokenVerifier` objects tried in order
(tempauth's signed tokens here; the identity service adds Keystone tokens);
the first that recognises a token returns an :class:`Identity`. Authorization
follows Swift's tempauth rules over that identity and container ACLs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from nubis.api.proxy.config import TempAuthConfig
from nubis.api.proxy.errors import HTTPError

TOKEN_PREFIX = "AUTH_tk"
#: Account ACL levels (``X-Account-Access-Control``; see :mod:`.accountacl`).
ADMIN, READ_WRITE, READ_ONLY = "admin", "read-write", "read-only"
_READS = ("GET", "HEAD")
#: Keystone's default domain (Swift keystoneauth's ``default_domain_id``).
DEFAULT_DOMAIN_ID = "default"
#: Where an account records its Keystone project's domain, and how responses show it.
PROJECT_DOMAIN_SYSMETA = "x-account-sysmeta-project-domain-id"
PROJECT_DOMAIN_HEADER = "X-Account-Project-Domain-Id"
#: Recorded when someone other than the project's own users creates its account.
UNKNOWN_DOMAIN_ID = "_unknown"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    Attributes:
        user: ``account:user`` (tempauth) or a user id (Keystone).
        groups: names container ACLs may grant to (``test``, ``test:tester``, ...).
        owned_accounts: storage accounts this caller fully controls (``AUTH_test``).
        reseller_admin: may act on every account.
        expires: epoch second the credential stops being valid.
        name_groups: ACL entries that name the caller by project or user *name*
            (Keystone). They count only where :func:`names_allowed` says so.
        project_accounts: the accounts of the caller's project, one per reseller
            prefix, whether or not the caller owns them (Keystone).
        project_domain_id: the domain of the caller's project (Keystone).
        default_domain: whether the caller's user and project live in the
            default domain (Keystone; tempauth callers always do).
        roles: the token's roles (Keystone; ``None`` for tempauth callers).
        service_roles: the roles of a Keystone ``X-Service-Token`` beside it.
    """

    user: str
    groups: frozenset[str] = field(default_factory=frozenset)
    owned_accounts: frozenset[str] = field(default_factory=frozenset)
    reseller_admin: bool = False
    expires: float = 0.0
    name_groups: frozenset[str] = field(default_factory=frozenset)
    project_accounts: frozenset[str] = field(default_factory=frozenset)
    project_domain_id: str | None = None
    default_domain: bool = True
    roles: frozenset[str] | None = None
    service_roles: frozenset[str] = field(default_factory=frozenset)


class TokenVerifier(Protocol):
    """One link of the authentication chain."""

    async def verify(self, token: str) -> Identity | None:
        """Return the identity behind ``token``, or ``None`` if not ours/invalid."""
        ...


class AuthChain:
    """Try each verifier in turn; the first identity wins.

    Verified identities are cached per worker for ``cache_seconds`` (and never
    past their expiry). PERF: saves the token check on every request
    (bench swift 4 KiB).
    """

    def __init__(self, verifiers: list[TokenVerifier], cache_seconds: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 require_group: Mapping[str, str] | None = None) -> None:
        self.verifiers = list(verifiers)
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.require_group = dict(require_group or {})
        self._cache: dict[str, tuple[float, Identity]] = {}

    async def identify(self, token: str | None,
                       service_token: str | None = None) -> Identity | None:
        """Return the caller behind ``X-Auth-Token`` (and ``X-Service-Token``).

        As Swift's tempauth: the service token counts only beside a valid
        ``token``; its groups, owned accounts and reseller-admin right join the
        caller's. Accounts under a prefix with a required group stay owned only
        when the (joined) groups hold it.
        """
        ident = await self._lookup(token)
        if ident is None:
            return None
        if service_token:
            service = await self._lookup(service_token)
            if service is not None:
                ident = joined(ident, service)
        if self.require_group:
            ident = gated(ident, self.require_group)
        return ident

    async def _lookup(self, token: str | None) -> Identity | None:
        """Return the identity for one token (``None`` when absent or unknown)."""
        if not token:
            return None
        now = self.clock()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        for v in self.verifiers:
            ident = await v.verify(token)
            if ident is not None:
                if len(self._cache) > 10000:
                    self._cache.clear()
                until = now + self.cache_seconds
                if ident.expires:
                    until = min(until, ident.expires)
                self._cache[token] = (until, ident)
                return ident
        return None


def joined(ident: Identity, service: Identity) -> Identity:
    """Return ``ident`` with the rights a service token adds.

    Tempauth (Swift's group union): the service token's groups, owned accounts
    and reseller-admin right join the caller's. Keystone (Swift's keystoneauth):
    only its roles join, as the service roles :func:`gated` asks for.
    """
    expires = min(e for e in (ident.expires, service.expires) if e) if (
        ident.expires or service.expires) else 0.0
    if ident.roles is not None and service.roles is not None:
        return dataclasses.replace(ident, service_roles=service.roles, expires=expires)
    return dataclasses.replace(ident, groups=ident.groups | service.groups,
                               owned_accounts=ident.owned_accounts | service.owned_accounts,
                               reseller_admin=ident.reseller_admin or service.reseller_admin,
                               expires=expires)


def gated(ident: Identity, require_group: Mapping[str, str]) -> Identity:
    """Return ``ident`` without the owned accounts whose prefix needs a missing group.

    For a Keystone caller the group names a role its ``X-Service-Token`` must
    carry (Swift keystoneauth's ``<prefix>_service_roles``).
    """
    held = ident.groups if ident.roles is None else ident.service_roles
    keep = frozenset(a for a in ident.owned_accounts if all(
        group in held for prefix, group in require_group.items()
        if a.startswith(prefix)))
    if keep == ident.owned_accounts:
        return ident
    return dataclasses.replace(ident, owned_accounts=keep)


class TempAuth:
    """Swift's tempauth: users from config, HMAC-signed stateless tokens."""

    def __init__(self, conf: TempAuthConfig, secret: bytes,
                 clock: Callable[[], float] | None = None) -> None:
        self.conf = conf
        self.secret = secret
        self.now = time.time if clock is None else clock

    def account_id(self, account: str) -> str:
        """Return the storage account name for a tempauth account."""
        return f"{self.conf.reseller_prefix}{account}"

    def login(self, user: str, key: str) -> tuple[str, Identity]:
        """Check ``account:user`` and key; return a new token and its identity.

        Raises:
            HTTPError: 401 on unknown users or wrong keys.
        """
        entry = self.conf.users.get(user)
        if entry is None or ":" not in user or not hmac.compare_digest(
                entry.key.encode(), key.encode()):
            raise HTTPError(401)
        ident = self._identity(user, list(entry.groups), self.now() + self.conf.token_life)
        payload = json.dumps({"u": user, "e": int(ident.expires)},
                             separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        return f"{TOKEN_PREFIX}{body}.{self._sign(body)}", ident

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()[:40]

    def _identity(self, user: str, extra: list[str], expires: float) -> Identity:
        account = user.split(":", 1)[0]
        groups = {account, user, *(g for g in extra if not g.startswith("."))}
        owned = ({f"{p}{account}" for p in self.conf.reseller_prefixes}
                 if ".admin" in extra else set())
        return Identity(user=user, groups=frozenset(groups), owned_accounts=frozenset(owned),
                        reseller_admin=".reseller_admin" in extra, expires=expires)

    async def verify(self, token: str) -> Identity | None:
        """Verify a token's signature and expiry; re-read the user's groups."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        body, _, sig = token[len(TOKEN_PREFIX):].partition(".")
        if not sig or not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            user, expires = str(payload["u"]), float(payload["e"])
        except (ValueError, KeyError, TypeError):
            return None
        entry = self.conf.users.get(user)
        if entry is None or expires < self.now():
            return None
        return self._identity(user, list(entry.groups), expires)


def tempauth_secret(conf: TempAuthConfig, prefix: str, suffix: str) -> bytes:
    """Return the token HMAC key: configured, or derived from the cluster secrets."""
    if conf.token_secret:
        return conf.token_secret.encode()
    return hashlib.sha256(f"nubis-tempauth\0{prefix}\0{suffix}".encode()).digest()


# --- ACLs -------------------------------------------------------------------

def parse_acl(value: str | None) -> tuple[list[str], list[str]]:
    """Split a container ACL into (referrers, groups), like Swift's parse_acl."""
    referrers: list[str] = []
    groups: list[str] = []
    if not value:
        return referrers, groups
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if item.startswith(".r:") or item.startswith(".ref:") or item.startswith(
                ".referer:") or item.startswith(".referrer:"):
            ref = item.split(":", 1)[1].strip()
            if ref.startswith("-"):
                ref = "-" + ref[1:].strip()
            if ref and ref != "-":
                referrers.append(ref)
        else:
            groups.append(item)
    return referrers, groups


_REFERRER_KINDS = (".r", ".ref", ".referer", ".referrer")


def clean_acl(value: str, name: str = "x-container-read") -> str:
    """Validate and normalise an ACL header's value (Swift's clean_acl; 400 on garbage).

    Referrers (``.r:``) are refused in write ACLs; ``.r:`` needs a host or
    domain (``*.example.com`` becomes ``.example.com``); a dot-designation
    other than ``.r``/``.rlistings`` is unknown. Stricter than Swift: a bare
    unknown dot-word (``.bogus``) is refused instead of kept as a group name.
    """
    write = "write" in name.lower()
    out: list[str] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if ":" not in item:
            if item.startswith(".") and item != ".rlistings":
                raise HTTPError(400, f"Unknown designator {item!r} in ACL: {item!r}")
            out.append(item)
            continue
        first, second = (v.strip() for v in item.split(":", 1))
        if not first.startswith("."):
            out.append(item)
        elif first in _REFERRER_KINDS:
            if write:
                raise HTTPError(400, f"Referrers not allowed in write ACL: {item!r}")
            out.append(".r:" + _clean_referrer(item, second))
        else:
            raise HTTPError(400, f"Unknown designator {first!r} in ACL: {item!r}")
    return ",".join(out)


def _clean_referrer(item: str, host: str) -> str:
    """Return a referrer designation's normalised host part (400 when empty)."""
    negate = host.startswith("-")
    if negate:
        host = host[1:].strip()
    if host and host != "*" and host.startswith("*"):
        host = host[1:].strip()
    if not host or host == ".":
        raise HTTPError(400, "No host/domain value after referrer designation in ACL: "
                             f"{item!r}")
    return ("-" if negate else "") + host


def referrer_allowed(referrer: str | None, referrers: list[str]) -> bool:
    """Return whether a ``Referer`` is allowed by ``.r:`` ACL entries."""
    allow = False
    host = ""
    if referrer:
        rest = referrer.split("//", 1)[-1]
        host = rest.split("/", 1)[0].split(":", 1)[0].lower()
    for ref in referrers:
        deny = ref.startswith("-")
        pattern = ref[1:] if deny else ref
        matched = pattern == "*" or (bool(host) and (
            host == pattern or (pattern.startswith(".") and host.endswith(pattern))))
        if matched:
            allow = not deny
    return allow


def names_allowed(ident: Identity, account: str, account_exists: bool,
                  account_domain: str | None) -> bool:
    """Tell whether ACL entries naming ``ident`` by name count on ``account``.

    Swift's keystoneauth: names are ambiguous across domains, so they count
    only for a caller whose user and project are in the default domain, on
    the caller's own project's account or on an existing account whose
    project is in the default domain (or not known to be elsewhere).
    """
    if not ident.default_domain:
        return False
    if account in ident.project_accounts:
        return True
    return account_exists and account_domain in (None, DEFAULT_DOMAIN_ID)


def domain_to_record(ident: Identity | None, account: str, exists: bool,
                     recorded: str | None) -> str | None:
    """Return the project domain id an account PUT/POST should record, or None.

    Swift keystoneauth's rules: a new account gets its creator's project domain
    when the creator belongs to that project, ``_unknown`` otherwise; an
    unknown or unrecorded one is filled in by the project's own users later.
    """
    if ident is None or ident.project_domain_id is None:
        return None  # not a Keystone caller
    mine = ident.project_domain_id if account in ident.project_accounts else None
    if not exists:
        return mine or UNKNOWN_DOMAIN_ID
    if recorded is None and mine == DEFAULT_DOMAIN_ID:
        return mine
    if recorded == UNKNOWN_DOMAIN_ID and mine is not None:
        return mine
    return None


def authorize(ident: Identity | None, method: str, account: str, container: str | None,
              obj: str | None, acl: str | None, referrer: str | None = None,
              account_level: str | None = None, names_ok: bool = False) -> None:
    """Decide like tempauth; raise 401 (anonymous) or 403 (known caller) to deny.

    ``account_level`` is the caller's ``X-Account-Access-Control`` level on
    ``account`` (``admin``, ``read-write``, ``read-only`` or None); ``names_ok``
    whether the caller's :attr:`Identity.name_groups` count there.
    """
    if ident is not None:
        if ident.reseller_admin:
            return
        if account in ident.owned_accounts and (method not in ("PUT", "DELETE") or container):
            return
    if method == "OPTIONS":
        return
    referrers, groups = parse_acl(acl)
    if container and referrer_allowed(referrer, referrers) and (
            obj or ".rlistings" in groups):
        return
    if ident is None:
        raise HTTPError(401)
    if any(g in ident.groups or (names_ok and g in ident.name_groups) for g in groups):
        return
    if account_level_allows(account_level, method, container):
        return
    if role_named(ident, account, groups):
        return
    raise HTTPError(403)


def role_named(ident: Identity, account: str, entries: list[str]) -> bool:
    """Tell whether an ACL entry names one of a Keystone caller's roles.

    Swift keystoneauth's last check: on the account of the caller's own
    project, an entry equal (case-insensitively) to one of the token's roles
    grants access, whoever the user is.
    """
    if not ident.roles or account not in ident.project_accounts:
        return False
    mine = {role.lower() for role in ident.roles}
    return any(entry.lower() in mine for entry in entries)


def account_level_allows(level: str | None, method: str, container: str | None) -> bool:
    """Return whether an account ACL level permits a request (as tempauth).

    ``admin`` permits everything an owner may do; ``read-write`` everything on
    containers and objects plus account GET/HEAD; ``read-only`` GET/HEAD only.
    """
    if level == ADMIN:
        return container is not None or method not in ("PUT", "DELETE")
    if level == READ_WRITE:
        return container is not None or method in _READS
    return level == READ_ONLY and method in _READS
