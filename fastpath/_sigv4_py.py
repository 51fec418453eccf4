"""AWS SigV4 request signatures with hashlib. Twin: _sigv4_c.pyx.

:func:`request_signature` builds a request's canonical request as AWS's
"Create a canonical request" step spells it, hashes it into the string to sign
and signs that with HMAC-SHA256 under a signing key, in one call. The key is
given as its :func:`key_state` (HMAC's padded inner and outer hash states,
RFC 2104), which a caller keeps per signing key (one per access key and day).
The compiled twin streams the same bytes through OpenSSL's SHA-256 without
building the strings; both return the same lower-case hex signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

#: SigV4's algorithm name, the first line of every string to sign.
ALGORITHM = "AWS4-HMAC-SHA256"
#: HMAC's block size for SHA-256 (RFC 2104's B).
BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def key_state(key: bytes) -> tuple[object, object]:
    """Return HMAC-SHA256's inner and outer hash states after the padded ``key``."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


def sign(state: tuple[object, object], message: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``message`` under the key of ``state``."""
    inner, outer = state
    h = inner.copy()  # type: ignore[attr-defined]
    h.update(message)
    o = outer.copy()  # type: ignore[attr-defined]
    o.update(h.digest())
    return str(o.hexdigest())


def header_value(value: str) -> str:
    """Return a header value as SigV4 canonicalises it (trimmed, inner runs folded)."""
    # PERF: bench s3 -- the usual value needs no folding (isprintable() is False for
    # every whitespace character but the ASCII space, so split() would keep it whole).
    if value.isprintable() and "  " not in value and value[:1] != " " \
            and value[-1:] != " ":
        return value
    return " ".join(value.split())


def canonical_request(method: str, uri: str, query: str, headers: Mapping[str, str],
                      signed: tuple[str, ...], payload: str) -> str:
    """Return the canonical request of already-canonical ``uri`` and ``query``."""
    lines = "".join([f"{h}:{header_value(headers.get(h, ''))}\n" for h in signed])
    return "\n".join([method, uri, query, lines, ";".join(signed), payload])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """Return the string to sign of a canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def request_signature(state: tuple[object, object], method: str, uri: str, query: str,
                      headers: Mapping[str, str], signed: tuple[str, ...], payload: str,
                      amz_date: str, scope: str) -> str:
    """Return the hex SigV4 signature of a request under the key of ``state``."""
    canonical = canonical_request(method, uri, query, headers, signed, payload)
    return sign(state, string_to_sign(amz_date, scope, canonical).encode("utf-8"))
