"""Legacy object versioning: ``X-Versions-Location`` (stack) and ``X-History-Location``.

As Swift's ``versioned_writes`` middleware (legacy mode): a container names a
versions container in sysmeta; an object PUT (plain, copy, SLO manifest) first
copies the object it overwrites into that container as
``<len(name) as 3 hex digits><name>/<timestamp>``. A DELETE in *stack* mode
restores the newest saved version in place of the object (skipping delete
markers as Swift does); in *history* mode it saves the current object plus a
delete marker, then deletes. Copies are made by the proxy on the caller's
behalf (pre-authorised), with the stored form of the source: SLO manifests and
DLO manifests are versioned as manifests.

Nothing here runs unless a container's info carries the sysmeta (the hooks
return at once otherwise), so plain PUT/DELETE pay one dictionary lookup.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import container_info, policy_of
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.transfer import backend_listing, delete_object, fetch, store

SYSMETA_LOCATION = "x-container-sysmeta-versions-location"
SYSMETA_MODE = "x-container-sysmeta-versions-mode"
CLIENT_VERSIONS = "x-versions-location"
CLIENT_HISTORY = "x-history-location"
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
#: What ``/info`` announces (Swift's ``versioned_writes`` key).
INFO = {"allowed_flags": [CLIENT_VERSIONS, CLIENT_HISTORY]}

#: Headers of a stored object carried onto a version (besides user/system metadata).
_CARRIED = ("content-type", "content-encoding", "content-disposition", "x-delete-at",
            "x-object-manifest", "x-static-large-object", "etag")
_CARRIED_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")
_REMOVE = ("x-remove-versions-location", "x-remove-history-location")


# --- container side ----------------------------------------------------------

def container_headers(headers: dict[str, str]) -> dict[str, str]:
    """Return the sysmeta a container PUT/POST sets or clears (empty: no change).

    Raises:
        HTTPError: 400 when both locations are given, 412 for a bad container name.
    """
    versions = headers.get(CLIENT_VERSIONS)
    history = headers.get(CLIENT_HISTORY)
    if versions is not None and history is not None:
        if not history:
            history = None
        elif versions:
            raise HTTPError(400, f"Only one of {CLIENT_VERSIONS} or {CLIENT_HISTORY} "
                                 "may be specified")
        else:
            versions = None
    remove = any(headers.get(h) for h in _REMOVE)
    if versions is not None or history is not None:
        value, mode = (versions, "stack") if versions is not None else (history, "history")
        assert value is not None
        if value:
            if "/" in value:
                raise HTTPError(412, "Container name cannot contain slashes")
            return {SYSMETA_LOCATION: value, SYSMETA_MODE: mode, CLIENT_VERSIONS: ""}
        remove = True
    if remove:
        return {SYSMETA_LOCATION: "", SYSMETA_MODE: "", CLIENT_VERSIONS: ""}
    return {}


def show(backend: dict[str, str], out: dict[str, str]) -> None:
    """Add ``X-Versions-Location`` or ``X-History-Location`` to a container's answer."""
    location = backend.get(SYSMETA_LOCATION)
    if location:
        name = "X-History-Location" if backend.get(SYSMETA_MODE) == "history" else \
            "X-Versions-Location"
        out[name] = location


def _location(info: Info) -> tuple[str, str] | None:
    """Return ``(versions container, mode)`` of a container, or None."""
    location = info.headers.get(SYSMETA_LOCATION)
    if not location:
        return None
    try:  # header values travel as latin-1 text: undo that, then the %-quoting
        raw = urllib.parse.unquote_to_bytes(location.encode("latin-1"))
        name = raw.decode("utf-8").split("/")[0]
    except UnicodeError:
        name = urllib.parse.unquote(location).split("/")[0]
    return name, info.headers.get(SYSMETA_MODE) or "stack"


# --- object side -------------------------------------------------------------

def version_prefix(obj: str) -> str:
    """Return the listing prefix of ``obj``'s versions (``%03x`` of its UTF-8 length)."""
    return f"{len(obj.encode('utf-8')):03x}{obj}/"


def _internal(ts: str) -> str:
    """Return Swift's internal form of an ``X-Timestamp`` value."""
    base, _, offset = ts.partition("_")
    out = f"{float(base):016.5f}"
    return f"{out}_{int(offset, 16):016x}" if offset else out


async def before_put(ctx: ObjectCtx, info: Info) -> None:
    """Save the object a PUT is about to overwrite (when versioning is on)."""
    where = _location(info)
    if where is not None:
        await _save_current(ctx, info, where[0])


