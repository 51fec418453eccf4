# cython: language_level=3
"""CRC-32C over ISA-L, CRC-64/NVME by PCLMULQDQ folding, compiled. Twin: _crc_py.py.

CRC-64/NVME folds 64-byte blocks with carry-less multiplication
(``crc64_clmul.h``) where the CPU has PCLMULQDQ, and runs slicing-by-8 tables
otherwise and on the last bytes. ISA-L 2.31 has ``crc64_rocksoft_refl`` (the
same CRC); Debian 12 ships 2.30.

PERF: the pure twin costs about 110 ms per MiB (a Python loop per byte); these
run at memory speed without the GIL (``python -m nubis.bench crc``).
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from nubis.fastpath._crc_py import CRC64NVME_FOLD, CRC64NVME_POLY

cdef extern from "isa-l/crc.h" nogil:
    unsigned int crc32_iscsi(unsigned char* buffer, int length, unsigned int init_crc)

cdef extern from "crc64_clmul.h" nogil:
    int nubis_crc64_clmul_usable()
    size_t nubis_crc64_fold(const uint8_t* p, size_t n, uint64_t crc, const uint64_t* k,
                            uint8_t* out)

# ISA-L takes an int length: larger buffers go through in pieces. Smaller
# buffers than NOGIL_BYTES keep the GIL (releasing it costs more than they take).
cdef enum:
    ISAL_PIECE = 1 << 30
    NOGIL_BYTES = 1 << 16

cdef uint64_t T64[8][256]
cdef uint64_t FOLD[4]
cdef bint CLMUL = nubis_crc64_clmul_usable()
FOLD[:] = CRC64NVME_FOLD


cdef void _init_tables(uint64_t poly):
    cdef int i, j, k
    cdef uint64_t c
    for i in range(256):
        c = i
        for k in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        T64[0][i] = c
    for i in range(256):
        for j in range(1, 8):
            T64[j][i] = (T64[j - 1][i] >> 8) ^ T64[0][T64[j - 1][i] & 0xFF]


_init_tables(CRC64NVME_POLY)


cdef uint64_t _crc64(uint64_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """Advance the (non-inverted) CRC-64 register over ``n`` bytes at ``p``."""
    cdef uint8_t block[16]
    cdef size_t done
    if CLMUL and n >= 64:
        done = nubis_crc64_fold(p, n, crc, FOLD, block)
        return _crc64_table(_crc64_table(0, block, 16), p + done, n - done)
    return _crc64_table(crc, p, n)


cdef uint64_t _crc64_table(uint64_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """Advance the register by slicing-by-8 tables."""
    cdef uint64_t word
    while n >= 8:
        memcpy(&word, p, 8)  # little-endian load (x86-64, aarch64)
        crc ^= word
        crc = (T64[7][crc & 0xFF] ^ T64[6][(crc >> 8) & 0xFF]
               ^ T64[5][(crc >> 16) & 0xFF] ^ T64[4][(crc >> 24) & 0xFF]
               ^ T64[3][(crc >> 32) & 0xFF] ^ T64[2][(crc >> 40) & 0xFF]
               ^ T64[1][(crc >> 48) & 0xFF] ^ T64[0][crc >> 56])
        p += 8
        n -= 8
    while n:
        crc = T64[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc


cdef uint32_t _crc32c(uint32_t crc, uint8_t* p, size_t n) noexcept nogil:
    """Advance the (non-inverted) CRC-32C register over ``n`` bytes at ``p``."""
    cdef size_t piece
    while n:
        piece = n if n < ISAL_PIECE else ISAL_PIECE
        crc = crc32_iscsi(p, <int>piece, crc)
        p += piece
        n -= piece
    return crc


def crc32c(data, value=0):
    """Return the CRC-32C of ``data`` continuing from ``value``."""
    cdef Py_buffer view
    cdef uint32_t crc = (<uint32_t>(value & 0xFFFFFFFF)) ^ 0xFFFFFFFF
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len < NOGIL_BYTES:
            crc = _crc32c(crc, <uint8_t*>view.buf, <size_t>view.len)
        else:
            with nogil:
                crc = _crc32c(crc, <uint8_t*>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return crc ^ 0xFFFFFFFF


def crc64nvme(data, value=0):
    """Return the CRC-64/NVME of ``data`` continuing from ``value``."""
    return _crc64_of(data, value, True)


def _crc64nvme_by_tables(data, value=0):
    """Return :func:`crc64nvme` computed without folding (the path of CPUs without PCLMULQDQ)."""
    return _crc64_of(data, value, False)


cdef object _crc64_of(object data, object value, bint fold):
    cdef Py_buffer view
    cdef uint64_t crc = (<uint64_t>(value & 0xFFFFFFFFFFFFFFFF)) ^ 0xFFFFFFFFFFFFFFFF
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if not fold:
            crc = _crc64_table(crc, <const uint8_t*>view.buf, <size_t>view.len)
        elif view.len < NOGIL_BYTES:
            crc = _crc64(crc, <const uint8_t*>view.buf, <size_t>view.len)
        else:
            with nogil:
                crc = _crc64(crc, <const uint8_t*>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return crc ^ 0xFFFFFFFFFFFFFFFF
