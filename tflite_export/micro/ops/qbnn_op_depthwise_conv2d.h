/* DEPTHWISE_CONV_2D: parameters qbnn_conv_params (qbnn_op_conv2d.h); scratch: the zero-padded int16 operand image
   and the whole fh * fw * out_c filter (the op's one row: a 1HWO filter's stream bytes interleave the channels). */
#ifndef QBNN_OP_DEPTHWISE_CONV2D_H_
#define QBNN_OP_DEPTHWISE_CONV2D_H_
#include "qbnn_op_conv2d.h"

#define QBNN_DEPTHWISE_CONV_2D_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) \
  ((QBNN_PADDED_ELEMS(ic, oh, ow, fh, fw, sh, sw) + 3u) / 4u * 4u)
#define QBNN_DEPTHWISE_CONV_2D_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) QBNN_ELEMS(fh, fw, oc)

#endif
