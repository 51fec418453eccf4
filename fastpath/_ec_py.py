"""Reed-Solomon erasure coding over GF(2^8), pure-Python twin of ``_ec_c.pyx``.

A :class:`Codec` is built once per (k, m) storage policy. A segment is split
into ``k`` equal data fragments (the last ones zero-padded to
:meth:`Codec.fragment_size`) and ``m`` parity fragments are computed from them;
any ``k`` of the ``k + m`` fragments give the segment back. The segment length
is not stored in the fragments: the caller records it (an object's length and
segment size give every segment's) and passes it to :meth:`Codec.decode`,
which returns exactly that many bytes.

The generator is ISA-L's ``gf_gen_cauchy1_matrix``: an identity on top of the
Cauchy rows ``1 / (i ^ j)`` (row ``i`` in ``k..k+m-1``, column ``j``), field
polynomial ``0x11d``. Every k x k submatrix of it is invertible for any
``k + m <= 256``, so any ``k`` fragments decode (``gf_gen_rs_matrix``'s
Vandermonde rows do not guarantee that past small ``m``). Parity is
bit-identical to the compiled kernel's, and to liberasurecode's
``isa_l_rs_cauchy`` payloads for unpadded segments.

Decoding inverts the surviving rows once per erasure pattern and keeps the
result (up to :data:`DECODE_CACHE_SIZE` patterns per codec). Bad input raises
``ValueError`` (sizes, counts, k/m), ``IndexError`` (fragment numbers) or
``TypeError`` (not a contiguous bytes-like object).
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from typing_extensions import Buffer

#: Most fragments (k + m) a codec may have: Cauchy rows need distinct field elements.
MAX_FRAGMENTS = 256
#: Largest fragment ISA-L can code (its lengths are C ``int``).
MAX_FRAGMENT_SIZE = 2**31 - 1
#: GF(2^8) reduction polynomial (x^8 + x^4 + x^3 + x^2 + 1), ISA-L's.
GF_POLY = 0x11D
#: Erasure patterns whose decode tables a codec keeps (oldest dropped first).
DECODE_CACHE_SIZE = 256

Matrix = npt.NDArray[np.uint8]


# --- GF(2^8) arithmetic -----------------------------------------------------
@functools.cache
def _gf_log_exp() -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """Return the log and (doubled) exp tables of GF(2^8) with generator 2."""
    log = np.zeros(256, dtype=np.int32)
    exp = np.zeros(510, dtype=np.uint8)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= GF_POLY
    exp[255:] = exp[:255]
    return log, exp


@functools.cache
def _gf_mul_table() -> Matrix:
    """Return the 256 x 256 product table: ``table[a, b] == a * b``."""
    log, exp = _gf_log_exp()
    table = exp[log[:, None] + log[None, :]]
    table[0, :] = 0
    table[:, 0] = 0
    return np.ascontiguousarray(table)


def gf_mul(a: int, b: int) -> int:
    """Multiply two GF(2^8) elements."""
    return int(_gf_mul_table()[a, b])


def gf_inv(a: int) -> int:
    """Return the multiplicative inverse of a nonzero GF(2^8) element."""
    if not 0 < a < 256:
        raise ValueError("only nonzero field elements have an inverse")
    log, exp = _gf_log_exp()
    return int(exp[255 - log[a]])


def gf_invert_matrix(matrix: Matrix) -> Matrix:
    """Invert a square matrix over GF(2^8) (Gauss-Jordan); ValueError if singular."""
    mul = _gf_mul_table()
    n = matrix.shape[0]
    work = np.concatenate([matrix.astype(np.uint8), np.eye(n, dtype=np.uint8)], axis=1)
    for col in range(n):
        pivots = np.nonzero(work[col:, col])[0]
        if len(pivots) == 0:
            raise ValueError("matrix is singular")
        piv = col + int(pivots[0])
        if piv != col:
            work[[col, piv]] = work[[piv, col]]
        work[col] = mul[gf_inv(int(work[col, col]))][work[col]]
        for row in range(n):
            factor = int(work[row, col])
            if row != col and factor:
                work[row] ^= mul[factor][work[col]]
    return np.ascontiguousarray(work[:, n:])


def _gf_matmul(a: Matrix, b: Matrix) -> Matrix:
    """Multiply two matrices over GF(2^8)."""
    mul = _gf_mul_table()
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[i, j]:
                out[i] ^= mul[a[i, j]][b[j]]
    return out


def cauchy_matrix(k: int, m: int) -> Matrix:
    """Return ISA-L's ``gf_gen_cauchy1_matrix`` for k data + m parity, shape (k+m, k)."""
    k, m = check_params(k, m)
    out = np.zeros((k + m, k), dtype=np.uint8)
    out[:k] = np.eye(k, dtype=np.uint8)
    for i in range(k, k + m):
        for j in range(k):
            out[i, j] = gf_inv(i ^ j)
    return out


