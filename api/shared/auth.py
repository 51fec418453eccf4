"""The one authentication layer of every nubis API: ``X-Auth-Token`` -> AuthContext.

Tokens are verified *locally*: decrypt with the shared Fernet key repository,
check expiry, check the revocation list (refreshed from the shared database at
most every ``poll_seconds``). No request ever calls the identity service.

* :class:`TokenVerifier` is framework-neutral: ``verify(token) -> AuthContext``
  or :class:`TokenRejectedError`.
* :class:`FalconAuthMiddleware` runs it for every Falcon resource whose
  ``auth_required`` attribute is not ``False`` and stores the context in
  ``req.context.auth``.
* :func:`make_verifier` builds one from
  :class:`~nubis.api.shared.config.TokenSettings` (what the
  CLI layer takes from ``[identity]`` and ``[api]`` for every service).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon.asgi
from nubis.api.shared.config import TokenSettings
from nubis.api.shared.errors import UnauthorizedError
from nubis.api.shared.revoke import RevocationList
from nubis.api.shared.tokens import KeyRepository, TokenCodec, TokenError, TokenPayload
from nubis.common.db import make_engine
from sqlalchemy.engine import Engine


class TokenRejectedError(TokenError):
    """The token is invalid, expired or revoked (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"token {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who is calling, in what scope, with which roles (implied roles included)."""

    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    roles: frozenset[str]
    role_ids: tuple[str, ...]
    project_id: str | None
    project_name: str | None
    project_domain_id: str | None
    project_domain_name: str | None
    domain_id: str | None
    domain_name: str | None
    system_scope: str | None
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]
    methods: tuple[str, ...]
    app_cred_id: str | None
    payload: TokenPayload

    @classmethod
    def from_payload(cls, p: TokenPayload) -> AuthContext:
        """Build the context a token asserts."""
        proj = p.project
        return cls(
            user_id=p.user_id, user_name=p.user_name, user_domain_id=p.user_domain_id,
            user_domain_name=p.user_domain_name,
            roles=frozenset(name for _rid, name in p.roles),
            role_ids=tuple(rid for rid, _name in p.roles),
            project_id=proj.id if proj else None, project_name=proj.name if proj else None,
            project_domain_id=proj.domain_id if proj else None,
            project_domain_name=proj.domain_name if proj else None,
            domain_id=p.domain[0] if p.domain else None,
            domain_name=p.domain[1] if p.domain else None,
            system_scope=p.system, issued_at=p.issued_at, expires_at=p.expires_at,
            audit_ids=p.audit_ids, methods=p.methods, app_cred_id=p.app_cred_id,
            payload=p)

    def has_role(self, name: str) -> bool:
        """Return whether the token carries role ``name`` (directly or implied)."""
        return name in self.roles

    @property
    def is_admin(self) -> bool:
        """Return whether the caller holds ``admin`` (cloud administrator)."""
        return "admin" in self.roles


class TokenVerifier:
    """Verify tokens locally against the key repository and the revocation list."""

    def __init__(self, keys: KeyRepository, revocations: RevocationList, *,
                 cache_size: int = 10000, key_check_seconds: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.revocations = revocations
        self.clock = clock
        self.cache_size = cache_size
        self.key_check_seconds = key_check_seconds
        self._fingerprint: tuple[int, ...] = ()
        self._codec: TokenCodec | None = None
        self._next_key_check = 0.0
        # PERF(bench identity: validations/s): decrypted contexts are cached by token
        # string; expiry and revocation are still checked on every hit.
        self._cache: dict[str, AuthContext] = {}

    @property
    def codec(self) -> TokenCodec:
        """Return the codec for the current keys (reloaded when they rotate)."""
        now = self.clock()
        if self._codec is None or now >= self._next_key_check:
            self._next_key_check = now + self.key_check_seconds
            fingerprint = self.keys.fingerprint()
            if self._codec is None or fingerprint != self._fingerprint:
                self._codec = TokenCodec(self.keys.load())
                self._fingerprint = fingerprint
                self._cache.clear()
        return self._codec

    def decode(self, token: str, *, allow_expired: bool = False) -> TokenPayload:
        """Decrypt and check ``token``; return its payload or raise TokenRejectedError."""
        try:
            payload = self.codec.decode(token)
        except TokenError:
            raise TokenRejectedError("invalid") from None
        self._check_live(payload, allow_expired)
        return payload

    def verify(self, token: str) -> AuthContext:
        """Return the context of a valid token; raise TokenRejectedError otherwise."""
        codec = self.codec
        ctx = self._cache.get(token)
        if ctx is None:
            try:
                payload = codec.decode(token)
            except TokenError:
                raise TokenRejectedError("invalid") from None
            ctx = AuthContext.from_payload(payload)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[token] = ctx
        self._check_live(ctx.payload, False)
        return ctx

    def _check_live(self, payload: TokenPayload, allow_expired: bool) -> None:
        if not allow_expired and payload.expires_at <= self.clock():
            raise TokenRejectedError("expired")
        self.revocations.refresh()
        if self.revocations.is_revoked(payload):
            raise TokenRejectedError("revoked")


class FalconAuthMiddleware:
    """Authenticate every Falcon resource unless it is public.

    A resource is public when ``auth_required`` is ``False``, or for the methods
    listed in its ``public_methods``; a token sent to a public resource is still
    verified (``req.context.auth`` is ``None`` when absent or invalid).
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def process_resource(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, params: dict[str, Any]) -> None:
        """Attach ``req.context.auth`` or raise 401."""
        req.context.auth = None
        if resource is None or getattr(resource, "auth_required", True) is False or (
                req.method in getattr(resource, "public_methods", ())):
            token = req.get_header("X-Auth-Token")
            if token:
                try:
                    req.context.auth = self.verifier.verify(token)
                except TokenRejectedError:
                    req.context.auth = None
            return
        token = req.get_header("X-Auth-Token")
        if not token:
            raise UnauthorizedError()
        try:
            req.context.auth = self.verifier.verify(token)
        except TokenRejectedError:
            raise UnauthorizedError("The request you have made requires authentication.") from None


def make_verifier(settings: TokenSettings, engine: Engine | None = None) -> TokenVerifier:
    """Build a token verifier (creates the key repository if missing).

    ``engine`` is the control-plane database; by default one is opened on
    ``settings.database_url``.
    """
    keys = KeyRepository(settings.key_repository, settings.max_active_keys)
    keys.setup()
    if engine is None:
        engine = make_engine(settings.database_url)
    revocations = RevocationList(engine, settings.revocation_poll_seconds,
                                 float(settings.token_ttl))
    return TokenVerifier(keys, revocations, cache_size=settings.token_cache_size)
