"""PostObject: browser uploads by an HTML form signed with a POST policy.

A ``POST`` of ``multipart/form-data`` to a bucket (path or virtual-hosted style,
no ``Authorization`` header) is S3's browser upload, as boto3's
``generate_presigned_post`` builds it: form fields first (``key``, ``policy``,
the signature fields, ``Content-Type``, ``x-amz-meta-*``, ``acl``,
``success_action_status`` / ``success_action_redirect``, ...), then one
``file`` part, streamed into the object (never buffered whole).

The signature covers the base64 ``policy`` document: SigV4
(``x-amz-algorithm``/``x-amz-credential``/``x-amz-date``/``x-amz-signature``:
the hex HMAC-SHA256 of the policy with the scope's signing key) or SigV2
(``AWSAccessKeyId``/``signature``: base64 HMAC-SHA1, boto3's default). The
policy's ``expiration`` must lie ahead and each of its ``conditions`` hold
(exact match, ``eq``, ``starts-with``, ``content-length-range``), and every form
field but the signature, ``policy``, ``file`` and ``x-ignore-*`` ones must be
named by a condition: else ``403 AccessDenied`` "Invalid according to Policy".
The upload then runs as the signer's PutObject (the router's checks, the
bucket's ACL, quotas), so nothing a signed PUT could not do is possible. A
file outside ``content-length-range`` fails before its last byte is stored.

The answer is ``204`` (default), ``200``, or ``201`` with a ``PostResponse``
document (``success_action_status``), or a ``303`` to
``success_action_redirect`` with ``bucket``, ``key`` and ``etag`` added.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nubis.api.proxy.context import Body, Ctx, Resp
from nubis.api.proxy.formpost import FormError, MimeReader, parse_disposition
from nubis.api.proxy.s3.auth import Caller, CredentialSource, identity_of
from nubis.api.proxy.s3.buckets import XML
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.xmlio import doc, el
from nubis.api.shared import awssig
from nubis.api.shared.awssig import SignedRequest

#: The most bytes of form fields before the file (S3's limit).
MAX_FIELDS_BYTES = 20 * 1024
#: Fields no policy condition has to name.
_UNCHECKED = frozenset({"x-amz-signature", "signature", "awsaccesskeyid", "policy", "file",
                        "x-amz-security-token"})
#: Form fields that become the PutObject's headers (besides ``x-amz-meta-*``).
_HEADER_FIELDS = frozenset({"content-type", "cache-control", "content-disposition",
                            "content-encoding", "expires", "x-amz-storage-class",
                            "x-amz-website-redirect-location", "x-amz-server-side-encryption"})

Dispatch = Callable[[S3Req], Awaitable[Resp]]


@dataclasses.dataclass(frozen=True)
class Form:
    """The fields of a POST form (lower-case names) and its file part's filename."""

    fields: dict[str, str]
    filename: str


def is_post_object(ctx: Ctx, bucket: str, key: str) -> bool:
    """Tell whether a request is a browser form upload to a bucket (cheap; no I/O)."""
    return ctx.method == "POST" and bool(bucket) and not key \
        and "authorization" not in ctx.headers \
        and ctx.headers.get("content-type", "").startswith("multipart/form-data")


async def answer(ctx: Ctx, bucket: str, source: CredentialSource | None,
                 reseller_prefix: str, dispatch: Dispatch) -> Resp:
    """Check a form's policy and signature, store its file as the signer; answer.

    Raises:
        S3Error: AccessDenied, SignatureDoesNotMatch, InvalidArgument, EntityTooLarge, ...
    """
    reader = await _reader(ctx)
    form = await _read_fields(reader)
    caller = _signer(form.fields, source, reseller_prefix)
    policy = _policy(form.fields["policy"])
    bounds = check_policy(policy, form.fields, bucket, time.time())
    key = _key(form)
    sized = _SizedPart(reader, bounds, ctx.state.limits.max_file_size)
    put_ctx = dataclasses.replace(
        ctx, method="PUT", path=f"/{bucket}/{urllib.parse.quote(key)}", query={},
        raw_query=b"", headers=_put_headers(ctx, form.fields),
        body=Body(None, sized.receive, None, ctx.state.conf.client_timeout,
                  ctx.state.limits.max_file_size))
    resp = await dispatch(S3Req(put_ctx, caller, bucket, key))
    return _success(form.fields, bucket, key, resp, ctx.headers.get("host", ""))


