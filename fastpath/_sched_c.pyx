# cython: language_level=3
"""Scheduler selection kernel, compiled. Twin (and documentation): _sched_py.py.

PERF (``python -m nubis.bench scheduler``): without the GIL, no compaction and no
per-call temporaries: (1) the resource fit and each weigher's min/max over the
survivors, in vectorized loops; (2) one blocked scan computing approximate weights
(``(value - lo) * (mult / span)``) that keeps only the rows within an error margin
of the running k-th best; (3) Nova's exact ``(value - lo) / span * mult`` sum for
those few rows, selected stably. The result equals the twin's exactly.
"""

from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY, fabs
from libc.float cimport DBL_MAX
cimport numpy as cnp
import numpy as np

from nubis.fastpath._sched_py import MAX_TERMS, _check

cnp.import_array()

cdef enum:
    CMAX = 16  # must equal MAX_TERMS of the twin

if MAX_TERMS != CMAX:  # pragma: no cover - guards the twin and this file agreeing
    raise ImportError("MAX_TERMS mismatch between _sched_py and _sched_c")

__all__ = ["MAX_TERMS", "select"]


cdef extern from *:
    """
    #include <float.h>
    #include <stdint.h>
    /* PERF (python -m nubis.bench scheduler): these loops are exact min/max and an
       approximate sum; the flags below only let GCC vectorize the min/max (no
       reassociation, so every approximate weight is rounded op by op and the error
       bound in select() holds); the exact weights are computed in plain code below. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define NUBIS_VEC __attribute__((optimize("O3", "no-trapping-math", "finite-math-only", "no-signed-zeros"), target_clones("avx2", "default")))
    #else
    #define NUBIS_VEC
    #endif
    static NUBIS_VEC int64_t nubis_fit(uint8_t* av, const int64_t* lim, int64_t amt,
                                       int64_t n) {
        int64_t i, c = 0;
        for (i = 0; i < n; i++) { av[i] = (uint8_t)((av[i] != 0) & (lim[i] >= amt)); c += av[i]; }
        return c;
    }
    static NUBIS_VEC int64_t nubis_count(const uint8_t* av, int64_t n) {
        int64_t i, c = 0;
        for (i = 0; i < n; i++) c += av[i] != 0;
        return c;
    }
    static NUBIS_VEC void nubis_minmax_f(const uint8_t* av, const double* x, double f,
                                         int64_t n, double* lo, double* hi) {
        double l = DBL_MAX, h = -DBL_MAX;
        int64_t i;
        for (i = 0; i < n; i++) {
            double v = x[i] * f;
            double a = av[i] ? v : DBL_MAX, b = av[i] ? v : -DBL_MAX;
            l = a < l ? a : l;
            h = b > h ? b : h;
        }
        *lo = l; *hi = h;
    }
    static NUBIS_VEC void nubis_minmax_i(const uint8_t* av, const int64_t* x, double f,
                                         int64_t n, double* lo, double* hi) {
        double l = DBL_MAX, h = -DBL_MAX;
        int64_t i;
        for (i = 0; i < n; i++) {
            double v = (double)x[i] * f;
            double a = av[i] ? v : DBL_MAX, b = av[i] ? v : -DBL_MAX;
            l = a < l ? a : l;
            h = b > h ? b : h;
        }
        *lo = l; *hi = h;
    }
    static NUBIS_VEC void nubis_block(double* blk, const uint8_t* av, int na,
                                      const int* kind, const double* const* f,
                                      const int64_t* const* iv, const double* factor,
                                      const double* lo, const double* coef, int64_t b,
                                      int64_t e) {
        int64_t i, len = e - b;
        int t;
        for (i = 0; i < len; i++) blk[i] = 0.0;
        for (t = 0; t < na; t++) {
            const double fa = factor[t], l = lo[t], c = coef[t];
            if (kind[t] == 0) {
                const double* x = f[t] + b;
                for (i = 0; i < len; i++) blk[i] += (x[i] * fa - l) * c;
            } else {
                const int64_t* x = iv[t] + b;
                for (i = 0; i < len; i++) blk[i] += ((double)x[i] * fa - l) * c;
            }
        }
        for (i = 0; i < len; i++) blk[i] = av[b + i] ? blk[i] : -DBL_MAX;
    }
    /* Approximate weights block by block (in L1, never stored whole); keeps the rows
       whose weight reaches the running k-th best minus ``margin2`` (a superset of the
       final candidates, as the running k-th best only grows). Returns how many rows
       went to ``out`` (with their weights in ``outw``); ``*kth`` gets the k-th best. */
    static int64_t nubis_scan(double* blk, const uint8_t* av, int na, const int* kind,
                              const double* const* f, const int64_t* const* iv,
                              const double* factor, const double* lo, const double* coef,
                              int64_t n, int64_t k, double margin2, double* best,
                              int64_t* out, double* outw, double* kth_out) {
        int64_t b, e, i, m = 0, pos, nc = 0;
        double kth = -DBL_MAX, a;
        int t;
        for (b = 0; b < n; b += 512) {
            e = b + 512 < n ? b + 512 : n;
            nubis_block(blk, av, na, kind, f, iv, factor, lo, coef, b, e);
            for (i = b; i < e; i++) {
                a = blk[i - b];
                if (!(a >= kth - margin2) || a == -DBL_MAX) continue;
                out[nc] = i; outw[nc] = a; nc++;
                if (!(a > kth)) continue;
                pos = m < k ? m : k - 1;
                while (pos > 0 && a > best[pos - 1]) { best[pos] = best[pos - 1]; pos--; }
                best[pos] = a;
                if (m < k) m++;
                if (m == k) kth = best[k - 1];
            }
        }
        *kth_out = kth;
        return nc;
    }
    """
    int64_t nubis_fit(uint8_t* av, const int64_t* lim, int64_t amt, int64_t n) nogil
    int64_t nubis_count(const uint8_t* av, int64_t n) nogil
    void nubis_minmax_f(const uint8_t* av, const double* x, double f, int64_t n,
                        double* lo, double* hi) nogil
    void nubis_minmax_i(const uint8_t* av, const int64_t* x, double f, int64_t n,
                        double* lo, double* hi) nogil
    int64_t nubis_scan(double* blk, const uint8_t* av, int na, const int* kind,
                       const double* const* f, const int64_t* const* iv,
                       const double* factor, const double* lo, const double* coef,
                       int64_t n, int64_t k, double margin2, double* best,
                       int64_t* out, double* outw, double* kth_out) nogil


