r"""Object versioning (new style): ``X-Versions-Enabled``, ``?versions``, ``?version-id``.

As Swift's ``object_versioning`` middleware. Enabling versioning on a container
creates a hidden container ``\\x00versions\\x00<container>`` in the reserved
namespace (same storage policy) and links the two in container sysmeta. While
enabled, a PUT stores the data in the hidden container as
``\\x00<object>\\x00<inverted timestamp>`` and writes a *static symlink* to it in
the user's container (marked with object sysmeta); the timestamp is the
version id (``X-Object-Version-Id``). A DELETE writes a zero-byte delete marker
version and removes the link. Objects written while versioning was never on or
off are "null" versions (plain objects); they are moved aside on the next
versioned write. ``?version-id=`` reads, deletes or (PUT) re-links one version.
:mod:`nubis.api.proxy.container` shows the container side (listings with
``version_id``/``is_latest``, deletion of the hidden container).

Version ids are Swift timestamps, so another API (S3 versioning) can keep its
versions here too: :func:`version_object` and :func:`parse_version_object`
map ids to stored names. Nothing here runs for a container without the sysmeta
(one dictionary lookup on the plain paths). Reserved names reach the storage
servers only from the proxy itself (``X-Backend-Allow-Reserved-Names``); client
paths holding NUL are refused before routing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nubis.api.proxy import putter, symlink
from nubis.api.proxy.backend import Reply, best_status, quorum_size
from nubis.api.proxy.base import (
    check_access,
    container_info,
    new_timestamp,
    policy_of,
    timestamp_headers,
)
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import is_true
from nubis.api.proxy.transfer import delete_object, fetch, store, to_all
from nubis.common import backend as hdr

RESERVED = "\x00"
CLIENT_ENABLED = "x-versions-enabled"
SYSMETA_ENABLED = "x-container-sysmeta-versions-enabled"
SYSMETA_CONT = "x-container-sysmeta-versions-container"
SYSMETA_SYMLINK = symlink.VERSIONS_LINK
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
ALLOW = {hdr.X_ALLOW_RESERVED: "true"}
#: What ``/info`` announces (Swift's ``object_versioning`` key).
INFO: dict[str, Any] = {}

_TICKS = 100_000
_MAX_RAW = 10 ** 15 - 1
_MAX_OFFSET = 16 ** 16 - 1
#: Headers of a stored object carried onto a moved-aside null version.
_CARRIED = ("content-type", "content-encoding", "content-disposition",
            "x-object-manifest", "x-static-large-object", "etag")
_CARRIED_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")

#: Reads an object of a container the caller may use (``obj.read_object``).
Reader = Callable[[ObjectCtx, Info], Awaitable[Resp]]


# --- names -------------------------------------------------------------------

def parse_ts(value: str) -> tuple[int, int]:
    """Return ``(ticks, offset)`` of a timestamp text.

    Raises:
        ValueError: not a timestamp.
    """
    base, _, off = value.strip().partition("_")
    seconds = float(base)
    if not seconds >= 0:
        raise ValueError(value)
    ticks = round(seconds * _TICKS)
    offset = int(off, 16) if off else 0
    if ticks > _MAX_RAW or not 0 <= offset <= _MAX_OFFSET:
        raise ValueError(value)
    return ticks, offset


def format_ts(ticks: int, offset: int = 0) -> str:
    """Return Swift's internal timestamp text."""
    sec, frac = divmod(ticks, _TICKS)
    text = f"{sec:010d}.{frac:05d}"
    return f"{text}_{offset:016x}" if offset else text


def _invert(ticks: int, offset: int) -> str:
    if not offset:
        return format_ts(_MAX_RAW - ticks)
    return format_ts(_MAX_RAW - ticks - 1, _MAX_OFFSET + 1 - offset)


def versions_container(container: str) -> str:
    """Return the hidden container holding ``container``'s versions."""
    return f"{RESERVED}versions{RESERVED}{container}"


def version_object(obj: str, version_id: str) -> str:
    """Return the stored name of version ``version_id`` of ``obj``."""
    return f"{RESERVED}{obj}{RESERVED}{_invert(*parse_ts(version_id))}"


