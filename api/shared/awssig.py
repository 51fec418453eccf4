"""AWS Signature Version 4, canonicalised exactly as AWS does it (shared by S3 and EC2 tokens).

The proxy's S3 API checks header-signed and presigned requests with
:func:`parse_request` + :func:`verify`; the identity service's
``/v3/ec2tokens`` and ``/v3/s3tokens`` check a client's string-to-sign with
:func:`signature_of`. Streaming uploads (``aws-chunked``) are decoded by
:mod:`nubis.api.shared.awschunked`. Errors carry S3's error codes
(:class:`SigError`); each API maps them to its own answers.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import functools
import hashlib
import hmac
import re
import time
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import xxhash
from nubis.fastpath import _sigv4_py, crc, sigv4

ALGORITHM = _sigv4_py.ALGORITHM
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (STREAMING, STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER)
#: ``x-amz-content-sha256`` values that are not a payload hash.
_NOT_HASHES = frozenset((UNSIGNED, *STREAMING_MODES))
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Largest accepted difference between the request's clock and ours (S3: 15 minutes).
MAX_SKEW = 15 * 60
#: Longest presigned URL lifetime (7 days).
MAX_EXPIRES = 7 * 86400
_SAFE = "-_.~"


class SigError(Exception):
    """A request whose signature cannot be accepted; ``code`` is S3's error code."""

    def __init__(self, code: str, message: str, status: int = 403,
                 extra: Mapping[str, str] | None = None, resource: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = dict(extra or {})
        #: Whether the answer names the addressed resource (S3 leaves it out for some).
        self.resource = resource


class S3Credential(NamedTuple):
    """What a signature check needs for one access key (from the EC2 credentials).

    PERF: bench s3 -- a named tuple: the per-request identity cache hashes it
    (``s3.auth.identity_of``), in C here, through Python for a frozen dataclass.
    """

    access: str
    secret: str
    user_id: str
    project_id: str
    role_names: frozenset[str]
    #: ``<Owner><ID>`` shown for this caller (default: the project id).
    owner: str = ""


class SignedRequest(NamedTuple):
    """The signature parts of one request (from its header or its query string).

    PERF: bench s3 -- an immutable named tuple, not a frozen dataclass: one is
    made per signed request, and a frozen dataclass sets its ten fields through
    ``object.__setattr__`` (1.16 vs 0.31 us, ``timeit``).
    """

    access: str
    date: str  # yyyymmdd of the scope
    region: str
    service: str
    amz_date: str  # yyyymmddThhmmssZ
    signed_headers: tuple[str, ...]
    signature: str
    payload: str  # x-amz-content-sha256 (UNSIGNED-PAYLOAD for presigned without it)
    presigned: bool
    expires: int = 0

    @property
    def scope(self) -> str:
        """Return the credential scope ``date/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def uri_encode(text: str, safe: str = _SAFE) -> str:
    """Percent-encode as AWS does (unreserved characters kept, upper-case hex)."""
    return urllib.parse.quote(text, safe=safe)


#: A path that canonicalises to itself (unreserved characters and ``/`` only).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]+")


def canonical_uri(raw_path: str) -> str:
    """Return the canonical URI of an S3 request path (decoded once, encoded once)."""
    if _PLAIN_PATH.fullmatch(raw_path):  # PERF: bench s3 -- the usual key needs no coding
        return raw_path
    return uri_encode(urllib.parse.unquote(raw_path or "/"), _SAFE + "/") or "/"


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded ``(key, value)`` pairs (blank values kept)."""
    out: list[tuple[str, str]] = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        out.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    return out


def canonical_query(pairs: list[tuple[str, str]], drop: str = "") -> str:
    """Return the canonical query: encoded pairs sorted by key, then value."""
    if not pairs:
        return ""
    enc = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs if k != drop)
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_request(method: str, raw_path: str, pairs: list[tuple[str, str]],
                      headers: Mapping[str, str], signed: tuple[str, ...], payload: str,
                      drop_query: str = "") -> str:
    """Build the canonical request string."""
    return _sigv4_py.canonical_request(method, canonical_uri(raw_path),
                                       canonical_query(pairs, drop_query), headers, signed,
                                       payload)


