/* qbnn_sampler.c: see qbnn_sampler.h and tflite_export/SPEC.md section 3. */
#include "qbnn_sampler.h"

/* EPS_Q[u] = round(4096 * Phi^-1((u + 0.5) / 256)), antisymmetric (SPEC.md 3.2). */
const int16_t QBNN_EPS_Q[256] = {
    -11820, -10324,  -9565,  -9038,  -8628,  -8290,  -8001,  -7746,
     -7519,  -7312,  -7123,  -6948,  -6784,  -6631,  -6486,  -6350,
     -6219,  -6095,  -5977,  -5863,  -5753,  -5647,  -5545,  -5447,
     -5351,  -5258,  -5168,  -5080,  -4995,  -4912,  -4830,  -4751,
     -4673,  -4597,  -4523,  -4450,  -4378,  -4307,  -4238,  -4170,
     -4104,  -4038,  -3973,  -3910,  -3847,  -3785,  -3724,  -3664,
     -3604,  -3545,  -3487,  -3430,  -3374,  -3318,  -3262,  -3207,
     -3153,  -3100,  -3046,  -2994,  -2942,  -2890,  -2839,  -2788,
     -2738,  -2688,  -2638,  -2589,  -2540,  -2492,  -2444,  -2396,
     -2348,  -2301,  -2255,  -2208,  -2162,  -2116,  -2070,  -2025,
     -1979,  -1935,  -1890,  -1845,  -1801,  -1757,  -1713,  -1669,
     -1626,  -1583,  -1539,  -1497,  -1454,  -1411,  -1369,  -1326,
     -1284,  -1242,  -1200,  -1158,  -1117,  -1075,  -1034,   -992,
      -951,   -910,   -869,   -828,   -787,   -746,   -705,   -665,
      -624,   -584,   -543,   -503,   -462,   -422,   -382,   -341,
      -301,   -261,   -221,   -181,   -140,   -100,    -60,    -20,
        20,     60,    100,    140,    181,    221,    261,    301,
       341,    382,    422,    462,    503,    543,    584,    624,
       665,    705,    746,    787,    828,    869,    910,    951,
       992,   1034,   1075,   1117,   1158,   1200,   1242,   1284,
      1326,   1369,   1411,   1454,   1497,   1539,   1583,   1626,
      1669,   1713,   1757,   1801,   1845,   1890,   1935,   1979,
      2025,   2070,   2116,   2162,   2208,   2255,   2301,   2348,
      2396,   2444,   2492,   2540,   2589,   2638,   2688,   2738,
      2788,   2839,   2890,   2942,   2994,   3046,   3100,   3153,
      3207,   3262,   3318,   3374,   3430,   3487,   3545,   3604,
      3664,   3724,   3785,   3847,   3910,   3973,   4038,   4104,
      4170,   4238,   4307,   4378,   4450,   4523,   4597,   4673,
      4751,   4830,   4912,   4995,   5080,   5168,   5258,   5351,
      5447,   5545,   5647,   5753,   5863,   5977,   6095,   6219,
      6350,   6486,   6631,   6784,   6948,   7123,   7312,   7519,
      7746,   8001,   8290,   8628,   9038,   9565,  10324,  11820,
};

uint32_t qbnn_seed_state(uint32_t seed, uint32_t layer) {
  uint32_t z = seed + 0x9E3779B9u * (layer + 1u);
  z = (z ^ (z >> 16)) * 0x85EBCA6Bu;
  z = (z ^ (z >> 13)) * 0xC2B2AE35u;
  z ^= z >> 16;
  return z != 0u ? z : QBNN_ZERO_STATE_REPLACEMENT;
}

void qbnn_stream_init(qbnn_stream* s, uint32_t seed, uint32_t layer) {
  s->state = qbnn_seed_state(seed, layer);
  s->buf = 0;
  s->nbuf = 0;
  s->position = 0;
}

void qbnn_stream_bytes(qbnn_stream* s, uint8_t* out, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) out[i] = (uint8_t)qbnn_stream_byte(s);
}

/* R * C when it is within qbnn_layer_check's bound (1 .. 2^31 - 1), else 0: flat indices and byte counts of a
 * layer never wrap 32 bits. */
static uint32_t weight_count(const qbnn_layer* L) {
  const uint64_t n = (uint64_t)L->rows * L->cols;
  return n <= 0x7FFFFFFFu ? (uint32_t)n : 0u;
}

static inline int32_t nibble_s(uint32_t v) { return (int32_t)(v & 0xFu) - (int32_t)((v & 0x8u) << 1); }

