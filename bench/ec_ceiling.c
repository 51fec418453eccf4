/*
 * Raw ISA-L ceiling for `python -m nubis.bench ec`: the same erasure coding
 * work as nubis.fastpath.ec, from a minimal C loop (compiled at bench time).
 *
 *   ec_ceiling K M SEGMENT_BYTES ITERATIONS ROUNDS LOST...
 *
 * Segment split into K fragments of SEGMENT_BYTES / K (must divide), Cauchy
 * generator, tables built once. Modes, each timed over ITERATIONS operations
 * per round, best of ROUNDS printed as "mode seconds_per_op":
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

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: %s K M SEGMENT ITERATIONS ROUNDS LOST...\n", argv[0]);
		return 2;
	}
	int k = atoi(argv[1]), m = atoi(argv[2]), iters = atoi(argv[4]), rounds = atoi(argv[5]);
	long seg = atol(argv[3]);
	int nlost = argc - 6, n = k + m, len = (int)(seg / k);
	unsigned char lost[MAXF], is_lost[MAXF] = {0};
	if (k < 1 || m < 1 || n > MAXF || seg % k || nlost > m || iters < 1 || rounds < 1) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	for (int i = 0; i < nlost; i++) {
		lost[i] = (unsigned char)atoi(argv[6 + i]);
		if (lost[i] >= k) {
			fprintf(stderr, "only data fragments may be lost\n");
			return 2;
		}
		is_lost[lost[i]] = 1;
	}

	/* Generator and encode tables. */
	unsigned char *matrix = xmalloc(n * k), *enc = xmalloc(k * m * 32);
	gf_gen_cauchy1_matrix(matrix, n, k);
	ec_init_tables(k, m, &matrix[k * k], enc);

	/* Segment (random), parity, output segment, rebuilt fragments. */
	unsigned char *segment = xmalloc(seg), *parity = xmalloc((size_t)m * len);
	unsigned char *out = xmalloc(seg), *rebuilt = xmalloc((size_t)m * len);
	unsigned char *frag[MAXF];
	srand(1);
	for (long i = 0; i < seg; i++)
		segment[i] = (unsigned char)rand();
	for (int i = 0; i < k; i++)
		frag[i] = segment + (size_t)i * len;
	for (int i = 0; i < m; i++)
		frag[k + i] = parity + (size_t)i * len;
	ec_encode_data(len, k, m, enc, frag, &frag[k]);

	/* Decode tables: invert the first k surviving rows, keep the lost rows. */
	unsigned char sub[MAXF * MAXF], inv[MAXF * MAXF], rows[MAXF * MAXF];
	unsigned char *srcs[MAXF], *dec = xmalloc(k * (nlost ? nlost : 1) * 32);
	unsigned char *to_out[MAXF], *to_own[MAXF];
	for (int i = 0, s = 0; i < n && s < k; i++) {
		if (is_lost[i])
			continue;
		memcpy(&sub[s * k], &matrix[i * k], k);
		srcs[s++] = frag[i];
	}
	if (gf_invert_matrix(sub, inv, k) != 0) {
		fprintf(stderr, "singular\n");
		return 1;
	}
	for (int r = 0; r < nlost; r++) {
		memcpy(&rows[r * k], &inv[lost[r] * k], k);
		to_out[r] = out + (size_t)lost[r] * len;
		to_own[r] = rebuilt + (size_t)r * len;
	}
	if (nlost)
		ec_init_tables(k, nlost, rows, dec);

	double best_enc = 1e30, best_dec = 1e30, best_rec = 1e30;
	for (int r = 0; r < rounds; r++) {
		double t = now();
		for (int it = 0; it < iters; it++)
			ec_encode_data(len, k, m, enc, frag, &frag[k]);
		t = (now() - t) / iters;
		best_enc = t < best_enc ? t : best_enc;

		t = now();
		for (int it = 0; it < iters; it++) {
			for (int i = 0; i < k; i++)
				if (!is_lost[i])
					memcpy(out + (size_t)i * len, frag[i], len);
			if (nlost)
				ec_encode_data(len, k, nlost, dec, srcs, to_out);
		}
		t = (now() - t) / iters;
		best_dec = t < best_dec ? t : best_dec;

		t = now();
		for (int it = 0; it < iters; it++)
			if (nlost)
				ec_encode_data(len, k, nlost, dec, srcs, to_own);
		t = (now() - t) / iters;
		best_rec = t < best_rec ? t : best_rec;
	}
	if (memcmp(out, segment, seg) != 0 || (nlost && memcmp(rebuilt, segment + (size_t)lost[0] * len, len) != 0)) {
		fprintf(stderr, "decode mismatch\n");
		return 1;
	}
	printf("encode %.9f\ndecode %.9f\nreconstruct %.9f\n", best_enc, best_dec, best_rec);
	return 0;
}
