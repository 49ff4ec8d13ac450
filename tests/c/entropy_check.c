/* Reads lines "nc code_0 ... code_{nc-1}" (int8 softmax codes) from stdin and prints qbnn__sample_entropy of each
   with 9 significant digits: the C runtime's per-sample entropy for tests/test_entropy_table.py. */
#include <stdio.h>

#include "qbnn_runtime_internal.h"

int main(void) {
  int nc;
  static int8_t codes[256];
  while (scanf("%d", &nc) == 1) {
    if (nc < 1 || nc > 256) return 2;
    for (int c = 0; c < nc; ++c) {
      int v;
      if (scanf("%d", &v) != 1) return 2;
      codes[c] = (int8_t)v;
    }
    printf("%.9g\n", (double)qbnn__sample_entropy(codes, nc));
  }
  return 0;
}