async def _reader(ctx: Ctx) -> MimeReader:
    kind, attrs = parse_disposition(ctx.headers.get("content-type", ""))
    if kind != "multipart/form-data" or not attrs.get("boundary"):
        raise _malformed()
    reader = MimeReader(ctx.body, attrs["boundary"].encode("utf-8"))
    try:
        await reader.begin()
    except FormError:
        raise _malformed() from None
    return reader


def _malformed() -> S3Error:
    return S3Error("MalformedPOSTRequest", "The body of your POST request is not "
                   "well-formed multipart/form-data.", 400)


async def _read_fields(reader: MimeReader) -> Form:
    """Read the fields up to the file part (left unread); return them."""
    fields: dict[str, str] = {}
    used = 0
    try:
        while reader.next_part():
            _, attrs = parse_disposition((await reader.headers()).get(
                "content-disposition", ""))
            name = attrs.get("name", "").lower()
            if name == "file":
                return Form(fields, attrs.get("filename", ""))
            value = b""
            while chunk := await reader.read():
                used += len(chunk)
                if used > MAX_FIELDS_BYTES:
                    raise S3Error("MaxPostPreDataLengthExceededError", "Your POST request "
                                  "fields preceding the upload file were too large.", 400)
                value += chunk
            if name:
                fields[name] = value.decode("utf-8", "replace")
    except FormError:
        raise _malformed() from None
    raise S3Error("InvalidArgument", "POST requires exactly one file upload per request.",
                  extra={"ArgumentName": "file", "ArgumentValue": "0"})


def _signer(fields: dict[str, str], source: CredentialSource | None,
            reseller_prefix: str) -> Caller:
    """Return who signed the form's policy (SigV4 or SigV2)."""
    if "policy" not in fields:
        raise S3Error("AccessDenied")  # no anonymous writes
    policy = fields["policy"]
    if "x-amz-signature" in fields:
        algo = fields.get("x-amz-algorithm", "")
        if algo != "AWS4-HMAC-SHA256":
            raise S3Error("InvalidArgument", "Unsupported x-amz-algorithm",
                          extra={"ArgumentName": "x-amz-algorithm", "ArgumentValue": algo})
        parts = fields.get("x-amz-credential", "").split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
            raise S3Error("InvalidArgument", "Invalid x-amz-credential",
                          extra={"ArgumentName": "x-amz-credential"})
        access, signature = parts[0], fields["x-amz-signature"]
        sreq = SignedRequest(access, parts[1], parts[2], parts[3],
                             fields.get("x-amz-date", ""), ("host",), signature,
                             awssig.UNSIGNED, True)
    elif "signature" in fields and "awsaccesskeyid" in fields:
        access, signature = fields["awsaccesskeyid"], fields["signature"]
        sreq = SignedRequest(access, "", "", "s3", "", ("host",), signature, awssig.UNSIGNED,
                             True)
    else:
        raise S3Error("AccessDenied")
    cred = source.lookup(access) if source is not None else None
    if cred is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access})
    if sreq.date:
        key = awssig.signing_key(cred.secret, sreq.date, sreq.region, sreq.service)
        expected = awssig.signature_of(key, policy)
    else:
        expected = base64.b64encode(hmac.new(cred.secret.encode(), policy.encode(),
                                             hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does "
                      "not match the signature you provided. Check your key and signing "
                      "method.")
    return Caller(cred, sreq, b"", identity_of(cred, reseller_prefix),
                  f"{reseller_prefix}{cred.project_id}")


def _policy(encoded: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.", 400) \
            from None
    if not isinstance(policy, dict):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.", 400)
    return policy


def check_policy(policy: dict[str, Any], fields: dict[str, str], bucket: str,
                 now: float) -> tuple[int, int] | None:
    """Check a decoded policy against the form; return its content-length-range.

    Raises:
        S3Error: InvalidPolicyDocument (malformed), AccessDenied (expired, a
            condition that fails, a field no condition names).
    """
    _check_expiration(policy.get("expiration"), now)
    conditions = policy.get("conditions", [])
    if not isinstance(conditions, list):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid 'conditions'.", 400)
    values = {**fields, "bucket": bucket}
    named: set[str] = set()
    bounds = None
    for cond in conditions:
        if isinstance(cond, list) and len(cond) == 3 and cond[0] == "content-length-range":
            bounds = _length_range(cond)
            continue
        op, name, want = _condition(cond)
        named.add(name)
        got = values.get(name, "")
        if not (got == want if op == "eq" else got.startswith(want)):
            raise _denied("Policy Condition failed: " + json.dumps(cond))
    extra = sorted(n for n in fields if n not in named and n not in _UNCHECKED
                   and not n.startswith("x-ignore-"))
    if extra:
        raise _denied("Extra input fields: " + ", ".join(extra))
    return bounds


def _check_expiration(value: object, now: float) -> None:
    if not isinstance(value, str):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Policy missing expiration.",
                      400)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value: "
                      f"'{value}'", 400) from None
    if when < now:
        raise _denied("Policy expired.")


