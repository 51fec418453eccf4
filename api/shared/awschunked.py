r"""Decode ``aws-chunked`` request bodies as S3 does (and as Swift's s3api reads them).

A streaming upload (``x-amz-content-sha256: STREAMING-*``) sends its payload
as chunks ``<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n``, a zero-size
chunk, then the trailers the ``x-amz-trailer`` header announced (and, for the
signed-trailer mode, ``x-amz-trailer-signature``), one ``name:value\r\n``
each, ended by a blank line or the end of the body. :class:`ChunkDecoder`
is fed the raw body piece by piece and returns the payload; every chunk
signature (and the trailer signature) is checked as it completes, the chunks
must add up to ``x-amz-decoded-content-length``, every chunk but the last
must hold at least 8 KiB, and a trailing checksum is checked against the
payload when the body ends. Errors are :class:`~nubis.api.shared.awssig.SigError`
with S3's codes and messages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from nubis.api.shared.awssig import (
    DIGEST_SIZES,
    EMPTY_SHA256,
    STREAMING,
    STREAMING_TRAILER,
    Checksum,
    SigError,
    SignedRequest,
    malformed_trailer,
    signature_mismatch,
    signature_of,
    trailer_names,
    valid_checksum_value,
)

#: Smallest chunk but the last (S3's rule).
MIN_CHUNK = 8192
#: Longest chunk header or trailer line accepted.
MAX_LINE = 4096
TRAILER_SIGNATURE = "x-amz-trailer-signature"
_CHECKSUM_PREFIX = "x-amz-checksum-"

# What the decoder waits for next.
_HEADER, _DATA, _CRLF, _TRAILERS, _DONE = range(5)


def _incomplete() -> SigError:
    return SigError("IncompleteBody", "The request body terminated unexpectedly", 400)




class ChunkDecoder:
    """Decode one ``aws-chunked`` body, verifying chunk signatures and trailers.

    Feed raw bytes with :meth:`feed` (returns the payload they complete); call
    :meth:`finish` at the end of the raw body (checks the trailers, the length
    and the trailing checksum; returns the trailers).
    """

    def __init__(self, mode: str, sreq: SignedRequest, key: bytes | None,
                 trailer: str | None, decoded_length: int | None = None,
                 canonical: Callable[[], str] | None = None) -> None:
        self.signed = mode in (STREAMING, STREAMING_TRAILER) and key is not None
        #: ``x-amz-decoded-content-length``: the chunks must add up to it exactly.
        self.expected = decoded_length
        self.remaining = decoded_length
        self.sreq = sreq
        self.key = key
        self.prev = sreq.signature
        self.buf = bytearray()
        self.state = _HEADER
        self.want = 0  # bytes left in the current chunk
        self.size = 0  # the current chunk's size
        self.last_size: int | None = None
        self.chunks = 0  # chunk headers read
        self.chunk_sig = ""
        self.chunk_hash = hashlib.sha256()
        self.checksum: Checksum | None = None
        self.expected_trailers: set[str] = set()
        if mode == STREAMING_TRAILER:
            self.expected_trailers.add(TRAILER_SIGNATURE)
        for name in trailer_names(trailer):
            if name.startswith(_CHECKSUM_PREFIX):
                self.checksum = Checksum(name[len(_CHECKSUM_PREFIX):])
                self.expected_trailers.add(name)
        self.trailers: dict[str, str] = {}
        #: Builds the request's canonical request (shown in a signature mismatch).
        self.canonical = canonical

    def _mismatch(self, to_sign: str, provided: str) -> SigError:
        return signature_mismatch(self.sreq.access, to_sign, provided,
                                  self.canonical() if self.canonical else None)

    def feed(self, data: bytes) -> bytes:
        """Consume raw bytes; return the payload bytes they complete."""
        self.buf += data
        out = bytearray()
        while True:
            if self.state == _HEADER:
                line = self._line()
                if line is None:
                    break
                self._chunk_header(line)
                self.state = _DATA
            if self.state == _DATA:
                take = min(self.want, len(self.buf))
                if take:
                    piece = bytes(self.buf[:take])
                    del self.buf[:take]
                    self.want -= take
                    if self.signed:
                        self.chunk_hash.update(piece)
                    if self.checksum is not None:
                        self.checksum.update(piece)
                    out += piece
                if self.want:
                    break
                self._end_chunk()
                self.state = _CRLF if self.size else _TRAILERS
            if self.state == _CRLF:
                if len(self.buf) < 2:
                    break
                if self.buf[:2] != b"\r\n":
                    raise _incomplete()
                del self.buf[:2]
                self.state = _HEADER
            if self.state == _TRAILERS:
                self._read_trailers()
                break
            if self.state == _DONE:
                break
        return bytes(out)

    def _line(self) -> str | None:
        r"""Return the next ``\r\n``-ended line (None: not all here yet)."""
        idx = self.buf.find(b"\n")
        if idx < 0:
            if len(self.buf) > MAX_LINE:
                raise _incomplete()
            return None
        if idx == 0 or self.buf[idx - 1] != 0x0D:
            raise _incomplete()
        line = bytes(self.buf[:idx - 1]).decode("latin-1")
        del self.buf[:idx + 1]
        return line

    def _chunk_header(self, line: str) -> None:
        """Read ``<hex size>[;chunk-signature=<sig>]`` and check the size rules."""
        size_hex, _, params = line.partition(";")
        try:
            size = int(size_hex, 16)
        except ValueError:
            raise _incomplete() from None
        if size < 0:
            raise _incomplete()
        if self.last_size is not None and self.last_size < MIN_CHUNK and size:
            raise SigError("InvalidChunkSizeError", "Only the last chunk is allowed to have "
                           "a size less than 8192 bytes", 403,
                           extra={"Chunk": str(self.chunks + 1),
                                  "BadChunkSize": str(self.last_size)})
        self.last_size = size
        if self.remaining is not None:
            if size > self.remaining:
                assert self.expected is not None
                raise self._size_error(self.expected - self.remaining + size)
            self.remaining -= size
        self.size = self.want = size
        self.chunks += 1
        if self.signed:
            self.chunk_hash = hashlib.sha256()
            self.chunk_sig = self._chunk_signature(params)

    def _chunk_signature(self, params: str) -> str:
        if not params:
            raise _incomplete()
        start, _, sig = params.partition("=")
        if start.strip() != "chunk-signature":
            raise self._mismatch("\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.sreq.amz_date,
                                            self.sreq.scope, self.prev]), params)
        if ";" in sig or not sig.strip():
            raise _incomplete()
        return sig.strip()

    def _size_error(self, provided: int) -> SigError:
        assert self.expected is not None
        return SigError("IncompleteBody", "You did not provide the number of bytes "
                        "specified by the Content-Length HTTP header", 400,
                        extra={"NumberBytesExpected": str(self.expected),
                               "NumberBytesProvided": str(provided)})

    def _end_chunk(self) -> None:
        """Check the signature of the chunk just read (signed modes)."""
        if not self.signed:
            return
        assert self.key is not None
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.sreq.amz_date, self.sreq.scope,
                             self.prev, EMPTY_SHA256, self.chunk_hash.hexdigest()])
        expected = signature_of(self.key, to_sign)
        if not hmac.compare_digest(expected, self.chunk_sig):
            raise self._mismatch(to_sign, self.chunk_sig)
        self.prev = expected

    def _read_trailers(self) -> None:
        """Read trailer lines until the blank line (the rest of the body is ignored)."""
        if not self.expected_trailers:
            return  # checked at the end: nothing, or one CRLF, may follow
        while self.state == _TRAILERS:
            line = self._line()
            if line is None:
                return
            if line == "":
                self.state = _DONE
                return
            key, _, value = line.partition(":")
            if key.lower() not in self.expected_trailers:
                raise malformed_trailer()
            self.trailers[key.lower()] = value.strip()

    def finish(self) -> dict[str, str]:
        """Check the end of the body, the trailers and the trailing checksum."""
        if self.state not in (_TRAILERS, _DONE):
            raise _incomplete()
        if self.state == _TRAILERS:
            self._end_trailers()
        self._check_trailers()
        if self.remaining:
            assert self.expected is not None
            raise self._size_error(self.expected - self.remaining)
        self._check_checksum()
        return self.trailers

    def _end_trailers(self) -> None:
        """Check what follows the last chunk when the body ended without a blank line."""
        rest = bytes(self.buf)
        if not self.expected_trailers:
            if rest[:2] not in (b"", b"\r\n"):
                raise _incomplete()
            return
        if rest:  # a last trailer line without its CRLF
            raise _incomplete()

    def _check_trailers(self) -> None:
        if not self.expected_trailers:
            return
        if TRAILER_SIGNATURE in self.expected_trailers \
                and TRAILER_SIGNATURE not in self.trailers:
            raise _incomplete()
        if set(self.trailers) != self.expected_trailers:
            raise malformed_trailer()
        if TRAILER_SIGNATURE in self.expected_trailers and self.signed:
            self._check_trailer_signature()
            if len(self.trailers) == 1:
                raise _incomplete()

    def _check_trailer_signature(self) -> None:
        assert self.key is not None
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(self.trailers.items())
                            if k != TRAILER_SIGNATURE) or "\n"
        digest = hashlib.sha256(canonical.encode("latin-1")).hexdigest()
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", self.sreq.amz_date, self.sreq.scope,
                             self.prev, digest])
        provided = self.trailers[TRAILER_SIGNATURE]
        if not hmac.compare_digest(signature_of(self.key, to_sign), provided):
            raise self._mismatch(to_sign, provided)

    def _check_checksum(self) -> None:
        if self.checksum is None:
            return
        name = f"{_CHECKSUM_PREFIX}{self.checksum.algo}"
        claimed = self.trailers.get(name, "")
        if not valid_checksum_value(claimed, DIGEST_SIZES[self.checksum.algo]):
            raise SigError("InvalidRequest", f"Value for {name} trailing header is invalid.",
                           400)
        self.checksum.check(claimed)
