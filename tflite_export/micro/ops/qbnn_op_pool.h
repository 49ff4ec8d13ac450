/* MAX_POOL_2D and AVERAGE_POOL_2D: parameters qbnn_pool_params; no scratch (int8 in, int8 out). */
#ifndef QBNN_OP_POOL_H_
#define QBNN_OP_POOL_H_
#include <stdint.h>

typedef struct {
  uint16_t filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
  int32_t act_min, act_max;
} qbnn_pool_params;

#define QBNN_MAX_POOL_2D_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u
#define QBNN_MAX_POOL_2D_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u
#define QBNN_AVERAGE_POOL_2D_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u
#define QBNN_AVERAGE_POOL_2D_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u

#endif