def parse_version_object(name: str) -> tuple[str, str | None]:
    """Return ``(object, version id)`` of a stored version name (id None: not one)."""
    parts = name.split(RESERVED)
    if len(parts) != 3 or parts[0]:
        return name, None
    try:
        return parts[1], _invert(*parse_ts(parts[2]))
    except ValueError:
        return name, None


def valid_id(version_id: str) -> bool:
    """Tell whether ``version_id`` is a version id (a timestamp; not ``null``)."""
    try:
        parse_ts(version_id)
    except ValueError:
        return False
    return True


def validate(version_id: str, allow_null: bool = True) -> None:
    """Raise 400 for a version id that is not a timestamp (or ``null``)."""
    if version_id == "null" and allow_null:
        return
    if not valid_id(version_id):
        raise HTTPError(400, "Invalid version parameter")


def _version_id(ts: str) -> str:
    """Return the version id of a timestamp (its offset dropped)."""
    return format_ts(parse_ts(ts)[0])


def enabled(info: Info) -> bool:
    """Return whether versioning is currently on for a container."""
    return is_true(info.headers.get(SYSMETA_ENABLED))


def vcont_of(info: Info) -> str:
    """Return a container's versions container ("" when never versioned)."""
    value = info.headers.get(SYSMETA_CONT, "")
    return urllib.parse.unquote(value).split("/")[0] if value else ""


async def _vinfo(ctx: ObjectCtx, vcont: str) -> Info:
    info = await container_info(ctx.state, ctx.account, vcont)
    if info.status == 404:
        raise HTTPError(500, "The versions container does not exist. You may want to "
                             "re-enable object versioning.")
    if not info.exists:
        raise HTTPError(503)
    return info


def _check(status: int, body: str | None = None) -> None:
    """Raise Swift's answer for a failed internal step (404 → 412, 5xx → 503)."""
    if 200 <= status < 300:
        return
    if status == 404:
        raise HTTPError(412)
    raise HTTPError(status if 400 <= status < 500 else 503, body)


# --- writes ------------------------------------------------------------------

async def put(ctx: ObjectCtx, info: Info, meta: dict[str, str], source: putter.Source,
              length: int | None, etag: str | None,
              extra: dict[str, str] | None = None,
              footer: putter.Footer | None = None) -> Resp:
    """Store a PUT of a versioned container: data as a version, a static link as the object.

    ``footer``'s metadata goes with the version's data and, once known, the link.
    """
    vcont = vcont_of(info)
    vinfo = await _vinfo(ctx, vcont)
    await _copy_current(ctx, info, vcont, vinfo)
    ts = new_timestamp()
    vname = version_object(ctx.obj, ts)
    data_meta = {k: v for k, v in meta.items() if k != "x-delete-at"}
    told: dict[str, str] = {}

    def told_footer() -> Mapping[str, str]:
        assert footer is not None
        told.update(footer())
        return told

    resp = await store(ctx, vinfo, vcont, vname, data_meta, source, length, etag,
                       {**(extra or {}), **ALLOW}, ts=ts,
                       footer=told_footer if footer is not None else None)
    meta = {**meta, **told}
    put_etag = resp.headers.get("Etag", "").strip('"')
    lower = {k.lower(): v for k, v in (extra or {}).items()}
    size = lower.get("x-object-sysmeta-slo-size")
    if size is None:
        size = str(length if length is not None else await _stored_size(ctx, vinfo, vcont,
                                                                        vname))
    ctype = data_meta.get("content-type", "application/octet-stream").split(";")[0]
    slo_etag = lower.get("x-object-sysmeta-slo-etag")
    if symlink.TARGET_ETAG in lower:
        # A static link: as Swift (the client's X-Symlink-Target-Etag is checked again
        # on the link's own PUT) its version link pins the final target's ETag and size.
        put_etag, size = lower[symlink.TARGET_ETAG], lower[symlink.TARGET_BYTES]
        slo_etag = _param(lower.get(symlink.OVERRIDE_ETAG, ""), "slo_etag")
    return await _link(ctx, info, meta, vcont, vname, ts, put_etag, size, ctype, slo_etag)


