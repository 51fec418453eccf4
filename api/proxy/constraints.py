"""Swift's request constraints: name lengths, metadata limits, object size.

Each check raises :class:`~nubis.api.proxy.errors.HTTPError` with the status
and wording Swift uses, so clients see the same answers they would from Swift.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from nubis.api.proxy.errors import HTTPError


@dataclass(frozen=True)
class Limits:
    """Swift's ``[swift-constraints]`` with its default values."""

    max_file_size: int = 5 * 1024 ** 3
    max_meta_name_length: int = 128
    max_meta_value_length: int = 256
    max_meta_count: int = 90
    max_meta_overall_size: int = 4096
    max_header_size: int = 8192
    max_object_name_length: int = 1024
    container_listing_limit: int = 10000
    account_listing_limit: int = 10000
    max_account_name_length: int = 256
    max_container_name_length: int = 256
    extra_header_count: int = 0

    def as_info(self) -> dict[str, int]:
        """Return the limits as the ``swift`` section of ``/info`` shows them."""
        return {
            "max_file_size": self.max_file_size,
            "max_meta_name_length": self.max_meta_name_length,
            "max_meta_value_length": self.max_meta_value_length,
            "max_meta_count": self.max_meta_count,
            "max_meta_overall_size": self.max_meta_overall_size,
            "max_header_size": self.max_header_size,
            "max_object_name_length": self.max_object_name_length,
            "container_listing_limit": self.container_listing_limit,
            "account_listing_limit": self.account_listing_limit,
            "max_account_name_length": self.max_account_name_length,
            "max_container_name_length": self.max_container_name_length,
            "extra_header_count": self.extra_header_count,
        }


def check_account_name(name: str, limits: Limits) -> None:
    """Reject an account name that is too long."""
    n = len(name.encode("utf-8"))
    if n > limits.max_account_name_length:
        raise HTTPError(400, f"Account name length of {n} longer than "
                             f"{limits.max_account_name_length}")


def check_container_name(name: str, limits: Limits) -> None:
    """Reject an empty, slash-containing or too long container name."""
    if not name:
        raise HTTPError(400, "Container name required")
    if "/" in name:
        raise HTTPError(400, "Container name cannot contain slashes")
    n = len(name.encode("utf-8"))
    if n > limits.max_container_name_length:
        raise HTTPError(400, f"Container name length of {n} longer than "
                             f"{limits.max_container_name_length}",
                        {"Content-Type": "text/html; charset=UTF-8"})  # as Swift's proxy
    _check_utf8_name(name)


def check_object_name(name: str, limits: Limits) -> None:
    """Reject an empty or too long object name."""
    if not name:
        raise HTTPError(400, "Object name required")
    n = len(name.encode("utf-8"))
    if n > limits.max_object_name_length:
        raise HTTPError(400, f"Object name length of {n} longer than "
                             f"{limits.max_object_name_length}")
    _check_utf8_name(name)


def _check_utf8_name(name: str) -> None:
    if "\x00" in name or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise HTTPError(412, "Invalid UTF8 or contains NULL")


INVALID_UTF8 = "Invalid UTF8 or contains NULL"


def _header_bytes(value: str) -> bytes:
    """Return a header value's percent-decoded bytes (values arrive as latin-1)."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode("utf-8")
    return urllib.parse.unquote_to_bytes(raw)


def header_path(value: str) -> str:
    """Return a path-like header value (``X-Object-Manifest``) percent-decoded, as text."""
    return _header_bytes(value).decode("utf-8", "replace")


def _utf8(data: bytes) -> str:
    """Decode a name from a header as Swift's check_utf8 would accept it (412 if not)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(412, INVALID_UTF8) from None
    if "\x00" in text:
        raise HTTPError(412, INVALID_UTF8)
    return text