void qbnn_layer_codes(const qbnn_layer* L, uint32_t n, int32_t* mu, uint32_t* sigma_code) {
  switch (L->layout) {
    case QBNN_LAYOUT_I4_FUSED: {
      uint32_t byte = L->mu[n];
      *mu = nibble_s(byte);
      *sigma_code = byte >> 4;
      break;
    }
    case QBNN_LAYOUT_I4_SPLIT:
      *mu = nibble_s((uint32_t)L->mu[n >> 1] >> ((n & 1u) * 4u));
      *sigma_code = L->sigma[n];
      break;
    case QBNN_LAYOUT_PACKED: {
      const uint32_t b = L->weight_bits, v = qbnn_packed_pair(L->mu, n, b + L->sigma_bits);
      *mu = qbnn_pair_mu(v, b);
      *sigma_code = v >> b;
      break;
    }
    default: /* QBNN_LAYOUT_I8 */
      *mu = (int8_t)L->mu[n];
      *sigma_code = L->sigma_bits <= 4 ? ((uint32_t)L->sigma[n >> 1] >> ((n & 1u) * 4u)) & 0xFu : L->sigma[n];
      break;
  }
}

int qbnn_layer_check(const qbnn_layer* L) {
  uint32_t k, levels;
  int32_t max_code;
  int64_t worst = 0;
  if (((-8) >> 1) != -4) return QBNN_ERR_SHIFT; /* needs arithmetic right shift */
  if (L == NULL || L->mu == NULL || L->sigma_q == NULL) return QBNN_ERR_NULL;
  if (L->weight_bits < 2 || L->weight_bits > 8 || L->sigma_bits < 1 || L->sigma_bits > 8) return QBNN_ERR_BITS;
  if (L->layout != QBNN_LAYOUT_PACKED && L->sigma_bits < 2) return QBNN_ERR_BITS;
  switch (L->layout) {
    case QBNN_LAYOUT_I8:
      break;
    case QBNN_LAYOUT_I4_FUSED:
      if (L->weight_bits > 4 || L->sigma_bits > 4) return QBNN_ERR_BITS;
      break;
    case QBNN_LAYOUT_I4_SPLIT:
      if (L->weight_bits > 4) return QBNN_ERR_BITS;
      break;
    case QBNN_LAYOUT_PACKED: /* a pair indexes one 256-byte row of the 2^(b+sb) x 256 pair table */
      if (L->weight_bits > 7 || L->sigma_bits > 6 || L->weight_bits + L->sigma_bits > 8) return QBNN_ERR_BITS;
      break;
    default:
      return QBNN_ERR_LAYOUT;
  }
  if (L->layout != QBNN_LAYOUT_I4_FUSED && L->layout != QBNN_LAYOUT_PACKED && L->sigma == NULL) return QBNN_ERR_NULL;
  if (L->rows == 0 || L->cols == 0 || (uint64_t)L->rows * L->cols > 0x7FFFFFFFu) return QBNN_ERR_SHAPE;
  levels = 1u << L->sigma_bits;
  max_code = (1 << (L->weight_bits - 1)) - 1;
  for (k = 0; k < levels; ++k) {
    int64_t v = L->sigma_q[k] < 0 ? -(int64_t)L->sigma_q[k] : L->sigma_q[k];
    if (v > worst) worst = v;
  }
  (void)max_code;
  if (worst * 11820 + (1 << (QBNN_SHIFT - 1)) > 0x7FFFFFFF) return QBNN_ERR_TABLE;
  return QBNN_OK;
}

int qbnn_layer_check_codes(const qbnn_layer* L) {
  const int32_t max_code = (1 << (L->weight_bits - 1)) - 1;
  const uint32_t levels = 1u << L->sigma_bits, n = weight_count(L);
  uint32_t i;
  if (n == 0u) return QBNN_ERR_SHAPE;
  if (L->layout == QBNN_LAYOUT_I4_FUSED) { /* one byte per weight: a 256-bit table of valid bytes */
    uint32_t ok[8] = {0};
    uint32_t b;
    for (b = 0; b < 256u; ++b) {
      int32_t mu = nibble_s(b);
      if ((b >> 4) < levels && mu >= -max_code && mu <= max_code) ok[b >> 5] |= 1u << (b & 31u);
    }
    for (i = 0; i < n; ++i)
      if (!(ok[L->mu[i] >> 5] & (1u << (L->mu[i] & 31u)))) return QBNN_ERR_CODES;
    return QBNN_OK;
  }
  for (i = 0; i < n; ++i) {
    int32_t mu;
    uint32_t k;
    qbnn_layer_codes(L, i, &mu, &k);
    if (k >= levels || mu < -max_code || mu > max_code) return QBNN_ERR_CODES;
  }
  return QBNN_OK;
}

