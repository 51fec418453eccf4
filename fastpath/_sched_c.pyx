# cython: language_level=3
"""Scheduler selection kernel, compiled. Twin (and documentation): _sched_py.py.

PERF: two nogil passes over the host columns (fit + min/max, then score + top-k),
no compaction, no temporaries (``python -m nubis.bench scheduler``).
"""

from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport malloc, free
cimport numpy as cnp
import numpy as np

from nubis.fastpath._sched_py import MAX_TERMS, _check

cnp.import_array()

cdef enum:
    CMAX = 16  # must equal MAX_TERMS of the twin

if MAX_TERMS != CMAX:  # pragma: no cover - guards the twin and this file agreeing
    raise ImportError("MAX_TERMS mismatch between _sched_py and _sched_c")

__all__ = ["MAX_TERMS", "select"]


cdef inline double _value(int kind, const double* f, const int64_t* i, double factor,
                          Py_ssize_t row) noexcept nogil:
    if kind == 0:
        return f[row] * factor
    return (<double>i[row]) * factor


def select(alive, limits, amounts, terms, int k):
    """Apply the resource limits to ``alive`` (in place), weigh, return (count, best rows)."""
    cdef Py_ssize_t n = _check(alive, limits, amounts, terms, k)
    cdef uint8_t[::1] av = alive
    cdef const int64_t* lim[CMAX]
    cdef int64_t amt[CMAX]
    cdef int kind[CMAX]
    cdef const double* fcol[CMAX]
    cdef const int64_t* icol[CMAX]
    cdef double factor[CMAX]
    cdef double mult[CMAX]
    cdef double lo[CMAX]
    cdef double hi[CMAX]
    cdef double span[CMAX]
    cdef int active[CMAX]
    cdef int nl = len(limits), nt = len(terms), na = 0
    cdef const int64_t[::1] lv
    cdef const double[::1] fv
    cdef const int64_t[::1] iv
    keep = []  # the buffers the raw pointers point into
    cdef int j
    for j in range(nl):
        lv = limits[j]
        keep.append(lv)
        lim[j] = &lv[0] if n else NULL
        amt[j] = amounts[j]
    for j in range(nt):
        col, fac, mul = terms[j]
        factor[j] = fac
        mult[j] = mul
        fcol[j] = NULL
        icol[j] = NULL
        if col.dtype == np.float64:
            kind[j] = 0
            fv = col
            keep.append(fv)
            if n:
                fcol[j] = &fv[0]
        elif col.dtype == np.int64:
            kind[j] = 1
            iv = col
            keep.append(iv)
            if n:
                icol[j] = &iv[0]
        else:
            raise TypeError("weigher columns must be float64 or int64")
    cdef Py_ssize_t count = 0, row, m = 0, pos
    cdef double v, t
    cdef int ok
    cdef Py_ssize_t kk = k
    cdef double* best_w = <double*>malloc((kk + 1) * sizeof(double))
    cdef Py_ssize_t* best_r = <Py_ssize_t*>malloc((kk + 1) * sizeof(Py_ssize_t))
    if best_w == NULL or best_r == NULL:
        free(best_w)
        free(best_r)
        raise MemoryError()
    try:
        with nogil:
            for j in range(nt):
                lo[j] = 0.0
                hi[j] = 0.0
            # pass 1: the resource fit, and each weigher's min/max over the survivors
            for row in range(n):
                if not av[row]:
                    continue
                ok = 1
                for j in range(nl):
                    if lim[j][row] < amt[j]:
                        ok = 0
                        break
                if not ok:
                    av[row] = 0
                    continue
                for j in range(nt):
                    v = _value(kind[j], fcol[j], icol[j], factor[j], row)
                    if count == 0 or v < lo[j]:
                        lo[j] = v
                    if count == 0 or v > hi[j]:
                        hi[j] = v
                count += 1
            for j in range(nt):
                if count > 1 and lo[j] != hi[j]:
                    active[na] = j
                    span[j] = hi[j] - lo[j]
                    na += 1
            # pass 2: Nova's sum of normalised weights, keeping the k best (stable)
            if count > 0 and kk > 0:
                for row in range(n):
                    if not av[row]:
                        continue
                    t = 0.0
                    for pos in range(na):
                        j = active[pos]
                        v = (_value(kind[j], fcol[j], icol[j], factor[j], row) - lo[j]) / span[j]
                        if mult[j] == 1.0:
                            t = t + v
                        elif mult[j] == -1.0:
                            t = t - v
                        else:
                            t = t + v * mult[j]
                    if m == kk and not (t > best_w[m - 1]):
                        continue
                    pos = m if m < kk else kk - 1
                    while pos > 0 and t > best_w[pos - 1]:
                        best_w[pos] = best_w[pos - 1]
                        best_r[pos] = best_r[pos - 1]
                        pos -= 1
                    best_w[pos] = t
                    best_r[pos] = row
                    if m < kk:
                        m += 1
        out = np.empty(m, dtype=np.int64)
        for pos in range(m):
            out[pos] = best_r[pos]
        return int(count), out
    finally:
        free(best_w)
        free(best_r)
