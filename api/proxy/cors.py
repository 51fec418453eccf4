"""Cross-origin resource sharing as Swift's proxy answers it.

A container allows browser origins with ``X-Container-Meta-Access-Control-Allow-Origin``
(space-separated origins or ``*``), ``-Max-Age`` and ``-Expose-Headers``.
``OPTIONS`` answers the preflight: ``Allow`` always, the ``Access-Control-*``
headers when the origin and requested method are allowed, 401 otherwise.
Responses to container and object requests that carry ``Origin`` get
``Access-Control-Allow-Origin`` and ``-Expose-Headers`` when the origin is
allowed (Swift's ``strict_cors_mode``). Requests without ``Origin`` pay one dict
lookup.
"""

from __future__ import annotations

from nubis.api.proxy.base import container_info
from nubis.api.proxy.context import Ctx, Info, Resp
from nubis.api.proxy.errors import HTTPError

_META = "x-container-meta-access-control-"
_ACCOUNT_METHODS = "DELETE, GET, HEAD, OPTIONS, POST, PUT"
_CONTAINER_METHODS = "DELETE, GET, HEAD, OPTIONS, POST, PUT"
_OBJECT_METHODS = "COPY, DELETE, GET, HEAD, OPTIONS, POST, PUT"
_EXPOSE = ("cache-control", "content-language", "content-type", "expires", "last-modified",
           "pragma", "etag", "x-timestamp", "x-trans-id", "x-openstack-request-id")


def _methods(ctx: Ctx) -> str:
    if ctx.container is None:
        return _ACCOUNT_METHODS
    return _CONTAINER_METHODS if ctx.obj is None else _OBJECT_METHODS


def origin_allowed(info: Info, origin: str) -> bool:
    """Return whether the container's Allow-Origin list names ``origin`` (or ``*``)."""
    allowed = info.headers.get(_META + "allow-origin", "").split()
    return origin in allowed or "*" in allowed


def _allow_origin(info: Info, origin: str, headers: dict[str, str]) -> None:
    if info.headers.get(_META + "allow-origin", "").strip() == "*":
        headers["Access-Control-Allow-Origin"] = "*"
        return
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = headers["Vary"] + ", Origin" if "Vary" in headers else "Origin"


async def options(ctx: Ctx) -> Resp:
    """Answer ``OPTIONS`` (a CORS preflight when ``Origin`` is sent)."""
    methods = _methods(ctx)
    headers = {"Allow": methods, "Content-Type": "text/html; charset=UTF-8"}
    origin = ctx.headers.get("origin")
    if not origin or ctx.container is None:
        return Resp(200, headers)
    info = await container_info(ctx.state, ctx.account, ctx.container)
    wanted = ctx.headers.get("access-control-request-method", "")
    if not info.exists or not origin_allowed(info, origin) or wanted not in methods.split(", "):
        return Resp(401, headers)
    _allow_origin(info, origin, headers)
    max_age = info.headers.get(_META + "max-age")
    if max_age is not None:
        headers["Access-Control-Max-Age"] = max_age
    headers["Access-Control-Allow-Methods"] = methods
    asked = [h.strip() for h in ctx.headers.get("access-control-request-headers", "").split(",")
             if h.strip()]
    if asked:
        headers["Access-Control-Allow-Headers"] = ", ".join(dict.fromkeys(asked))
        headers["Vary"] = (headers["Vary"] + ", Access-Control-Request-Headers"
                           if "Vary" in headers else "Access-Control-Request-Headers")
    return Resp(200, headers)


async def decorate(ctx: Ctx, origin: str, headers: dict[str, str]) -> None:
    """Add the CORS answer headers for an allowed ``origin`` to ``headers``."""
    assert ctx.container is not None
    info = await container_info(ctx.state, ctx.account, ctx.container)
    if not info.exists or not origin_allowed(info, origin):
        return
    if "Access-Control-Expose-Headers" not in headers:
        expose = dict.fromkeys(_EXPOSE)
        expose.update(dict.fromkeys(k.lower() for k in headers if k.lower().startswith(
            ("x-container-meta", "x-object-meta"))))
        expose.update(dict.fromkeys(h.lower() for h in info.headers.get(
            _META + "expose-headers", "").split()))
        headers["Access-Control-Expose-Headers"] = ", ".join(expose)
    if "Access-Control-Allow-Origin" not in headers:
        _allow_origin(info, origin, headers)


async def answer(ctx: Ctx, origin: str, resp: Resp | HTTPError) -> None:
    """Decorate a response or an error about to be answered (errors too, as Swift)."""
    await decorate(ctx, origin, resp.headers)