def _param(value: str, name: str) -> str | None:
    """Return parameter ``name`` of a ``value; k=v; ...`` header (None when absent)."""
    for part in value.split(";")[1:]:
        key, _, found = part.strip().partition("=")
        if key == name:
            return found
    return None


async def _stored_size(ctx: ObjectCtx, vinfo: Info, vcont: str, vname: str) -> int:
    got = await fetch(ctx, ctx.account, vcont, vname, policy_of(vinfo), "HEAD")
    if isinstance(got, Reply):
        _check(got.status)
        return 0
    got.close()
    return int(got.headers.get("content-length", "0"))


async def _link(ctx: ObjectCtx, info: Info, meta: dict[str, str], vcont: str, vname: str,
                ts: str, etag: str, size: str, ctype: str, slo_etag: str | None) -> Resp:
    """Write the static symlink that makes version ``vname`` the current object."""
    target = urllib.parse.quote(f"{vcont}/{vname}")
    override = symlink.EMPTY_MD5 + (f"; slo_etag={slo_etag}" if slo_etag else "")
    link = {symlink.TARGET: target, symlink.TARGET_ETAG: etag, symlink.TARGET_BYTES: size,
            SYSMETA_SYMLINK: "true",
            symlink.OVERRIDE_ETAG: f"{override}; symlink_target={target}; "
                                   f"symlink_target_etag={etag}; symlink_target_bytes={size}"}
    keep = {k: v for k, v in meta.items()
            if k not in ("x-object-manifest", "x-static-large-object", "etag")}
    keep["content-type"] = ctype
    ticks, _ = parse_ts(ts)
    await store(ctx, info, ctx.container, ctx.obj, keep, _empty(), 0, None, link,
                ts=format_ts(ticks, 1))
    resp = Resp(201, {"Etag": etag, "Content-Type": "text/html; charset=UTF-8",
                      "X-Object-Version-Id": _version_id(ts)})
    resp.headers.update(_last_modified(ts))
    return resp


def _last_modified(ts: str) -> dict[str, str]:
    return dict(timestamp_headers({"x-timestamp": ts}))


async def _empty() -> Any:
    """Yield nothing (a zero-byte body)."""
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _copy_current(ctx: ObjectCtx, info: Info, vcont: str, vinfo: Info) -> None:
    """Move a current null version (a plain object) aside into the versions container."""
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), "GET")
    if isinstance(got, Reply):
        if got.status != 404:
            _check(got.status)
        return
    if got.headers.get(SYSMETA_SYMLINK) == "true":
        got.close()
        return
    ts = got.headers.get("x-backend-timestamp") or got.headers.get("x-timestamp") or \
        new_timestamp()
    meta = {k: v for k, v in got.headers.items()
            if k in _CARRIED or k.startswith(_CARRIED_PREFIXES)}
    etag = meta.pop("etag", "").strip('"') or None
    length = int(got.headers.get("content-length", "0"))
    await store(ctx, vinfo, vcont, version_object(ctx.obj, _version_id(ts)), meta,
                got.iter_body(), length, etag, ALLOW, ts=ts)


async def delete(ctx: ObjectCtx, info: Info) -> Resp:
    """DELETE in an enabled container: move the data aside, write a marker, drop the link."""
    vcont = vcont_of(info)
    vinfo = await _vinfo(ctx, vcont)
    await _copy_current(ctx, info, vcont, vinfo)
    ts = new_timestamp()
    await store(ctx, vinfo, vcont, version_object(ctx.obj, ts),
                {"content-type": DELETE_MARKER}, _empty(), 0, None, ALLOW, ts=ts)
    replies = await to_all(ctx, info, "DELETE", {})
    status = best_status(replies, quorum_size(len(replies)))
    if status >= 300 and status != 404:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204 if status != 404 else 404,
                {"Content-Type": "text/html; charset=UTF-8",
                 "X-Object-Version-Id": _version_id(ts)})


