"""The container side of object versioning: enabling, listings, deletion.

As Swift's ``object_versioning`` middleware for container requests: a PUT/POST
with ``X-Versions-Enabled`` creates the hidden versions container and sets the
sysmeta (:func:`enable`); HEAD/GET show ``X-Versions-Enabled`` and count the
versions' bytes; listings show version links with their target's size and ETag
(``version_symlink``); ``?versions`` lists every version of every object with
``version_id`` and ``is_latest`` (JSON only, 406 otherwise); a DELETE removes
the hidden container once it is empty (409 while versions remain).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from nubis.api.proxy import versioning
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import POLICY_HEADER, container_info
from nubis.api.proxy.context import ContainerCtx, Ctx
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import is_true
from nubis.api.proxy.objver import (
    ALLOW,
    CLIENT_ENABLED,
    DELETE_MARKER,
    RESERVED,
    SYSMETA_CONT,
    SYSMETA_ENABLED,
    parse_ts,
    parse_version_object,
    version_object,
    versions_container,
)
from nubis.api.proxy.transfer import backend_listing

#: Writes a container (``container._container_write``): ctx, method, headers → status.
Writer = Callable[[ContainerCtx, str, dict[str, str]], Awaitable[int]]


# --- enabling ----------------------------------------------------------------

async def enable(ctx: ContainerCtx, write: Writer) -> dict[str, str]:
    """Return the sysmeta a PUT/POST with ``X-Versions-Enabled`` sets.

    Turning versioning on creates the hidden versions container first.

    Raises:
        HTTPError: 400 on a container using legacy versioning or a deprecated
            policy, 500 when the versions container cannot be made.
    """
    info = await container_info(ctx.state, ctx.account, ctx.container)
    if info.headers.get(versioning.SYSMETA_LOCATION) or any(
            ctx.headers.get(h) for h in (versioning.CLIENT_VERSIONS, versioning.CLIENT_HISTORY)):
        raise HTTPError(400, "Cannot enable object versioning on a container that is already "
                             "using the legacy versioned writes feature.")
    on = is_true(ctx.headers[CLIENT_ENABLED])
    meta = {SYSMETA_ENABLED: str(on)}
    if not on:
        return meta
    headers = dict(ALLOW)
    if info.exists:
        idx = int(info.headers.get(POLICY_HEADER, "0") or 0)
        policy = ctx.state.policies.get(idx)
        if policy is not None and policy.is_deprecated:
            raise HTTPError(400, "Cannot enable object versioning on a container that uses "
                                 "a deprecated storage policy.")
        headers[POLICY_HEADER] = str(idx)
    elif ctx.method == "PUT" and ctx.header("x-storage-policy"):
        policy_named = ctx.state.policies.by_name(ctx.header("x-storage-policy"))
        if policy_named is not None:
            headers[POLICY_HEADER] = str(policy_named.index)
    if POLICY_HEADER not in headers:
        headers["x-backend-storage-policy-default"] = str(ctx.state.policies.default.index)
    vcont = versions_container(ctx.container)
    status = await write(ContainerCtx.of(ctx, container=vcont), "PUT", headers)
    if not (200 <= status < 300 or status == 409):
        raise HTTPError(500, "Error enabling object versioning")
    meta[SYSMETA_CONT] = urllib.parse.quote(vcont)
    return meta


def show(backend: dict[str, str], out: dict[str, str]) -> None:
    """Add ``X-Versions-Enabled`` to a container's answer."""
    value = backend.get(SYSMETA_ENABLED)
    if value is not None:
        out["X-Versions-Enabled"] = value


async def _head(ctx: Ctx, vcont: str) -> Reply:
    ring = ctx.state.backend.rings.get("container")
    part, nodes = ring.get_nodes(ctx.account, vcont)
    return await ctx.state.backend.read(ring, part, nodes, "HEAD", (ctx.account, vcont),
                                        dict(ALLOW))


def _vcont(headers: dict[str, str]) -> str:
    value = headers.get(SYSMETA_CONT, "")
    return urllib.parse.unquote(value).split("/")[0] if value else ""


async def add_bytes(ctx: Ctx, backend: dict[str, str], out: dict[str, str]) -> None:
    """Count the versions' bytes in ``X-Container-Bytes-Used`` (as Swift)."""
    vcont = _vcont(backend)
    if not vcont or "X-Container-Bytes-Used" not in out:
        return
    reply = await _head(ctx, vcont)
    if 200 <= reply.status < 300:
        extra = int(reply.headers.get("x-container-bytes-used", "0") or 0)
        out["X-Container-Bytes-Used"] = str(int(out["X-Container-Bytes-Used"]) + extra)


async def before_delete(ctx: ContainerCtx, write: Writer) -> None:
    """Delete the hidden versions container first (409 while it holds versions)."""
    info = await container_info(ctx.state, ctx.account, ctx.container)
    vcont = _vcont(info.headers)
    if not vcont:
        return
    reply = await _head(ctx, vcont)
    if 200 <= reply.status < 300:
        if int(reply.headers.get("x-container-object-count", "0") or 0) > 0:
            raise HTTPError(409, "Delete all versions before deleting container.")
    elif reply.status != 404:
        raise HTTPError(500, "Error deleting versioned container")
    status = await write(ContainerCtx.of(ctx, container=vcont), "DELETE", dict(ALLOW))
    if not 200 <= status < 300 and status != 404:
        raise HTTPError(500, "Error deleting versioned container")


# --- listings ----------------------------------------------------------------

