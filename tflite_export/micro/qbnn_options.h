/* qbnn_options: the QBNN_SAMPLE custom options of tflite_export/SPEC.md sections 6 and 6.1 (versions 1 and 2) and
 * the output shape check, in plain C99 (no malloc, no floating point) so that the TFLite Micro op and host tests share
 * one parser; the filter dims check is the sampler core's qbnn_filter_dims_check, which the C runtime's weighted ops
 * use too. Bit-for-bit the reader of tflite_export/tflite_io.py (tested against it). */
#ifndef QBNN_OPTIONS_H_
#define QBNN_OPTIONS_H_

#include <stddef.h>
#include <stdint.h>

#include "qbnn_sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QBNN_OPTIONS_V1 1 /* [O, I] filters (FULLY_CONNECTED) */
#define QBNN_OPTIONS_V2 2 /* N-D filters: + format, rank, dims */
#define QBNN_OPTIONS_HEADER_BYTES 24u

/* Error code beyond qbnn_sampler.h's (0 = ok). */
#define QBNN_ERR_OUTPUT 10 /* the output tensor is not the filter the options describe */

typedef struct {
  qbnn_layer layer;      /* rows, cols, bits, layout, layer index, sigma_q (in place); mu / sigma NULL */
  uint32_t default_seed; /* the stream seed before the host calls SetSeed */
  uint8_t version;       /* QBNN_OPTIONS_V1 or QBNN_OPTIONS_V2 */
  uint8_t format;        /* QBNN_FILTER_* (QBNN_FILTER_OI for version 1) */
  uint8_t rank;          /* 2 for version 1, 4 for OHWI / 1HWO */
  uint32_t dims[QBNN_FILTER_MAX_RANK]; /* the filter tensor's dims (version 1: R, C) */
} qbnn_sample_options;

/* Parses custom_options of any version this file knows. Refuses a wrong magic or version, bits outside 2..8
 * (PACKED: sigma bits 1..6 and mu + sigma bits <= 8), an unknown layout, other eps bits or shift, a length other
 * than the header plus 2^sb table entries, a version 2 header whose format / rank / dims do not describe R x C, and
 * a SIGMA_Q table that is not 4-byte aligned (it is read in place: little-endian targets). The layer's tables are
 * not checked here: qbnn_layer_check does that once the tensors are attached. */
int qbnn_parse_options(const uint8_t* buf, size_t len, qbnn_sample_options* o);

/* An output tensor of `rank` dims (TFLite's int dims) is exactly the filter of the options. */
int qbnn_options_output_check(const qbnn_sample_options* o, int rank, const int* dims);

/* A short name of an error code of qbnn_sampler.h or this file. */
const char* qbnn_options_error(int code);

#ifdef __cplusplus
}
#endif

#endif /* QBNN_OPTIONS_H_ */
