"""Static websites from containers (Swift's staticweb middleware).

A container whose metadata names ``Web-Index`` and/or ``Web-Listings`` is served
as a web site to anonymous callers, to TempURL callers, and to token holders who
send ``X-Web-Mode: true``: ``/c`` redirects to ``/c/``, a directory answers its
index object or an HTML listing (``Web-Listings-CSS`` styles it), and errors
answer ``<status><Web-Error>`` objects when present. Every piece is fetched with
an ordinary sub-request as the caller, so the container's read ACL still decides
(anonymous listings need ``.r:*,.rlistings``; objects need ``.r:*``).

The hook (:func:`wanted`) costs a tuple test on authenticated requests; nothing
here runs for plain API calls.
"""

from __future__ import annotations

import dataclasses
import html
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from nubis.api.proxy.base import check_access, container_info
from nubis.api.proxy.context import Ctx, Resp
from nubis.api.proxy.errors import HTTPError, error_response

#: Swift's /info entry.
INFO: dict[str, Any] = {}

Route = Callable[[Ctx], Awaitable[Resp]]
_TRUE = ("true", "1", "yes", "on", "t", "y")
_METHODS = ("GET", "HEAD")
_SAFE_STYLE = ("   h1 {font-size: 1em; font-weight: bold;}\n"
               "   th {text-align: left; padding: 0px 1em 0px 1em;}\n"
               "   td {padding: 0px 1em 0px 1em;}\n"
               "   a {text-decoration: none;}\n")


def wanted(ctx: Ctx) -> bool:
    """Return whether staticweb may answer this request (cheap; no I/O)."""
    if ctx.method not in _METHODS or ctx.container is None:
        return False
    if ctx.identity is None:
        return True
    return ctx.headers.get("x-web-mode", "f").lower() in _TRUE


