/* FULLY_CONNECTED: parameters qbnn_rt_layer (weights [out, in]); scratch: the int16 operands of its input
   (rounded up to 4: the SIMD loop takes 4 at a time) and one filter row (constant weights, the mean pass). */
#ifndef QBNN_OP_FULLY_CONNECTED_H_
#define QBNN_OP_FULLY_CONNECTED_H_
#include "qbnn_plan.h"
#include "qbnn_weighted.h"

#define QBNN_FULLY_CONNECTED_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) ((QBNN_ELEMS(ih, iw, ic) + 3u) / 4u * 4u)
#define QBNN_FULLY_CONNECTED_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) QBNN_ELEMS(ih, iw, ic)

#endif
