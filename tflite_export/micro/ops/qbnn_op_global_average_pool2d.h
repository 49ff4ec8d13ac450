/* GLOBAL_AVERAGE_POOL_2D: no parameters (params NULL), no scratch. */
#ifndef QBNN_OP_GLOBAL_AVERAGE_POOL2D_H_
#define QBNN_OP_GLOBAL_AVERAGE_POOL2D_H_

#define QBNN_GLOBAL_AVERAGE_POOL_2D_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u
#define QBNN_GLOBAL_AVERAGE_POOL_2D_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u

#endif
