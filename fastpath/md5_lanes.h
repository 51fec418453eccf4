/* MD5 of many messages at once, eight lanes per AVX2 register, for _md5mb_c.pyx.
 *
 * MD5 is one long dependency chain per message, so one message cannot go faster
 * than the scalar rounds (~1.4 ms per MiB here). Independent messages can: each
 * 32-bit lane of a 256-bit register runs the same rounds on its own message.
 * nubis_md5_lanes() hashes n messages like a job manager: eight lanes, each
 * taking the next message as soon as its own is done, so messages of different
 * lengths share the work; an idle lane hashes a zero block that is thrown away.
 * Compiled for any x86-64 (target attribute); call it only when
 * nubis_md5_lanes_usable() says the CPU has AVX2. No allocation, no I/O.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NUBIS_MD5_LANES 8

typedef struct {
    const uint8_t *data;   /* the message's whole 64-byte blocks */
    size_t job;            /* index into the caller's arrays */
    size_t block;          /* next block to hash */
    size_t whole;          /* number of whole blocks in data */
    size_t total;          /* whole + 1 or 2 padding blocks */
    uint8_t tail[128];     /* the last partial block, padding and bit length */
    int active;
} nubis_md5_lane;

static void nubis_md5_lane_start(nubis_md5_lane *lane, size_t job, const uint8_t *msg,
                                 size_t len) {
    size_t rest = len % 64;
    uint64_t bits = (uint64_t)len * 8;
    lane->data = msg;
    lane->job = job;
    lane->block = 0;
    lane->whole = len / 64;
    lane->total = lane->whole + (rest < 56 ? 1 : 2);
    memset(lane->tail, 0, sizeof(lane->tail));
    if (rest)
        memcpy(lane->tail, msg + len - rest, rest);
    lane->tail[rest] = 0x80;
    memcpy(lane->tail + (lane->total - lane->whole) * 64 - 8, &bits, 8); /* little endian */
    lane->active = 1;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define NUBIS_AVX2 __attribute__((target("avx2")))

static int nubis_md5_lanes_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

static const uint32_t NUBIS_MD5_K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
    0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
    0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
    0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
    0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
    0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391};

/* Word j of lanes 0..7: rows[i] holds words 0..7 (or 8..15) of lane i. */
NUBIS_AVX2 static inline void nubis_transpose8(__m256i r[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

#define NUBIS_ROTL(x, s) \
    _mm256_or_si256(_mm256_slli_epi32((x), (s)), _mm256_srli_epi32((x), 32 - (s)))
#define NUBIS_STEP(f, a, b, c, d, g, s, i)                                            \
    a = _mm256_add_epi32(                                                             \
        b, NUBIS_ROTL(_mm256_add_epi32(_mm256_add_epi32(a, f(b, c, d)),               \
                                       _mm256_add_epi32(m[g], _mm256_set1_epi32(      \
                                           (int)NUBIS_MD5_K[i]))), s))
#define NUBIS_F(b, c, d) _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d)))
#define NUBIS_G(b, c, d) _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c)))
#define NUBIS_H(b, c, d) _mm256_xor_si256(_mm256_xor_si256(b, c), d)
#define NUBIS_I(b, c, d) \
    _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, _mm256_set1_epi32(-1))))