def rewrite(items: list[dict[str, Any]], account: str, container: str, vcont: str,
            versions: bool) -> None:
    """Show version links with their target's bytes and ETag (``version_symlink``)."""
    for item in items:
        if not all(k in item for k in ("symlink_path", "symlink_etag", "symlink_bytes")):
            continue
        path = urllib.parse.unquote(item["symlink_path"])
        parts = path.split("/", 4)
        if len(parts) < 5 or parts[3] != vcont:
            continue
        _, _, params = str(item["hash"]).partition(";")
        item["bytes"] = int(item.pop("symlink_bytes"))
        item["version_symlink"] = True
        item["hash"] = item.pop("symlink_etag") + (";" + params if params else "")
        name, version_id = parse_version_object(parts[4])
        if version_id is not None and not versions:
            item["symlink_path"] = (urllib.parse.quote(f"/v1/{parts[2]}/{container}/{name}")
                                    + f"?version-id={version_id}")


def render(items: list[dict[str, Any]], fmt: str, container: str) -> bytes:
    """Render a JSON listing as the client asked (json, xml or plain)."""
    if fmt == "json":
        return json.dumps(items).encode()
    if fmt == "xml":
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
               f"<container name={quoteattr(container)}>"]
        for item in items:
            if "subdir" in item:
                sub = str(item["subdir"])
                out.append(f"<subdir name={quoteattr(sub)}><name>{escape(sub)}</name></subdir>")
                continue
            out.append("<object>")
            for key in sorted(item):
                out.append(f"<{key}>{escape(str(item[key]))}</{key}>")
            out.append("</object>")
        out.append("</container>")
        return "".join(out).encode()
    return "".join(str(i.get("name", i.get("subdir"))) + "\n" for i in items).encode()


def check_versions_format(ctx: Ctx) -> None:
    """Refuse a ``?versions`` listing in anything but JSON (406)."""
    fmt = ctx.query.get("format", "").lower()
    if fmt and fmt != "json":
        raise HTTPError(406)
    accept = ctx.header("accept")
    if not fmt and accept and not any(t in accept for t in ("application/json", "*/*",
                                                               "application/*")):
        raise HTTPError(406)


def _versions_params(query: dict[str, str]) -> dict[str, str]:
    """Translate a ``?versions`` listing's parameters to the hidden container's names."""
    keys = ("prefix", "marker", "limit", "delimiter", "reverse")
    params: dict[str, str] = {k: query[k] for k in keys if k in query}
    if "marker" in query:
        if "version_marker" not in query:
            params["marker"] = f"{RESERVED}{query['marker']}{RESERVED}:"
        elif query["version_marker"] == "null":
            params["marker"] = f"{RESERVED}{query['marker']}{RESERVED}"
        else:
            try:
                parse_ts(query["version_marker"])
            except ValueError:
                raise HTTPError(400, "invalid version_marker param") from None
            params["marker"] = version_object(query["marker"], query["version_marker"])
    elif "version_marker" in query:
        raise HTTPError(400, "version_marker param requires marker")
    if set(params.get("delimiter", "")) & set("0123456789." + RESERVED):
        raise HTTPError(400, "invalid delimiter param")
    if "prefix" in params:
        params["prefix"] = RESERVED + params["prefix"]
    params["format"] = "json"
    return params


async def list_versions(ctx: ContainerCtx, primary: list[dict[str, Any]], vcont: str,
                        limit: int) -> list[dict[str, Any]]:
    """Merge the user container's listing with its versions (Swift's ``_list_versions``)."""
    params = _versions_params(ctx.query)
    null_listing: list[dict[str, Any]] = []
    subdirs: set[str] = set()
    current: dict[str, dict[str, Any]] = {}
    latest: set[str] = set()
    for item in primary:
        if "name" not in item:
            subdirs.add(item["subdir"])
        elif item.get("version_symlink"):
            current[urllib.parse.unquote(item["symlink_path"])] = item
        else:
            null_listing.append({**item, "version_id": "null", "is_latest": True})
            latest.add(item["name"])
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    listing = await backend_listing(ctx, vcont, params) if vinfo.exists else []
    versions: list[dict[str, Any]] = []
    for item in listing:
        if "name" not in item:
            subdirs.add(str(item["subdir"]).split(RESERVED)[1])
            continue
        name, version_id = parse_version_object(item["name"])
        if version_id is None:
            continue
        path = f"/v1/{ctx.account}/{vcont}/{item['name']}"
        if path in current:
            item["is_latest"] = True
            latest.add(name)
            del current[path]
        elif item["content_type"] == DELETE_MARKER and name not in latest:
            item["is_latest"] = True
            latest.add(name)
        else:
            item["is_latest"] = False
        item["name"], item["version_id"] = name, version_id
        versions.append(item)
    broken = []
    for item in current.values():
        link = urllib.parse.unquote(item["symlink_path"]).split("/", 4)
        name, version_id = parse_version_object(link[-1])
        if version_id is None:
            continue
        broken.append({"name": name, "is_latest": name not in latest or not listing,
                       "version_id": version_id, "content_type": item["content_type"],
                       "bytes": item["bytes"], "hash": item["hash"],
                       "last_modified": item["last_modified"]})
        latest.add(name)
    merged = [*null_listing, *versions, *({"subdir": s} for s in subdirs), *broken]
    merged.sort(key=lambda i: i.get("subdir", i.get("name", "")),
                reverse=is_true(ctx.query.get("reverse")))
    return merged[:limit]
