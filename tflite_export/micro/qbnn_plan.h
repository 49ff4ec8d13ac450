/* The arena plan as C constant expressions: qbnn_plan.c sizes and cuts the caller's arena with these macros,
   and the generated model_data.h builds QBNN_ARENA_BYTES from the same macros, each op's scratch from its
   kernel's header (micro/ops/qbnn_op_<name>.h), so the plan is written once and is known at compile time.

   A kernel's scratch macros take the op's geometry, in this order (0 for what the op has not):
     QBNN_<KIND>_X_ELEMS(in_h, in_w, in_c, out_h, out_w, out_c, filter_h, filter_w, stride_h, stride_w)
       int16 operands of the op's input (a multiple of 4),
     QBNN_<KIND>_FILTER_ELEMS(same arguments)    int16 filter scratch.
   Every size is computed in uint64_t, so no product of uint16 dims wraps. */
#ifndef QBNN_PLAN_H_
#define QBNN_PLAN_H_
#include <stdint.h>

#define QBNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define QBNN_R8(n) (((uint64_t)(n) + 7u) / 8u * 8u) /* arena pieces are 8-byte aligned */
#define QBNN_ELEMS(h, w, c) ((uint64_t)(h) * (w) * (c))

/* SPEC 7.1's jackknife group sums of one prediction: [QBNN_JK_GROUPS][QBNN_MAX_CLASSES] uint32 (MC, HYBRID) or
   float (PFP) */
#define QBNN_JK_BYTES QBNN_R8(4u * (uint64_t)QBNN_JK_GROUPS * QBNN_MAX_CLASSES)

/* HYBRID at a dense layer of R rows and C columns, pieces in this order: nonzero-input list uint16[C], A1 and A2
   int64[R], scaled deviations int32[R], the sampled layer's output int8[R] (qbnn_modes.c cuts them so). */
#define QBNN_HYBRID_BYTES(rows, cols)                                                                        \
  (QBNN_R8(2u * (uint64_t)(cols)) + 2u * QBNN_R8(8u * (uint64_t)(rows)) + QBNN_R8(4u * (uint64_t)(rows)) + \
   QBNN_R8(rows))
/* PFP from a dense layer of rows0 x cols0: its list, A1 and A2, then means and variances of two layers (float32,
   max_rows: the widest layer) and E[h^2] of a layer's inputs (float32, max_cols: the widest later layer). */
#define QBNN_PFP_BYTES(rows0, cols0, max_rows, max_cols)                                                \
  (QBNN_R8(2u * (uint64_t)(cols0)) + 2u * QBNN_R8(8u * (uint64_t)(rows0)) +                            \
   4u * QBNN_R8(4u * (uint64_t)(max_rows)) + QBNN_R8(4u * (uint64_t)(max_cols)))

/* The arena, in cut order: the deterministic prefix's output (prefix int8 elements), the jackknife group sums, then
   either the MC pieces -- two ping-pong activations (act int8 elements, the largest op output), the int16 operands
   of any weighted op but the first Bayesian one (x_op), one filter (filter int16), and the first Bayesian op's
   operands (x_first int16), which HYBRID's scratch (hybrid bytes) overlaps as it does not build them -- or PFP's
   scratch (pfp bytes), which overlaps all of them (PFP runs none of the MC pieces once the prefix has run).
   hybrid / pfp: 0 when the model cannot run the mode. */
#define QBNN_PLAN_BYTES(prefix, act, x_first, x_op, filter, hybrid, pfp)                                     \
  (QBNN_R8(prefix) + QBNN_JK_BYTES +                                                                        \
   QBNN_MAX(2u * QBNN_R8(act) + QBNN_R8(2u * (uint64_t)(x_op)) + QBNN_R8(2u * (uint64_t)(filter)) +          \
                QBNN_MAX(QBNN_R8(2u * (uint64_t)(x_first)), (uint64_t)(hybrid)),                            \
            (uint64_t)(pfp)))

#endif
