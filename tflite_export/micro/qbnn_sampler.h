/* qbnn_sampler: weight sampler core of tflite_export/SPEC.md section 3 (C99, no malloc, no
 * floating point).  One xorshift32 byte stream per Bayesian layer; eps from a 256-entry Q12
 * inverse-CDF table; w_code = clamp(mu + ((SIGMA_Q[k] * EPS_Q[u] + 2^21) >> 22), -M, M).
 * Bit-exact with tflite_export/sampler.py (tested). Requires arithmetic >> on negative int32
 * (true for GCC, Clang, armcc; checked at run time by qbnn_layer_check). */
#ifndef QBNN_SAMPLER_H_
#define QBNN_SAMPLER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QBNN_EPS_FRAC_BITS 12
#define QBNN_SIGMA_FRAC_BITS 10
#define QBNN_SHIFT 22
#define QBNN_ZERO_STATE_REPLACEMENT 0x6D2B79F5u

/* Storage layouts (SPEC.md section 2). */
#define QBNN_LAYOUT_I8 0       /* mu int8[R*C]; sigma nibbles (sb<=4) or bytes */
#define QBNN_LAYOUT_I4_FUSED 1 /* one byte per weight: mu low nibble, sigma high nibble */
#define QBNN_LAYOUT_I4_SPLIT 2 /* mu nibbles two per byte; sigma one byte per weight */
#define QBNN_LAYOUT_PACKED 3   /* p = b + sb <= 8 bit pairs (mu low b bits | sigma code << b), little-endian bits */

/* Error codes of qbnn_layer_check and qbnn_parse_options (qbnn_options.h; 0 = ok). */
#define QBNN_OK 0
#define QBNN_ERR_NULL 1
#define QBNN_ERR_BITS 2
#define QBNN_ERR_LAYOUT 3
#define QBNN_ERR_SHAPE 4
#define QBNN_ERR_TABLE 5
#define QBNN_ERR_SHIFT 6
#define QBNN_ERR_OPTIONS 7
#define QBNN_ERR_CODES 8 /* a stored mu code outside [-M, M] or sigma code >= 2^sb */
#define QBNN_ERR_FILTER 9 /* filter format, rank or dims do not describe R x C */

/* Filter formats (SPEC.md section 6.1). */
#define QBNN_FILTER_OI 0   /* [O, I]: FULLY_CONNECTED */
#define QBNN_FILTER_OHWI 1 /* [O, FH, FW, I]: CONV_2D */
#define QBNN_FILTER_1HWO 2 /* [1, FH, FW, O]: DEPTHWISE_CONV_2D */
#define QBNN_FILTER_MAX_RANK 4

extern const int16_t QBNN_EPS_Q[256];

typedef struct {
  uint32_t state;    /* xorshift32 state, never 0 */
  uint32_t buf;      /* unconsumed bytes of the last word, next byte lowest */
  uint32_t nbuf;     /* number of bytes left in buf (0..3) */
  uint32_t position; /* bytes consumed (mod 2^32) */
} qbnn_stream;

typedef struct {
  uint32_t rows, cols;     /* R (out) x C (in), [out][in] row-major */
  uint8_t weight_bits;     /* b, 2..8 (PACKED: 2..7) */
  uint8_t sigma_bits;      /* sb, 2..8 (PACKED: 1..6, b + sb <= 8) */
  uint8_t layout;          /* QBNN_LAYOUT_* */
  uint16_t layer_index;    /* stream id */
  const uint8_t* mu;       /* see layout */
  const uint8_t* sigma;    /* NULL for I4_FUSED and PACKED */
  const int32_t* sigma_q;  /* 2^sb entries */
} qbnn_layer;

uint32_t qbnn_seed_state(uint32_t seed, uint32_t layer);
void qbnn_stream_init(qbnn_stream* s, uint32_t seed, uint32_t layer);

static inline uint32_t qbnn_xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

static inline uint32_t qbnn_stream_byte(qbnn_stream* s) {
  uint32_t u;
  if (s->nbuf == 0) {
    s->state = qbnn_xorshift32(s->state);
    s->buf = s->state;
    s->nbuf = 4;
  }
  u = s->buf & 0xFFu;
  s->buf >>= 8;
  s->nbuf--;
  s->position++;
  return u;
}

void qbnn_stream_bytes(qbnn_stream* s, uint8_t* out, size_t n);

/* One sampled weight code from its mu code, SIGMA_Q entry and stream byte. */
static inline int32_t qbnn_sample_weight(int32_t mu, int32_t sigma_q, uint32_t u, int32_t max_code) {
  int32_t w = mu + ((sigma_q * (int32_t)QBNN_EPS_Q[u] + (1 << (QBNN_SHIFT - 1))) >> QBNN_SHIFT);
  return w > max_code ? max_code : (w < -max_code ? -max_code : w);
}

