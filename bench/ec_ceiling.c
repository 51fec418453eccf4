/*
 * Raw ISA-L ceiling for `python -m nubis.bench ec`: the same erasure coding
 * work as nubis.fastpath.ec, from a minimal C loop (compiled at bench time).
 *
 *   ec_ceiling K M SEGMENT_BYTES LOST...
 *
 * Segment split into K fragments of SEGMENT_BYTES / K (must divide), Cauchy
 * generator, tables built once. Then reads commands "MODE ITERATIONS" from
 * stdin and answers each with the seconds per operation of that many runs
 * (so the harness can alternate rounds with the other contenders); at EOF it
 * checks the decoded and rebuilt bytes and exits (1 on a mismatch). Modes:
 *   encode       ec_encode_data of the M parity fragments (data in place);
 *   decode       rebuild the LOST data fragments straight into the output
 *                segment and copy the surviving data fragments next to them;
 *   reconstruct  rebuild the LOST fragments into their own buffers.
 * The decode tables come from gf_invert_matrix of the first K surviving rows,
 * computed once (nubis caches them per erasure pattern the same way).
 */
#include <isa-l/erasure_code.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXF 256
#define PAGE 4096

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned char *xmalloc(size_t n)
{
	unsigned char *p = NULL;
	if (posix_memalign((void **)&p, 64, n ? n : 1) != 0) {
		perror("posix_memalign");
		exit(2);
	}
	memset(p, 0, n);
	return p;
}

/* A new buffer of n bytes whose start is `offset` bytes past `ref`'s page offset. */
static unsigned char *apart(const unsigned char *ref, size_t n, size_t offset)
{
	unsigned char *p = xmalloc(n + PAGE);
	return p + (((size_t)ref + offset - (size_t)p) % PAGE);
}

static int k, m, n, len, nlost;
static unsigned char lost[MAXF], is_lost[MAXF];
static unsigned char *enc, *dec, *out, *frag[MAXF], *srcs[MAXF], *to_out[MAXF], *to_own[MAXF];

static void encode(void)
{
	ec_encode_data(len, k, m, enc, frag, &frag[k]);
}

static void decode(void)
{
	for (int i = 0; i < k; i++)
		if (!is_lost[i])
			memcpy(out + (size_t)i * len, frag[i], len);
	if (nlost)
		ec_encode_data(len, k, nlost, dec, srcs, to_out);
}

static void reconstruct(void)
{
	if (nlost)
		ec_encode_data(len, k, nlost, dec, srcs, to_own);
}

/* Build the decode tables: invert the first k surviving rows, keep the lost rows. */
static int setup_decode(const unsigned char *matrix, unsigned char *rebuilt)
{
	static unsigned char sub[MAXF * MAXF], inv[MAXF * MAXF], rows[MAXF * MAXF];
	for (int i = 0, s = 0; i < n && s < k; i++) {
		if (is_lost[i])
			continue;
		memcpy(&sub[s * k], &matrix[i * k], k);
		srcs[s++] = frag[i];
	}
	if (gf_invert_matrix(sub, inv, k) != 0)
		return -1;
	for (int r = 0; r < nlost; r++) {
		memcpy(&rows[r * k], &inv[lost[r] * k], k);
		to_out[r] = out + (size_t)lost[r] * len;
		to_own[r] = rebuilt + (size_t)r * len;
	}
	if (nlost)
		ec_init_tables(k, nlost, rows, dec);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s K M SEGMENT LOST...\n", argv[0]);
		return 2;
	}
	k = atoi(argv[1]);
	m = atoi(argv[2]);
	long seg = atol(argv[3]);
	n = k + m;
	nlost = argc - 4;
	if (k < 1 || m < 1 || n > MAXF || seg <= 0 || seg % k || nlost > m) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	len = (int)(seg / k);
	for (int i = 0; i < nlost; i++) {
		lost[i] = (unsigned char)atoi(argv[4 + i]);
		if (lost[i] >= k) {
			fprintf(stderr, "only data fragments may be lost\n");
			return 2;
		}
		is_lost[lost[i]] = 1;
	}

	/* Generator, encode tables, buffers; the segment is random. Parity starts
	 * half a page away from the segment's page offset, the outputs a quarter
	 * page from both, as nubis places its fresh buffers (4K aliasing). */
	unsigned char *matrix = xmalloc(n * k), *segment = xmalloc(seg);
	unsigned char *parity = apart(segment, (size_t)m * len, PAGE / 2);
	unsigned char *rebuilt = apart(segment, (size_t)m * len, PAGE / 4);
	enc = xmalloc(k * m * 32);
	dec = xmalloc(k * m * 32);
	out = apart(segment, seg, PAGE / 4);
	gf_gen_cauchy1_matrix(matrix, n, k);
	ec_init_tables(k, m, &matrix[k * k], enc);
	srand(1);
	for (long i = 0; i < seg; i++)
		segment[i] = (unsigned char)rand();
	for (int i = 0; i < k; i++)
		frag[i] = segment + (size_t)i * len;
	for (int i = 0; i < m; i++)
		frag[k + i] = parity + (size_t)i * len;
	encode();
	if (setup_decode(matrix, rebuilt) != 0) {
		fprintf(stderr, "singular\n");
		return 1;
	}

	char mode[32];
	int iters;
	while (scanf("%31s %d", mode, &iters) == 2 && iters > 0) {
		void (*op)(void) = !strcmp(mode, "encode") ? encode
			: !strcmp(mode, "decode") ? decode : !strcmp(mode, "reconstruct") ? reconstruct : NULL;
		if (op == NULL) {
			fprintf(stderr, "unknown mode %s\n", mode);
			return 2;
		}
		double t = now();
		for (int it = 0; it < iters; it++)
			op();
		printf("%.9f\n", (now() - t) / iters);
		fflush(stdout);
	}
	decode();
	reconstruct();
	if (memcmp(out, segment, seg) != 0
	    || (nlost && memcmp(rebuilt, frag[lost[0]], len) != 0)) {
		fprintf(stderr, "decode mismatch\n");
		return 1;
	}
	return 0;
}
