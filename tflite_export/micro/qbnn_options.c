/* qbnn_options.c: see qbnn_options.h and tflite_export/SPEC.md sections 6 and 6.1. */
#include "qbnn_options.h"

static uint32_t rd_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int qbnn_parse_options(const uint8_t* buf, size_t len, qbnn_sample_options* o) {
  size_t off = QBNN_OPTIONS_HEADER_BYTES;
  uint32_t i, levels;
  qbnn_layer* L;
  int err;
  if (buf == NULL || o == NULL) return QBNN_ERR_NULL;
  if (len < QBNN_OPTIONS_HEADER_BYTES) return QBNN_ERR_OPTIONS;
  if (buf[0] != 'Q' || buf[1] != 'B' || buf[2] != 'S' || buf[3] != '1') return QBNN_ERR_OPTIONS;
  if (buf[4] != QBNN_OPTIONS_V1 && buf[4] != QBNN_OPTIONS_V2) return QBNN_ERR_OPTIONS;
  if (buf[7] != QBNN_LAYOUT_I8 && buf[7] != QBNN_LAYOUT_I4_FUSED && buf[7] != QBNN_LAYOUT_I4_SPLIT &&
      buf[7] != QBNN_LAYOUT_PACKED)
    return QBNN_ERR_LAYOUT;
  /* PACKED pairs: sigma codes from 1 bit, mu + sigma bits within one byte-indexed table row (SPEC.md section 2) */
  if (buf[5] < 2 || buf[5] > 8 || buf[6] < (buf[7] == QBNN_LAYOUT_PACKED ? 1 : 2) || buf[6] > 8 ||
      (buf[7] == QBNN_LAYOUT_PACKED && buf[5] + buf[6] > 8))
    return QBNN_ERR_BITS;
  if (buf[10] != QBNN_EPS_FRAC_BITS || buf[11] != QBNN_SHIFT) return QBNN_ERR_OPTIONS;
  o->version = buf[4];
  L = &o->layer;
  L->weight_bits = buf[5];
  L->sigma_bits = buf[6];
  L->layout = buf[7];
  L->layer_index = (uint16_t)(buf[8] | (buf[9] << 8));
  L->rows = rd_u32(buf + 12);
  L->cols = rd_u32(buf + 16);
  o->default_seed = rd_u32(buf + 20);
  if (o->version == QBNN_OPTIONS_V1) {
    o->format = QBNN_FILTER_OI;
    o->rank = 2;
    o->dims[0] = L->rows;
    o->dims[1] = L->cols;
  } else {
    if (len < off + 4u) return QBNN_ERR_OPTIONS;
    o->format = buf[off];
    o->rank = buf[off + 1];
    /* version 2 is for N-D filters only; the reserved bytes are 0 */
    if ((o->format != QBNN_FILTER_OHWI && o->format != QBNN_FILTER_1HWO) || o->rank != 4 || buf[off + 2] != 0 ||
        buf[off + 3] != 0)
      return QBNN_ERR_FILTER;
    off += 4u;
    if (len < off + 4u * o->rank) return QBNN_ERR_OPTIONS;
    for (i = 0; i < o->rank; ++i) o->dims[i] = rd_u32(buf + off + 4u * i);
    off += 4u * o->rank;
  }
  err = qbnn_filter_dims_check(o->format, o->rank, o->dims, L->rows, L->cols);
  if (err != QBNN_OK) return err;
  levels = 1u << L->sigma_bits;
  if (len != off + 4u * levels) return QBNN_ERR_OPTIONS;
  /* SIGMA_Q is read in place: flatbuffer vector data starts 4-aligned (after its uint32 length) in a 16-aligned
   * model, and both headers are multiples of 4 bytes; little-endian targets only. */
  if (((uintptr_t)(buf + off) & 3u) != 0u) return QBNN_ERR_OPTIONS;
  L->sigma_q = (const int32_t*)(const void*)(buf + off);
  L->mu = NULL;
  L->sigma = NULL;
  return QBNN_OK;
}

int qbnn_options_output_check(const qbnn_sample_options* o, int rank, const int* dims) {
  int i;
  if (o == NULL || dims == NULL) return QBNN_ERR_NULL;
  if (rank != (int)o->rank) return QBNN_ERR_OUTPUT;
  for (i = 0; i < rank; ++i)
    if (dims[i] < 0 || (uint32_t)dims[i] != o->dims[i]) return QBNN_ERR_OUTPUT;
  return QBNN_OK;
}

const char* qbnn_options_error(int code) {
  switch (code) {
    case QBNN_OK:
      return "ok";
    case QBNN_ERR_NULL:
      return "missing tensor or table";
    case QBNN_ERR_BITS:
      return "weight or sigma bits outside 2..8 (PACKED: sigma 1..6, sum <= 8) or not storable in the layout";
    case QBNN_ERR_LAYOUT:
      return "unknown storage layout";
    case QBNN_ERR_SHAPE:
      return "filter of 0 or 2^31 and more weights";
    case QBNN_ERR_TABLE:
      return "SIGMA_Q entries overflow the sampler's int32 product";
    case QBNN_ERR_SHIFT:
      return "the compiler's >> is not arithmetic";
    case QBNN_ERR_OPTIONS:
      return "bad magic, version, length, eps bits, shift or alignment";
    case QBNN_ERR_CODES:
      return "a stored mu or sigma code out of range";
    case QBNN_ERR_FILTER:
      return "filter format, rank or dims do not describe R x C";
    case QBNN_ERR_OUTPUT:
      return "output tensor shape differs from the filter dims";
    default:
      return "unknown error";
  }
}