def check_path_header(value: str, name: str) -> tuple[str, str]:
    """Split an ``X-Copy-From`` / ``Destination`` value into (container, object).

    Like Swift's ``_check_path_header``: percent-decoded, one optional leading
    slash, both parts non-empty (the object may contain slashes).

    Raises:
        HTTPError: 412 when malformed or not valid UTF-8.
    """
    path = _header_bytes(value)
    if not path.startswith(b"/"):
        path = b"/" + path
    parts = path.split(b"/", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise HTTPError(412, f"{name} header must be of the form "
                             "<container name>/<object name>")
    return _utf8(parts[1]), _utf8(parts[2])


def check_account_header(value: str, limits: Limits) -> str:
    """Return the account named by ``X-Copy-From-Account`` / ``Destination-Account``.

    Raises:
        HTTPError: 412 when empty, with a slash or not UTF-8; 400 when too long.
    """
    raw = _header_bytes(value)
    if not raw:
        raise HTTPError(412, "Account name cannot be empty")
    if b"/" in raw:
        raise HTTPError(412, "Account name cannot contain slashes")
    account = _utf8(raw)
    check_account_name(account, limits)
    return account


def check_object_manifest(value: str) -> None:
    """Reject an ``X-Object-Manifest`` that is not ``container/prefix`` (Swift's dlo).

    Raises:
        HTTPError: 400 with Swift's message.
    """
    container, sep, prefix = value.partition("/")
    bad = (not sep or not container or not prefix or "?" in value or "&" in value
           or prefix.startswith("/"))
    if not bad:
        try:
            _utf8(_header_bytes(value))
        except HTTPError:
            bad = True
    if bad:
        raise HTTPError(400, "X-Object-Manifest must be in the format container/prefix")


def _raw_bytes(value: str) -> bytes:
    """Return the bytes a header value arrived as (latin-1; else decoded text's UTF-8)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def check_metadata(headers: Mapping[str, str], target: str, limits: Limits) -> None:
    """Check the ``X-<target>-Meta-*`` headers against Swift's limits.

    Args:
        headers: request headers, names in any case.
        target: ``object``, ``container`` or ``account``.
        limits: the limits to apply.
    """
    prefix = f"x-{target}-meta-"
    count = 0
    size = 0
    for key, value in headers.items():
        lk = key.lower()
        if not lk.startswith(prefix):
            continue
        name = lk[len(prefix):]
        if target in ("account", "container") and name.startswith("temp-url-key"):
            continue
        if not name:
            raise HTTPError(400, "Metadata name cannot be empty")
        raw = _raw_bytes(value)
        if target != "object":  # Swift stores any bytes as object metadata
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise HTTPError(400, "Metadata must be valid UTF-8") from None
        count += 1
        size += len(_raw_bytes(name)) + len(raw)
        if len(_raw_bytes(name)) > limits.max_meta_name_length:
            raise HTTPError(400, f"Metadata name too long: {key}; max "
                                 f"{limits.max_meta_name_length}")
        if len(raw) > limits.max_meta_value_length:
            raise HTTPError(400, f"Metadata value longer than "
                                 f"{limits.max_meta_value_length}: {key}")
        if count > limits.max_meta_count:
            raise HTTPError(400, f"Too many metadata items; max {limits.max_meta_count}")
        if size > limits.max_meta_overall_size:
            raise HTTPError(400, f"Total metadata too large; max "
                                 f"{limits.max_meta_overall_size}")


#: Largest timestamp Swift's normalized format can hold (10 integer digits).
MAX_TIMESTAMP = 9_999_999_999


def check_content_length(headers: Mapping[str, str], limits: Limits) -> int | None:
    """Return the announced body length (``None`` when chunked).

    Raises:
        HTTPError: 411 without a length, 400 on a bad one, 413 when too large;
            for a ``Transfer-Encoding`` other than ``chunked``, as Swift: 501 for
            several codings (``gzip, chunked``), 400 for another single one.
    """
    te = headers.get("transfer-encoding", "")
    cl = headers.get("content-length")
    if te:
        codings = te.split(",")
        if len(codings) > 1:
            raise HTTPError(501, "Unsupported Transfer-Coding header value specified "
                                 "in Transfer-Encoding header")
        if codings[0].strip().lower() != "chunked":
            raise HTTPError(400, "Invalid Transfer-Encoding header value")
        return None
    if cl is None:
        raise HTTPError(411, "Length Required: missing Content-Length header.")
    try:
        length = int(cl)
    except ValueError:
        raise HTTPError(400, "Invalid Content-Length header value") from None
    if length < 0:
        raise HTTPError(400, "Invalid Content-Length header value")
    if length > limits.max_file_size:
        raise HTTPError(413, "Your request is too large.")
    return length


def delete_at_from_headers(headers: Mapping[str, str], now: float | None = None) -> int | None:
    """Resolve ``X-Delete-At`` / ``X-Delete-After`` to an absolute epoch second."""
    now = time.time() if now is None else now
    after = headers.get("x-delete-after")
    at = headers.get("x-delete-at")
    if after is not None:
        try:
            secs = int(after)
        except ValueError:
            raise HTTPError(400, "Non-integer X-Delete-After") from None
        if secs < 0:
            raise HTTPError(400, "X-Delete-After in past")
        return int(min(now + secs, MAX_TIMESTAMP))  # Swift clamps far futures
    if at is not None:
        try:
            when = int(float(at))
        except (ValueError, OverflowError):
            raise HTTPError(400, "Non-integer X-Delete-At") from None
        if when < now:
            raise HTTPError(400, "X-Delete-At in past")
        when = min(when, int(MAX_TIMESTAMP))  # Swift clamps far futures
        return when
    return None


def check_listing_limit(value: str | None, maximum: int) -> int:
    """Parse the ``limit`` query parameter of a listing."""
    if value is None or not value.isdigit():
        return maximum  # Swift ignores a limit that is not all digits ("5000.0", "-1")
    limit = int(value)
    if limit > maximum:
        raise HTTPError(412, f"Maximum limit is {maximum}")
    return limit
