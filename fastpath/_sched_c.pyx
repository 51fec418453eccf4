# cython: language_level=3
"""Scheduler selection kernel, compiled. Twin (and documentation): _sched_py.py.

PERF (``python -m nubis.bench scheduler``): without the GIL, no compaction and no
per-call temporaries: (1) one blocked sweep doing the resource fit, the survivor
count and each weigher's min/max over the survivors (integer columns keep integer
extremes: ``x * factor`` is monotonic in ``x``); (2) one blocked scan computing
approximate weights (``(value - lo) * (mult / span)``) that keeps only the rows
within an error margin of the running k-th best; (3) Nova's exact
``(value - lo) / span * mult`` sum for those few rows, selected stably. When the
caller predicts the extremes (``predict``: the ``bounds`` of a similar earlier
call), sweep (1) also does (2) block by block while the block is in cache, and
(2) is skipped if every extreme turns out equal to the prediction — then the
coefficients, margin and candidates are exactly (2)'s. The result equals the
twin's exactly. Loops are cloned for x86-64-v4 (AVX-512), AVX2 and baseline.
"""

from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY, fabs
from libc.float cimport DBL_MAX
cimport numpy as cnp
import numpy as np

from nubis.fastpath._sched_py import MAX_TERMS

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
    #define NUBIS_VEC __attribute__((optimize("O3", "no-trapping-math", "finite-math-only", "no-signed-zeros"), target_clones("arch=x86-64-v4", "avx2", "default")))
    #else
    #define NUBIS_VEC
    #endif
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
    static NUBIS_VEC double nubis_block(double* blk, const uint8_t* av, int na,
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
        double mx = -DBL_MAX;
        for (i = 0; i < len; i++) {
            blk[i] = av[b + i] ? blk[i] : -DBL_MAX;
            mx = blk[i] > mx ? blk[i] : mx;
        }
        return mx;
    }
    /* The running approximate top-k of a sweep and the candidates it keeps. */
    typedef struct {
        int64_t k, m, nc;
        int done;
        double kth, margin2;
        double* best;
        int64_t* out;
        double* outw;
    } nubis_topk;
    /* Keep the rows of one block whose approximate weight reaches the running k-th
       best minus ``margin2`` (a superset of the final candidates, as the running k-th
       best only grows). With no active weigher every weight is 0: the first k alive
       rows are the answer, so the sweep stops collecting there. */
    static NUBIS_VEC double nubis_max(const double* x, int64_t len) {
        double m = -DBL_MAX;
        int64_t i;
        for (i = 0; i < len; i++) m = x[i] > m ? x[i] : m;
        return m;
    }
    static void nubis_collect(nubis_topk* s, const double* blk, int64_t b, int64_t e,
                              int na) {
        int64_t c, ce, i, pos;
        double a;
        for (c = b; c < e; c += 64) {
          ce = c + 64 < e ? c + 64 : e;
          /* PERF: skip (vectorized) the 64-row runs without a candidate */
          if (!(nubis_max(blk + (c - b), ce - c) >= s->kth - s->margin2)) continue;
          for (i = c; i < ce; i++) {
            a = blk[i - b];
            if (!(a >= s->kth - s->margin2) || a == -DBL_MAX) continue;
            s->out[s->nc] = i; s->outw[s->nc] = a; s->nc++;
            if (na == 0 && s->nc == s->k) { s->kth = a; s->done = 1; return; }
            if (!(a > s->kth)) continue;
            pos = s->m < s->k ? s->m : s->k - 1;
            while (pos > 0 && a > s->best[pos - 1]) { s->best[pos] = s->best[pos - 1]; pos--; }
            s->best[pos] = a;
            if (s->m < s->k) s->m++;
            if (s->m == s->k) s->kth = s->best[s->k - 1];
          }
        }
    }
    #define NUBIS_B1 1024  /* rows per block, in both sweeps */
    /* Pass 1 in one sweep, block by block (the block's alive bytes stay in L1): the
       resource fit, the survivor count, and each weigher's min/max over the survivors.
       Integer columns keep integer extremes (converted once at the end: ``x * f``
       is monotonic in x, so the extremes are the same values). Returns the count. */
    static NUBIS_VEC int64_t nubis_pass1(uint8_t* av, int nl, const int64_t* const* lim,
                                         const int64_t* amt, int nt, const int* kind,
                                         const double* const* f, const int64_t* const* iv,
                                         const double* factor, double* lo, double* hi,
                                         int64_t* ilo, int64_t* ihi, int64_t n, double* blk,
                                         nubis_topk* ps, int pna, const int* pkind,
                                         const double* const* pf, const int64_t* const* piv,
                                         const double* pfactor, const double* plo,
                                         const double* pcoef) {
        int64_t b, e, i, c = 0, len;
        int j;
        for (j = 0; j < nt; j++) {
            lo[j] = DBL_MAX; hi[j] = -DBL_MAX; ilo[j] = INT64_MAX; ihi[j] = INT64_MIN;
        }
        for (b = 0; b < n; b += NUBIS_B1) {
            e = b + NUBIS_B1 < n ? b + NUBIS_B1 : n;
            len = e - b;
            uint8_t* a = av + b;
            int64_t bc = 0;
            for (j = 0; j < nl; j++) {
                const int64_t* x = lim[j] + b;
                const int64_t m = amt[j];
                for (i = 0; i < len; i++) a[i] = (uint8_t)((a[i] != 0) & (x[i] >= m));
            }
            if (nl == 0)
                for (i = 0; i < len; i++) a[i] = (uint8_t)(a[i] != 0);
            for (i = 0; i < len; i++) bc += a[i];
            c += bc;
            if (bc == 0) continue;
            for (j = 0; j < nt; j++) {
                if (kind[j] == 0) {
                    const double* x = f[j] + b;
                    const double fa = factor[j];
                    double l = lo[j], h = hi[j];
                    for (i = 0; i < len; i++) {
                        double v = x[i] * fa;
                        double p = a[i] ? v : DBL_MAX, q = a[i] ? v : -DBL_MAX;
                        l = p < l ? p : l;
                        h = q > h ? q : h;
                    }
                    lo[j] = l; hi[j] = h;
                } else {
                    const int64_t* x = iv[j] + b;
                    int64_t l = ilo[j], h = ihi[j];
                    for (i = 0; i < len; i++) {  /* branch-free, so it vectorizes */
                        const int64_t m = -(int64_t)(a[i] != 0), v = x[i] & m;
                        const int64_t p = v | (INT64_MAX & ~m), q = v | (INT64_MIN & ~m);
                        l = p < l ? p : l;
                        h = q > h ? q : h;
                    }
                    ilo[j] = l; ihi[j] = h;
                }
            }
            /* with predicted extremes, weigh the block now, while it is in cache */
            if (ps != NULL && !ps->done
                && nubis_block(blk, av, pna, pkind, pf, piv, pfactor, plo, pcoef, b, e)
                   >= ps->kth - ps->margin2)
                nubis_collect(ps, blk, b, e, pna);
        }
        return c;
    }
    /* Approximate weights block by block (in L1, never stored whole), collected into
       ``s`` (pass 2, when pass 1 could not do it with predicted extremes). */
    static void nubis_scan(double* blk, const uint8_t* av, int na, const int* kind,
                           const double* const* f, const int64_t* const* iv,
                           const double* factor, const double* lo, const double* coef,
                           int64_t n, nubis_topk* s) {
        int64_t b, e;
        for (b = 0; b < n && !s->done; b += NUBIS_B1) {
            e = b + NUBIS_B1 < n ? b + NUBIS_B1 : n;
            /* PERF: most blocks hold no candidate once the k-th best is known */
            if (nubis_block(blk, av, na, kind, f, iv, factor, lo, coef, b, e)
                >= s->kth - s->margin2)
                nubis_collect(s, blk, b, e, na);
        }
    }
    """
    ctypedef struct nubis_topk:
        int64_t k, m, nc
        int done
        double kth, margin2
        double* best
        int64_t* out
        double* outw
    int64_t nubis_pass1(uint8_t* av, int nl, const int64_t* const* lim, const int64_t* amt,
                        int nt, const int* kind, const double* const* f,
                        const int64_t* const* iv, const double* factor, double* lo,
                        double* hi, int64_t* ilo, int64_t* ihi, int64_t n, double* blk,
                        nubis_topk* ps, int pna, const int* pkind, const double* const* pf,
                        const int64_t* const* piv, const double* pfactor,
                        const double* plo, const double* pcoef) nogil
    void nubis_minmax_i(const uint8_t* av, const int64_t* x, double f, int64_t n,
                        double* lo, double* hi) nogil
    void nubis_scan(double* blk, const uint8_t* av, int na, const int* kind,
                    const double* const* f, const int64_t* const* iv,
                    const double* factor, const double* lo, const double* coef,
                    int64_t n, nubis_topk* s) nogil


cdef inline double _value(int kind, const double* f, const int64_t* i, double factor,
                          Py_ssize_t row) noexcept nogil:
    if kind == 0:
        return f[row] * factor
    return (<double>i[row]) * factor



cdef void* _column(object col, int typenum, Py_ssize_t n, bint write) except NULL:
    """Return the data of a contiguous 1-D array of ``typenum`` with at least ``n`` items.

    PERF: no buffer acquisition per column (``python -m nubis.bench scheduler``).
    """
    cdef cnp.ndarray arr
    if not isinstance(col, cnp.ndarray):
        raise TypeError("columns must be numpy arrays")
    arr = <cnp.ndarray>col
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError("weigher columns must be float64 or int64; limits int64; "
                        "alive uint8")
    if cnp.PyArray_NDIM(arr) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError("columns must be contiguous 1-D arrays")
    if cnp.PyArray_DIM(arr, 0) < n:
        raise ValueError("a column is shorter than alive")
    if write and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError("alive must be writeable")
    if cnp.PyArray_DIM(arr, 0) == 0:
        return <void*>&_EMPTY
    return cnp.PyArray_DATA(arr)


cdef double _EMPTY = 0.0


def select(alive, limits, amounts, terms, int k, scratch=None, predict=None, bounds=None):
    """Apply the resource limits to ``alive`` (in place), weigh, return (count, best rows).

    ``predict`` (the ``bounds`` of an earlier call) lets pass 1 weigh each block while
    it is in cache; that work is used only if every weigher's min/max turns out equal
    to the prediction (then it is exactly pass 2's), else pass 2 runs as usual.
    """
    if len(limits) != len(amounts):
        raise ValueError("limits and amounts differ in length")
    if len(limits) > CMAX or len(terms) > CMAX:
        raise ValueError(f"at most {MAX_TERMS} limits and {MAX_TERMS} weigher terms")
    if k < 0:
        raise ValueError("k must be >= 0")
    cdef Py_ssize_t n = len(alive)
    cdef uint8_t* avp = <uint8_t*>_column(alive, cnp.NPY_UINT8, n, True)
    cdef const int64_t* lim[CMAX]
    cdef int64_t amt[CMAX]
    cdef int kind[CMAX]
    cdef const double* fcol[CMAX]
    cdef const int64_t* icol[CMAX]
    cdef double factor[CMAX]
    cdef double mult[CMAX]
    cdef double lo[CMAX]
    cdef double hi[CMAX]
    cdef int64_t ilo[CMAX]
    cdef int64_t ihi[CMAX]
    cdef double span[CMAX]
    cdef int active[CMAX]
    cdef int nl = len(limits), nt = len(terms), na = 0
    cdef int j
    # the callers' lists keep the arrays (and so these pointers) alive during the call
    for j in range(nl):
        lim[j] = <const int64_t*>_column(limits[j], cnp.NPY_INT64, n, False)
        amt[j] = amounts[j]
    for j in range(nt):
        col, fac, mul = terms[j]
        factor[j] = fac
        mult[j] = mul
        fcol[j] = NULL
        icol[j] = NULL
        if isinstance(col, cnp.ndarray) and cnp.PyArray_TYPE(<cnp.ndarray>col) == cnp.NPY_INT64:
            kind[j] = 1
            icol[j] = <const int64_t*>_column(col, cnp.NPY_INT64, n, False)
        else:
            kind[j] = 0
            fcol[j] = <const double*>_column(col, cnp.NPY_FLOAT64, n, False)
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
    cdef double blk[1024]
    cdef nubis_topk top, ptop
    cdef nubis_topk* pst = NULL
    cdef const double* pp = NULL
    cdef double* bp = NULL
    cdef int pna = 0
    cdef int pkind[CMAX]
    cdef const double* pfcol[CMAX]
    cdef const int64_t* picol[CMAX]
    cdef double pfactor[CMAX]
    cdef double plo[CMAX]
    cdef double pcoef[CMAX]
    cdef double pmargin = 1.0
    cdef bint hit = False
    cdef double* best_w = <double*>malloc((kk + 1) * sizeof(double))
    cdef Py_ssize_t* best_r = <Py_ssize_t*>malloc((kk + 1) * sizeof(Py_ssize_t))
    cdef double* approx
    cdef int64_t* cand
    cdef int64_t nc = 0, ci
    if (scratch is None or not isinstance(scratch, cnp.ndarray)
            or len(scratch) < 2 * n + 2):
        scratch = np.empty(2 * n + 2, dtype=np.float64)
    approx = <double*>_column(scratch, cnp.NPY_FLOAT64, 2 * n + 2, True)
    cand = <int64_t*>&approx[n + 1]
    if bounds is not None:
        bp = <double*>_column(bounds, cnp.NPY_FLOAT64, 2 * nt, True)
    if predict is not None and kk > 0:
        pp = <const double*>_column(predict, cnp.NPY_FLOAT64, 2 * nt, False)
        for j in range(nt):
            if pp[2 * j] != pp[2 * j + 1]:  # the same test and arithmetic as below
                pkind[pna] = kind[j]
                pfcol[pna] = fcol[j]
                picol[pna] = icol[j]
                pfactor[pna] = factor[j]
                plo[pna] = pp[2 * j]
                pcoef[pna] = mult[j] / (pp[2 * j + 1] - pp[2 * j])
                pmargin += fabs(mult[j])
                pna += 1
    if best_w == NULL or best_r == NULL:
        free(best_w)
        free(best_r)
        raise MemoryError()
    try:
        with nogil:
            # pass 1: the resource fit, the survivor count, each weigher's min/max
            # (and with a prediction, pass 2's candidates too)
            if pp != NULL:
                ptop.k = kk
                ptop.m = 0
                ptop.nc = 0
                ptop.done = 0
                ptop.kth = -DBL_MAX
                ptop.margin2 = 2.0 * (pmargin * 1e-9)
                ptop.best = best_w
                ptop.out = cand
                ptop.outw = approx
                pst = &ptop
            if n:
                count = nubis_pass1(avp, nl, lim, amt, nt, kind, fcol, icol, factor,
                                    lo, hi, ilo, ihi, n, blk, pst, pna, pkind, pfcol,
                                    picol, pfactor, plo, pcoef)
            for j in range(nt):
                if count <= 1:
                    lo[j] = INFINITY
                    hi[j] = -INFINITY
                elif kind[j] == 1:
                    if factor[j] > 0.0 and factor[j] <= DBL_MAX:
                        lo[j] = (<double>ilo[j]) * factor[j]
                        hi[j] = (<double>ihi[j]) * factor[j]
                    elif factor[j] < 0.0 and factor[j] >= -DBL_MAX:
                        lo[j] = (<double>ihi[j]) * factor[j]
                        hi[j] = (<double>ilo[j]) * factor[j]
                    else:  # zero or not finite: not monotonic, scan the products
                        nubis_minmax_i(avp, icol[j], factor[j], n, &lo[j], &hi[j])
            for j in range(nt):
                if count > 1 and lo[j] != hi[j]:
                    active[na] = j
                    span[j] = hi[j] - lo[j]
                    coef[j] = mult[j] / span[j]
                    margin += fabs(mult[j])
                    na += 1
            if bp != NULL:
                for j in range(nt):
                    bp[2 * j] = lo[j]
                    bp[2 * j + 1] = hi[j]
            # One row's approximate weight (multiplying by mult/span instead of dividing)
            # is within a few ulps of ``margin`` of its exact weight; 1e-9 is far wider.
            margin *= 1e-9
            if pp != NULL and count > 1:
                hit = True  # the prediction held: same terms, coefficients and margin
                for j in range(nt):
                    if not (lo[j] == pp[2 * j] and hi[j] == pp[2 * j + 1]):
                        hit = False
            if count > 0 and kk > 0:
                if hit:
                    nc = ptop.nc
                    thr = ptop.kth
                else:
                    # pass 2: approximate weights; their k-th best bounds the candidates
                    for pos in range(na):
                        j = active[pos]
                        akind[pos] = kind[j]
                        afcol[pos] = fcol[j]
                        aicol[pos] = icol[j]
                        afactor[pos] = factor[j]
                        alo[pos] = lo[j]
                        acoef[pos] = coef[j]
                    top.k = kk
                    top.m = 0
                    top.nc = 0
                    top.done = 0
                    top.kth = -DBL_MAX
                    top.margin2 = 2.0 * margin
                    top.best = best_w
                    top.out = cand
                    top.outw = approx
                    nubis_scan(blk, avp, na, akind, afcol, aicol, afactor, alo, acoef, n,
                               &top)
                    nc = top.nc
                    thr = top.kth
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
