"""The proxy's Falcon ASGI application: routing, authentication, error mapping.

One sink receives every request: it splits the raw path into version /
account / container / object, authenticates (token chain or TempURL), calls
the right controller and turns whatever it returns or raises into a response.
That last step (:meth:`ProxyApp.respond`) is the only place exceptions become
HTTP answers. :func:`build_app` wraps the core as a Falcon ASGI app (the default
front end, on uvicorn); :mod:`nubis.api.proxy.native` serves the same core on
nubis' own HTTP server (``[proxy] frontend = "native"``). Both refuse oversized
heads with :func:`head_problem` before anything reads a body.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
from nubis.api.proxy import (
    bulk,
    container,
    copy,
    cors,
    etag_quoter,
    formpost,
    obj,
    objver,
    ratelimit,
    staticweb,
    symlink,
    tempurl,
    versioning,
)
from nubis.api.proxy.auth import AuthChain, TempAuth, TokenVerifier, tempauth_secret
from nubis.api.proxy.backend import Backend, Rings
from nubis.api.proxy.base import account_info, container_info, load_account_level
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.proxy.constraints import Limits, check_account_name
from nubis.api.proxy.context import Body, ContainerCtx, Ctx, ObjectCtx, ProxyState, Resp
from nubis.api.proxy.domains import DomainRemap, crossdomain_response
from nubis.api.proxy.errors import ClientDisconnectError, HTTPError, error_response
from nubis.api.proxy.s3.auth import ChainedSource, CredentialSource, TempAuthKeys
from nubis.api.proxy.s3.router import S3_INFO, S3Api, anonymous_path, wants_s3
from nubis.common.headnames import escape_response_names
from nubis.common.httpclient import HTTPClient
from nubis.common.httpserver import joined_headers
from nubis.common.policies import DEFAULT_POLICIES, PolicySet

log = logging.getLogger("nubis.proxy")

VERSION = "2.38.0-nubis"
_BODY_METHODS = ("PUT", "POST")
#: Methods some Swift API controller serves; any other is answered 405 before
#: authentication, as Swift's proxy checks its controller's methods first
#: (PERF: one frozenset lookup, ``python -m nubis.bench swift``).
_SWIFT_METHODS = frozenset(("GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "OPTIONS"))
#: What ``/info`` answers (Swift's InfoController).
_INFO_ALLOW = "HEAD, GET, OPTIONS"


def parse_query(raw: bytes) -> dict[str, str]:
    """Decode a query string; the last value of a repeated key wins."""
    out: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True,
                                             encoding="utf-8", errors="strict"):
        out[key] = value
    return out


def split_path(raw: bytes) -> list[str]:
    """Split ``/v1/a/c/o`` into decoded pieces (the object part keeps its slashes)."""
    try:
        text = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(412, "Invalid UTF8 or contains NULL") from None
    if "\x00" in text:
        raise HTTPError(412, "Invalid UTF8 or contains NULL")
    return text[1:].split("/", 3) if text.startswith("/") else text.split("/", 3)


class ProxyApp:
    """Request handling for one worker (all state hangs off this object)."""

    def __init__(self, state: ProxyState, info: dict[str, Any],
                 s3: S3Api | None = None,
                 limiter: ratelimit.RateLimiter | None = None) -> None:
        self.state = state
        self.info = info
        self.s3 = s3
        self.limiter = limiter if limiter is not None and limiter.active else None
        conf = state.conf
        self.remap = DomainRemap.of(conf.storage_domain, conf.remap_reseller_prefixes,
                                    conf.default_reseller_prefix)

    async def sink(self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None,
                   **_: Any) -> None:
        """Handle any request (Falcon sink)."""
        assert resp is not None
        started = time.monotonic()
        result, ctx = await self.respond(lambda: self._context(req))
        self._send(req, resp, result, ctx)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s %.1fms", req.method, req.path, result.status,
                      (time.monotonic() - started) * 1000)

    def _context(self, req: falcon.asgi.Request) -> Ctx:
        scope = req.scope
        raw = scope.get("headers", [])
        if not isinstance(raw, list):  # ASGI allows any iterable (uvicorn: a list)
            raw = [tuple(pair) for pair in raw]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        if len(headers) != len(raw):  # PERF: a repeated header is rare (bench swift)
            headers = joined_headers(raw)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")

        channel: ReceiveChannel = scope["nubis.receive"]

        def body(length: int | None) -> Body:
            first, receive = channel.hand_over()
            return Body(first, receive, length, self.state.conf.client_timeout)

        return self.make_context(req.method, raw_path.decode("latin-1"),
                                 scope.get("query_string", b""), headers, body)

    def make_context(self, method: str, raw_path: str, raw_query: bytes,
                     headers: dict[str, str], body: Callable[[int | None], Body]) -> Ctx:
        """Check a request's head and build its :class:`Ctx` (any front-end).

        ``body(length)`` makes the body reader; it is only called for
        requests that may carry a body. Oversized heads and bodies were refused
        before (:func:`head_problem`, by the front end).
        """
        length: int | None = None
        if "content-length" in headers and "transfer-encoding" not in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HTTPError(400, "Invalid Content-Length header value") from None
        headers.pop("x-timestamp", None)  # Swift's gatekeeper shunts it: the proxy's clock
        # The method as sent (case-sensitive, as Swift: ``get`` is a 405).
        if method in _BODY_METHODS or length:
            reader = body(length)
        else:
            reader = Body(None, None, 0, self.state.conf.client_timeout)
        try:
            query = parse_query(raw_query)
        except UnicodeDecodeError:
            raise HTTPError(400, "Invalid UTF8 in query string") from None
        return Ctx(self.state, method, raw_path, query, headers, reader, raw_query=raw_query)

    async def dispatch(self, ctx: Ctx) -> Resp:
        """Route a request to its controller."""
        if self.s3 is not None and wants_s3(ctx.headers, ctx.raw_query,
                                            self.state.conf.s3_domain):
            return await self.s3.handle(ctx, ctx.raw_query)
        path = ctx.path.split("?", 1)[0]
        if path in ("/healthcheck", "/healthcheck/"):
            return Resp(200, {"Content-Type": "text/plain"}, b"OK")
        if path in ("/info", "/info/"):
            if ctx.method == "OPTIONS":  # Swift's InfoController: anyone may ask
                return Resp(200, {"Allow": _INFO_ALLOW, "Content-Type": "text/html; charset=UTF-8"},
                            b"")
            if ctx.method not in ("GET", "HEAD"):
                raise HTTPError(405, headers={"Allow": _INFO_ALLOW})
            return Resp(200, {"Content-Type": "application/json; charset=UTF-8"},
                        json.dumps(self.info).encode())
        if path == "/crossdomain.xml" and ctx.method == "GET":
            return crossdomain_response(self.state.conf.cross_domain_policy)
        if self.remap is not None:
            remapped = self.remap.remap(ctx.headers.get("host", ""), path)
            if remapped is not None:
                ctx.path = remapped.path
                return remapped.fix_location(await self._api(ctx))
        if path.startswith(("/auth/v1", "/v1.0")):
            return self._login(ctx)
        if self.s3 is not None and ctx.method == "OPTIONS" and path.split("/", 2)[1:2] != ["v1"]:
            return await self.s3.handle(ctx, ctx.raw_query)  # an S3 (path-style) preflight
        if self.s3 is not None and anonymous_path(  # an unsigned path-style S3 request
                path, ctx.headers, ctx.query,
                self.remap.domains if self.remap is not None else ()) is not None:
            return await self.s3.handle(ctx, ctx.raw_query)
        return await self._api(ctx)

    async def _api(self, ctx: Ctx) -> Resp:
        parts = split_path(ctx.path.encode("latin-1"))
        if len(parts) == 1:  # no account at all ("/v1", "/info asdf"): Swift's "Bad URL"
            raise HTTPError(412, "Bad URL")
        if len(parts) < 2 or parts[0] != "v1" or not parts[1]:
            raise HTTPError(404, "Not Found: the resource could not be found.")
        ctx.account = parts[1]
        ctx.container = parts[2] if len(parts) > 2 and (parts[2] or len(parts) > 3) else None
        ctx.obj = parts[3] if len(parts) > 3 and parts[3] != "" else None
        if len(parts) > 3 and not parts[2]:
            raise HTTPError(404, "Not Found: the resource could not be found.")
        if ctx.method not in _SWIFT_METHODS:
            allow = (container.ACCOUNT_ALLOW if ctx.container is None else
                     container.CONTAINER_ALLOW if ctx.obj is None else obj.OBJECT_ALLOW)
            raise HTTPError(405, headers={"Allow": allow})
        check_account_name(ctx.account, self.state.limits)
        if self.limiter is not None:
            await self.limiter.check(ctx)
        boundary = formpost.boundary_of(ctx)
        if boundary is not None:  # signed by its form fields, like a TempURL
            return await formpost.handle(ctx, boundary, self._api_route)
        await self._authenticate(ctx)
        if ctx.obj is None:
            return await self._route(ctx)
        quote = self.state.conf.etag_quoter_enable_by_default
        try:
            resp = await self._route(ctx)
        except HTTPError as exc:
            await etag_quoter.apply(ctx, exc, quote)
            raise
        await etag_quoter.apply(ctx, resp, quote)
        return resp

    async def _route(self, ctx: Ctx) -> Resp:
        if ctx.method == "OPTIONS":
            return await cors.options(ctx)
        origin = ctx.headers.get("origin")
        if origin is None or ctx.container is None:
            return await self._web_route(ctx)
        try:
            resp = await self._web_route(ctx)
        except HTTPError as exc:
            await cors.answer(ctx, origin, exc)
            raise
        await cors.answer(ctx, origin, resp)
        return resp

    async def _web_route(self, ctx: Ctx) -> Resp:
        if ctx.container is not None and staticweb.wanted(ctx):
            web = await staticweb.serve(ctx, self._api_route)
            if web is not None:
                return web
        if ctx.tempurl is not None and ctx.obj is None:
            raise HTTPError(401, "Unauthorized: temp URLs are for objects only")
        if bulk.wanted(ctx):
            return await bulk.handle(ctx, self._api_route)
        return await self._api_route(ctx)

    async def _api_route(self, ctx: Ctx) -> Resp:
        if ctx.container is not None and ctx.obj is not None:
            return await copy.handle(ObjectCtx.of(ctx, container=ctx.container, obj=ctx.obj))
        if ctx.container is not None:
            return await container.handle_container(
                ContainerCtx.of(ctx, container=ctx.container))
        return await container.handle_account(ctx)

    def _login(self, ctx: Ctx) -> Resp:
        ta = self.state.tempauth
        if ta is None or ctx.method not in ("GET", "HEAD"):
            raise HTTPError(404 if ta is None else 405)
        user = ctx.header("x-auth-user") or ctx.header("x-storage-user")
        key = ctx.header("x-auth-key") or ctx.header("x-storage-pass")
        if not user or not key:
            raise HTTPError(401)
        token, ident = ta.login(user, key)
        host = ctx.header("host") or f"127.0.0.1:{self.state.conf.port}"
        url = f"http://{host}/v1/{ta.account_id(user.split(':', 1)[0])}"
        ttl = max(0, int(ident.expires - time.time()))
        return Resp(200, {"X-Auth-Token": token, "X-Storage-Token": token,
                          "X-Storage-Url": url, "X-Auth-Token-Expires": str(ttl),
                          "Content-Type": "text/plain; charset=UTF-8"}, b"")

    async def _authenticate(self, ctx: Ctx) -> None:
        token = ctx.header("x-auth-token") or ctx.header("x-storage-token")
        ctx.identity = await self.state.auth.identify(token, ctx.header("x-service-token"))
        if ctx.identity is not None:
            await load_account_level(ctx, ctx.account)
        if "temp_url_sig" in ctx.query or "temp_url_expires" in ctx.query:
            await self._tempurl(ctx)

    async def _tempurl(self, ctx: Ctx) -> None:
        tu = tempurl.parse_params(ctx.query)
        # A container root is allowed for GET/HEAD with an empty prefix: staticweb
        # may list it (Swift's tempurl); anything else there is refused later.
        root = ctx.method in ("GET", "HEAD") and tu is not None and tu.prefix == ""
        if tu is None or ctx.container is None or (ctx.obj is None and not root):
            raise HTTPError(401, "Unauthorized: temp URLs are for objects only")
        if ctx.method not in tempurl.METHODS:
            raise HTTPError(401)
        akeys = list((await account_info(self.state, ctx.account)).meta(
            "x-account-meta-temp-url-key").values())
        cinfo = await container_info(self.state, ctx.account, ctx.container)
        ckeys = list(cinfo.meta("x-container-meta-temp-url-key").values())
        path = urllib.parse.unquote(ctx.path.split("?", 1)[0])
        if ctx.obj is None:
            path = path.rstrip("/") + "/"
        if not tempurl.verify(tu, ctx.method, path, akeys):
            if not tempurl.verify(tu, ctx.method, path, ckeys):
                raise HTTPError(401, "Unauthorized: temp URL invalid or expired")
            ctx.tempurl_container = ctx.container
        if ctx.method in ("PUT", "POST"):
            for name in tempurl.DISALLOWED_HEADERS:
                if name in ctx.headers:
                    raise HTTPError(400, f"The header {name.title()!r} is not allowed in "
                                         "this tempurl")
        ctx.headers.pop("x-open-expired", None)  # Swift's tempurl incoming_remove_headers
        ctx.tempurl = tu
        ctx.identity = None

    async def respond(self, make_ctx: Callable[[], Ctx]) -> tuple[Resp, Ctx | None]:
        """Run one request; every exception becomes an error response here."""
        ctx: Ctx | None = None
        try:
            ctx = make_ctx()
            result = await self.dispatch(ctx)
        except Exception as exc:
            if isinstance(exc, ClientDisconnectError):
                log.info("client disconnected: %s %s", ctx.method if ctx else "-",
                         ctx.path if ctx else "-")
            status, headers, body = error_response(exc)
            if status == 401 and "Www-Authenticate" not in headers:
                realm = urllib.parse.quote(ctx.account) if ctx and ctx.account else "unknown"
                headers = {**headers, "Www-Authenticate": f'Swift realm="{realm}"'}
            result = Resp(status, headers, body)
        return result, ctx

    @staticmethod
    def final_headers(result: Resp, ctx: Ctx | None) -> dict[str, str]:
        """Return the response headers with the transaction id and a Content-Type."""
        headers = dict(result.headers)
        for name, value in headers.items():
            if not value.isascii():  # text from a name: send its UTF-8 bytes (as Swift)
                try:
                    value.encode("latin-1")
                except UnicodeEncodeError:
                    headers[name] = value.encode().decode("latin-1")
        if ctx is not None:
            headers["X-Trans-Id"] = ctx.trans_id
            headers["X-Openstack-Request-Id"] = ctx.trans_id
            if ctx.headers.get("connection", "").lower() == "keep-alive":
                headers["Connection"] = "keep-alive"  # echoed, as Swift's eventlet does
        if result.status == 204 and "Content-Length" not in headers:
            headers["Content-Length"] = "0"  # Swift announces the empty body
        if "Content-Type" not in headers and result.status not in (204, 304):
            headers["Content-Type"] = "text/html; charset=UTF-8"
        return headers

    def _send(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, result: Resp,
              ctx: Ctx | None) -> None:
        resp.status = result.status
        headers = self.final_headers(result, ctx)
        body = result.body
        if isinstance(body, bytes):
            if req.method == "HEAD" and "Content-Length" not in headers:
                headers["Content-Length"] = "0"
            resp.set_headers(headers)
            if result.status not in (204, 304):
                resp.data = body
            return
        resp.set_headers(headers)
        if result.length is not None:
            resp.content_length = result.length
        resp.stream = _guard(body)


async def _guard(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Stream a body; a failure mid-stream cuts the connection instead of raising."""
    try:
        async for chunk in body:
            if chunk:
                yield chunk
    except Exception as exc:
        log.warning("response body aborted: %s", exc)
        raise ClientDisconnectError(str(exc)) from None