class _Site:
    """One static-web request: the container's web settings and the caller's route."""

    def __init__(self, ctx: Ctx, route: Route, raw: dict[str, str]) -> None:
        meta = {k: header_text(v) for k, v in raw.items() if k.startswith("web-")}
        self.ctx = ctx
        self.route = route
        self.index = meta.get("web-index", "").strip()
        self.error = meta.get("web-error", "").strip()
        self.listings = meta.get("web-listings", "").strip()
        self.label = meta.get("web-listings-label", "").strip()
        self.css = meta.get("web-listings-css", "").strip()
        self.dir_type = meta.get("web-directory-type", "").strip() or "application/directory"

    async def sub(self, method: str, obj: str | None, query: dict[str, str] | None = None,
                  fresh_headers: bool = False) -> Resp:
        """Run a sub-request as the caller; errors come back as responses."""
        ctx = self.ctx
        headers = {"host": ctx.header("host")} if fresh_headers else dict(ctx.headers)
        sub = dataclasses.replace(ctx, method=method, obj=obj, query=dict(query or {}),
                                  headers=headers)
        try:
            return await self.route(sub)
        except HTTPError as exc:
            status, hdrs, body = error_response(exc)
            return Resp(status, hdrs, body)

    async def error_response(self, resp: Resp) -> Resp:
        """Return ``resp``, or its custom ``<status><Web-Error>`` page when one exists."""
        if not self.error:
            return resp
        page = await self.sub("GET", f"{resp.status}{self.error}", fresh_headers=True)
        if 200 <= page.status < 300:
            await discard(resp)
            return Resp(resp.status, page.headers, page.body, page.length)
        await discard(page)
        return resp

    def path_text(self) -> str:
        """Return the request's path, decoded (the raw path is latin-1 of its bytes)."""
        raw = self.ctx.path.split("?", 1)[0].encode("latin-1", "replace")
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8", "replace")

    def redirect_with_slash(self) -> Resp:
        """Return 301 to the request's path plus ``/`` (absolute, as Swift's swob)."""
        path = urllib.parse.quote(self.path_text())
        host = self.ctx.header("host") or "localhost"
        return Resp(301, {"Location": f"http://{host}{path}/",
                          "Content-Type": "text/html; charset=UTF-8"}, b"")

    async def container(self) -> Resp | None:
        """Serve a container path (``/c`` or ``/c/``); None: not a web request."""
        if not self.listings and not self.index:
            if self.ctx.headers.get("x-web-mode", "f").lower() in _TRUE:
                raise HTTPError(404)
            return None
        if not self.ctx.path.split("?", 1)[0].endswith("/"):
            return self.redirect_with_slash()
        if not self.index:
            return await self.listing("")
        resp = await self.sub(self.ctx.method, self.index)
        if resp.status == 404:
            return await self.listing("")
        if resp.status >= 400:
            return await self.error_response(resp)
        return resp

    async def object(self, obj: str) -> Resp:
        """Serve an object path: the object, a directory's index, or its listing."""
        resp = await self.sub(self.ctx.method, obj)
        status = resp.status
        if status < 400:
            length = resp.headers.get("Content-Length")
            if resp.headers.get("Content-Type") != self.dir_type or (
                    length is not None and length.isdigit() and int(length) > 1):
                return resp
            await discard(resp)
            status = 404
        elif status != 404:
            return resp
        else:
            await discard(resp)
        slash = self.ctx.path.split("?", 1)[0].endswith("/")
        if self.index:
            name = obj if obj.endswith("/") else obj + "/"
            found = await self.sub(self.ctx.method, name + self.index)
            if found.status < 400:
                if not slash:
                    await discard(found)
                    return self.redirect_with_slash()
                return found
            await discard(found)
        if not slash:
            probe = await self.sub("GET", None, {"limit": "1", "delimiter": "/",
                                                 "prefix": obj + "/", "format": "json"},
                                   fresh_headers=True)
            body = probe.body if isinstance(probe.body, bytes) else b""
            if probe.status >= 300 or not body or not json.loads(body):
                return await self.error_response(_not_found())
            return self.redirect_with_slash()
        return await self.listing(obj)

    async def listing(self, prefix: str) -> Resp:
        """Answer the HTML listing of ``prefix`` (or the 'listings disabled' page)."""
        label = self.path_text()
        if self.label:
            label = f"{self.label}/{'/'.join(label.split('/')[4:])}"
        if self.listings.lower() not in _TRUE:
            return await self.error_response(Resp(404, {
                "Content-Type": "text/html; charset=UTF-8"}, self._disabled(label, prefix)))
        query = {"delimiter": "/", "format": "json"}
        if prefix:
            query["prefix"] = prefix
        got = await self.sub("GET", None, query, fresh_headers=True)
        if got.status >= 300:
            return await self.error_response(got)
        body = got.body if isinstance(got.body, bytes) else b""
        items: list[dict[str, Any]] = json.loads(body) if body else []
        if prefix and not items:
            return await self.error_response(_not_found())
        page = self._page(label, prefix, items)
        headers = {"Content-Type": "text/html; charset=UTF-8"}
        if self.ctx.tempurl is not None:
            headers["Content-Disposition"] = "inline"
        return Resp(200, headers, b"" if self.ctx.method == "HEAD" else page,
                    len(page) if self.ctx.method == "HEAD" else None)

    def _disabled(self, label: str, prefix: str) -> bytes:
        out = ("<!DOCTYPE html>\n<html>\n<head>\n"
               f"<title>Listing of {html.escape(label)}</title>\n")
        if self.css:
            out += ('  <link rel="stylesheet" type="text/css" '
                    f'href="{self.css_path(prefix)}" />\n')
        else:
            out += ('  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n'
                    "   p {font-size: 2}\n  </style>\n")
        out += ("</head>\n<body>  <h1>Web Listing Disabled</h1>   <p>The owner of this web "
                "site has disabled web listing.   <p>If you are the owner of this web site, "
                "you can enable   web listing by setting X-Container-Meta-Web-Listings.</p>")
        if self.index:
            out += ("<h1>Index File Not Found</h1> <p>The owner of this web site has set  "
                    f"<b>X-Container-Meta-Web-Index: {html.escape(self.index)}</b>.  "
                    "However, this file is not found.</p>")
        return (out + " </body>\n</html>\n").encode()

    def css_path(self, prefix: str) -> str:
        """Return the listing's stylesheet link, relative to ``prefix``'s depth."""
        if self.css.startswith(("/", "http://", "https://")):
            return urllib.parse.quote(self.css, ":/")
        return "../" * prefix.count("/") + urllib.parse.quote(self.css)

    def _tempurl_query(self) -> tuple[str, str]:
        """Return (query to append to links, the TempURL's prefix) for TempURL callers."""
        if self.ctx.tempurl is None or self.ctx.tempurl.prefix is None:
            return "", ""
        q = self.ctx.query
        parts = [f"temp_url_prefix={urllib.parse.quote(q.get('temp_url_prefix', ''))}",
                 f"temp_url_expires={urllib.parse.quote(q.get('temp_url_expires', ''))}",
                 f"temp_url_sig={q.get('temp_url_sig', '')}"]
        if "inline" in q:
            parts.append("inline")
        return "?" + "&amp;".join(parts), self.ctx.tempurl.prefix

    def _page(self, label: str, prefix: str, items: list[dict[str, Any]]) -> bytes:
        qs, tu_prefix = self._tempurl_query()
        label = html.escape(label)
        out = [f"<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of {label}</title>\n"]
        if self.css:
            out.append('  <link rel="stylesheet" type="text/css" '
                       f'href="{self.css_path(prefix)}" />\n')
        else:
            out.append(f'  <style type="text/css">\n{_SAFE_STYLE}  </style>\n')
        out.append(f' </head>\n <body>\n  <h1 id="title">Listing of {label}</h1>\n'
                   '  <table id="listing">\n   <tr id="heading">\n'
                   '    <th class="colname">Name</th>\n    <th class="colsize">Size</th>\n'
                   '    <th class="coldate">Date</th>\n   </tr>\n')
        if len(prefix) > len(tu_prefix):
            out.append('   <tr id="parent" class="item">\n'
                       f'    <td class="colname"><a href="../{qs}">../</a></td>\n'
                       '    <td class="colsize">&nbsp;</td>\n'
                       '    <td class="coldate">&nbsp;</td>\n   </tr>\n')
        for item in items:
            if "subdir" in item:
                sub = str(item["subdir"])[len(prefix):]
                out.append('   <tr class="item subdir">\n'
                           f'    <td class="colname"><a href="./{_href(sub)}{qs}">'
                           f'{html.escape(sub)}</a></td>\n'
                           '    <td class="colsize">&nbsp;</td>\n'
                           '    <td class="coldate">&nbsp;</td>\n   </tr>\n')
        for item in items:
            if "name" in item:
                out.append(_object_row(item, prefix, qs))
        out.append("  </table>\n </body>\n</html>\n")
        return "".join(out).encode()