# --- validation shared with the compiled kernel (same messages) -------------
def check_params(k: int, m: int) -> tuple[int, int]:
    """Return (k, m) as ints; ValueError unless k >= 1, m >= 1, k + m <= MAX_FRAGMENTS."""
    k, m = operator.index(k), operator.index(m)
    if k < 1 or m < 1 or k + m > MAX_FRAGMENTS:
        raise ValueError(
            f"erasure code needs k >= 1 data and m >= 1 parity fragments with "
            f"k + m <= {MAX_FRAGMENTS}; got k={k}, m={m}")
    return k, m


def fragment_size(segment_len: int, k: int) -> int:
    """Return the size of each of the k + m fragments of a ``segment_len``-byte segment."""
    segment_len = operator.index(segment_len)
    if segment_len < 0:
        raise ValueError(f"segment length must be >= 0, got {segment_len}")
    size = -(-segment_len // k)
    if size > MAX_FRAGMENT_SIZE:
        raise ValueError(
            f"segment of {segment_len} bytes gives {size}-byte fragments; "
            f"at most {MAX_FRAGMENT_SIZE} with k={k}")
    return size


def wrong_size(what: str, got: int, expected: int) -> ValueError:
    """Return the error for a buffer of the wrong length."""
    return ValueError(f"{what} is {got} bytes, expected {expected}")


def bad_index(index: int, n: int) -> IndexError:
    """Return the error for a fragment number outside 0..n-1."""
    return IndexError(f"fragment index {index} out of range 0..{n - 1}")


def too_few(got: int, k: int) -> ValueError:
    """Return the error for fewer than k fragments to decode from."""
    return ValueError(f"need {k} fragments to decode, got {got}")


def out_count(got: int, wanted: int) -> ValueError:
    """Return the error for a number of output buffers unlike the fragments wanted."""
    return ValueError(f"out has {got} buffers for {wanted} fragments to rebuild")


def not_buffer(what: str, writable: bool = False) -> TypeError:
    """Return the error for an argument that is not a usable buffer."""
    kind = "writable contiguous" if writable else "contiguous"
    return TypeError(f"{what} must be a {kind} bytes-like object")


def first_size(fragments: Mapping[int, Buffer]) -> int:
    """Return the length of the first fragment given (0 if none)."""
    first = next(iter(fragments.items()), None)
    return 0 if first is None else len(byte_view(first[1], f"fragment {first[0]}"))


def check_wanted(wanted: Sequence[int], n: int) -> list[int]:
    """Return the fragment numbers to rebuild as ints: in range 0..n-1, no repeats."""
    want = [operator.index(w) for w in wanted]
    for w in want:
        if not 0 <= w < n:
            raise bad_index(w, n)
    if len(set(want)) != len(want):
        raise ValueError("fragments to rebuild must not repeat")
    return want


def byte_view(obj: object, what: str, writable: bool = False) -> memoryview:
    """Return a flat unsigned-byte view of ``obj``, or raise :func:`not_buffer`."""
    try:
        view = memoryview(obj)  # type: ignore[arg-type]
        if (writable and view.readonly) or not view.c_contiguous:
            raise TypeError(what)
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_buffer(what, writable) from None


# --- the codec --------------------------------------------------------------
class Codec:
    """A k data + m parity Reed-Solomon code (Cauchy generator); build once per policy."""

    __slots__ = ("_cache", "_lock", "_matrix", "k", "m", "n")

    def __init__(self, k: int, m: int) -> None:
        k, m = check_params(k, m)
        self.k = k
        self.m = m
        self.n = k + m
        self._matrix = cauchy_matrix(k, m)
        self._cache: dict[tuple[tuple[int, ...], tuple[int, ...]], Matrix] = {}
        self._lock = threading.Lock()  # the cache is shared by the codec's threads

    def __repr__(self) -> str:
        return f"Codec(k={self.k}, m={self.m})"

    @property
    def matrix(self) -> bytes:
        """The (k+m) x k generator matrix, row-major."""
        return self._matrix.tobytes()

    @property
    def cached_patterns(self) -> int:
        """How many erasure patterns' decode tables are cached."""
        return len(self._cache)

    def fragment_size(self, segment_len: int) -> int:
        """Return the size of each fragment of a ``segment_len``-byte segment."""
        return fragment_size(segment_len, self.k)

    def encode(self, segment: Buffer, parity: Buffer | None = None) -> list[memoryview]:
        """Return the k + m fragments of ``segment`` (data fragments first).

        Full data fragments are views of ``segment`` itself (no copy; do not
        change it while they are in use), the zero-padded tail is copied. Parity
        goes into ``parity`` (a writable buffer of exactly m fragment sizes) or
        into a fresh bytearray.
        """
        seg = byte_view(segment, "segment")
        size = self.fragment_size(len(seg))
        pview = self._parity_buffer(parity, size)
        data = self._data_fragments(seg, size)
        if size:
            src = [np.frombuffer(d, dtype=np.uint8) for d in data]
            rows = self._matrix[self.k:]
            for j in range(self.m):
                out = np.frombuffer(pview[j * size:(j + 1) * size], dtype=np.uint8)
                out[:] = _dot(rows[j], src)
        return data + [pview[j * size:(j + 1) * size] for j in range(self.m)]

    def decode(self, fragments: Mapping[int, Buffer], segment_len: int) -> bytearray:
        """Return the ``segment_len``-byte segment from any k of its fragments."""
        self.fragment_size(segment_len)  # checks the length before allocating
        out = bytearray(segment_len)
        self.decode_into(fragments, segment_len, out)
        return out

    def decode_into(self, fragments: Mapping[int, Buffer], segment_len: int,
                    out: Buffer) -> None:
        """Write the segment into ``out`` (writable, exactly ``segment_len`` bytes).

        Data fragments present are copied; missing ones that hold segment bytes
        are rebuilt from the first k fragments given (data fragments first).
        ``fragments`` may lack fragments that are all padding.
        """
        size = self.fragment_size(segment_len)
        dest = byte_view(out, "out", writable=True)
        if len(dest) != segment_len:
            raise wrong_size("out", len(dest), segment_len)
        frags = self._fragment_views(fragments, size)
        needed = -(-segment_len // size) if size else 0
        missing = [i for i in range(needed) if i not in frags]
        if missing and len(frags) < self.k:
            raise too_few(len(frags), self.k)
        for i in range(needed):
            if i in frags:
                end = min((i + 1) * size, segment_len)
                dest[i * size:end] = frags[i][:end - i * size]
        if missing:
            for i, frag in zip(missing, self._rebuild(frags, missing), strict=True):
                end = min((i + 1) * size, segment_len)
                dest[i * size:end] = frag[:end - i * size].tobytes()

    def reconstruct(self, fragments: Mapping[int, Buffer],
                    wanted: Sequence[int]) -> list[bytearray]:
        """Rebuild the fragments numbered ``wanted`` from any k others, as new bytearrays."""
        out = [bytearray(first_size(fragments)) for _ in wanted]
        self.reconstruct_into(fragments, wanted, out)
        return out

    def reconstruct_into(self, fragments: Mapping[int, Buffer], wanted: Sequence[int],
                         out: Sequence[Buffer]) -> None:
        """Rebuild the fragments numbered ``wanted`` into ``out`` (one writable buffer each)."""
        size = first_size(fragments)
        want = check_wanted(wanted, self.n)
        if len(out) != len(want):
            raise out_count(len(out), len(want))
        frags = self._fragment_views(fragments, size)
        if len(frags) < self.k:
            raise too_few(len(frags), self.k)
        dests = []
        for j, buf in enumerate(out):
            dest = byte_view(buf, f"out[{j}]", writable=True)
            if len(dest) != size:
                raise wrong_size(f"out[{j}]", len(dest), size)
            dests.append(dest)
        if want and size:
            for dest, frag in zip(dests, self._rebuild(frags, want), strict=True):
                dest[:] = frag.tobytes()

    # --- steps --------------------------------------------------------------
    def _parity_buffer(self, parity: Buffer | None, size: int) -> memoryview:
        """Return a writable view for the m parity fragments (fresh when None)."""
        if parity is None:
            return memoryview(bytearray(self.m * size))
        view = byte_view(parity, "parity", writable=True)
        if len(view) != self.m * size:
            raise wrong_size("parity", len(view), self.m * size)
        return view

    def _data_fragments(self, seg: memoryview, size: int) -> list[memoryview]:
        """Return the k data fragments: views of ``seg``, the tail zero-padded."""
        full = len(seg) // size if size else self.k
        data = [seg[i * size:(i + 1) * size] for i in range(full)]
        if full < self.k:
            tail = bytearray((self.k - full) * size)
            tail[:len(seg) - full * size] = seg[full * size:]
            tview = memoryview(tail)
            data += [tview[j * size:(j + 1) * size] for j in range(self.k - full)]
        return data

    def _fragment_views(self, fragments: Mapping[int, Buffer],
                        size: int) -> dict[int, memoryview]:
        """Check fragment numbers and sizes; return index -> flat byte view."""
        views: dict[int, memoryview] = {}
        for index, frag in fragments.items():
            i = operator.index(index)
            if not 0 <= i < self.n:
                raise bad_index(i, self.n)
            view = byte_view(frag, f"fragment {i}")
            if len(view) != size:
                raise wrong_size(f"fragment {i}", len(view), size)
            views[i] = view
        return views

    def _rebuild(self, frags: dict[int, memoryview], wanted: list[int]) -> list[Matrix]:
        """Compute the ``wanted`` fragments from the first k of ``frags``."""
        sources = sorted(frags)[:self.k]
        rows = self._decode_rows(tuple(sources), tuple(wanted))
        src = [np.frombuffer(frags[s], dtype=np.uint8) for s in sources]
        return [_dot(row, src) for row in rows]

    def _decode_rows(self, sources: tuple[int, ...], wanted: tuple[int, ...]) -> Matrix:
        """Return (cached) rows giving each wanted fragment from the sources."""
        key = (sources, wanted)
        rows = self._cache.get(key)
        if rows is None:
            inverse = gf_invert_matrix(self._matrix[list(sources)])
            rows = _gf_matmul(self._matrix[list(wanted)], inverse)
            with self._lock:
                if len(self._cache) >= DECODE_CACHE_SIZE:
                    del self._cache[next(iter(self._cache))]
                self._cache[key] = rows
        return rows


def _dot(coefs: Matrix, sources: list[npt.NDArray[np.uint8]]) -> Matrix:
    """Return the GF(2^8) sum of ``coefs[i] * sources[i]``."""
    mul = _gf_mul_table()
    acc = np.zeros(len(sources[0]) if sources else 0, dtype=np.uint8)
    for c, src in zip(coefs, sources, strict=True):
        if c:
            acc ^= mul[c].take(src)
    return acc
