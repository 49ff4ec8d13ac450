/* CONV_2D (filter OHWI) and, with the same parameters, DEPTHWISE_CONV_2D (filter 1HWO, depth multiplier
   out_c / in_c). Scratch: the zero-padded int16 operand image (+1 slack: an odd filter row's last pair reads one
   operand beyond), and one output channel's filter, its fh * fw * in_c codes after its table of SMLAD pairs (8
   bytes, 4 int16, a pair; each filter row rounded up to an even length). */
#ifndef QBNN_OP_CONV2D_H_
#define QBNN_OP_CONV2D_H_
#include "qbnn_plan.h"
#include "qbnn_weighted.h"

typedef struct {
  qbnn_rt_layer w;
  uint16_t filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
} qbnn_conv_params;

/* The operand image a convolution reads: the (oh-1) sh + fh rows by (ow-1) sw + fw pixels its windows cover
   (qbnn__pad16); oh, ow >= 1 (prepare checks the window first). */
#define QBNN_PADDED_ELEMS(ic, oh, ow, fh, fw, sh, sw) \
  ((((uint64_t)(oh) - 1u) * (sh) + (fh)) * (((uint64_t)(ow) - 1u) * (sw) + (fw)) * (ic))
/* SMLAD pairs of one filter: fh rows of fw * in_c codes, each rounded up to even */
#define QBNN_CONV_2D_PAIRS(ic, fh, fw) ((uint64_t)(fh) * (((uint64_t)(fw) * (ic) + 1u) / 2u))

#define QBNN_CONV_2D_X_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) \
  ((QBNN_PADDED_ELEMS(ic, oh, ow, fh, fw, sh, sw) + 1u + 3u) / 4u * 4u)
#define QBNN_CONV_2D_FILTER_ELEMS(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw) \
  (4u * QBNN_CONV_2D_PAIRS(ic, fh, fw) + QBNN_ELEMS(fh, fw, ic))

#endif