def info_document(conf: ProxyConfig, limits: Limits, tempauth_on: bool,
                  pset: PolicySet) -> dict[str, Any]:
    """Return what ``GET /info`` says: features, limits and storage policies."""
    policies = pset.info()
    doc: dict[str, Any] = {
        "swift": {"version": VERSION, "strict_cors_mode": True, "policies": policies,
                  "allow_account_management": False, "account_autocreate":
                      conf.account_autocreate, "allow_open_expired": conf.allow_open_expired,
                  **limits.as_info()},
        "slo": {"max_manifest_segments": conf.max_manifest_segments,
                "max_manifest_size": 8 * 1024 * 1024, "min_segment_size": 1,
                "yield_frequency": 10},
        "dlo": {"max_get_time": 86400},
        "tempurl": {"methods": list(tempurl.METHODS),
                    "incoming_remove_headers": ["x-timestamp", "x-open-expired"],
                    "incoming_allow_headers": [],
                    "outgoing_remove_headers": ["x-object-meta-*"],
                    "outgoing_allow_headers": ["x-object-meta-public-*"],
                    "allowed_digests": ["sha1", "sha256", "sha512"]},
        "container_quotas": {}, "account_quotas": {},
        "versioned_writes": versioning.INFO,
        "object_versioning": objver.INFO,
        "symlink": symlink.INFO,
        "staticweb": staticweb.INFO,
        "crossdomain": {},
        "formpost": formpost.INFO,
        "ratelimit": ratelimit.info(conf.ratelimit),
        "etag_quoter": {"enable_by_default": conf.etag_quoter_enable_by_default},
        **bulk.INFO,
        "s3api": {**S3_INFO, "s3_acl": conf.s3_acl},
    }
    if conf.storage_domain:
        doc["domain_remap"] = {"default_reseller_prefix": conf.default_reseller_prefix or None}
    if tempauth_on:
        doc["tempauth"] = {"account_acls": True}
    return doc