cdef inline double _value(int kind, const double* f, const int64_t* i, double factor,
                          Py_ssize_t row) noexcept nogil:
    if kind == 0:
        return f[row] * factor
    return (<double>i[row]) * factor



def select(alive, limits, amounts, terms, int k, scratch=None):
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
    cdef double v, t, thr, margin = 1.0
    cdef Py_ssize_t kk = k
    cdef double coef[CMAX]
    cdef int akind[CMAX]
    cdef const double* afcol[CMAX]
    cdef const int64_t* aicol[CMAX]
    cdef double afactor[CMAX]
    cdef double alo[CMAX]
    cdef double acoef[CMAX]
    cdef double blk[512]
    cdef double* best_w = <double*>malloc((kk + 1) * sizeof(double))
    cdef Py_ssize_t* best_r = <Py_ssize_t*>malloc((kk + 1) * sizeof(Py_ssize_t))
    cdef double[::1] sv
    cdef double* approx
    cdef int64_t* cand
    cdef int64_t nc = 0, ci
    if scratch is None or len(scratch) < 2 * n + 2:
        scratch = np.empty(2 * n + 2, dtype=np.float64)
    sv = scratch
    approx = &sv[0]
    cand = <int64_t*>&sv[n + 1]
    if best_w == NULL or best_r == NULL:
        free(best_w)
        free(best_r)
        raise MemoryError()
    try:
        with nogil:
            for j in range(nt):
                lo[j] = INFINITY
                hi[j] = -INFINITY
            # pass 1: the resource fit; then each weigher's min/max over the survivors
            if n and nl == 0:
                count = nubis_count(&av[0], n)
            for j in range(nl if n else 0):
                count = nubis_fit(&av[0], lim[j], amt[j], n)
            if count > 1:
                for j in range(nt):
                    if kind[j] == 0:
                        nubis_minmax_f(&av[0], fcol[j], factor[j], n, &lo[j], &hi[j])
                    else:
                        nubis_minmax_i(&av[0], icol[j], factor[j], n, &lo[j], &hi[j])
            for j in range(nt):
                if count > 1 and lo[j] != hi[j]:
                    active[na] = j
                    span[j] = hi[j] - lo[j]
                    coef[j] = mult[j] / span[j]
                    margin += fabs(mult[j])
                    na += 1
            # One row's approximate weight (multiplying by mult/span instead of dividing)
            # is within a few ulps of ``margin`` of its exact weight; 1e-9 is far wider.
            margin *= 1e-9
            if count > 0 and kk > 0:
                # pass 2: approximate weights; the k-th best of them bounds the candidates
                for pos in range(na):
                    j = active[pos]
                    akind[pos] = kind[j]
                    afcol[pos] = fcol[j]
                    aicol[pos] = icol[j]
                    afactor[pos] = factor[j]
                    alo[pos] = lo[j]
                    acoef[pos] = coef[j]
                nc = nubis_scan(blk, &av[0], na, akind, afcol, aicol, afactor, alo, acoef,
                                n, kk, 2.0 * margin, best_w, cand, approx, &thr)
                thr = thr - 2.0 * margin if thr > -DBL_MAX else -DBL_MAX
                # pass 3: Nova's exact sum of normalised weights for the rows that can
                # still be among the k best; keep them stably (ties in row order)
                for ci in range(nc):
                    if approx[ci] < thr:
                        continue
                    row = cand[ci]
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