@functools.lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (PERF: cached per day and scope; bench s3)."""
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


@functools.lru_cache(maxsize=1024)
def _signing_state(secret: str, date: str, region: str, service: str) -> tuple[bytes, object]:
    """Return a scope's signing key and its fastpath HMAC state (PERF: cached; bench s3)."""
    key = signing_key(secret, date, region, service)
    return key, _key_state(key)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode("utf-8"), "sha256")


string_to_sign = _sigv4_py.string_to_sign


def signature_of(key: bytes, to_sign: str) -> str:
    """Return the hex signature of ``to_sign`` (HMAC-SHA256 under ``key``)."""
    return sigv4.sign(_key_state(key), to_sign.encode("utf-8"))


@functools.lru_cache(maxsize=1024)
def _key_state(key: bytes) -> object:
    """Return the fastpath's HMAC state of a signing key.

    PERF: bench s3 -- kept per signing key (one per access key and day), so a
    signature costs two short SHA-256 updates instead of a whole HMAC.
    """
    return sigv4.key_state(key)


def scope_of_string_to_sign(to_sign: str) -> tuple[str, str, str]:
    """Return ``(date, region, service)`` from a SigV4 string to sign."""
    lines = to_sign.split("\n")
    if len(lines) != 4 or lines[0] != ALGORITHM:
        raise SigError("InvalidArgument", "Not a SigV4 string to sign.", 400)
    parts = lines[2].split("/")
    if len(parts) != 4 or parts[3] != "aws4_request":
        raise SigError("InvalidArgument", "Bad credential scope.", 400)
    return parts[0], parts[1], parts[2]


def is_s3_request(headers: Mapping[str, str], raw_query: bytes) -> bool:
    """Tell an S3 request from a Swift one (cheap: a header prefix or a query key)."""
    auth = headers.get("authorization")
    if auth is not None and auth.startswith(("AWS4-", "AWS ")):
        return True
    return b"X-Amz-Credential=" in raw_query or b"AWSAccessKeyId=" in raw_query


