# cython: language_level=3
"""Ring lookup kernels, compiled. Twin (and documentation): _ringlookup_py.py."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_Check
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.stdlib cimport malloc, calloc, free
cimport numpy as cnp
import numpy as np

from nubis.fastpath._ringlookup_py import (
    TIER_LEVELS, WALK_SPAN, _checked, handoff_walk, tier_counts)

cnp.import_array()

cdef extern from *:
    """
    #define XXH_INLINE_ALL
    #include <xxhash.h>
    """
    uint64_t XXH3_64bits(const void* data, size_t len) nogil
    uint64_t XXH3_64bits_withSeed(const void* data, size_t len, uint64_t seed) nogil

cdef enum:
    NLEVELS = 3      # region, zone, server; must equal TIER_LEVELS of the twin
    MAX_REPLICAS = 64

if TIER_LEVELS != NLEVELS:  # pragma: no cover - guards the twin and this file agreeing
    raise ImportError("TIER_LEVELS mismatch between _ringlookup_py and _ringlookup_c")

cdef uint64_t WALK_SPAN_C = WALK_SPAN

__all__ = ["TIER_LEVELS", "WALK_SPAN", "RingTable", "handoff_walk", "tier_counts"]


cdef class RingTable:
    """A ring's assignment table and device tiers, ready for lookups (see the twin)."""

    cdef readonly object table, lengths, tiers, counts
    cdef readonly int part_power
    cdef const uint8_t* _data
    cdef int _itemsize
    cdef Py_ssize_t _reps, _ndev
    cdef uint64_t _nparts
    cdef int64_t _len[MAX_REPLICAS]
    cdef const int32_t* _tiers
    cdef int64_t _total[NLEVELS + 1]
    cdef int64_t _size[NLEVELS]

    def __cinit__(self, table, lengths, tiers):
        self.table, self.lengths, self.tiers = _checked(table, lengths, tiers)
        if self.table.shape[0] > MAX_REPLICAS:
            raise ValueError(f"at most {MAX_REPLICAS} replica rows")
        self.counts = tier_counts(self.table, self.lengths, self.tiers)
        self._data = <const uint8_t*>cnp.PyArray_DATA(self.table)
        self._itemsize = self.table.dtype.itemsize
        self._reps = self.table.shape[0]
        self._nparts = self.table.shape[1]
        self.part_power = int(self.table.shape[1]).bit_length() - 1
        self._ndev = self.tiers.shape[1]
        self._tiers = <const int32_t*>cnp.PyArray_DATA(self.tiers)
        cdef Py_ssize_t r, lv
        for r in range(self._reps):
            self._len[r] = self.lengths[r]
        for lv in range(NLEVELS + 1):
            self._total[lv] = self.counts[lv]
        for lv in range(NLEVELS):
            self._size[lv] = int(self.tiers[lv].max(initial=-1)) + 1

    @property
    def n_assigned(self):
        """Return the number of live devices holding at least one partition."""
        return int(self._total[NLEVELS])

    # ---------------------------------------------------------- access

    cdef inline int32_t _dev(self, Py_ssize_t r, uint64_t p) noexcept nogil:
        """Return the device id at (replica, part), or -1 past the end of a short row."""
        cdef uint64_t i
        cdef int32_t d
        if <int64_t>p >= self._len[r]:
            return -1
        i = <uint64_t>r * self._nparts + p
        if self._itemsize == 1:
            d = self._data[i]
        elif self._itemsize == 2:
            d = (<const uint16_t*>self._data)[i]
        else:
            d = <int32_t>(<const uint32_t*>self._data)[i]
        return d

    cdef inline bint _live(self, int32_t d) noexcept nogil:
        return d >= 0 and d < self._ndev and self._tiers[d] >= 0

    cdef inline int32_t _tier(self, int lv, int32_t d) noexcept nogil:
        return self._tiers[lv * self._ndev + d]

    # --------------------------------------------------------- primaries

    cdef Py_ssize_t _primaries(self, uint64_t part, int32_t* out) noexcept nogil:
        """Write the distinct live primaries of ``part`` to ``out``; return how many."""
        cdef Py_ssize_t r, j, n = 0
        cdef int32_t d
        for r in range(self._reps):
            d = self._dev(r, part)
            if not self._live(d):
                continue
            for j in range(n):
                if out[j] == d:
                    break
            else:
                out[n] = d
                n += 1
        return n

    def primaries(self, Py_ssize_t part):
        """Return the distinct live primary device ids of ``part``, in replica order."""
        cdef int32_t buf[MAX_REPLICAS]
        if part < 0 or <uint64_t>part >= self._nparts:
            raise IndexError(f"partition {part} out of range")
        cdef Py_ssize_t n = self._primaries(<uint64_t>part, buf), i
        return [buf[i] for i in range(n)]

    def primary_nodes(self, Py_ssize_t part, nodes):
        """Return ``nodes[dev][index].copy()`` for each distinct live primary of ``part``."""
        cdef int32_t buf[MAX_REPLICAS]
        if part < 0 or <uint64_t>part >= self._nparts:
            raise IndexError(f"partition {part} out of range")
        cdef Py_ssize_t n = self._primaries(<uint64_t>part, buf), i
        cdef list out = PyList_New(n)
        for i in range(n):
            item = nodes[buf[i]][i].copy()
            Py_INCREF(item)
            PyList_SET_ITEM(out, i, item)
        return out

    def primary_devs(self, parts):
        """Return the ``(len(parts), replicas)`` int32 matrix of device ids (``-1`` = none)."""
        cdef cnp.ndarray arr = np.ascontiguousarray(parts, dtype=np.int64)
        cdef const int64_t* p = <const int64_t*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t n = arr.shape[0], i, r, reps = self._reps
        cdef cnp.ndarray out = np.empty((n, reps), dtype=np.int32)
        cdef int32_t* dst = <int32_t*>cnp.PyArray_DATA(out)
        for i in range(n):
            if p[i] < 0 or <uint64_t>p[i] >= self._nparts:
                raise IndexError(f"partition {p[i]} out of range")
        with nogil:
            for i in range(n):
                for r in range(reps):
                    dst[i * reps + r] = self._dev(r, <uint64_t>p[i])
        return out

    def batch_nodes(self, uint64_t seed, paths):
        """Hash many paths and look up their primaries: ``(parts, dev id matrix)``."""
        cdef Py_ssize_t n = len(paths), reps = self._reps, i, r
        cdef cnp.ndarray parts = np.empty(n, dtype=np.uint32)
        cdef cnp.ndarray devs = np.empty((n, reps), dtype=np.int32)
        if n == 0:
            return parts, devs
        cdef uint32_t* pdst = <uint32_t*>cnp.PyArray_DATA(parts)
        cdef int32_t* ddst = <int32_t*>cnp.PyArray_DATA(devs)
        cdef const char** ptrs = <const char**>malloc(n * sizeof(char*))
        cdef size_t* lens = <size_t*>malloc(n * sizeof(size_t))
        cdef int pp = self.part_power
        cdef uint32_t part
        cdef list keep
        if ptrs == NULL or lens == NULL:
            free(ptrs); free(lens)
            raise MemoryError()
        try:
            keep = paths if type(paths) is list else list(paths)
            for i in range(n):
                item = keep[i]
                if not PyBytes_Check(item):
                    raise TypeError("paths must be bytes")
                ptrs[i] = PyBytes_AS_STRING(item)
                lens[i] = <size_t>PyBytes_GET_SIZE(item)
            # PERF: hash + table lookup in one pass without the GIL
            # (bench: python -m nubis.bench.ring_lookup).
            with nogil:
                for i in range(n):
                    if pp == 0:
                        part = 0
                    else:
                        part = <uint32_t>(XXH3_64bits_withSeed(ptrs[i], lens[i], seed)
                                          >> (64 - pp))
                    pdst[i] = part
                    for r in range(reps):
                        ddst[i * reps + r] = self._dev(r, part)
        finally:
            free(ptrs)
            free(lens)
        return parts, devs

    # ---------------------------------------------------------- handoffs

    def handoffs(self, Py_ssize_t part):
        """Return an iterator over the handoff device ids of ``part``, in Swift's order."""
        if part < 0 or <uint64_t>part >= self._nparts:
            raise IndexError(f"partition {part} out of range")
        return HandoffIter(self, part)

    cdef void _walk(self, uint64_t part, uint64_t* start, uint64_t* stride) noexcept nogil:
        """Compute the walk's start and stride (same as ``handoff_walk`` in the twin)."""
        cdef uint8_t buf[8]
        cdef int i
        if self.part_power == 0:
            start[0] = 0
            stride[0] = 1
            return
        for i in range(8):  # the partition number as 8 little-endian bytes
            buf[i] = <uint8_t>((part >> (8 * i)) & 0xFF)
        start[0] = XXH3_64bits(buf, 8) >> (64 - self.part_power)
        stride[0] = self._nparts // WALK_SPAN_C if self._nparts >= WALK_SPAN_C else 1


