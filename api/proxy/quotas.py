"""Container and account quotas, as Swift's ``container_quotas``/``account_quotas``.

A container's ``X-Container-Meta-Quota-Bytes`` / ``-Quota-Count`` and an
account's quotas cap what object PUTs (and copies) may add: over the cap the PUT
is answered ``413 Upload exceeds quota.``. Account quotas are set by a reseller
admin only: ``X-Account-Quota-Bytes`` / ``-Quota-Count`` and per storage policy
``X-Account-Quota-Bytes-Policy-<name>`` / ``-Quota-Count-Policy-<name>`` (kept as
account system metadata, shown to every reader of the account, removed with
``X-Remove-...`` or an empty value), plus the legacy
``X-Account-Meta-Quota-Bytes``. Reseller admins' own PUTs are not limited. Only
containers/accounts that carry a quota pay for the check, which reads fresh usage
(not the cached info).
"""

from __future__ import annotations

from collections.abc import Mapping

from nubis.api.proxy import objver
from nubis.api.proxy.base import account_info, container_info, policy_of
from nubis.api.proxy.context import Ctx, Info, ObjectCtx
from nubis.api.proxy.errors import HTTPError

_C_BYTES = "x-container-meta-quota-bytes"
_C_COUNT = "x-container-meta-quota-count"
_A_BYTES = "x-account-meta-quota-bytes"
_A_COUNT = "x-account-meta-quota-count"
_SYSMETA = "x-account-sysmeta-"
_KINDS = ("quota-bytes", "quota-count")


def check_headers(headers: Mapping[str, str], target: str) -> None:
    """Refuse a container/account PUT/POST whose quota values are not integers (400)."""
    for kind in ("bytes", "count"):
        value = headers.get(f"x-{target}-meta-quota-{kind}")
        if value and not value.isdigit():
            raise HTTPError(400, f"Invalid {kind} quota.")


def account_quota_headers(ctx: Ctx) -> dict[str, str]:
    """Return the account sysmeta an account POST sets for quotas (Swift's account_quotas).

    Raises:
        HTTPError: 403 when anyone but a reseller admin sets or removes a quota,
            400 when a value is not a non-negative integer.
    """
    new: dict[str, str] = {}
    headers = ctx.headers
    for kind in _KINDS:
        value = headers.get(f"x-account-{kind}")
        if kind == "quota-bytes" and not value:  # the legacy names count too
            if headers.get(f"x-remove-account-meta-{kind}"):
                value = ""
            elif _A_BYTES in headers:
                value = headers[_A_BYTES]
        if headers.get(f"x-remove-account-{kind}"):
            value = ""
        if value is not None:
            new[f"{_SYSMETA}{kind}"] = value
        for idx, name in ctx.state.policy_names.items():
            tail = f"account-{kind}-policy-{name.lower()}"
            value = "" if headers.get(f"x-remove-{tail}") else headers.get(f"x-{tail}")
            if value is not None:
                new[f"{_SYSMETA}{kind}-policy-{idx}"] = value
    if not new:
        return new
    if ctx.identity is None or not ctx.identity.reseller_admin:
        raise HTTPError(403)
    if any(v and not v.isdigit() for v in new.values()):
        raise HTTPError(400)
    return new


def show_account_quotas(headers: Mapping[str, str], names: Mapping[int, str],
                        out: dict[str, str]) -> None:
    """Add ``X-Account-Quota-*`` headers (readers see quotas) from account sysmeta."""
    for kind in _KINDS:
        value = headers.get(f"{_SYSMETA}{kind}")
        title = kind.title()
        if value:
            out[f"X-Account-{title}"] = value
        for idx, name in names.items():
            value = headers.get(f"{_SYSMETA}{kind}-policy-{idx}")
            if value:
                out[f"X-Account-{title}-Policy-{name}"] = value


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
    if any(k.startswith((_A_BYTES, _A_COUNT, _SYSMETA + "quota-")) for k in ainfo.headers) \
            and (ctx.identity is None or not ctx.identity.reseller_admin):
        ctx.state.forget_info(ctx.account)
        usage = (await account_info(ctx.state, ctx.account)).headers
        limits = {**usage,  # the sysmeta quotas win over the legacy metadata
                  _A_BYTES: usage.get(_SYSMETA + "quota-bytes", usage.get(_A_BYTES, "")),
                  _A_COUNT: usage.get(_SYSMETA + "quota-count", usage.get(_A_COUNT, ""))}
        _check(limits, _A_BYTES, _A_COUNT, "x-account-bytes-used", "x-account-object-count",
               length)
        _check_policy(ctx, usage, policy_of(info), length)


def _check_policy(ctx: ObjectCtx, headers: Mapping[str, str], policy: int,
                  length: int | None) -> None:
    """Apply the account's quotas for the container's storage policy."""
    name = ctx.state.policy_names.get(policy)
    if name is None:
        return
    used = f"x-account-storage-policy-{name.lower()}-"
    try:
        _check(headers, f"{_SYSMETA}quota-bytes-policy-{policy}",
               f"{_SYSMETA}quota-count-policy-{policy}", used + "bytes-used",
               used + "object-count", length)
    except HTTPError:
        raise HTTPError(413, "Upload exceeds policy quota.") from None


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