def parse_request(headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> SignedRequest:
    """Read the signature parts of a header-signed or presigned request."""
    auth = headers.get("authorization", "")
    if auth:
        return _parse_header(auth, headers)
    q = dict(pairs)
    if "X-Amz-Credential" in q:
        return _parse_presigned(q, headers.get("x-amz-content-sha256", UNSIGNED))
    raise SigError("AccessDenied", "Access Denied")


def _parse_header(auth: str, headers: Mapping[str, str]) -> SignedRequest:
    head, sep, signature = auth.rpartition(", Signature=")
    if sep and "," not in signature and "=" not in signature:
        # PERF: bench s3 -- a client sends the same head (algorithm, credential,
        # signed headers) on every request; only the signature differs.
        credential, signed_headers = _header_fields(head)
    else:
        credential, signed_headers, signature = _split_header(auth)
    amz_date = headers.get("x-amz-date", "")
    if not amz_date and "date" in headers:
        amz_date = _http_to_amz(headers["date"])
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise SigError("InvalidRequest", "Missing required header for this request: "
                       "x-amz-content-sha256", 400)
    return _signed(credential, amz_date, signed_headers, signature, payload, False, 0)


@functools.lru_cache(maxsize=256)
def _header_fields(head: str) -> tuple[str, str]:
    """Return ``(credential, signed headers)`` of an Authorization header's head (cached)."""
    credential, signed, _ = _split_header(head + ", Signature=")
    return credential, signed


def _split_header(auth: str) -> tuple[str, str, str]:
    """Return ``(credential, signed headers, signature)`` of a SigV4 Authorization header."""
    algo, _, rest = auth.partition(" ")
    if algo != ALGORITHM:
        raise SigError("InvalidArgument", f"Unsupported Authorization Type {algo}", 400)
    fields: dict[str, str] = {}
    for item in rest.split(","):
        k, _, v = item.strip().partition("=")
        fields[k] = v
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise SigError("AuthorizationHeaderMalformed",
                       "The authorization header is malformed.", 400)
    return fields["Credential"], fields["SignedHeaders"], fields["Signature"]


def _parse_presigned(q: Mapping[str, str], payload: str) -> SignedRequest:
    """Read a presigned URL's parts; ``payload`` is what its canonical request ends with.

    A presigned request that also sends ``x-amz-content-sha256`` signs that
    header's value as the payload hash (as S3 does); else ``UNSIGNED-PAYLOAD``.
    """
    if q.get("X-Amz-Algorithm") != ALGORITHM:
        raise SigError("AuthorizationQueryParametersError",
                       "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"", 400)
    try:
        expires = int(q.get("X-Amz-Expires", ""))
        if expires >= 2 ** 63:  # not an int64, as S3 parses it
            raise ValueError(expires)
    except ValueError:
        raise SigError("AuthorizationQueryParametersError",
                       "X-Amz-Expires should be a number", 400) from None
    if expires < 0:
        raise SigError("AuthorizationQueryParametersError",
                       "X-Amz-Expires must be non-negative", 400)
    if expires > MAX_EXPIRES:
        raise SigError("AuthorizationQueryParametersError",
                       "X-Amz-Expires must be less than 604800 seconds (a week)", 400)
    return _signed(q["X-Amz-Credential"], q.get("X-Amz-Date", ""),
                   q.get("X-Amz-SignedHeaders", ""), q.get("X-Amz-Signature", ""),
                   payload, True, expires)


def _signed(credential: str, amz_date: str, signed_headers: str, signature: str,
            payload: str, presigned: bool, expires: int) -> SignedRequest:
    parts, names = _scope(credential, signed_headers)
    if len(amz_date) != 16 or not amz_date.startswith(parts[1]):
        raise SigError("AccessDenied", "AWS authentication requires a valid Date or "
                       "x-amz-date header")
    if "host" not in names:
        raise SigError("AccessDenied", "Host must be a signed header.")
    return SignedRequest(parts[0], parts[1], parts[2], parts[3], amz_date, names,
                         signature, payload, presigned, expires)


@functools.lru_cache(maxsize=256)
def _scope(credential: str, signed_headers: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return a credential's checked parts and the signed header names.

    PERF: bench s3 -- cached: a client sends the same two on every request.
    """
    parts = tuple(credential.split("/"))
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise SigError("AuthorizationHeaderMalformed",
                       f"The authorization header is malformed; the Credential is "
                       f"mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/"
                       f"aws4_request\". ({credential})", 400)
    return parts, tuple(signed_headers.split(";")) if signed_headers else ()


def _http_to_amz(value: str) -> str:
    try:
        parsed = time.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        return ""
    return time.strftime("%Y%m%dT%H%M%SZ", parsed)


def request_time(sreq: SignedRequest) -> float:
    """Return the request's signing time as an epoch second (PERF: no strptime; bench s3)."""
    return _amz_epoch(sreq.amz_date)


@functools.lru_cache(maxsize=64)
def _amz_epoch(d: str) -> float:
    """Return ``yyyymmddThhmmssZ`` as an epoch second (PERF: cached, one per second; bench s3)."""
    try:
        if len(d) != 16 or d[8] != "T" or d[15] != "Z":
            raise ValueError(d)
        fields = (int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]),
                  int(d[13:15]))
        if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24
                and fields[4] < 60 and fields[5] < 61):
            raise ValueError(d)
        return float(calendar.timegm((*fields, 0, 0, 0)))
    except ValueError:
        raise SigError("AccessDenied", "AWS authentication requires a valid Date or "
                       "x-amz-date header") from None


