r"""TempURL: pre-signed, expiring object URLs (Swift's tempurl middleware).

Signature = HMAC(key, "METHOD\\nEXPIRES\\nPATH") with the account's (or
container's) ``Temp-URL-Key`` / ``Temp-URL-Key-2``; hex sha1 / sha256 /
sha512 or ``<digest>:<base64>`` forms, and ``prefix:``-scoped paths.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from nubis.api.proxy.errors import HTTPError

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
#: Headers a tempurl PUT/POST may not carry (they would reach beyond the signed object).
DISALLOWED_HEADERS = ("x-object-manifest", "x-symlink-target", "x-copy-from")


@dataclass(frozen=True)
class TempUrlRequest:
    """The tempurl query parameters of one request."""

    sig: str
    expires: int
    prefix: str | None
    filename: str | None
    inline: bool


def parse_params(params: dict[str, str]) -> TempUrlRequest | None:
    """Return the tempurl parameters, ``None`` when the request is not a tempurl.

    Raises:
        HTTPError: 401 on malformed or expired parameters.
    """
    sig = params.get("temp_url_sig")
    exp = params.get("temp_url_expires")
    if sig is None and exp is None:
        return None
    if not sig or not exp:
        raise HTTPError(401, "Unauthorized: temp_url_sig and temp_url_expires are required")
    try:
        expires = int(exp)
    except ValueError:
        try:
            expires = int(time.mktime(time.strptime(exp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)
        except ValueError:
            raise HTTPError(400, "Invalid temp_url_expires value") from None
    if expires < time.time():
        raise HTTPError(401, "Unauthorized: temp_url_expires is in the past")
    return TempUrlRequest(sig=sig, expires=expires, prefix=params.get("temp_url_prefix"),
                          filename=params.get("filename"), inline="inline" in params)


def sign(key: str, method: str, expires: int, path: str, digest: str = "sha256") -> str:
    """Return the hex signature of a tempurl (what clients compute)."""
    msg = f"{method}\n{expires}\n{path}".encode()
    return hmac.new(key.encode(), msg, DIGESTS[digest]).hexdigest()


def split_signature(sig: str) -> tuple[str, bytes] | None:
    """Return ``(digest name, raw signature)`` of a hex or ``<digest>:<base64>`` one."""
    if ":" in sig:
        name, _, b64 = sig.partition(":")
        if name not in DIGESTS:
            return None
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except ValueError:
            return None
        return name, raw
    hex_name = HEX_LENGTHS.get(len(sig))
    if hex_name is None:
        return None
    try:
        return hex_name, bytes.fromhex(sig)
    except ValueError:
        return None


def verify(tu: TempUrlRequest, method: str, path: str, keys: Iterable[str]) -> bool:
    """Return whether ``tu`` is a valid signature of ``method path`` by any key.

    ``path`` is ``/v1/AUTH_x/c/o``; a ``temp_url_prefix`` signs
    ``prefix:/v1/AUTH_x/c/<prefix>`` instead. HEAD is allowed by GET, PUT and
    POST signatures, as in Swift.
    """
    split = split_signature(tu.sig)
    if split is None:
        return False
    digest, raw = split
    if tu.prefix is not None:
        pieces = path.split("/", 4)  # ['', 'v1', account, container, object]
        if len(pieces) < 5 or not pieces[4].startswith(tu.prefix):
            return False
        signed_path = "prefix:" + "/".join(pieces[:4]) + "/" + tu.prefix
    else:
        signed_path = path
    methods = [method] if method != "HEAD" else ["HEAD", "GET", "PUT", "POST"]
    for key in keys:
        for m in methods:
            msg = f"{m}\n{tu.expires}\n{signed_path}".encode()
            good = hmac.new(header_bytes(key), msg, DIGESTS[digest]).digest()
            if hmac.compare_digest(good, raw):
                return True
    return False


def header_bytes(value: str) -> bytes:
    """Return a header value's bytes (HTTP servers decode them as latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def disposition(tu: TempUrlRequest, obj: str) -> str | None:
    """Return the Content-Disposition a tempurl GET should carry, if any (Swift's format)."""
    if tu.inline:
        return "inline" if tu.filename is None else _disposition_format("inline", tu.filename)
    name = tu.filename if tu.filename is not None else obj.rstrip("/").rsplit("/", 1)[-1]
    return _disposition_format("attachment", name)


def _disposition_format(kind: str, filename: str) -> str:
    """Return ``kind; filename="..."; filename*=UTF-8''...`` (RFC 6266, ASCII only)."""
    return (f'{kind}; filename="{urllib.parse.quote(filename, safe=" /")}"; '
            f"filename*=UTF-8''{urllib.parse.quote(filename)}")