async def delete(ctx: ObjectCtx, info: Info) -> Resp | None:
    """Answer a DELETE of a versioned container's object; None when not versioned."""
    where = _location(info)
    if where is None:
        return None
    vcont, mode = where
    if mode == "history":
        await _save_current(ctx, info, vcont)
        await _put_marker(ctx, vcont)
        return await delete_object(ctx, info)
    return await _delete_stack(ctx, info, vcont)


def _check(status: int) -> None:
    """Raise Swift's answer for a failed internal step (412 for client errors, else 503)."""
    if 200 <= status < 300:
        return
    raise HTTPError(412 if 400 <= status < 500 else 503)


async def _save_current(ctx: ObjectCtx, info: Info, vcont: str) -> None:
    """Copy the current object (if any) into ``vcont`` under its version name."""
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), "GET")
    if isinstance(got, Reply):
        if got.status == 404:
            return
        _check(got.status)
        return
    ts = got.headers.get("x-timestamp") or str(time.time())
    name = version_prefix(ctx.obj) + _internal(ts)
    await _copy(ctx, got, vcont, name)


async def _copy(ctx: ObjectCtx, got: Any, container: str, obj: str) -> None:
    """Store an open object GET (its stored form and metadata) at ``container/obj``."""
    dinfo = await container_info(ctx.state, ctx.account, container)
    if not dinfo.exists:
        got.close()
        _check(dinfo.status)
    meta = {k: v for k, v in got.headers.items()
            if k in _CARRIED or k.startswith(_CARRIED_PREFIXES)}
    etag = meta.pop("etag", "").strip('"') or None
    length = int(got.headers.get("content-length", "0"))
    try:
        await store(ctx, dinfo, container, obj, meta, got.iter_body(), length, etag)
    except HTTPError as exc:
        _check(exc.status)


async def _put_marker(ctx: ObjectCtx, vcont: str) -> None:
    """Write a delete marker for the object into ``vcont`` (history mode)."""
    dinfo = await container_info(ctx.state, ctx.account, vcont)
    if not dinfo.exists:
        _check(dinfo.status)
    name = version_prefix(ctx.obj) + _internal(f"{time.time():.5f}")
    try:
        await store(ctx, dinfo, vcont, name, {"content-type": DELETE_MARKER}, _empty(), 0,
                    None)
    except HTTPError as exc:
        _check(exc.status)


async def _empty() -> Any:
    """Yield nothing (a zero-byte body)."""
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _versions(ctx: ObjectCtx, vcont: str) -> list[dict[str, Any]]:
    """Return the object's saved versions, newest first."""
    prefix = version_prefix(ctx.obj)
    out: list[dict[str, Any]] = []
    marker = ""
    while True:
        page = await backend_listing(ctx, vcont, {"prefix": prefix, "marker": marker,
                                                 "reverse": "on", "format": "json"})
        if not page:
            return out
        out.extend(page)
        marker = str(page[-1]["name"])


async def _restore(ctx: ObjectCtx, info: Info, vcont: str, vname: str) -> bool:
    """Copy version ``vname`` back onto the object; False when it vanished."""
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    got = await fetch(ctx, ctx.account, vcont, vname, policy_of(vinfo), "GET")
    if isinstance(got, Reply):
        if got.status == 404:
            return False
        _check(got.status)
        return False
    await _copy(ctx, got, ctx.container, ctx.obj)
    return True


async def _delete_version(ctx: ObjectCtx, vcont: str, vname: str) -> Resp:
    """Delete one object of the versions container (as the proxy)."""
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    sub = ObjectCtx.of(ctx, container=vcont, obj=vname)
    return await delete_object(sub, vinfo)


async def _delete_stack(ctx: ObjectCtx, info: Info, vcont: str) -> Resp:
    """Stack mode: delete the object and pop its newest saved version in its place."""
    items = await _versions(ctx, vcont)
    for i, item in enumerate(items):
        name = str(item["name"])
        if item.get("content_type") == DELETE_MARKER:
            head = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info),
                               "HEAD")
            if not isinstance(head, Reply):
                head.close()
                break  # data over the marker: delete just that data
            if head.status != 404:
                _check(head.status)
                break
            await _restore_older(ctx, info, vcont, items[i + 1:])
            return await _delete_version(ctx, vcont, name)
        if not await _restore(ctx, info, vcont, name):
            continue
        return await _delete_version(ctx, vcont, name)
    return await delete_object(ctx, info)


async def _restore_older(ctx: ObjectCtx, info: Info, vcont: str,
                         older: list[dict[str, Any]]) -> None:
    """Restore the newest data version below a delete marker (up to the next marker)."""
    for item in older:
        if item.get("content_type") == DELETE_MARKER:
            return
        name = str(item["name"])
        if not await _restore(ctx, info, vcont, name):
            continue
        try:
            await _delete_version(ctx, vcont, name)
        except HTTPError as exc:
            if exc.status != 404:
                _check(exc.status)
        return
