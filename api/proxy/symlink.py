"""Symlinks: ``X-Symlink-Target`` objects that GET/HEAD follow, as Swift's ``symlink``.

A symlink is a zero-byte object whose sysmeta names its target
(``container/object``, URL-quoted, optionally in ``X-Symlink-Target-Account``).
GET and HEAD follow it as the caller (the target's container ACLs apply), up to
:data:`SYMLOOP_MAX` links, and answer with the target plus ``Content-Location``;
``?symlink=get`` shows the link itself with its ``X-Symlink-*`` headers. A
*static* link also pins the target's ETag (``X-Symlink-Target-Etag``, checked at
PUT and on every read: 409 on mismatch). A POST to a symlink updates the link's
metadata and answers 307 with the target as ``Location``. Container listings
show ``symlink_path`` (and ``symlink_etag``/``symlink_bytes``), which the
container server derives from the container-update ETag parameters set here.

Hooks: :func:`prepare_put` (only when the PUT carries ``X-Symlink-Target``),
:func:`follow` (only when a fetched object has the sysmeta), :func:`show`,
:func:`post_redirect` (only when the object server reports symlink sysmeta).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import check_access, container_info, load_account_level, policy_of
from nubis.api.proxy.constraints import check_account_header, check_path_header
from nubis.api.proxy.context import Info, ObjectCtx
from nubis.api.proxy.ec import Fetched
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.transfer import fetch
from nubis.common import backend as hdr

TARGET = hdr.SYMLINK_TARGET
TARGET_ACCOUNT = "x-object-sysmeta-symlink-target-account"
TARGET_ETAG = "x-object-sysmeta-symlink-target-etag"
TARGET_BYTES = "x-object-sysmeta-symlink-target-bytes"
OVERRIDE_ETAG = "x-object-sysmeta-container-update-override-etag"
#: Marks a link object versioning wrote (:mod:`objver`): it points into the reserved
#: namespace, is followed without a second ACL check and does not count as a loop
#: (Swift's ``allow-reserved-names`` and ``symloop-extend`` sysmeta).
VERSIONS_LINK = "x-object-sysmeta-versions-symlink"
RESERVED = "\x00"
SYMLOOP_MAX = 2
#: What ``/info`` announces (Swift's ``symlink`` key).
INFO = {"symloop_max": SYMLOOP_MAX, "static_links": True}
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

_FORM = "X-Symlink-Target header must be of the form <container name>/<object name>"
#: Sysmeta shown to clients (``?symlink=get``, 307s) under these names.
_SHOWN = ((TARGET, "X-Symlink-Target"), (TARGET_ACCOUNT, "X-Symlink-Target-Account"),
          (TARGET_ETAG, "X-Symlink-Target-Etag"), (TARGET_BYTES, "X-Symlink-Target-Bytes"))


def show(stored: dict[str, str], out: dict[str, str]) -> None:
    """Add the ``X-Symlink-*`` headers of a stored symlink to a response."""
    for sysmeta, name in _SHOWN:
        if sysmeta in stored:
            out[name] = stored[sysmeta]


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/")


async def prepare_put(ctx: ObjectCtx, length: int | None) -> dict[str, str]:
    """Check a symlink PUT and return the sysmeta to store with it.

    Raises:
        HTTPError: 400 for a body, a self-target or a bad ETag; 412 for a
            malformed target; 409 when a static link's target is missing or differs.
    """
    if length is None:
        first = await ctx.body.read_chunk()
        if first:
            raise HTTPError(400, "Symlink requests require a zero byte body")
    elif length:
        raise HTTPError(400, "Symlink requests require a zero byte body")
    raw = ctx.headers["x-symlink-target"]
    if urllib.parse.unquote(raw).startswith("/"):
        raise HTTPError(412, _FORM)
    container, obj = check_path_header(raw, "X-Symlink-Target")
    target = _quote(f"{container}/{obj}")
    sysmeta = {TARGET: target}
    account = ctx.account
    if "x-symlink-target-account" in ctx.headers:
        account = check_account_header(
            urllib.parse.unquote(ctx.headers["x-symlink-target-account"]), ctx.state.limits)
        sysmeta[TARGET_ACCOUNT] = _quote(account)
    if (account, container, obj) == (ctx.account, ctx.container, ctx.obj):
        raise HTTPError(400, "Symlink cannot target itself")
    etag = ctx.header("x-symlink-target-etag").strip()
    if etag.startswith('"') and etag.endswith('"') and len(etag) > 1:
        etag = etag[1:-1]
    if etag and any(c in etag for c in ';"\\'):
        raise HTTPError(400, "Bad X-Symlink-Target-Etag format")
    override = EMPTY_MD5
    if etag:
        override = await _pin(ctx, (account, container, obj), etag, sysmeta)
    elif not ctx.header("content-type"):
        ctx.headers["content-type"] = "application/symlink"
    params = [override, f"symlink_target={target}"]
    if TARGET_ACCOUNT in sysmeta:
        params.append(f"symlink_target_account={sysmeta[TARGET_ACCOUNT]}")
    if etag:
        params += [f"symlink_target_etag={etag}",
                   f"symlink_target_bytes={sysmeta[TARGET_BYTES]}"]
    sysmeta[OVERRIDE_ETAG] = "; ".join(params)
    return sysmeta


async def _pin(ctx: ObjectCtx, loc: tuple[str, str, str], etag: str,
               sysmeta: dict[str, str]) -> str:
    """HEAD a static link's target (following static links only); return the listing ETag."""
    location = f"/v1/{_quote(loc[0])}/{_quote(loc[1])}/{_quote(loc[2])}"
    got, _info, location = await _walk(ctx, loc, "HEAD", etag, location, follow_dynamic=False)
    if isinstance(got, Reply):
        if got.status == 404:
            raise HTTPError(409, "X-Symlink-Target does not exist",
                            {"Content-Location": location})
        raise HTTPError(503 if got.status >= 500 else got.status)
    headers = got.headers
    got.close()
    override = EMPTY_MD5
    stored = headers.get(OVERRIDE_ETAG)
    if stored:
        override = EMPTY_MD5 + "".join(stored.partition(";")[1:])
    elif "x-object-sysmeta-slo-etag" in headers:
        override = f"{EMPTY_MD5}; slo_etag={headers['x-object-sysmeta-slo-etag']}"
    sysmeta[TARGET_BYTES] = headers.get("x-object-sysmeta-slo-size") or \
        headers.get("content-length", "0")
    sysmeta[TARGET_ETAG] = etag
    if not ctx.header("content-type"):
        ctx.headers["content-type"] = headers.get("content-type", "application/octet-stream")
    return override


