# cython: language_level=3
"""Ring hashing, compiled (xxh3 from libxxhash, inlined). Twin: _hashpath_py.py."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_Check
from libc.stdint cimport uint64_t, uint32_t
from libc.stdlib cimport malloc, free
cimport numpy as cnp
import numpy as np

from nubis.fastpath._hashpath_py import MAX_PART_POWER, SEED_SEPARATOR

cnp.import_array()

cdef extern from *:
    """
    #define XXH_INLINE_ALL
    #include <xxhash.h>
    """
    ctypedef struct XXH128_hash_t:
        uint64_t low64
        uint64_t high64
    uint64_t XXH3_64bits(const void* data, size_t len) nogil
    uint64_t XXH3_64bits_withSeed(const void* data, size_t len, uint64_t seed) nogil
    XXH128_hash_t XXH3_128bits_withSeed(const void* data, size_t len, uint64_t seed) nogil


cpdef uint64_t cluster_seed(bytes prefix, bytes suffix):
    """Derive the 64-bit hash seed from the cluster's hash prefix and suffix."""
    cdef bytes joined = prefix + SEED_SEPARATOR + suffix
    return XXH3_64bits(PyBytes_AS_STRING(joined), PyBytes_GET_SIZE(joined))


cpdef uint64_t hash_path(uint64_t seed, bytes path):
    """Return the keyed 64-bit xxh3 of ``path``."""
    return XXH3_64bits_withSeed(PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), seed)


def hash_path_hex(uint64_t seed, bytes path):
    """Return the keyed 128-bit xxh3 of ``path`` as 32 lowercase hex digits."""
    cdef XXH128_hash_t h = XXH3_128bits_withSeed(
        PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), seed)
    return "%016x%016x" % (h.high64, h.low64)


cpdef uint64_t partition(uint64_t seed, bytes path, int part_power) except? 0xFFFFFFFFFFFFFFFF:
    """Return the ring partition of ``path`` (top ``part_power`` bits)."""
    if part_power < 0 or part_power > MAX_PART_POWER:
        raise ValueError(f"part_power must be 0..{MAX_PART_POWER}")
    if part_power == 0:
        return 0
    return XXH3_64bits_withSeed(
        PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), seed) >> (64 - part_power)


def batch_partitions(uint64_t seed, paths, int part_power):
    """Return the partitions of many paths as a uint32 array (hashes without the GIL)."""
    if part_power < 0 or part_power > MAX_PART_POWER:
        raise ValueError(f"part_power must be 0..{MAX_PART_POWER}")
    cdef Py_ssize_t n = len(paths), i
    cdef cnp.ndarray[cnp.uint32_t, ndim=1] out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    if part_power == 0:
        out[:] = 0
        return out
    cdef const char** ptrs = <const char**>malloc(n * sizeof(char*))
    cdef size_t* lens = <size_t*>malloc(n * sizeof(size_t))
    cdef uint32_t* dst = <uint32_t*>cnp.PyArray_DATA(out)
    cdef int shift = 64 - part_power
    cdef list keep
    if ptrs == NULL or lens == NULL:
        free(ptrs); free(lens)
        raise MemoryError()
    try:
        keep = paths if type(paths) is list else list(paths)
        for i in range(n):
            p = keep[i]
            if not PyBytes_Check(p):
                raise TypeError("paths must be bytes")
            ptrs[i] = PyBytes_AS_STRING(p)
            lens[i] = <size_t>PyBytes_GET_SIZE(p)
        # PERF: hash loop runs without the GIL (bench: python -m nubis.bench ring).
        with nogil:
            for i in range(n):
                dst[i] = <uint32_t>(XXH3_64bits_withSeed(ptrs[i], lens[i], seed) >> shift)
    finally:
        free(ptrs)
        free(lens)
    return out