async def post(ctx: ObjectCtx, info: Info, replies: list[Any],
               meta: dict[str, str]) -> bool:
    """Apply a POST that landed on a version link to the version; False if not one."""
    for reply in replies:
        headers = getattr(reply, "headers", {})
        if headers.get(SYSMETA_SYMLINK) == "true" and 200 <= reply.status < 300:
            target = urllib.parse.unquote(headers.get(symlink.TARGET, ""))
            vcont, _, vname = target.partition("/")
            if vcont != vcont_of(info):
                return False
            vinfo = await _vinfo(ctx, vcont)
            sub = ObjectCtx.of(ctx, container=vcont, obj=vname)
            keep = {k: v for k, v in meta.items() if k != "x-delete-at"}
            out = await to_all(sub, vinfo, "POST", {**keep, **ALLOW})
            _check(best_status(out, quorum_size(len(out))))
            return True
    return False


# --- ?version-id -------------------------------------------------------------

def check_version_request(ctx: ObjectCtx, info: Info, version_id: str) -> str:
    """Validate a ``?version-id`` request; return the versions container ("" for null)."""
    if ctx.method == "POST":
        raise HTTPError(400, "POST to a specific version is not allowed")
    vcont = vcont_of(info)
    if not vcont and version_id != "null":
        raise HTTPError(400, "version-aware operations require that the container is "
                             "versioned")
    validate(version_id)
    return vcont


async def read_version(ctx: ObjectCtx, info: Info, version_id: str, read: Reader) -> Resp:
    """Answer GET/HEAD ``?version-id``."""
    vcont = check_version_request(ctx, info, version_id)
    if version_id == "null":
        resp = await read(ctx, info)
        if resp.headers.get("X-Object-Version-Id", "null") != "null":
            raise HTTPError(404)  # the current object is a real version
        resp.headers["X-Object-Version-Id"] = "null"
        return resp
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    sub = ObjectCtx.of(ctx, container=vcont, obj=version_object(ctx.obj, version_id))
    check_access(sub, None)  # versions are the owner's (container ACLs do not reach them)
    try:
        resp = await read(sub, vinfo)
    except HTTPError as exc:
        if exc.status == 404:
            raise HTTPError(404) from None
        raise
    if resp.headers.get("Content-Type") == DELETE_MARKER:
        raise HTTPError(404, headers={"X-Object-Version-Id": version_id,
                                      "Content-Type": DELETE_MARKER})
    resp.headers["X-Object-Version-Id"] = version_id
    return resp


async def delete_version(ctx: ObjectCtx, info: Info, version_id: str) -> Resp:
    """Answer DELETE ``?version-id`` (no marker; the link goes too if it is the current)."""
    vcont = check_version_request(ctx, info, version_id)
    if version_id == "null":
        return await delete_object(ctx, info)
    check_access(ObjectCtx.of(ctx, container=versions_container(ctx.container)), None)
    current = await _current_target(ctx, info)
    vname = version_object(ctx.obj, version_id)
    resp_version = "null"
    if current is not None and current == f"{vcont}/{vname}":
        replies = await to_all(ctx, info, "DELETE", {})
        status = best_status(replies, quorum_size(len(replies)))
        if status != 404:
            _check(status)
    elif current is not None:
        resp_version = parse_version_object(current.partition("/")[2])[1] or "null"
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    sub = ObjectCtx.of(ctx, container=vcont, obj=vname)
    try:
        resp = await delete_object(sub, vinfo, ALLOW) if vinfo.exists else Resp(204)
    except HTTPError as exc:
        if exc.status != 404:
            raise
        resp = Resp(404)
    resp.headers.update({"X-Object-Version-Id": version_id,
                         "X-Object-Current-Version-Id": resp_version,
                         "Content-Type": "text/html; charset=UTF-8"})
    if resp.status == 404:
        raise HTTPError(404, headers=resp.headers)
    return resp


async def _current_target(ctx: ObjectCtx, info: Info) -> str | None:
    """Return ``vcont/vname`` the current link points at (None: no object or a null one)."""
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), "HEAD")
    if isinstance(got, Reply):
        if got.status != 404:
            _check(got.status)
        return None
    got.close()
    if got.headers.get(SYSMETA_SYMLINK) != "true":
        return None
    return urllib.parse.unquote(got.headers.get(symlink.TARGET, ""))