def check_time(sreq: SignedRequest, now: float) -> None:
    """Refuse a skewed clock (header-signed) or an expired URL (presigned)."""
    when = request_time(sreq)
    if sreq.presigned:
        if now > when + sreq.expires:
            raise SigError("AccessDenied", "Request has expired",
                           extra={"Expires": _iso(when + sreq.expires),
                                  "ServerTime": _iso(now)})
        if when - now > MAX_SKEW:
            raise SigError("RequestTimeTooSkewed", "The difference between the request "
                           "time and the current time is too large.")
        return
    if abs(now - when) > MAX_SKEW:
        raise SigError("RequestTimeTooSkewed", "The difference between the request time "
                       "and the current time is too large.",
                       extra={"RequestTime": sreq.amz_date, "ServerTime": _iso(now),
                              "MaxAllowedSkewMilliseconds": str(MAX_SKEW * 1000)})


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def verify(sreq: SignedRequest, secret: str, method: str, raw_path: str,
           pairs: list[tuple[str, str]], headers: Mapping[str, str]) -> bytes:
    """Check the request's signature; return the signing key (for chunk signatures).

    Raises:
        SigError: ``SignatureDoesNotMatch`` carrying the expected string to sign.
    """
    payload = sreq.payload
    if not sreq.presigned and not is_payload_hash(payload) and payload not in _NOT_HASHES:
        raise SigError("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                       "STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                       400, extra={"ArgumentName": "x-amz-content-sha256",
                                   "ArgumentValue": payload})
    key, state = _signing_state(secret, sreq.date, sreq.region, sreq.service)
    uri = canonical_uri(raw_path)
    query = canonical_query(pairs, "X-Amz-Signature" if sreq.presigned else "")
    # PERF: bench s3 -- one fastpath call builds, hashes and signs the canonical request.
    expected = sigv4.request_signature(state, method, uri, query, headers,
                                       sreq.signed_headers, payload, sreq.amz_date,
                                       sreq.scope)
    if not hmac.compare_digest(expected, sreq.signature):
        canonical = _sigv4_py.canonical_request(method, uri, query, headers,
                                                sreq.signed_headers, payload)
        to_sign = string_to_sign(sreq.amz_date, sreq.scope, canonical)
        raise signature_mismatch(sreq.access, to_sign, sreq.signature, canonical)
    return key


def signature_mismatch(access: str, to_sign: str, provided: str,
                       canonical: str | None) -> SigError:
    """Return ``SignatureDoesNotMatch`` with what S3 shows of it (strings and their bytes)."""
    extra = {"AWSAccessKeyId": access, "StringToSign": to_sign,
             "SignatureProvided": provided, "StringToSignBytes": _hex_bytes(to_sign)}
    if canonical is not None:
        extra.update(CanonicalRequest=canonical, CanonicalRequestBytes=_hex_bytes(canonical))
    return SigError("SignatureDoesNotMatch", "The request signature we calculated does not "
                    "match the signature you provided. Check your key and signing method.",
                    extra=extra)


def _hex_bytes(text: str) -> str:
    return " ".join(f"{b:02x}" for b in text.encode("utf-8"))


def is_payload_hash(text: str) -> bool:
    """Tell whether an ``x-amz-content-sha256`` value is a SHA-256 (64 hex digits)."""
    if len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


# -- Signature Version 2 (what boto3's generate_presigned_url makes by default) ---------

#: Query parameters that are part of a SigV2 canonical resource.
V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber",
    "policy", "requestPayment", "torrent", "versioning", "versionId", "versions", "website",
    "uploads", "uploadId", "response-content-type", "response-content-language",
    "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
    "storageClass", "notification", "replication", "analytics", "metrics", "inventory",
    "select", "select-type", "object-lock"})