/* One 64-byte block per lane into the state s[0..3]. */
NUBIS_AVX2 static void nubis_md5_block8(__m256i s[4], const uint8_t *const blocks[8]) {
    __m256i m[16], a = s[0], b = s[1], c = s[2], d = s[3];
    int i, r;
    for (i = 0; i < 8; i++) {
        m[i] = _mm256_loadu_si256((const __m256i *)blocks[i]);
        m[8 + i] = _mm256_loadu_si256((const __m256i *)(blocks[i] + 32));
    }
    nubis_transpose8(m);
    nubis_transpose8(m + 8);
    for (r = 0; r < 16; r += 4) {
        NUBIS_STEP(NUBIS_F, a, b, c, d, r, 7, r);
        NUBIS_STEP(NUBIS_F, d, a, b, c, r + 1, 12, r + 1);
        NUBIS_STEP(NUBIS_F, c, d, a, b, r + 2, 17, r + 2);
        NUBIS_STEP(NUBIS_F, b, c, d, a, r + 3, 22, r + 3);
    }
    for (r = 16; r < 32; r += 4) {
        NUBIS_STEP(NUBIS_G, a, b, c, d, (5 * r + 1) % 16, 5, r);
        NUBIS_STEP(NUBIS_G, d, a, b, c, (5 * r + 6) % 16, 9, r + 1);
        NUBIS_STEP(NUBIS_G, c, d, a, b, (5 * r + 11) % 16, 14, r + 2);
        NUBIS_STEP(NUBIS_G, b, c, d, a, (5 * r + 16) % 16, 20, r + 3);
    }
    for (r = 32; r < 48; r += 4) {
        NUBIS_STEP(NUBIS_H, a, b, c, d, (3 * r + 5) % 16, 4, r);
        NUBIS_STEP(NUBIS_H, d, a, b, c, (3 * r + 8) % 16, 11, r + 1);
        NUBIS_STEP(NUBIS_H, c, d, a, b, (3 * r + 11) % 16, 16, r + 2);
        NUBIS_STEP(NUBIS_H, b, c, d, a, (3 * r + 14) % 16, 23, r + 3);
    }
    for (r = 48; r < 64; r += 4) {
        NUBIS_STEP(NUBIS_I, a, b, c, d, (7 * r) % 16, 6, r);
        NUBIS_STEP(NUBIS_I, d, a, b, c, (7 * r + 7) % 16, 10, r + 1);
        NUBIS_STEP(NUBIS_I, c, d, a, b, (7 * r + 14) % 16, 15, r + 2);
        NUBIS_STEP(NUBIS_I, b, c, d, a, (7 * r + 21) % 16, 21, r + 3);
    }
    s[0] = _mm256_add_epi32(s[0], a);
    s[1] = _mm256_add_epi32(s[1], b);
    s[2] = _mm256_add_epi32(s[2], c);
    s[3] = _mm256_add_epi32(s[3], d);
}

/* Start the next job in a lane, or leave it idle; set its state to MD5's IV. */
static void nubis_md5_refill(nubis_md5_lane *lane, uint32_t st[4][8], int i, size_t *next,
                             size_t n, const uint8_t *const *msgs, const size_t *lens) {
    static const uint32_t iv[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    int w;
    lane->active = 0;
    if (*next < n) {
        nubis_md5_lane_start(lane, *next, msgs[*next], lens[*next]);
        (*next)++;
    }
    for (w = 0; w < 4; w++)
        st[w][i] = iv[w];
}

/* MD5 of msgs[0..n) (lengths lens) into digests (16 bytes each, in order). */
NUBIS_AVX2 static void nubis_md5_lanes(const uint8_t *const *msgs, const size_t *lens,
                                       size_t n, uint8_t *digests) {
    static const uint8_t zero[64] = {0};
    nubis_md5_lane lanes[NUBIS_MD5_LANES];
    uint32_t st[4][NUBIS_MD5_LANES];
    __m256i s[4];
    const uint8_t *blocks[NUBIS_MD5_LANES];
    size_t next = 0;
    int i, w, busy;
    for (i = 0; i < NUBIS_MD5_LANES; i++)
        nubis_md5_refill(&lanes[i], st, i, &next, n, msgs, lens);
    for (w = 0; w < 4; w++)
        s[w] = _mm256_loadu_si256((const __m256i *)st[w]);
    for (;;) {
        busy = 0;
        for (i = 0; i < NUBIS_MD5_LANES; i++) {
            nubis_md5_lane *l = &lanes[i];
            if (!l->active)
                blocks[i] = zero;
            else if (l->block < l->whole)
                blocks[i] = l->data + l->block * 64;
            else
                blocks[i] = l->tail + (l->block - l->whole) * 64;
            busy |= l->active;
        }
        if (!busy)
            return;
        nubis_md5_block8(s, blocks);
        busy = 0;
        for (i = 0; i < NUBIS_MD5_LANES; i++)
            if (lanes[i].active && ++lanes[i].block == lanes[i].total)
                busy = 1;
        if (!busy)
            continue;
        /* Some lane finished: hand out its digest and its next job. */
        for (w = 0; w < 4; w++)
            _mm256_storeu_si256((__m256i *)st[w], s[w]);
        for (i = 0; i < NUBIS_MD5_LANES; i++) {
            if (!lanes[i].active || lanes[i].block != lanes[i].total)
                continue;
            for (w = 0; w < 4; w++)
                memcpy(digests + lanes[i].job * 16 + w * 4, &st[w][i], 4);
            nubis_md5_refill(&lanes[i], st, i, &next, n, msgs, lens);
        }
        for (w = 0; w < 4; w++)
            s[w] = _mm256_loadu_si256((const __m256i *)st[w]);
    }
}

#else
static int nubis_md5_lanes_usable(void) { return 0; }
static void nubis_md5_lanes(const uint8_t *const *msgs, const size_t *lens, size_t n,
                            uint8_t *digests) {
    (void)msgs; (void)lens; (void)n; (void)digests;
}
#endif
