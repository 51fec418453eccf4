"""Container and account quotas, as Swift's ``container_quotas``/``account_quotas``.

A container's ``X-Container-Meta-Quota-Bytes`` / ``-Quota-Count`` and an
account's ``X-Account-Meta-Quota-Bytes`` / ``-Quota-Count`` (set by a reseller
admin) cap what object PUTs (and copies) may add: over the cap the PUT is
answered ``413 Upload exceeds quota.``. Only containers/accounts that carry a
quota pay for the check, which reads fresh usage (not the cached info).
"""

from __future__ import annotations

from collections.abc import Mapping

from nubis.api.proxy import objver
from nubis.api.proxy.base import account_info, container_info
from nubis.api.proxy.context import Info, ObjectCtx
from nubis.api.proxy.errors import HTTPError

_C_BYTES = "x-container-meta-quota-bytes"
_C_COUNT = "x-container-meta-quota-count"
_A_BYTES = "x-account-meta-quota-bytes"
_A_COUNT = "x-account-meta-quota-count"


def check_headers(headers: Mapping[str, str], target: str) -> None:
    """Refuse a container/account PUT/POST whose quota values are not integers (400)."""
    for kind in ("bytes", "count"):
        value = headers.get(f"x-{target}-meta-quota-{kind}")
        if value and not value.isdigit():
            raise HTTPError(400, f"Invalid {kind} quota.")


async def check_put(ctx: ObjectCtx, info: Info, length: int | None) -> None:
    """Refuse an object PUT of ``length`` bytes that would exceed a quota (413)."""
    if _C_BYTES in info.headers or _C_COUNT in info.headers:
        ctx.state.forget_info(ctx.account, ctx.container)
        fresh = await container_info(ctx.state, ctx.account, ctx.container)
        headers = dict(fresh.headers)
        vcont = objver.vcont_of(fresh)
        if vcont:  # object versions count against the container's quota (as in Swift)
            ctx.state.forget_info(ctx.account, vcont)
            vinfo = await container_info(ctx.state, ctx.account, vcont)
            headers["x-container-bytes-used"] = str(
                int(headers.get("x-container-bytes-used", "0") or 0)
                + int(vinfo.headers.get("x-container-bytes-used", "0") or 0))
        _check(headers, _C_BYTES, _C_COUNT, "x-container-bytes-used",
               "x-container-object-count", length)
    ainfo = await account_info(ctx.state, ctx.account)
    if _A_BYTES in ainfo.headers or _A_COUNT in ainfo.headers:
        ctx.state.forget_info(ctx.account)
        fresh = await account_info(ctx.state, ctx.account)
        _check(fresh.headers, _A_BYTES, _A_COUNT, "x-account-bytes-used",
               "x-account-object-count", length)


def _check(headers: Mapping[str, str], bytes_key: str, count_key: str, used_key: str,
           objects_key: str, length: int | None) -> None:
    quota = headers.get(bytes_key, "")
    if quota.isdigit() and int(quota) < _int(headers.get(used_key)) + (length or 0):
        raise HTTPError(413, "Upload exceeds quota.")
    quota = headers.get(count_key, "")
    if quota.isdigit() and int(quota) < _int(headers.get(objects_key)) + 1:
        raise HTTPError(413, "Upload exceeds quota.")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
