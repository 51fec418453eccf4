# cython: language_level=3
"""AWS SigV4 request signatures through OpenSSL's SHA-256. Twin: _sigv4_py.py.

The canonical request is streamed into SHA-256 piece by piece (no string is
built), its hex digest closes the string to sign, and that is signed with
HMAC-SHA256 from a key's saved inner and outer hash states (:func:`key_state`,
the two ``SHA256_CTX`` after the padded key, as bytes). Header values that are
printable ASCII without leading, trailing or doubled spaces go in as they are;
any other is folded as the twin folds it (``" ".join(value.split())``).

PERF: bench s3 -- the signature check of every S3 request; OpenSSL uses the
CPU's SHA extensions where it has them.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

cdef extern from "openssl/sha.h" nogil:
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX* c)
    int SHA256_Update(SHA256_CTX* c, const void* data, size_t n)
    int SHA256_Final(unsigned char* md, SHA256_CTX* c)

from nubis.fastpath._sigv4_py import ALGORITHM, BLOCK

cdef bytes _ALGO_LINE = (ALGORITHM + "\n").encode("ascii")
cdef const char* _HEX = b"0123456789abcdef"


cdef inline void _hex(const unsigned char* digest, char* out) noexcept:
    cdef int i
    for i in range(32):
        out[2 * i] = _HEX[digest[i] >> 4]
        out[2 * i + 1] = _HEX[digest[i] & 15]


cdef inline int _text(SHA256_CTX* c, str text) except -1:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(text, &n)
    SHA256_Update(c, p, <size_t>n)
    return 0


cdef inline int _value(SHA256_CTX* c, str value) except -1:
    """Add a header value as SigV4 canonicalises it."""
    cdef Py_ssize_t n, i
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_AsUTF8AndSize(value, &n)
    cdef bint plain = n == 0 or (p[0] != 32 and p[n - 1] != 32)
    if plain:
        for i in range(n):
            # p[n] is the buffer's NUL, so p[i + 1] is always readable.
            if p[i] < 32 or p[i] > 126 or (p[i] == 32 and p[i + 1] == 32):
                plain = False
                break
    if not plain:
        value = " ".join(value.split())
        p = <const unsigned char*>PyUnicode_AsUTF8AndSize(value, &n)
    SHA256_Update(c, p, <size_t>n)
    return 0


cdef inline const char* _state(bytes state) except NULL:
    if PyBytes_GET_SIZE(state) != 2 * sizeof(SHA256_CTX):
        raise ValueError("not a key state of this implementation")
    return PyBytes_AS_STRING(state)


cdef str _finish(const char* state, SHA256_CTX* inner):
    """Close ``inner`` (the message is in) and return the hex HMAC."""
    cdef unsigned char digest[32]
    cdef char out[64]
    cdef SHA256_CTX outer
    SHA256_Final(digest, inner)
    memcpy(&outer, state + sizeof(SHA256_CTX), sizeof(SHA256_CTX))
    SHA256_Update(&outer, digest, 32)
    SHA256_Final(digest, &outer)
    _hex(digest, out)
    return out[:64].decode("ascii")


def key_state(bytes key not None):
    """Return HMAC-SHA256's inner and outer hash states after the padded ``key``."""
    cdef unsigned char pad[64]
    cdef unsigned char short_key[32]
    cdef SHA256_CTX c[2]
    cdef const unsigned char* k = <const unsigned char*>PyBytes_AS_STRING(key)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key), i
    if n > BLOCK:
        SHA256_Init(&c[0])
        SHA256_Update(&c[0], k, <size_t>n)
        SHA256_Final(short_key, &c[0])
        k = short_key
        n = 32
    for i in range(64):
        pad[i] = (k[i] if i < n else 0) ^ 0x36
    SHA256_Init(&c[0])
    SHA256_Update(&c[0], pad, 64)
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    SHA256_Init(&c[1])
    SHA256_Update(&c[1], pad, 64)
    return PyBytes_FromStringAndSize(<char*>c, 2 * sizeof(SHA256_CTX))


def sign(bytes state not None, message):
    """Return the hex HMAC-SHA256 of ``message`` under the key of ``state``."""
    cdef const char* s = _state(state)
    cdef const unsigned char[::1] view = message
    cdef SHA256_CTX inner
    memcpy(&inner, s, sizeof(SHA256_CTX))
    if view.shape[0]:
        SHA256_Update(&inner, &view[0], <size_t>view.shape[0])
    return _finish(s, &inner)


cdef int _canonical(SHA256_CTX* c, str method, str uri, str query, headers, tuple signed,
                    str payload) except -1:
    """Stream the canonical request of ``uri`` and ``query`` (already canonical) into ``c``."""
    cdef str name
    cdef object value
    cdef bint first = True
    cdef bint is_dict = type(headers) is dict
    SHA256_Init(c)
    _text(c, method)
    SHA256_Update(c, b"\n", 1)
    _text(c, uri)
    SHA256_Update(c, b"\n", 1)
    _text(c, query)
    SHA256_Update(c, b"\n", 1)
    for name in signed:
        value = (<dict>headers).get(name, "") if is_dict else headers.get(name, "")
        _text(c, name)
        SHA256_Update(c, b":", 1)
        _value(c, value)
        SHA256_Update(c, b"\n", 1)
    SHA256_Update(c, b"\n", 1)
    for name in signed:
        if not first:
            SHA256_Update(c, b";", 1)
        first = False
        _text(c, name)
    SHA256_Update(c, b"\n", 1)
    _text(c, payload)
    return 0


def request_signature(bytes state not None, str method, str uri, str query, headers, tuple signed,
                      str payload, str amz_date, str scope):
    """Return the hex SigV4 signature of a request under the key of ``state``."""
    cdef const char* s = _state(state)
    cdef unsigned char digest[32]
    cdef char out[64]
    cdef SHA256_CTX c
    _canonical(&c, method, uri, query, headers, signed, payload)
    SHA256_Final(digest, &c)
    _hex(digest, out)
    memcpy(&c, s, sizeof(SHA256_CTX))
    SHA256_Update(&c, PyBytes_AS_STRING(_ALGO_LINE), <size_t>PyBytes_GET_SIZE(_ALGO_LINE))
    _text(&c, amz_date)
    SHA256_Update(&c, b"\n", 1)
    _text(&c, scope)
    SHA256_Update(&c, b"\n", 1)
    SHA256_Update(&c, out, 64)
    return _finish(s, &c)
