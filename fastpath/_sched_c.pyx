# cython: language_level=3
"""Scheduler selection kernel, compiled. Twin (and documentation): _sched_py.py.

PERF: two nogil passes over the host columns (fit + min/max, then score + top-k),
no compaction, no temporaries (``python -m nubis.bench scheduler``).
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
       approximate sum, so they may be vectorized freely; the exact weights are
       computed in plain Cython code below. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define NUBIS_VEC __attribute__((optimize("O3", "fast-math"), target_clones("avx2", "default")))
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
    static NUBIS_VEC void nubis_acc_f(double* acc, const double* x, double f, double lo,
                                      double coef, int64_t n, int first) {
        int64_t i;
        if (first) { for (i = 0; i < n; i++) acc[i] = (x[i] * f - lo) * coef; }
        else { for (i = 0; i < n; i++) acc[i] += (x[i] * f - lo) * coef; }
    }
    static NUBIS_VEC void nubis_acc_i(double* acc, const int64_t* x, double f, double lo,
                                      double coef, int64_t n, int first) {
        int64_t i;
        if (first) { for (i = 0; i < n; i++) acc[i] = ((double)x[i] * f - lo) * coef; }
        else { for (i = 0; i < n; i++) acc[i] += ((double)x[i] * f - lo) * coef; }
    }
    /* Dead rows get -DBL_MAX (live approximate weights are far above it). */
    static NUBIS_VEC void nubis_kill(double* acc, const uint8_t* av, int64_t n, int zero) {
        int64_t i;
        if (zero) { for (i = 0; i < n; i++) acc[i] = av[i] ? 0.0 : -DBL_MAX; }
        else { for (i = 0; i < n; i++) acc[i] = av[i] ? acc[i] : -DBL_MAX; }
    }
    /* The k-th largest value of acc over rows with acc > -DBL_MAX (-DBL_MAX if fewer). */
    static double nubis_kth(const double* acc, int64_t n, int64_t k, double* best) {
        int64_t i, m = 0, pos;
        double kth = -DBL_MAX, a;
        for (i = 0; i < n; i++) {
            a = acc[i];
            if (!(a > kth)) continue;
            pos = m < k ? m : k - 1;
            while (pos > 0 && a > best[pos - 1]) { best[pos] = best[pos - 1]; pos--; }
            best[pos] = a;
            if (m < k) m++;
            if (m == k) kth = best[k - 1];
        }
        return kth;
    }
    /* Rows with acc >= thr and acc > -DBL_MAX, in row order; returns how many. */
    static int64_t nubis_candidates(const double* acc, double thr, int64_t n, int64_t* out) {
        int64_t i, m = 0;
        for (i = 0; i < n; i++) {
            if (acc[i] >= thr && acc[i] > -DBL_MAX) out[m++] = i;
        }
        return m;
    }
    """
    int64_t nubis_fit(uint8_t* av, const int64_t* lim, int64_t amt, int64_t n) nogil
    int64_t nubis_count(const uint8_t* av, int64_t n) nogil
    void nubis_minmax_f(const uint8_t* av, const double* x, double f, int64_t n,
                        double* lo, double* hi) nogil
    void nubis_minmax_i(const uint8_t* av, const int64_t* x, double f, int64_t n,
                        double* lo, double* hi) nogil
    void nubis_acc_f(double* acc, const double* x, double f, double lo, double coef,
                     int64_t n, int first) nogil
    void nubis_acc_i(double* acc, const int64_t* x, double f, double lo, double coef,
                     int64_t n, int first) nogil
    void nubis_kill(double* acc, const uint8_t* av, int64_t n, int zero) nogil
    double nubis_kth(const double* acc, int64_t n, int64_t k, double* best) nogil
    int64_t nubis_candidates(const double* acc, double thr, int64_t n, int64_t* out) nogil

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
    cdef Py_ssize_t count = 0, row, m = 0, pos, ma = 0
    cdef double v, t, a, thr, margin = 1.0
    cdef int ok
    cdef Py_ssize_t kk = k
    cdef double coef[CMAX]
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
                    if kind[j] == 0:
                        nubis_acc_f(approx, fcol[j], factor[j], lo[j], coef[j], n, pos == 0)
                    else:
                        nubis_acc_i(approx, icol[j], factor[j], lo[j], coef[j], n, pos == 0)
                nubis_kill(approx, &av[0], n, na == 0)
                thr = nubis_kth(approx, n, kk, best_w)
                thr = thr - 2.0 * margin if thr > -DBL_MAX else -DBL_MAX
                nc = nubis_candidates(approx, thr, n, cand)
                # pass 3: Nova's exact sum of normalised weights for the rows that can
                # still be among the k best; keep them stably (ties in row order)
                for ci in range(nc):
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
