"""SigV4 request signatures: the compiled kernel (OpenSSL SHA-256) when available, else the twin."""

from __future__ import annotations

from collections.abc import Callable

from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("sigv4")

#: ``key_state(key)``: a signing key's HMAC state, opaque, for ``sign`` and ``request_signature``.
key_state: Callable[[bytes], object] = _impl.key_state
#: ``sign(state, message)``: the hex HMAC-SHA256 of ``message``.
sign: Callable[[object, bytes], str] = _impl.sign
#: ``request_signature(state, method, uri, query, headers, signed, payload, amz_date, scope)``.
request_signature: Callable[..., str] = _impl.request_signature

__all__ = ["IMPLEMENTATION", "key_state", "request_signature", "sign"]