/* The p-bit PACKED pair value of flat element n: bits n*p .. n*p + p - 1 of the byte stream, bit i in bit (i & 7)
 * of byte i >> 3. The next byte is read only when the pair crosses into it, so the last pair never reads past the
 * ceil(R*C*p / 8) stored bytes. */
static inline uint32_t qbnn_packed_pair(const uint8_t* bytes, uint32_t n, uint32_t p) {
  /* 8 pairs fill p bytes: no 32-bit overflow of n * p for n up to 2^31 - 1 */
  const uint32_t in8 = (n & 7u) * p, at = (n >> 3) * p + (in8 >> 3), sh = in8 & 7u;
  uint32_t v = (uint32_t)bytes[at] >> sh;
  if (sh + p > 8u) v |= (uint32_t)bytes[at + 1u] << (8u - sh);
  return v & ((1u << p) - 1u);
}

/* The mu code of PACKED pair value v: its low b bits, a two's complement b-bit field. */
static inline int32_t qbnn_pair_mu(uint32_t v, uint32_t b) {
  const int32_t m = (int32_t)(v & ((1u << b) - 1u));
  return m - ((m >> (b - 1u)) << b);
}

/* Sequential reader of PACKED pairs from flat element `first` on: a bit reservoir refilled a byte at a time, only
 * when the next pair needs it (never past the stored ceil(R*C*p / 8) bytes). */
typedef struct {
  const uint8_t* next;
  uint32_t bits, nbits, p, mask;
} qbnn_pairs;

static inline qbnn_pairs qbnn_pairs_at(const uint8_t* bytes, uint32_t p, uint32_t first) {
  qbnn_pairs r;
  const uint32_t in8 = (first & 7u) * p; /* 8 pairs fill p bytes */
  r.p = p;
  r.mask = (1u << p) - 1u;
  r.next = bytes + (first >> 3) * p + (in8 >> 3);
  r.bits = (uint32_t)*r.next++ >> (in8 & 7u);
  r.nbits = 8u - (in8 & 7u);
  return r;
}

static inline uint32_t qbnn_pair_next(qbnn_pairs* r) {
  uint32_t v;
  if (r->nbits < r->p) {
    r->bits |= (uint32_t)*r->next++ << r->nbits;
    r->nbits += 8u;
  }
  v = r->bits & r->mask;
  r->bits >>= r->p;
  r->nbits -= r->p;
  return v;
}

/* mu code and sigma code of flat element n (= r*C + c) of a layer. */
void qbnn_layer_codes(const qbnn_layer* L, uint32_t n, int32_t* mu, uint32_t* sigma_code);

/* Validates a layer description (bits, layout, pointers, table overflow bound). */
int qbnn_layer_check(const qbnn_layer* L);

/* Checks every stored code of a checked layer (qbnn_layer_check first): mu in [-M, M] with
 * M = 2^(b-1) - 1, sigma code < 2^sb (so that SIGMA_Q[k] is never read out of bounds). O(R*C). */
int qbnn_layer_check_codes(const qbnn_layer* L);

/* The dims of a filter in `format` describe the layer's R x C: the format's rank, no zero dim, 1HWO starting with 1,
 * R = dims[0], C = the product of the rest, R * C below 2^31 (multiplied in 64 bits: QBNN_ERR_SHAPE past it,
 * QBNN_ERR_FILTER otherwise). The one shape check of the TFLM op's options and the C runtime's weighted ops. */
int qbnn_filter_dims_check(uint32_t format, uint32_t rank, const uint32_t* dims, uint32_t rows, uint32_t cols);

/* Samples `count` consecutive weights starting at flat element `first` into out[0..count-1]. */
void qbnn_sample_range(const qbnn_layer* L, qbnn_stream* s, uint32_t first, uint32_t count, int8_t* out);
/* Samples row r (C weights). */
void qbnn_sample_row(const qbnn_layer* L, qbnn_stream* s, uint32_t r, int8_t* out);
/* Samples the whole R x C tensor (one MC sample). */
void qbnn_sample_tensor(const qbnn_layer* L, qbnn_stream* s, int8_t* out);

/* Number of stored bytes of the mu and sigma tensors of a layout; 0 when R * C is 0 or beyond 2^31 - 1 (the
 * bound of qbnn_layer_check), so a shape whose byte count would wrap 32 bits matches no tensor. */
uint32_t qbnn_mu_bytes(const qbnn_layer* L);
uint32_t qbnn_sigma_bytes(const qbnn_layer* L);

#ifdef __cplusplus
}
#endif

#endif /* QBNN_SAMPLER_H_ */