async def resolve(ctx: ObjectCtx, got: Fetched | Reply, method: str
                  ) -> Fetched | Reply:
    """Return what a segment read ``got`` stands for: itself, or its symlink's target."""
    if isinstance(got, Reply) or TARGET not in got.headers:
        return got
    try:
        return (await follow(ctx, got, method))[0]
    except HTTPError as exc:
        return Reply(exc.status)


async def follow(ctx: ObjectCtx, got: Fetched, method: str = "",
                 span: tuple[int, int | None] | None = None) -> tuple[Fetched, Info, str]:
    """Follow the link ``got`` to its final object; return it, its container, its path.

    The path is the last hop's (``/v1/<account>/<container>/<object>``, quoted), as
    Swift's ``Content-Location``; a version link (:data:`VERSIONS_LINK`) is a hop
    that does not count towards :data:`SYMLOOP_MAX`. ``span``: the bytes a GET
    will return, each hop is opened at them (see :func:`~nubis.api.proxy.transfer.fetch`).

    Raises:
        HTTPError: 409 past :data:`SYMLOOP_MAX` links or on an ETag mismatch;
            the target's status (404 with ``Content-Location``) when it fails.
    """
    target, account = got.headers[TARGET], got.headers.get(TARGET_ACCOUNT)
    etag = got.headers.get(TARGET_ETAG)
    trusted = _is_version_link(got.headers, target)
    got.close()
    location = _location(ctx, target, account)
    try:
        final, info, location = await _walk(ctx, _split(location), method or ctx.method,
                                            etag, location, follow_dynamic=True,
                                            loops=0 if trusted else 1, trusted=trusted,
                                            span=span)
    except HTTPError as exc:  # a target the caller may not read: still say where it is
        if exc.status in (401, 403):
            exc.headers.setdefault("Content-Location", location)
        raise
    if isinstance(final, Reply):
        raise HTTPError(final.status if final.status < 500 else 503,
                        headers={"Content-Location": location})
    return final, info, location


