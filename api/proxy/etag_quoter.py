"""RFC 7232 double-quoted object Etags on request (Swift's ``etag-quoter``).

An account's ``X-Account-Rfc-Compliant-Etags: true`` (or a container's
``X-Container-Rfc-Compliant-Etags``) makes object responses below it carry
``Etag: "<md5>"`` instead of the bare MD5. The container's setting wins over the
account's, which wins over ``[proxy] etag_quoter_enable_by_default``. The flags
are kept as system metadata (``X-<Type>-Sysmeta-Rfc-Compliant-Etags``, stored as
``True``/``False``; an empty value or ``X-Remove-...`` clears it) and shown back
under the client's name.

Only object responses that carry an Etag pay for the check: two cached info
lookups (the container's is already cached by the object request itself).
"""

from __future__ import annotations

from collections.abc import Mapping

from nubis.api.proxy.base import account_info, container_info
from nubis.api.proxy.context import Ctx, Resp
from nubis.api.proxy.errors import HTTPError

_TRUE = ("true", "1", "yes", "on", "t", "y")


def _client(target: str) -> str:
    return f"x-{target}-rfc-compliant-etags"


def _sysmeta(target: str) -> str:
    return f"x-{target}-sysmeta-rfc-compliant-etags"


def truthy(value: str) -> bool:
    """Return Swift's ``config_true_value`` of a header value."""
    return value.strip().lower() in _TRUE


def sysmeta_headers(headers: Mapping[str, str], target: str) -> dict[str, str]:
    """Return the sysmeta an account/container PUT or POST sets or clears (may be empty)."""
    client = _client(target)
    out: dict[str, str] = {}
    if client in headers:
        value = headers[client]
        out[_sysmeta(target)] = str(truthy(value)) if value else ""
    if headers.get(f"x-remove-{target}-rfc-compliant-etags"):
        out[_sysmeta(target)] = ""
    return out


def show(backend: Mapping[str, str], target: str, out: dict[str, str]) -> None:
    """Add ``X-<Type>-Rfc-Compliant-Etags`` from the stored sysmeta (when set)."""
    value = backend.get(_sysmeta(target))
    if value:
        out[f"X-{target.title()}-Rfc-Compliant-Etags"] = value


def quoted(etag: str) -> str:
    """Return ``etag`` double-quoted unless it already is (strong or weak)."""
    if etag.startswith(('"', 'W/"')) and etag.endswith('"') and len(etag) > 1:
        return etag
    return f'"{etag}"'


async def wanted(ctx: Ctx, default: bool) -> bool:
    """Return whether object responses of this request's container get quoted Etags."""
    assert ctx.container is not None
    cinfo = await container_info(ctx.state, ctx.account, ctx.container)
    if not cinfo.exists:
        return False
    flag = cinfo.headers.get(_sysmeta("container")) or None
    if flag is None:
        ainfo = await account_info(ctx.state, ctx.account)
        if not ainfo.exists:
            return False
        flag = ainfo.headers.get(_sysmeta("account")) or None
    return default if flag is None else truthy(flag)


async def apply(ctx: Ctx, answer: Resp | HTTPError, default: bool) -> None:
    """Quote the Etag of an object response (or error) when the account/container asks."""
    headers = answer.headers
    name = "Etag" if "Etag" in headers else "ETag" if "ETag" in headers else None
    if name is None or ctx.obj is None or ctx.container is None:
        return
    if await wanted(ctx, default):
        headers[name] = quoted(headers[name])
