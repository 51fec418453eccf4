"""Bucket CORS: Put/Get/DeleteBucketCors, preflight ``OPTIONS`` and CORS answer headers.

A bucket's ``CORSConfiguration`` (up to 100 ``CORSRule``) is checked with
S3's errors and stored as container sysmeta (JSON). A preflight (``OPTIONS``
with ``Origin`` and ``Access-Control-Request-Method``) is unauthenticated, as
in S3: the first rule allowing the origin (one ``*`` wildcard at most), the
method and every requested header answers it; no rule is 403
``AccessForbidden``. Actual requests carrying ``Origin`` get the matching
rule's ``Access-Control-*`` headers (errors included); requests without
``Origin`` pay one dict lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import bucketconf
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import Registry, S3Req
from nubis.api.proxy.s3.xmlio import doc, el, parse, text

SYSMETA = "x-container-sysmeta-s3-cors"
MAX_RULES = 100
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
_NOT_ALLOWED = ("CORSResponse: This CORS request is not allowed. This is usually because "
                "the evalution of Origin, request method / Access-Control-Request-Method "
                "or Access-Control-Request-Headers are not whitelisted by the resource's "
                "CORS spec.")
_RULE_KEYS = {"ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader",
              "MaxAgeSeconds"}


@dataclass(frozen=True)
class CorsRule:
    """One ``CORSRule``."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    id: str = ""

    def allows(self, origin: str, method: str, headers: list[str]) -> bool:
        """Tell whether the rule admits this origin, method and request headers."""
        return (method in self.methods and any(_match(o, origin) for o in self.origins)
                and all(any(_match(h.lower(), want) for h in self.headers)
                        for want in headers))


def _match(glob: str, value: str) -> bool:
    """Match ``value`` against a pattern with at most one ``*`` wildcard."""
    if "*" not in glob:
        return glob == value
    head, _, tail = glob.partition("*")
    return (len(value) >= len(head) + len(tail) and value.startswith(head)
            and value.endswith(tail))


def _one_wildcard(kind: str, values: tuple[str, ...]) -> None:
    for v in values:
        if v.count("*") > 1:
            raise S3Error("InvalidRequest", f'{kind} "{v}" can not have more than one '
                          "wildcard.")


def parse_rules(body: bytes) -> list[CorsRule]:
    """Parse a ``CORSConfiguration`` with S3's checks."""
    root = parse(body)
    if root.tag != "CORSConfiguration":
        raise S3Error("MalformedXML")
    nodes = root.findall("CORSRule")
    if not nodes or len(nodes) != len(list(root)) or len(nodes) > MAX_RULES:
        raise S3Error("MalformedXML")
    rules = []
    for node in nodes:
        if any(c.tag not in _RULE_KEYS for c in node):
            raise S3Error("MalformedXML")
        origins = tuple(c.text or "" for c in node.findall("AllowedOrigin"))
        methods = tuple(c.text or "" for c in node.findall("AllowedMethod"))
        if not origins or not methods:
            raise S3Error("MalformedXML")
        for m in methods:
            if m not in METHODS:
                raise S3Error("InvalidRequest", "Found unsupported HTTP method in CORS "
                              f"config. Unsupported method is {m}")
        headers = tuple(c.text or "" for c in node.findall("AllowedHeader"))
        _one_wildcard("AllowedOrigin", origins)
        _one_wildcard("AllowedHeader", headers)
        max_age = text(node, "MaxAgeSeconds")
        if max_age is not None and not max_age.strip().isdigit():
            raise S3Error("MalformedXML")
        rules.append(CorsRule(origins, methods, headers,
                              tuple(c.text or "" for c in node.findall("ExposeHeader")),
                              int(max_age) if max_age is not None else None,
                              text(node, "ID") or ""))
    return rules


def encode(rules: list[CorsRule]) -> str:
    """Return the stored form of a configuration."""
    return json.dumps([[r.origins, r.methods, r.headers, r.expose, r.max_age, r.id]
                       for r in rules], separators=(",", ":"))


def decode(stored: str | None) -> list[CorsRule]:
    """Return the rules of a stored configuration (empty when none)."""
    if not stored:
        return []
    return [CorsRule(tuple(o), tuple(m), tuple(h), tuple(e), a, i)
            for o, m, h, e, a, i in json.loads(stored)]


def rules_xml(rules: list[CorsRule]) -> bytes:
    """Return the ``CORSConfiguration`` document of stored rules."""
    parts = []
    for r in rules:
        inner = (el("ID", r.id) if r.id else "") + \
            "".join(el("AllowedHeader", h) for h in r.headers) + \
            "".join(el("AllowedMethod", m) for m in r.methods) + \
            "".join(el("AllowedOrigin", o) for o in r.origins) + \
            "".join(el("ExposeHeader", e) for e in r.expose) + \
            (el("MaxAgeSeconds", r.max_age) if r.max_age is not None else "")
        parts.append(f"<CORSRule>{inner}</CORSRule>")
    return doc("CORSConfiguration", parts)


async def handle(req: S3Req) -> Resp:
    """Answer Get/Put/DeleteBucketCors."""
    return await bucketconf.handle(req, SYSMETA, parse_rules, encode, decode, rules_xml,
                                   ("NoSuchCORSConfiguration",
                                    "The CORS configuration does not exist"))


def _answer(rule: CorsRule, origin: str, method: str, headers: dict[str, str]) -> None:
    """Set the ``Access-Control-*`` headers of a matched rule."""
    if "*" in rule.origins:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Access-Control-Allow-Methods"] = ", ".join(rule.methods)
    if rule.expose:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.max_age is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age)
    headers["Vary"] = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


async def _rules_of(req: S3Req, registry: Registry) -> list[CorsRule]:
    """Return the bucket's CORS rules, looked up as the proxy (NoSuchBucket)."""
    owner = await registry.owner(req, req.bucket)
    if owner is None:
        raise S3Error("NoSuchBucket")
    return decode(await bucketconf.read(req, owner, SYSMETA))


async def preflight(req: S3Req, registry: Registry) -> Resp:
    """Answer an unauthenticated ``OPTIONS`` preflight against the bucket's rules."""
    origin = req.header("origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header "
                      "needed.", 400)
    method = req.header("access-control-request-method")
    if method not in METHODS:
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method or 'null'}",
                      400)
    if not req.bucket:
        raise S3Error("AccessForbidden", _NOT_ALLOWED, 403)
    rules = await _rules_of(req, registry)
    if not rules:
        raise S3Error("AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.",
                      403, {"Method": "OPTIONS", "ResourceType": "BUCKET"})
    asked = [h.strip().lower() for h in req.header("access-control-request-headers").split(",")
             if h.strip()]
    for rule in rules:
        if rule.allows(origin, method, asked):
            headers: dict[str, str] = {}
            _answer(rule, origin, method, headers)
            if asked:
                headers["Access-Control-Allow-Headers"] = ", ".join(asked)
            return Resp(200, headers)
    raise S3Error("AccessForbidden", _NOT_ALLOWED, 403,
                  {"Method": method, "ResourceType": "OBJECT" if req.key else "BUCKET"})


async def decorate(req: S3Req, registry: Registry, resp: Resp) -> None:
    """Add the CORS headers of the first rule admitting this request (``Origin`` sent)."""
    origin = req.header("origin")
    try:
        rules = await _rules_of(req, registry)
    except (S3Error, HTTPError):
        return
    for rule in rules:
        if rule.allows(origin, req.ctx.method, []):
            _answer(rule, origin, req.ctx.method, resp.headers)
            return
