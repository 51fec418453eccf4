# cython: language_level=3
"""Reed-Solomon erasure coding over ISA-L (``-lisal``), compiled. Twin: _ec_py.py.

Buffers are taken through the buffer protocol (no copies in, output into the
caller's buffer or one fresh bytearray) and ISA-L runs without the GIL.
"""

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE,
                             PyBUF_WRITABLE)
from cpython.bytearray cimport (PyByteArray_FromStringAndSize, PyByteArray_AS_STRING,
                                PyByteArray_Resize)
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memcpy, memset

from operator import index as _index

from nubis.fastpath._ec_py import (DECODE_CACHE_SIZE, MAX_FRAGMENTS, bad_index,
                                   check_params, check_wanted, first_size, fragment_size,
                                   not_buffer, out_count, too_few, wrong_size)

cdef extern from "isa-l/erasure_code.h" nogil:
    void ec_init_tables(int k, int rows, unsigned char* a, unsigned char* gftbls)
    void ec_encode_data(int len, int k, int rows, unsigned char* gftbls,
                        unsigned char** data, unsigned char** coding)
    void gf_gen_cauchy1_matrix(unsigned char* a, int m, int k)
    int gf_invert_matrix(unsigned char* inp, unsigned char* out, const int n)
    unsigned char gf_mul(unsigned char a, unsigned char b)

# Stack arrays are sized for the most fragments a codec may have.
cdef enum:
    MAXF = 256
    PAGE = 4096
assert MAX_FRAGMENTS == MAXF


