"""Request lines and framing as Swift's eventlet takes them, for llhttp-based servers.

httptools' parser (llhttp) is stricter than eventlet: it refuses raw UTF-8 in
request lines, methods it does not know and odd header names, and frames
``Transfer-Encoding: gzip, chunked`` as chunked. :class:`RequestLines` rewrites
what a connection reads before the parser sees it; :func:`coding_refused` and
:func:`origin_form` tell servers (``common/httpserver.py``, the proxy's
uvicorn protocol) how to treat what it parsed.
"""

from __future__ import annotations

import re

from nubis.common.headnames import escape_head

#: ``%XX`` of every byte value, for :func:`escape_non_ascii`.
_PERCENT = [b"%%%02X" % i for i in range(256)]


#: Request methods llhttp parses (``CONNECT`` and the newer ``QUERY`` left out:
#: they are swapped like unknown ones, so they reach the handler as sent).
LLHTTP_METHODS = frozenset(
    b"GET HEAD PUT POST DELETE OPTIONS COPY TRACE PATCH LOCK UNLOCK MKCOL MOVE "
    b"PROPFIND PROPPATCH SEARCH BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT "
    b"MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK "
    b"SOURCE".split())
#: What an unknown method is parsed as (the original is restored after the head).
PLACEHOLDER_METHOD = b"MKCALENDAR"
#: Longest method token that is swapped; a longer one stays a 400.
MAX_METHOD = 64
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def escape_non_ascii(data: bytes) -> bytes:
    """Percent-encode the bytes >= 0x80 of ``data`` (ASCII bytes stay as they are)."""
    return b"".join(_PERCENT[b] if b >= 0x80 else data[i:i + 1] for i, b in enumerate(data))


class RequestLines:
    r"""Escape raw UTF-8 in request lines before httptools' strict parser sees them.

    Swift (eventlet) accepts request lines whose path or query carry raw bytes
    >= 0x80 (``GET /v1/a/c/\xc3\xa9``); llhttp refuses them. Those bytes are
    percent-encoded, which names the same object: the path is unquoted to bytes
    anyway. Only a line the connection's next read starts with is rewritten
    (the state follows the parser's message callbacks), so bodies are never
    touched; the line of a pipelined request that begins in the middle of a
    read is parsed as sent.

    Header names llhttp refuses (``x-amz-meta-(``) of a head that arrives in
    the same read are escaped (:func:`~nubis.common.headnames.escape_head`) and
    :attr:`renamed` is set.

    With ``methods``, a method llhttp does not know (Swift's suite sends
    ``LICK``; Swift answers 405) is parsed as :data:`PLACEHOLDER_METHOD`;
    :meth:`head_complete` returns the original for the front end to restore.

    PERF: one ``find`` and ``isascii`` per request head, the header-name scan
    of :func:`~nubis.common.headnames.escape_head` (~0.9 µs), plus one ``find``
    and a frozenset lookup with ``methods`` (``python -m nubis.bench swift``).
    """

    __slots__ = ("at_line", "in_head", "method", "methods", "open_line", "renamed")

    def __init__(self, methods: bool = False) -> None:
        #: Swap unknown methods for the placeholder.
        self.methods = methods
        #: Header names of the head being parsed were escaped
        #: (:mod:`nubis.common.headnames`); the front end gives them back and clears this.
        self.renamed = False
        #: The swapped method of the line being parsed.
        self.method: str | None = None
        #: A message began whose head is not complete yet.
        self.in_head = False
        #: The next byte received belongs to a request line.
        self.at_line = True
        #: This read started a request line that it does not finish.
        self.open_line = False

    def prepare(self, data: bytes) -> bytes:
        """Return ``data`` with the non-ASCII bytes of a leading request line escaped."""
        if not self.at_line:
            return data
        if not self.open_line:
            if self.methods:
                data = self._swap_method(data)
            data, self.renamed = escape_head(data)
        nl = data.find(b"\n")
        self.open_line = nl < 0
        if self.open_line:
            return data if data.isascii() else escape_non_ascii(data)
        self.at_line = False
        if data[:nl].isascii():
            return data
        return escape_non_ascii(data[:nl]) + data[nl:]

    def _swap_method(self, data: bytes) -> bytes:
        """Return ``data`` with an unknown leading method token replaced by the placeholder."""
        sp = data.find(b" ", 0, MAX_METHOD + 1)
        if sp <= 0:
            return data
        token = data[:sp]
        if token in LLHTTP_METHODS or _TOKEN.fullmatch(token) is None:
            return data
        self.method = token.decode("ascii")
        return PLACEHOLDER_METHOD + data[sp:]

    def message_begin(self) -> None:
        """Note that the parser started a message (call from ``on_message_begin``)."""
        self.in_head = True
        if not self.open_line:
            self.at_line = False

    def head_complete(self) -> str | None:
        """Note that the message's head was parsed (call from ``on_headers_complete``).

        Return the method the placeholder stands for, None if it was not swapped.
        """
        self.in_head = False
        method, self.method = self.method, None
        return method

    def garbage_after(self) -> bool:
        """Tell whether a parse error hit the head of a message after complete ones.

        Bytes a client sent after a body-less request (``PUT`` with neither
        ``Content-Length`` nor chunked encoding) are not a request: the requests
        before them are answered (411 for that ``PUT``, as Swift), then the
        connection closes.
        """
        return self.in_head

    def message_complete(self) -> None:
        """Note that a message ended: the next read starts a request line."""
        self.at_line = True
        self.open_line = False


def coding_refused(transfer_encoding: str | bytes | None) -> bool:
    """Tell whether a request's ``Transfer-Encoding`` is anything but plain ``chunked``.

    llhttp frames ``gzip, chunked`` as chunked and refuses ``gzip`` with a 400;
    Swift (eventlet) frames neither (the body is empty) and lets the application
    answer (``501``/``400``). Servers that pass such requests on hand them an
    empty body and close the connection after the answer: the bytes that follow
    the head are never parsed as a request.
    """
    if not transfer_encoding:
        return False
    value = transfer_encoding.strip().lower()
    return value not in ("chunked", b"chunked")


def origin_form(url: bytes) -> bytes:
    """Return the path and query of an absolute-form request target.

    ``PUT http://host:port/bucket/obj?X-Amz-... HTTP/1.1`` names ``/bucket/obj?...``
    (Swift's HTTP protocol drops the scheme and authority when a ``/`` follows
    them; a target without one is left as sent). Other targets are returned
    unchanged.
    """
    if url[:1] == b"/" or not url.startswith((b"http://", b"https://")):
        return url
    _, sep, rest = url.partition(b"//")[2].partition(b"/")
    return b"/" + rest if sep else url