def _condition(cond: object) -> tuple[str, str, str]:
    """Return ``(op, field, value)`` of an exact-match, ``eq`` or ``starts-with`` condition."""
    if isinstance(cond, dict) and len(cond) == 1:
        ((name, want),) = cond.items()
        if isinstance(want, str):
            return "eq", str(name).lower(), want
    elif isinstance(cond, list) and len(cond) == 3 and isinstance(cond[0], str) \
            and cond[0].lower() in ("eq", "starts-with") and isinstance(cond[1], str) \
            and cond[1].startswith("$") and isinstance(cond[2], str):
        return cond[0].lower(), cond[1][1:].lower(), cond[2]
    raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid Condition: "
                  + json.dumps(cond), 400)


def _length_range(cond: list[Any]) -> tuple[int, int]:
    low, high = cond[1], cond[2]
    if not isinstance(low, int) or not isinstance(high, int) or not 0 <= low <= high:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range.",
                      400)
    return low, high


def _denied(why: str) -> S3Error:
    return S3Error("AccessDenied", "Invalid according to Policy: " + why)


def _key(form: Form) -> str:
    key = form.fields.get("key")
    if not key:
        raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.  If "
                      "it is specified, please check the order of the fields.",
                      extra={"ArgumentName": "key", "ArgumentValue": ""})
    key = key.replace("${filename}", form.filename)
    if not key:  # "${filename}" of a file part without a name
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.",
                      extra={"ArgumentName": "key", "ArgumentValue": ""})
    return key


def _put_headers(ctx: Ctx, fields: dict[str, str]) -> dict[str, str]:
    """Return the PutObject's headers the form asks for (a chunked body)."""
    if "tagging" in fields:
        raise S3Error("NotImplemented", "Tagging a form upload is not supported; tag the "
                      "object with PutObjectTagging.")
    headers = {"host": ctx.headers.get("host", ""), "transfer-encoding": "chunked"}
    for name, value in fields.items():
        if name in _HEADER_FIELDS or name.startswith("x-amz-meta-"):
            headers[name] = value
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    headers.setdefault("content-type", "binary/octet-stream")
    return headers


class _SizedPart:
    """The file part as ASGI ``receive`` events, held to the policy's size range.

    A file outside ``content-length-range`` raises before its last piece is
    passed on, so nothing is stored.
    """

    def __init__(self, reader: MimeReader, bounds: tuple[int, int] | None, limit: int
                 ) -> None:
        self.reader = reader
        self.low, self.high = bounds if bounds is not None else (0, limit)
        self.sent = 0

    async def receive(self) -> dict[str, Any]:
        """Return the next piece of the file (``more_body`` False at its end)."""
        try:
            chunk = await self.reader.read()
        except FormError:
            raise _malformed() from None
        self.sent += len(chunk)
        if self.sent > self.high:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum "
                          "allowed size", extra={"ProposedSize": str(self.sent),
                                                 "MaxSizeAllowed": str(self.high)})
        if not chunk and self.sent < self.low:
            raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the "
                          "minimum allowed size", extra={"ProposedSize": str(self.sent),
                                                         "MinSizeAllowed": str(self.low)})
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}


def _success(fields: dict[str, str], bucket: str, key: str, resp: Resp, host: str) -> Resp:
    """Answer a stored upload as the form asks (redirect, 200, 201 or 204)."""
    etag = resp.headers.get("ETag", "")
    hosted = host.split(":", 1)[0].startswith(bucket + ".")  # virtual-hosted style
    location = f"http://{host}/{'' if hosted else bucket + '/'}{urllib.parse.quote(key)}"
    headers = {"ETag": etag, "Location": location}
    headers.update({k: v for k, v in resp.headers.items() if k.startswith("x-amz-version")})
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        query = urllib.parse.urlencode({"bucket": bucket, "key": key, "etag": etag})
        target = redirect + ("&" if "?" in redirect else "?") + query
        return Resp(303, {**headers, "Location": target}, b"")
    status = fields.get("success_action_status", "204")
    if status == "201":
        body = doc("PostResponse", [el("Location", location), el("Bucket", bucket),
                                    el("Key", key), el("ETag", etag)])
        return Resp(201, {**headers, **XML}, body)
    return Resp(200 if status == "200" else 204, headers, b"")