cdef int _get_buffer(object obj, Py_buffer* view, bint writable, str what) except -1:
    """Acquire a contiguous byte buffer of ``obj`` or raise the twin's TypeError."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
    except (TypeError, ValueError, BufferError):
        raise not_buffer(what, writable) from None
    return 0


cdef class Codec:
    """A k data + m parity Reed-Solomon code (Cauchy generator); build once per policy."""

    cdef readonly int k, m, n
    cdef unsigned char* _matrix      # (k+m) x k generator, row-major
    cdef unsigned char* _enc_tables  # ec_init_tables of the m parity rows
    cdef dict _cache                 # erasure pattern -> decode tables (bytes)

    def __cinit__(self, k, m):
        k, m = check_params(k, m)
        self.k, self.m, self.n = k, m, k + m
        self._matrix = <unsigned char*>PyMem_Malloc(self.n * self.k)
        self._enc_tables = <unsigned char*>PyMem_Malloc(self.k * self.m * 32)
        if self._matrix == NULL or self._enc_tables == NULL:
            raise MemoryError()
        gf_gen_cauchy1_matrix(self._matrix, self.n, self.k)
        ec_init_tables(self.k, self.m, &self._matrix[self.k * self.k], self._enc_tables)
        self._cache = {}

    def __dealloc__(self):
        PyMem_Free(self._matrix)
        PyMem_Free(self._enc_tables)

    def __repr__(self):
        return f"Codec(k={self.k}, m={self.m})"

    @property
    def matrix(self):
        """The (k+m) x k generator matrix, row-major."""
        return PyBytes_FromStringAndSize(<char*>self._matrix, self.n * self.k)

    @property
    def cached_patterns(self):
        """How many erasure patterns' decode tables are cached."""
        return len(self._cache)

    def fragment_size(self, Py_ssize_t segment_len):
        """Return the size of each fragment of a ``segment_len``-byte segment."""
        return fragment_size(segment_len, self.k)

    def encode(self, segment, parity=None):
        """Return the k + m fragments of ``segment`` (data fragments first).

        Full data fragments are views of ``segment`` itself (no copy; do not
        change it while they are in use), the zero-padded tail is copied. Parity
        goes into ``parity`` (a writable buffer of exactly m fragment sizes) or
        into a fresh bytearray.
        """
        cdef Py_buffer seg, par
        cdef unsigned char* dptr[MAXF]
        cdef unsigned char* pptr[MAXF]
        cdef Py_ssize_t size, full, i
        cdef unsigned char* base
        cdef unsigned char* tail_buf = NULL
        cdef object pobj, tail = None
        cdef bint have_par = False
        _get_buffer(segment, &seg, False, "segment")
        try:
            size = fragment_size(seg.len, self.k)
            full = seg.len // size if size else self.k
            if full < self.k:
                tail = PyByteArray_FromStringAndSize(NULL, (self.k - full) * size)
                tail_buf = <unsigned char*>PyByteArray_AS_STRING(tail)
            for i in range(self.k):
                dptr[i] = (<unsigned char*>seg.buf + i * size if i < full
                           else tail_buf + (i - full) * size)
            if parity is None:
                pobj = _fresh(self.m * size, dptr, self.k, size)
                base = <unsigned char*>PyByteArray_AS_STRING(pobj)
            else:
                _get_buffer(parity, &par, True, "parity")
                have_par = True
                if par.len != self.m * size:
                    raise wrong_size("parity", par.len, self.m * size)
                pobj = parity
                base = <unsigned char*>par.buf
            for i in range(self.m):
                pptr[i] = base + i * size
            # PERF: ISA-L runs without the GIL (bench: python -m nubis.bench ec).
            with nogil:
                if tail_buf != NULL:
                    memset(tail_buf, 0, (self.k - full) * size)
                    memcpy(tail_buf, <unsigned char*>seg.buf + full * size,
                           seg.len - full * size)
                if size:
                    ec_encode_data(<int>size, self.k, self.m, self._enc_tables, dptr, pptr)
        finally:
            PyBuffer_Release(&seg)
            if have_par:
                PyBuffer_Release(&par)
        return _slices(segment, 0, full, size) + _slices(tail, 0, self.k - full, size) \
            + _slices(pobj, 0, self.m, size)

    def decode(self, fragments, Py_ssize_t segment_len):
        """Return the ``segment_len``-byte segment from any k of its fragments."""
        return self._decode(fragments, segment_len, None)

    def decode_into(self, fragments, Py_ssize_t segment_len, out):
        """Write the segment into ``out`` (writable, exactly ``segment_len`` bytes).

        Data fragments present are copied; missing ones that hold segment bytes
        are rebuilt from the first k fragments given (data fragments first).
        ``fragments`` may lack fragments that are all padding.
        """
        self._decode(fragments, segment_len, out)

    def reconstruct(self, fragments, wanted):
        """Rebuild the fragments numbered ``wanted`` from any k others, as new bytearrays."""
        return self._reconstruct(fragments, wanted, None)

    def reconstruct_into(self, fragments, wanted, out):
        """Rebuild the fragments numbered ``wanted`` into ``out`` (one writable buffer each)."""
        self._reconstruct(fragments, wanted, list(out))

    # --- steps ---------------------------------------------------------------
    cdef list _reconstruct(self, fragments, wanted, list out):
        """Rebuild into the buffers ``out``, or into fresh bytearrays when None; return them."""
        cdef Py_buffer bufs[MAXF]
        cdef Py_buffer obufs[MAXF]
        cdef unsigned char* have[MAXF]
        cdef unsigned char* srcs[MAXF]
        cdef unsigned char* outs[MAXF]
        cdef unsigned char want[MAXF]
        cdef unsigned char* tables = NULL
        cdef int nbufs = 0, nouts = 0, nwant, j
        cdef Py_ssize_t size = first_size(fragments)
        cdef list want_list = check_wanted(wanted, self.n)
        nwant = len(want_list)
        if out is not None and len(out) != nwant:
            raise out_count(len(out), nwant)
        try:
            nbufs = self._acquire(fragments, size, bufs, have)
            if nbufs < self.k:
                raise too_few(nbufs, self.k)
            for j in range(nwant):
                want[j] = want_list[j]
            if nwant and size:
                tab = self._decode_tables(have, want, nwant, srcs)
                tables = <unsigned char*>PyBytes_AS_STRING(tab)
            if out is None:
                out = [_fresh(size, srcs, self.k if tables != NULL else 0, size)
                       for _ in range(nwant)]
            for j in range(nwant):
                _get_buffer(out[j], &obufs[j], True, f"out[{j}]")
                nouts += 1
                if obufs[j].len != size:
                    raise wrong_size(f"out[{j}]", obufs[j].len, size)
                outs[j] = <unsigned char*>obufs[j].buf
            if tables != NULL:
                # PERF: ISA-L runs without the GIL (bench: python -m nubis.bench ec).
                with nogil:
                    ec_encode_data(<int>size, self.k, nwant, tables, srcs, outs)
        finally:
            for j in range(nbufs):
                PyBuffer_Release(&bufs[j])
            for j in range(nouts):
                PyBuffer_Release(&obufs[j])
        return out

    cdef object _decode(self, fragments, Py_ssize_t segment_len, object out):
        """Decode into ``out``, or into a fresh bytearray when it is None; return it."""
        cdef Py_ssize_t size = fragment_size(segment_len, self.k)
        cdef Py_ssize_t needed = (segment_len + size - 1) // size if size else 0
        cdef Py_buffer dst
        cdef Py_buffer bufs[MAXF]
        cdef unsigned char* have[MAXF]      # fragment number -> data, NULL if absent
        cdef unsigned char* srcs[MAXF]
        cdef unsigned char* outs[MAXF]
        cdef unsigned char want[MAXF]
        cdef unsigned char* scratch = NULL
        cdef unsigned char* tables = NULL
        cdef unsigned char* dbuf
        cdef int nbufs = 0, nmiss = 0, i, j, last = -1
        cdef bint have_dst = False
        cdef Py_ssize_t end
        cdef object scratch_obj, tab
        if out is not None:
            _get_buffer(out, &dst, True, "out")
            have_dst = True
        try:
            if have_dst and dst.len != segment_len:
                raise wrong_size("out", dst.len, segment_len)
            nbufs = self._acquire(fragments, size, bufs, have)
            for i in range(needed):
                if have[i] == NULL:
                    want[nmiss] = i
                    nmiss += 1
            if nmiss and nbufs < self.k:
                raise too_few(nbufs, self.k)
            if nmiss:
                tab = self._decode_tables(have, want, nmiss, srcs)
                tables = <unsigned char*>PyBytes_AS_STRING(tab)
            if have_dst:
                dbuf = <unsigned char*>dst.buf
            else:
                out = _fresh(segment_len, srcs, self.k if nmiss else 0, size)
                dbuf = <unsigned char*>PyByteArray_AS_STRING(out)
            for j in range(nmiss):
                i = want[j]
                if (i + 1) * size <= segment_len:
                    outs[j] = dbuf + i * size
                else:
                    scratch_obj = PyByteArray_FromStringAndSize(NULL, size)
                    scratch = <unsigned char*>PyByteArray_AS_STRING(scratch_obj)
                    outs[j] = scratch
                    last = i
            # PERF: copies and ISA-L run without the GIL (bench: python -m nubis.bench ec).
            with nogil:
                for i in range(needed):
                    if have[i] != NULL:
                        end = min((i + 1) * size, segment_len)
                        memcpy(dbuf + i * size, have[i], end - i * size)
                if nmiss:
                    ec_encode_data(<int>size, self.k, nmiss, tables, srcs, outs)
                if scratch != NULL:
                    memcpy(dbuf + last * size, scratch, segment_len - last * size)
        finally:
            if have_dst:
                PyBuffer_Release(&dst)
            for i in range(nbufs):
                PyBuffer_Release(&bufs[i])
        return out

    cdef int _acquire(self, fragments, Py_ssize_t size, Py_buffer* bufs,
                      unsigned char** have) except -1:
        """Acquire every fragment's buffer into ``bufs``; ``have[i]`` its data or NULL.

        Returns how many buffers were acquired; on error releases them itself.
        """
        cdef int nbufs = 0, i
        memset(have, 0, MAXF * sizeof(unsigned char*))
        try:
            for index, frag in fragments.items():
                number = _index(index)
                if not 0 <= number < self.n:
                    raise bad_index(number, self.n)
                i = number
                _get_buffer(frag, &bufs[nbufs], False, f"fragment {i}")
                nbufs += 1
                if bufs[nbufs - 1].len != size:
                    raise wrong_size(f"fragment {i}", bufs[nbufs - 1].len, size)
                have[i] = <unsigned char*>bufs[nbufs - 1].buf
        except BaseException:
            for i in range(nbufs):
                PyBuffer_Release(&bufs[i])
            raise
        return nbufs

    cdef bytes _decode_tables(self, unsigned char** have, unsigned char* want, int nwant,
                              unsigned char** srcs):
        """Pick the first k fragments as sources (into ``srcs``); return cached tables."""
        cdef unsigned char sources[MAXF]
        cdef int ns = 0, i
        for i in range(self.n):
            if have[i] != NULL and ns < self.k:
                sources[ns] = i
                srcs[ns] = have[i]
                ns += 1
        key = (PyBytes_FromStringAndSize(<char*>sources, ns)
               + PyBytes_FromStringAndSize(<char*>want, nwant))
        tab = self._cache.get(key)
        if tab is None:
            tab = self._make_tables(sources, want, nwant)
            if len(self._cache) >= DECODE_CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = tab
        return tab

    cdef bytes _make_tables(self, unsigned char* sources, unsigned char* want, int nwant):
        """Invert the source rows; return ec_init_tables of the wanted rows."""
        cdef int k = self.k, r, c, j
        cdef unsigned char s
        cdef bytes work = PyBytes_FromStringAndSize(NULL, 2 * k * k + nwant * k)
        cdef unsigned char* sub = <unsigned char*>PyBytes_AS_STRING(work)
        cdef unsigned char* inv = sub + k * k
        cdef unsigned char* rows = inv + k * k
        cdef bytes tab = PyBytes_FromStringAndSize(NULL, k * nwant * 32)
        for r in range(k):
            memcpy(sub + r * k, self._matrix + sources[r] * k, k)
        if gf_invert_matrix(sub, inv, k) != 0:
            raise ValueError("matrix is singular")
        for r in range(nwant):
            for c in range(k):
                s = 0
                for j in range(k):
                    s ^= gf_mul(self._matrix[want[r] * k + j], inv[j * k + c])
                rows[r * k + c] = s
        ec_init_tables(k, nwant, rows, <unsigned char*>PyBytes_AS_STRING(tab))
        return tab