def is_v2(headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> bool:
    """Tell whether a request is signed with Signature Version 2."""
    if headers.get("authorization", "").startswith("AWS "):
        return True
    return any(k == "AWSAccessKeyId" for k, _ in pairs)


def parse_v2(headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> SignedRequest:
    """Read a SigV2 request's access key, signature and expiry."""
    auth = headers.get("authorization", "")
    if auth.startswith("AWS "):
        access, _, sig = auth[4:].strip().rpartition(":")
        date = headers.get("x-amz-date") or headers.get("date", "")
        return SignedRequest(access, "", "", "s3", _http_to_amz(date), (), sig, UNSIGNED,
                             False)
    q = dict(pairs)
    try:
        expires = int(q.get("Expires", ""))
    except ValueError:
        raise SigError("AccessDenied", "Query-string authentication requires the "
                       "Signature, Expires and AWSAccessKeyId parameters") from None
    return SignedRequest(q.get("AWSAccessKeyId", ""), "", "", "s3", "", (),
                         q.get("Signature", ""), UNSIGNED, True, expires)


def check_time_v2(sreq: SignedRequest, now: float) -> None:
    """Refuse an expired SigV2 URL or a skewed SigV2 Date."""
    if sreq.presigned:
        if sreq.expires >= 2 ** 31:
            raise SigError("AccessDenied", "Invalid date (should be seconds since epoch): "
                           f"{sreq.expires}")
        if now > sreq.expires:
            raise SigError("AccessDenied", "Request has expired",
                           extra={"Expires": _iso(sreq.expires), "ServerTime": _iso(now)})
        return
    check_time(sreq, now)


def string_to_sign_v2(sreq: SignedRequest, method: str, raw_path: str, raw_query: str,
                      headers: Mapping[str, str]) -> str:
    """Build the SigV2 string to sign (raw path as sent, sub-resources sorted)."""
    amz = sorted((k, v.strip()) for k, v in headers.items()
                 if (k.startswith("x-amz-") and k != "x-amz-date") or
                 (k == "x-amz-date" and not sreq.presigned))
    if sreq.presigned:
        date = str(sreq.expires)
    else:
        date = "" if "x-amz-date" in headers else headers.get("date", "")
    subs = []
    for piece in raw_query.split("&"):
        key, eq, value = piece.partition("=")
        key = urllib.parse.unquote(key)
        if key in V2_SUBRESOURCES:
            subs.append((key, f"{key}={urllib.parse.unquote(value)}" if eq else key))
    resource = raw_path + ("?" + "&".join(v for _, v in sorted(subs)) if subs else "")
    lines = [method, headers.get("content-md5", ""), headers.get("content-type", ""), date]
    return "\n".join(lines) + "\n" + "".join(f"{k}:{v}\n" for k, v in amz) + resource


def verify_v2(sreq: SignedRequest, secret: str, method: str, raw_path: str, raw_query: str,
              headers: Mapping[str, str]) -> None:
    """Check a SigV2 signature (HMAC-SHA1)."""
    to_sign = string_to_sign_v2(sreq, method, raw_path, raw_query, headers)
    expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode("utf-8"),
                                         hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, sreq.signature):
        raise SigError("SignatureDoesNotMatch", "The request signature we calculated does "
                       "not match the signature you provided. Check your key and signing "
                       "method.", extra={"AWSAccessKeyId": sreq.access,
                                         "StringToSign": to_sign})


# -- checksums ---------------------------------------------------------------------------

class _RunningCrc:
    """A CRC kept as its running value (zlib's CRC-32 or a fastpath kernel)."""

    def __init__(self, func: Callable[[bytes, int], int], width: int) -> None:
        self.func = func
        self.width = width
        self.crc = 0

    def update(self, data: bytes) -> None:
        self.crc = self.func(data, self.crc)

    def digest(self) -> bytes:
        return self.crc.to_bytes(self.width // 8, "big")


class _Hash:
    """A hashlib or xxhash object (their ``digest`` is the big-endian form S3 shows)."""

    def __init__(self, h: Any) -> None:
        self.h = h

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def digest(self) -> bytes:
        return bytes(self.h.digest())


#: S3's additional checksums by algorithm (lower case, as in ``x-amz-checksum-<algo>``).
CHECKSUMS: dict[str, Callable[[], _RunningCrc | _Hash]] = {
    "crc32": lambda: _RunningCrc(zlib.crc32, 32),
    "crc32c": lambda: _RunningCrc(crc.crc32c, 32),
    "crc64nvme": lambda: _RunningCrc(crc.crc64nvme, 64),
    "sha1": lambda: _Hash(hashlib.sha1()),
    "sha256": lambda: _Hash(hashlib.sha256()),
    "sha512": lambda: _Hash(hashlib.sha512()),
    "md5": lambda: _Hash(hashlib.md5(usedforsecurity=False)),
    "xxhash64": lambda: _Hash(xxhash.xxh64()),
    "xxhash3": lambda: _Hash(xxhash.xxh3_64()),
    "xxhash128": lambda: _Hash(xxhash.xxh3_128()),
}


class Checksum:
    """One ``x-amz-checksum-<algo>`` computed over a body as it passes."""

    def __init__(self, algo: str) -> None:
        if algo not in CHECKSUMS:
            raise SigError("InvalidRequest", f"Unsupported checksum algorithm {algo}", 400)
        self.algo = algo
        self._impl = CHECKSUMS[algo]()

    def update(self, data: bytes) -> None:
        """Add body bytes."""
        self._impl.update(data)

    def value(self) -> str:
        """Return the base64 digest, as S3 shows it."""
        return base64.b64encode(self._impl.digest()).decode()

    def check(self, claimed: str) -> None:
        """Raise ``BadDigest`` unless ``claimed`` is this body's checksum."""
        if claimed.strip() != self.value():
            raise SigError("BadDigest", f"The {self.algo.upper()} you specified did not "
                           "match the calculated checksum.", 400)


#: ``x-amz-checksum-*`` headers that name no checksum value.
_NOT_VALUES = ("x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode")
#: Bytes of each algorithm's digest.
DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32,
                "sha512": 64, "md5": 16, "xxhash64": 8, "xxhash3": 8, "xxhash128": 16}
_PREFIX = "x-amz-checksum-"


def check_request_checksums(headers: Mapping[str, str]) -> None:
    """Refuse an upload's checksum headers as S3 does (each ``InvalidRequest``).

    At most one checksum, in a header or announced by ``x-amz-trailer``; known
    algorithms only; a header's value must be base64 of the digest's size; an
    ``x-amz-sdk-checksum-algorithm`` must name that checksum's algorithm.
    """
    named = [h for h in headers if h.startswith(_PREFIX) and h not in _NOT_VALUES]
    if not named and "x-amz-trailer" not in headers \
            and "x-amz-sdk-checksum-algorithm" not in headers:
        return  # PERF: bench s3 -- the usual upload names no checksum
    if any(h[len(_PREFIX):] not in CHECKSUMS for h in named):
        raise _invalid("The algorithm type you specified in x-amz-checksum- header is invalid.")
    announced = trailer_names(headers.get("x-amz-trailer"))
    if any(not t.startswith(_PREFIX) or t[len(_PREFIX):] not in CHECKSUMS
           for t in announced):
        raise _invalid("The value specified in the x-amz-trailer header is not supported")
    if len(named) > 1 or len(announced) > 1:
        raise SigError("InvalidRequest", "Expecting a single x-amz-checksum- header. "
                       "Multiple checksum Types are not allowed.", 400, resource=False)
    if named and announced:
        raise _invalid("Expecting a single x-amz-checksum- header")
    if announced and headers.get("x-amz-content-sha256") not in STREAMING_MODES:
        raise malformed_trailer()
    algo = (named or announced or [""])[0][len(_PREFIX):]
    if named:
        _check_value(named[0], headers[named[0]], DIGEST_SIZES[algo])
    sdk = headers.get("x-amz-sdk-checksum-algorithm")
    if sdk and not algo:
        raise _invalid("x-amz-sdk-checksum-algorithm specified, but no corresponding "
                       "x-amz-checksum-* or x-amz-trailer headers were found.")
    if sdk and sdk.lower() != algo:
        raise _invalid("Value for x-amz-sdk-checksum-algorithm header is invalid.")


def trailer_names(header: str | None) -> list[str]:
    """Split an ``x-amz-trailer`` header as S3 does (a blank name stays, to be refused)."""
    value = (header or "").strip()
    return [v.strip().lower() for v in value.rstrip(",").split(",")] if value else []


def malformed_trailer() -> SigError:
    """Return S3's answer to trailers that are not the ones announced."""
    return SigError("MalformedTrailerError", "The request contained trailing data that "
                    "was not well-formed or did not conform to our published schema.", 400)


def _check_value(name: str, value: str, size: int) -> None:
    if not valid_checksum_value(value.strip(), size):
        raise _invalid(f"Value for {name} header is invalid.")


def valid_checksum_value(value: str, size: int) -> bool:
    """Tell whether ``value`` is the canonical base64 of a ``size``-byte digest.

    As S3 (and Swift's s3api) checks it: ``y/Q5Jh==`` decodes to four bytes but
    is not how those bytes encode, so it is refused.
    """
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == size and base64.b64encode(raw).decode() == value


def _invalid(message: str) -> SigError:
    return SigError("InvalidRequest", message, 400)


def checksum_algo_of(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """Return ``(algorithm, value)`` of an ``x-amz-checksum-*`` request header, if any."""
    for algo, name in _CHECKSUM_HEADERS:  # PERF: bench s3 -- names made once
        value = headers.get(name)
        if value is not None:
            return algo, value.strip()
    return None


#: ``(algorithm, its x-amz-checksum-* header)``, in the order of :data:`CHECKSUMS`.
_CHECKSUM_HEADERS = tuple((algo, _PREFIX + algo) for algo in CHECKSUMS)