def build_app(conf: ProxyConfig, ta_conf: TempAuthConfig, ring_dir: Path,
              hash_prefix: str, hash_suffix: str,
              extra_verifiers: list[TokenVerifier] | None = None,
              s3_source: CredentialSource | None = None,
              policies: PolicySet | None = None, *, local_sockets: bool = False) -> Any:
    """Build the proxy's ASGI app for one worker."""
    proxy = build_proxy(conf, ta_conf, ring_dir, hash_prefix, hash_suffix, extra_verifiers,
                        s3_source, policies, local_sockets=local_sockets)
    app = falcon.asgi.App(media_type="text/plain")
    app.req_options.strip_url_path_trailing_slash = False
    app.add_sink(proxy.sink, prefix="/")
    return TooLargeGuard(app, proxy.state.limits.max_file_size)


def build_proxy(conf: ProxyConfig, ta_conf: TempAuthConfig, ring_dir: Path,
                hash_prefix: str, hash_suffix: str,
                extra_verifiers: list[TokenVerifier] | None = None,
                s3_source: CredentialSource | None = None,
                policies: PolicySet | None = None, *, local_sockets: bool = False) -> ProxyApp:
    """Build the front-end-independent request handling of one worker.

    The S3 API is on unless ``s3_source`` is None and no credential hook is configured
    (then S3 requests are answered AccessDenied). ``local_sockets``: reach the storage
    servers of this host through their Unix sockets (``[cluster] local_sockets``).
    """
    limits = Limits(max_file_size=conf.max_file_size)
    client = HTTPClient(connect_timeout=conf.conn_timeout, timeout=conf.node_timeout,
                        local_sockets=local_sockets)
    rings = Rings(ring_dir, hash_prefix, hash_suffix)
    backend = Backend(client, rings, node_timeout=conf.node_timeout,
                      max_handoffs=conf.max_handoffs)
    verifiers: list[TokenVerifier] = []
    tempauth: TempAuth | None = None
    if ta_conf.enabled:
        tempauth = TempAuth(ta_conf, tempauth_secret(ta_conf, hash_prefix, hash_suffix))
        verifiers.append(tempauth)
    verifiers.extend(extra_verifiers or [])
    pset = policies or PolicySet.from_config(DEFAULT_POLICIES)
    chain = AuthChain(verifiers, require_group=ta_conf.require_group)
    state = ProxyState(conf, limits, backend, chain, tempauth, pset)
    if ta_conf.enabled:
        s3_source = ChainedSource(TempAuthKeys(ta_conf), s3_source)
    limiter = ratelimit.RateLimiter(conf.ratelimit, ring_dir.parent / "ratelimit")
    return ProxyApp(state, info_document(conf, limits, tempauth is not None, pset),
                    S3Api(s3_source, ta_conf.reseller_prefix), limiter)


