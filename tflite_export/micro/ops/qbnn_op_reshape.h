/* RESHAPE / flatten: no parameters (params NULL), no scratch. */
#ifndef QBNN_OP_RESHAPE_H_
#define QBNN_OP_RESHAPE_H_

#define QBNN_RESHAPE_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u
#define QBNN_RESHAPE_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) 0u

#endif