async def put_version(ctx: ObjectCtx, info: Info, version_id: str) -> Resp:
    """Answer PUT ``?version-id``: make that version the current object again."""
    check_version_request(ctx, info, version_id)
    validate(version_id, allow_null=False)
    if ctx.header("transfer-encoding").lower() == "chunked":
        if await ctx.body.read_chunk():
            raise HTTPError(400, "PUT version-id requests require a zero byte body")
    elif "content-length" not in ctx.headers:
        raise HTTPError(411)
    elif ctx.headers["content-length"].strip() not in ("0", ""):
        raise HTTPError(400, "PUT version-id requests require a zero byte body")
    vcont = vcont_of(info)
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    vname = version_object(ctx.obj, version_id)
    got = await fetch(ctx, ctx.account, vcont, vname, policy_of(vinfo), "HEAD") \
        if vinfo.exists else Reply(404)
    if isinstance(got, Reply):
        if got.status == 404:
            if vinfo.exists:
                raise HTTPError(404, "The specified version does not exist")
            raise HTTPError(500, "The versions container does not exist. You may want to "
                                 "re-enable object versioning.")
        _check(got.status)
        raise HTTPError(503)
    got.close()
    h = got.headers
    size = h.get("x-object-sysmeta-slo-size") or h.get("content-length", "0")
    meta = {k: v for k, v in ctx.headers.items() if k.startswith("x-object-meta-")}
    for k in ("content-disposition", "content-encoding"):
        if k in ctx.headers:
            meta[k] = ctx.headers[k]
    ts = new_timestamp()
    resp = await _link(ctx, info, meta, vcont, vname, ts, h.get("etag", "").strip('"'), size,
                       h.get("content-type", "application/octet-stream"),
                       h.get("x-object-sysmeta-slo-etag"))
    resp.headers["X-Object-Version-Id"] = version_id
    return resp


# --- reads of the current object ---------------------------------------------

def content_location(info: Info, ctx: ObjectCtx, location: str) -> str:
    """Return the ``Content-Location`` of a read of ``ctx`` that ended at ``location``.

    A version in the container's own versions container shows as
    ``/v1/<account>/<container>/<object>?version-id=<id>`` (Swift names the
    requested object there, even when a symlink led to another one).
    """
    vcont = vcont_of(info)
    if not vcont or not location.startswith("/v1/"):
        return location
    account, container, vname = symlink.split_location(location)
    version_id = parse_version_object(vname)[1]
    if (account, container) != (ctx.account, vcont) or version_id is None:
        return location
    return (urllib.parse.quote(f"/v1/{ctx.account}/{ctx.container}/{ctx.obj}")
            + f"?version-id={version_id}")


def show_targets(rows: list[dict[str, Any]]) -> None:
    """Give listing rows of version links their version's bytes and ETag."""
    for row in rows:
        if "symlink_bytes" in row and "/%00versions%00" in str(row.get("symlink_path", "")):
            row["bytes"] = int(row["symlink_bytes"])
            row["hash"] = row.get("symlink_etag", row["hash"])


def annotate(info: Info, link: dict[str, str] | None, out: dict[str, str], container: str,
             obj: str) -> None:
    """Add ``X-Object-Version-Id`` (and the user-facing link target) to an answer."""
    if not info.headers.get(SYSMETA_CONT):
        return
    loc = out.get("Content-Location", "")
    version_id = "null"
    if "?version-id=" in loc:
        version_id = loc.rpartition("=")[2]
    if link is not None and "X-Symlink-Target" in out:  # ?symlink=get of a version link
        vcont, _, vname = urllib.parse.unquote(link.get(symlink.TARGET, "")).partition("/")
        linked = parse_version_object(vname)[1]
        if vcont == vcont_of(info) and linked is not None:
            version_id = linked
            out["X-Symlink-Target"] = (urllib.parse.quote(f"{container}/{obj}")
                                       + f"?version-id={version_id}")
    out["X-Object-Version-Id"] = version_id