def _is_version_link(headers: dict[str, str], target: str) -> bool:
    """Return whether a link is object versioning's (it may point at reserved names)."""
    return headers.get(VERSIONS_LINK) == "true" and \
        urllib.parse.unquote(target).startswith(RESERVED)


def _location(ctx: ObjectCtx, target: str, account: str | None) -> str:
    return f"/v1/{account or _quote(ctx.account)}/{target.lstrip('/')}"


def split_location(location: str) -> tuple[str, str, str]:
    """Return ``(account, container, object)`` of a ``/v1/a/c/o`` location."""
    return _split(location)


def _split(location: str) -> tuple[str, str, str]:
    _, _, account, container, obj = location.split("/", 4)
    return (urllib.parse.unquote(account), urllib.parse.unquote(container),
            urllib.parse.unquote(obj))


async def _walk(ctx: ObjectCtx, loc: tuple[str, str, str], method: str, want: str | None,
                location: str, *, follow_dynamic: bool, loops: int = 0, trusted: bool = False,
                span: tuple[int, int | None] | None = None
                ) -> tuple[Fetched | Reply, Info, str]:
    """Open ``loc`` as the caller and follow links from there (Swift's recursion).

    ``trusted``: ``loc`` is a version link's target (the proxy's own reserved
    name, read without a second ACL check). ``span``: open each hop at these bytes.
    """
    while True:
        info, got = await _open(ctx, loc, method, trusted, span)
        if isinstance(got, Reply):
            return got, info, location
        target = got.headers.get(TARGET)
        pinned = got.headers.get(TARGET_ETAG)
        if target is None or not (pinned or follow_dynamic):
            final = got.headers.get("etag", "").strip('"')
            if final and want and want != final:
                got.close()
                raise HTTPError(409, f"Object Etag {final!r} does not match "
                                     f"X-Symlink-Target-Etag header {want!r}",
                                {"Content-Location": location})
            return got, info, location
        got.close()
        found = pinned or got.headers.get("etag", "").strip('"')
        if want and want != found:
            raise HTTPError(409, "X-Symlink-Target-Etag headers do not match",
                            {"Content-Location": location})
        trusted = _is_version_link(got.headers, target)
        if loops >= SYMLOOP_MAX:
            raise HTTPError(409, "Too many levels of symbolic links, maximum allowed is "
                                 f"{SYMLOOP_MAX}")
        if not trusted:
            loops += 1
        want = pinned
        acct = got.headers.get(TARGET_ACCOUNT) or _quote(loc[0])
        location = f"/v1/{acct}/{target.lstrip('/')}"
        loc = _split(location)


async def _open(ctx: ObjectCtx, loc: tuple[str, str, str], method: str, trusted: bool,
                span: tuple[int, int | None] | None = None) -> tuple[Info, Fetched | Reply]:
    """GET/HEAD one object as the caller would (its container's read ACL applies).

    A ``trusted`` (version link's) target is read as the proxy: the link's own
    container already admitted the caller.
    """
    account, container, obj = loc
    sub = ObjectCtx.of(ctx, account=account, container=container, obj=obj, method=method)
    info = await container_info(ctx.state, account, container)
    if not trusted:
        await load_account_level(sub, account)
        check_access(sub, info.headers.get("x-container-read"))
    if not info.exists:
        return info, Reply(404 if info.status == 404 else 503)
    return info, await fetch(sub, account, container, obj, policy_of(info), method, span)


def post_redirect(ctx: ObjectCtx, replies: list[Any]) -> HTTPError | None:
    """Return the 307 for a POST that landed on a symlink (the object server tells)."""
    for reply in replies:
        headers = getattr(reply, "headers", {})
        target = headers.get(TARGET)
        if target and 200 <= reply.status < 300:
            out = {"Location": _location(ctx, target, headers.get(TARGET_ACCOUNT))}
            if TARGET_ETAG in headers:
                out["X-Symlink-Target-Etag"] = headers[TARGET_ETAG]
            return HTTPError(307, "The requested POST was applied to a symlink. POST "
                                  "directly to the target to apply requested metadata.", out)
    return None