def header_text(value: str) -> str:
    """Return a stored header value as text (the backend hands over UTF-8 as latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _href(name: str) -> str:
    return urllib.parse.quote(name).replace(".", "%2E")


def _object_row(item: dict[str, Any], prefix: str, qs: str) -> str:
    name = str(item["name"])[len(prefix):]
    kinds = " ".join("type-" + html.escape(t.lower())
                     for t in str(item.get("content_type", "")).split("/"))
    modified = html.escape(str(item.get("last_modified", ""))).split(".")[0].replace("T", " ")
    size = human_readable(int(item.get("bytes", 0)))
    return (f'   <tr class="item {kinds}">\n'
            f'    <td class="colname"><a href="./{_href(name)}{qs}">{html.escape(name)}</a></td>\n'
            f'    <td class="colsize">{size}</td>\n'
            f'    <td class="coldate">{modified}</td>\n   </tr>\n')


def human_readable(value: int) -> str:
    """Return a size as Swift's listings show it (``1048576`` -> ``1Mi``)."""
    number = float(value)
    index = -1
    suffixes = "KMGTPEZY"
    while number >= 1024 and index + 1 < len(suffixes):
        index += 1
        number = round(number / 1024)
    if index == -1:
        return f"{int(number)}"
    return f"{round(number)}{suffixes[index]}i"


def _not_found() -> Resp:
    status, headers, body = error_response(HTTPError(404))
    return Resp(status, headers, body)


async def discard(resp: Resp) -> None:
    """Close a streamed response body that will not be sent."""
    close = getattr(resp.body, "aclose", None)
    if close is not None:
        await close()


async def serve(ctx: Ctx, route: Route) -> Resp | None:
    """Answer a static-web request, or None to let the API answer it.

    Only called when :func:`wanted` said yes.
    """
    assert ctx.container is not None
    info = await container_info(ctx.state, ctx.account, ctx.container)
    meta = info.meta("x-container-meta-") if info.exists else {}
    site = _Site(ctx, route, meta)
    if ctx.obj is not None:
        if not site.listings and not site.index:
            return None
        return await site.object(ctx.obj)
    try:
        check_access(ctx, info.headers.get("x-container-read"))
    except HTTPError as exc:
        status, headers, body = error_response(exc)
        return await site.error_response(Resp(status, headers, body))
    return await site.container()