cdef class HandoffIter:
    """Resumable handoff walk: each ``next()`` scans on from where the last one stopped.

    State is (phase, walk step, replica). Phases 0..2 take devices in unseen
    regions, zones, servers; phase 3 any unused device. A phase ends when its
    tier (or device) count among assigned devices is reached or the walk ends.
    """

    cdef RingTable t
    cdef uint8_t* marks
    cdef uint8_t* used
    cdef uint8_t* seen[NLEVELS]
    cdef int64_t n_seen[NLEVELS + 1]   # last entry: devices used
    cdef int level
    cdef uint64_t k, start, stride, n_walk
    cdef Py_ssize_t r

    def __cinit__(self, RingTable table, Py_ssize_t part):
        cdef int32_t prim[MAX_REPLICAS]
        cdef Py_ssize_t n_prim, i, nbytes
        cdef int lv
        self.t = table
        nbytes = table._ndev + 1 + table._size[0] + table._size[1] + table._size[2] + 3
        self.marks = <uint8_t*>calloc(nbytes, 1)
        if self.marks == NULL:
            raise MemoryError()
        self.used = self.marks
        self.seen[0] = self.used + table._ndev + 1
        self.seen[1] = self.seen[0] + table._size[0] + 1
        self.seen[2] = self.seen[1] + table._size[1] + 1
        for lv in range(NLEVELS + 1):
            self.n_seen[lv] = 0
        n_prim = table._primaries(<uint64_t>part, prim)
        for i in range(n_prim):
            self._take(prim[i])
        table._walk(<uint64_t>part, &self.start, &self.stride)
        self.n_walk = table._nparts // self.stride if table._nparts >= self.stride else 1
        self.level = 0
        self.k = 0
        self.r = 0

    def __dealloc__(self):
        free(self.marks)

    cdef inline void _take(self, int32_t d) noexcept nogil:
        """Mark device ``d`` and its tiers as used."""
        cdef int lv
        cdef int32_t tv
        self.used[d] = 1
        self.n_seen[NLEVELS] += 1
        for lv in range(NLEVELS):
            tv = self.t._tier(lv, d)
            if not self.seen[lv][tv]:
                self.seen[lv][tv] = 1
                self.n_seen[lv] += 1

    def __iter__(self):
        return self

    def __next__(self):
        cdef int32_t d = self._next()
        if d < 0:
            raise StopIteration
        return d

    cdef int32_t _next(self) noexcept:
        """Return the next handoff device id, or -1 when there is none."""
        cdef RingTable t = self.t
        cdef uint64_t p, mask = t._nparts - 1
        cdef int32_t d
        cdef int level
        while self.level <= NLEVELS:
            level = self.level
            while self.k < self.n_walk and self.n_seen[level] < t._total[level]:
                p = (self.start + self.k * self.stride) & mask
                while self.r < t._reps:
                    d = t._dev(self.r, p)
                    self.r += 1
                    if not t._live(d) or self.used[d]:
                        continue
                    if level < NLEVELS and self.seen[level][t._tier(level, d)]:
                        continue
                    self._take(d)
                    return d
                self.r = 0
                self.k += 1
            self.level += 1
            self.k = 0
            self.r = 0
        return -1