void qbnn_sample_range(const qbnn_layer* L, qbnn_stream* s, uint32_t first, uint32_t count, int8_t* out) {
  const int32_t max_code = (1 << (L->weight_bits - 1)) - 1;
  const int32_t* sq = L->sigma_q;
  uint32_t i;
  if (L->layout == QBNN_LAYOUT_I4_FUSED) { /* hot path: one byte per weight */
    const uint8_t* p = L->mu + first;
    for (i = 0; i < count; ++i) {
      uint32_t byte = p[i];
      out[i] = (int8_t)qbnn_sample_weight(nibble_s(byte), sq[byte >> 4], qbnn_stream_byte(s), max_code);
    }
    return;
  }
  if (L->layout == QBNN_LAYOUT_PACKED && count > 0u) { /* the pairs in order (qbnn_pairs reads no byte past them) */
    const uint32_t b = L->weight_bits;
    qbnn_pairs q = qbnn_pairs_at(L->mu, b + L->sigma_bits, first);
    for (i = 0; i < count; ++i) {
      const uint32_t v = qbnn_pair_next(&q);
      out[i] = (int8_t)qbnn_sample_weight(qbnn_pair_mu(v, b), sq[v >> b], qbnn_stream_byte(s), max_code);
    }
    return;
  }
  for (i = 0; i < count; ++i) {
    int32_t mu;
    uint32_t k;
    qbnn_layer_codes(L, first + i, &mu, &k);
    out[i] = (int8_t)qbnn_sample_weight(mu, sq[k], qbnn_stream_byte(s), max_code);
  }
}

void qbnn_sample_row(const qbnn_layer* L, qbnn_stream* s, uint32_t r, int8_t* out) {
  qbnn_sample_range(L, s, r * L->cols, L->cols, out);
}

void qbnn_sample_tensor(const qbnn_layer* L, qbnn_stream* s, int8_t* out) {
  qbnn_sample_range(L, s, 0, L->rows * L->cols, out);
}

static uint32_t format_rank(uint32_t format) {
  switch (format) {
    case QBNN_FILTER_OI:
      return 2u;
    case QBNN_FILTER_OHWI:
    case QBNN_FILTER_1HWO:
      return 4u;
    default:
      return 0u;
  }
}

int qbnn_filter_dims_check(uint32_t format, uint32_t rank, const uint32_t* dims, uint32_t rows, uint32_t cols) {
  uint64_t c = 1;
  uint32_t i;
  if (dims == NULL) return QBNN_ERR_NULL;
  if (rank == 0u || rank != format_rank(format)) return QBNN_ERR_FILTER;
  if (format == QBNN_FILTER_1HWO && dims[0] != 1u) return QBNN_ERR_FILTER;
  for (i = 0; i < rank; ++i)
    if (dims[i] == 0u) return QBNN_ERR_FILTER;
  for (i = 1; i < rank; ++i) {
    c *= dims[i]; /* each factor < 2^32 and the running product < 2^31 below: no 64-bit wrap */
    if (c > 0x7FFFFFFFu) return QBNN_ERR_SHAPE;
  }
  if (c * dims[0] > 0x7FFFFFFFu) return QBNN_ERR_SHAPE; /* the sampler's bound, before any comparison */
  if (dims[0] != rows || c != cols) return QBNN_ERR_FILTER;
  return QBNN_OK;
}

uint32_t qbnn_mu_bytes(const qbnn_layer* L) {
  uint32_t n = weight_count(L);
  if (L->layout == QBNN_LAYOUT_PACKED) /* n < 2^31, p <= 8: the bit count fits 64 bits, the bytes 32 */
    return (uint32_t)(((uint64_t)n * (L->weight_bits + L->sigma_bits) + 7u) / 8u);
  return L->layout == QBNN_LAYOUT_I4_SPLIT ? (n + 1u) / 2u : n;
}

uint32_t qbnn_sigma_bytes(const qbnn_layer* L) {
  uint32_t n = weight_count(L);
  if (L->layout == QBNN_LAYOUT_I4_FUSED || L->layout == QBNN_LAYOUT_PACKED) return 0u;
  if (L->layout == QBNN_LAYOUT_I8 && L->sigma_bits <= 4) return (n + 1u) / 2u;
  return n;
}
