"""``POST /v3/ec2tokens`` and ``POST /v3/s3tokens``: a token for a signed request.

Other S3/EC2 front ends send what a client signed and the signature; when it
checks out against the EC2 credential's secret, a token scoped to the
credential's project is issued (method ``ec2credential``), as Keystone does.
``s3tokens`` carries the string to sign itself (base64 ``token``, SigV4 or V2);
``ec2tokens`` carries the request parts (verb, host, path, params, headers,
body hash) and the canonical request is rebuilt with
:mod:`nubis.api.shared.awssig`. Any mismatch is a 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

import falcon
from nubis.api.identity import views
from nubis.api.identity.authn import Principal
from nubis.api.identity.resources import IdentityContext, Req, Resp, run
from nubis.api.shared import awssig
from nubis.api.shared.errors import BadRequestError, NotFoundError, UnauthorizedError
from nubis.api.shared.tokens import TokenPayload

_DENIED = "The request you have made requires authentication."


class SignedTokens:
    """``/v3/ec2tokens`` (request parts) or ``/v3/s3tokens`` (string to sign)."""

    public_methods = ("POST",)

    def __init__(self, ctx: IdentityContext, kind: str) -> None:
        self.ctx = ctx
        self.kind = kind

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Check the signature; issue a project-scoped token."""
        body = await self.ctx.body(req)
        creds = body.get("credentials") or body.get("ec2Credentials") \
            if isinstance(body, dict) else None
        if not isinstance(creds, dict) or not isinstance(creds.get("access"), str) \
                or not isinstance(creds.get("signature"), str):
            raise BadRequestError("Invalid input for field 'credentials': access and "
                                  "signature are required.")
        row = await run(self.ctx.store.find_ec2, creds["access"])
        if row is None or not row.get("project_id"):
            raise UnauthorizedError(_DENIED)
        secret = str(json.loads(row["blob"]).get("secret", ""))
        if not _signature_ok(creds, secret):
            raise UnauthorizedError(_DENIED)
        payload = await asyncio.to_thread(self._issue, row)
        resp.status = falcon.HTTP_200
        resp.set_header("X-Subject-Token", self.ctx.authn.verifier.codec.encode(payload))
        resp.media = await run(self._render, payload)

    def _issue(self, row: dict[str, Any]) -> TokenPayload:
        try:
            user = self.ctx.store.get_user(row["user_id"])
        except NotFoundError:
            raise UnauthorizedError(_DENIED) from None
        if not user["enabled"]:
            raise UnauthorizedError(_DENIED)
        scope = {"project": {"id": row["project_id"]}}
        return self.ctx.authn._issue(Principal(user, ("ec2credential",)), scope)

    def _render(self, payload: TokenPayload) -> dict[str, Any]:
        catalog = self.ctx.store.catalog(payload.project.id if payload.project else None)
        return views.token(payload, catalog, None, None)


def _signature_ok(creds: dict[str, Any], secret: str) -> bool:
    """Return whether ``creds`` carries a valid signature made with ``secret``."""
    try:
        if "token" in creds:
            to_sign = base64.b64decode(str(creds["token"]), validate=True).decode("utf-8")
            return hmac.compare_digest(_sign_string(to_sign, secret), creds["signature"])
        return _request_ok(creds, secret)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return False
    except awssig.SigError:
        return False


def _sign_string(to_sign: str, secret: str) -> str:
    """Sign a SigV4 (``AWS4-HMAC-SHA256``) or V2 string to sign."""
    if to_sign.startswith(awssig.ALGORITHM + "\n"):
        date, region, service = awssig.scope_of_string_to_sign(to_sign)
        key = awssig.signing_key(secret, date, region, service)
        return awssig.signature_of(key, to_sign)
    digest = hmac.new(secret.encode(), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _request_ok(creds: dict[str, Any], secret: str) -> bool:
    """Rebuild a SigV4 request's canonical form from its parts and check it."""
    headers = {str(k).lower(): str(v) for k, v in (creds.get("headers") or {}).items()}
    if "host" not in headers and creds.get("host"):
        headers["host"] = str(creds["host"])
    pairs = [(str(k), str(v)) for k, v in (creds.get("params") or {}).items()]
    if "x-amz-content-sha256" not in headers:
        headers["x-amz-content-sha256"] = str(creds.get("body_hash") or
                                              hashlib.sha256(b"").hexdigest())
    sreq = awssig.parse_request(headers, pairs)
    if not sreq.presigned and creds.get("body_hash"):
        sreq = _with_payload(sreq, str(creds["body_hash"]))
    awssig.verify(sreq, secret, str(creds.get("verb", "GET")).upper(),
                  str(creds.get("path", "/")), pairs, headers)
    return hmac.compare_digest(sreq.signature, creds["signature"])


def _with_payload(sreq: awssig.SignedRequest, payload: str) -> awssig.SignedRequest:
    return sreq._replace(payload=payload)


def add_signed_token_routes(app: falcon.asgi.App[Any, Any], v3: str,
                            ctx: IdentityContext) -> None:
    """Mount ``/v3/ec2tokens`` and ``/v3/s3tokens``."""
    app.add_route(f"{v3}/ec2tokens", SignedTokens(ctx, "ec2"))
    app.add_route(f"{v3}/s3tokens", SignedTokens(ctx, "s3"))
