/* Host driver for tests/test_tflm_op.py: runs qbnn_parse_options and qbnn_options_output_check (the TFLM op's
 * Init and Prepare checks) on a file of cases and prints one line per case. Built with ASan / UBSan.
 * Case file (little-endian): uint32 count; per case: uint32 n, n option bytes, int32 rank, rank x int32 dims. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qbnn_options.h"

static int rd(FILE* f, void* p, size_t n) { return fread(p, 1, n, f) == n; }

int main(int argc, char** argv) {
  FILE* f;
  uint32_t count, c;
  if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
    fprintf(stderr, "usage: %s cases.bin\n", argv[0]);
    return 2;
  }
  if (!rd(f, &count, 4)) return 2;
  for (c = 0; c < count; ++c) {
    uint32_t n, i;
    int32_t rank;
    int dims[8];
    uint8_t* buf;
    uint32_t* aligned;
    qbnn_sample_options o;
    int err;
    if (!rd(f, &n, 4)) return 2;
    /* an exact-size heap block, 4-aligned like flatbuffer vector data: ASan sees any read past the options */
    aligned = (uint32_t*)malloc(n ? n : 1u);
    buf = (uint8_t*)aligned;
    if (buf == NULL || (n && !rd(f, buf, n)) || !rd(f, &rank, 4) || rank < 0 || rank > 8) return 2;
    for (i = 0; i < (uint32_t)rank; ++i)
      if (!rd(f, &dims[i], 4)) return 2;
    memset(&o, 0xA5, sizeof o);
    err = qbnn_parse_options(buf, n, &o);
    if (err == QBNN_OK) err = qbnn_options_output_check(&o, rank, dims);
    if (err != QBNN_OK) {
      printf("err %d %s\n", err, qbnn_options_error(err));
    } else {
      const qbnn_layer* L = &o.layer;
      int64_t sum = 0;
      for (i = 0; i < (1u << L->sigma_bits); ++i) sum += (int64_t)L->sigma_q[i] * (int64_t)(i + 1);
      printf("ok %u %u %u", o.version, o.format, o.rank);
      for (i = 0; i < o.rank; ++i) printf(" %u", o.dims[i]);
      printf(" %u %u %u %u %u %u %u %lld\n", L->rows, L->cols, L->weight_bits, L->sigma_bits, L->layout,
             L->layer_index, o.default_seed, (long long)sum);
    }
    free(buf);
  }
  fclose(f);
  return 0;
}