cdef list _slices(object obj, Py_ssize_t start, Py_ssize_t count, Py_ssize_t size):
    """Return ``count`` consecutive ``size``-byte views of ``obj`` from fragment ``start``."""
    if count <= 0:
        return []
    cdef object view = memoryview(obj)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return [view[(start + i) * size:(start + i + 1) * size] for i in range(count)]


cdef size_t _shift(size_t base, unsigned char** srcs, int count) noexcept nogil:
    """Return how far past ``base`` to start so the 4 KiB page offset is furthest from the sources'.

    ISA-L reads every source and writes every output at the same position in
    step; when an output's address matches a source's in its low 12 bits the
    CPU takes the loads for dependent on the stores (4K aliasing).
    """
    cdef size_t c, i, dist, near, best = 0, best_near = 0
    for c in range(0, <size_t>PAGE, 64):
        near = PAGE
        for i in range(<size_t>count):
            dist = (c - <size_t>srcs[i]) % PAGE
            if dist > PAGE // 2:
                dist = PAGE - dist
            if dist < near:
                near = dist
        if near > best_near:
            best_near, best = near, c
    return (best - base) % PAGE


cdef object _fresh(Py_ssize_t n, unsigned char** srcs, int count, Py_ssize_t size):
    """Return an uninitialized n-byte bytearray to be written beside ``srcs``.

    For fragments of a page or more its data starts away from the sources' page
    offsets (:func:`_shift`): one spare page is allocated and the bytearray's
    start advanced in place (``del b[:shift]`` moves no bytes).
    """
    if size < PAGE or count == 0:
        return PyByteArray_FromStringAndSize(NULL, n)
    # PERF: 30-50% on 8+4 encode of 1 MiB segments (bench: python -m nubis.bench ec).
    cdef object out = PyByteArray_FromStringAndSize(NULL, n + PAGE)
    cdef size_t shift = _shift(<size_t>PyByteArray_AS_STRING(out), srcs, count)
    if shift:
        del out[:shift]
    PyByteArray_Resize(out, n)
    return out