#: Longest request header line the proxy accepts (Swift's MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 8192


def head_problem(headers: Iterable[tuple[bytes, bytes]], max_file_size: int) -> HTTPError | None:
    """Return the error for an oversized header line or announced body, else None.

    Both front ends ask before anything reads the body: reading it would invite
    the client (``Expect: 100-continue``) to send what is refused anyway.
    """
    for name, value in headers:
        if len(name) + len(value) + 2 > MAX_HEADER_SIZE:
            return HTTPError(400, f"Header line too long: {MAX_HEADER_SIZE} bytes max")
        if (len(name) == 14 and name.lower() == b"content-length" and value.isdigit()
                and int(value) > max_file_size):
            return HTTPError(413, "Your request is too large.")
    return None


class ReceiveChannel:
    """The ASGI ``receive`` of one request, with the events Falcon read before the proxy.

    Falcon awaits the first ``receive`` event before a sink runs; the channel
    keeps it so the proxy's :class:`Body` starts from it, then reads on
    from the raw channel (the public ASGI interface, no Falcon internals).
    """

    __slots__ = ("early", "handed", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.early: list[Any] = []
        self.handed = False

    async def __call__(self) -> Any:
        """Receive one event (what Falcon calls)."""
        event = await self.raw()
        if not self.handed:
            self.early.append(event)
        return event

    def hand_over(self) -> tuple[Any, Any]:
        """Return ``(first event read so far or None, raw receive)`` for the body reader."""
        self.handed = True
        first = self.early[0] if self.early else None
        if len(self.early) > 1:  # pragma: no cover - Falcon reads one event up front
            raise RuntimeError("the ASGI framework read more of the body than its first event")
        return first, self.raw


class TooLargeGuard:
    """The ASGI front: refuse oversized heads first, then hand the request to Falcon.

    Falcon awaits the first ``receive`` event before our handler runs, and uvicorn
    answers ``Expect: 100-continue`` on that first read, so the check must sit in
    front of Falcon for the client to get 413 instead of an invitation to send 6 GB.
    It also gives the request a :class:`ReceiveChannel` (``scope["nubis.receive"]``).
    """

    def __init__(self, app: Any, max_file_size: int) -> None:
        self.app = app
        self.max_file_size = max_file_size

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check header sizes and Content-Length, then pass the request on."""
        if scope.get("type") == "http":
            problem = head_problem(scope.get("headers", ()), self.max_file_size)
            if problem is not None:
                status, headers, body = error_response(problem)
                raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                raw += [(b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")]
                await send({"type": "http.response.start", "status": status,
                            "headers": raw})
                await send({"type": "http.response.body", "body": body})
                return
            channel = ReceiveChannel(receive)
            scope["nubis.receive"] = channel
            receive = channel
            send = _OddNameSend(send)
        await self.app(scope, receive, send)


class _OddNameSend:
    """Escape odd metadata names of a response head (uvicorn refuses to send them).

    The front end's :class:`~nubis.api.proxy.server.SwiftCaseHead` writes them
    back as they were (:mod:`nubis.common.headnames`).
    """

    __slots__ = ("send",)

    def __init__(self, send: Any) -> None:
        self.send = send

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = escape_response_names(message["headers"])  # a list (Falcon)
        await self.send(message)

