/* CRC-64 folding with carry-less multiplication (x86-64 PCLMULQDQ), for _crc_c.pyx.
 *
 * nubis_crc64_fold() folds a message of at least 64 bytes down to one 16-byte
 * block whose CRC (register starting at 0) equals the message's CRC from the
 * register `crc`; the caller finishes that block and the < 16 tail bytes by
 * table. k = {fold 128 first half, second half, fold 512 first, second}.
 * Compiled for any x86-64 (target attribute); call it only when
 * nubis_crc64_clmul_usable() says the CPU has PCLMULQDQ.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define NUBIS_CLMUL __attribute__((target("pclmul,sse4.1")))

static int nubis_crc64_clmul_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

NUBIS_CLMUL static inline __m128i nubis_fold(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

NUBIS_CLMUL static size_t nubis_crc64_fold(const uint8_t *p, size_t n, uint64_t crc,
                                            const uint64_t k[4], uint8_t out[16]) {
    const __m128i k128 = _mm_set_epi64x((long long)k[1], (long long)k[0]);
    const __m128i k512 = _mm_set_epi64x((long long)k[3], (long long)k[2]);
    const uint8_t *start = p;
    __m128i a0 = _mm_loadu_si128((const __m128i *)p);
    __m128i a1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i a2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i a3 = _mm_loadu_si128((const __m128i *)(p + 48));
    a0 = _mm_xor_si128(a0, _mm_cvtsi64_si128((long long)crc));
    p += 64;
    n -= 64;
    while (n >= 64) {
        a0 = _mm_xor_si128(nubis_fold(a0, k512), _mm_loadu_si128((const __m128i *)p));
        a1 = _mm_xor_si128(nubis_fold(a1, k512), _mm_loadu_si128((const __m128i *)(p + 16)));
        a2 = _mm_xor_si128(nubis_fold(a2, k512), _mm_loadu_si128((const __m128i *)(p + 32)));
        a3 = _mm_xor_si128(nubis_fold(a3, k512), _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    a0 = _mm_xor_si128(nubis_fold(a0, k128), a1);
    a0 = _mm_xor_si128(nubis_fold(a0, k128), a2);
    a0 = _mm_xor_si128(nubis_fold(a0, k128), a3);
    while (n >= 16) {
        a0 = _mm_xor_si128(nubis_fold(a0, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    _mm_storeu_si128((__m128i *)out, a0);
    return (size_t)(p - start);
}

#else

static int nubis_crc64_clmul_usable(void) { return 0; }

static size_t nubis_crc64_fold(const uint8_t *p, size_t n, uint64_t crc, const uint64_t k[4],
                               uint8_t out[16]) {
    (void)p; (void)n; (void)crc; (void)k; (void)out;
    return 0;
}

#endif
