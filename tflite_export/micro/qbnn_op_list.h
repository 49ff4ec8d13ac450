/* The op registry: one line per op kind, QBNN_OP(KIND, name). KIND is the TFLite builtin name (the enum
   QBNN_OP_<KIND> in qbnn_runtime.h); `name` is the kernel in micro/ops/qbnn_op_<name>.c, which defines
   qbnn_op_<name>_prepare and qbnn_op_<name>_eval (qbnn_ops.h). A kernel with parameters or scratch has a
   header micro/ops/qbnn_op_<file>.h declaring its parameter struct and its scratch sizes (QBNN_<KIND>_X_ELEMS,
   QBNN_<KIND>_FILTER_ELEMS: qbnn_plan.h), included here when this file is included without QBNN_OP defined; a
   kernel with neither has none (its IR op's c_scratch is False). Adding an op: one kernel file (and its header
   if it has parameters or scratch), one line here, and its IR module (tflite_export/ir). The enum values are written into model_data.c: append only. */
#ifndef QBNN_OP
#include "ops/qbnn_op_fully_connected.h"
#include "ops/qbnn_op_conv2d.h"
#include "ops/qbnn_op_depthwise_conv2d.h"
#include "ops/qbnn_op_pool.h"
#else
QBNN_OP(FULLY_CONNECTED, fully_connected)
QBNN_OP(CONV_2D, conv2d)
QBNN_OP(DEPTHWISE_CONV_2D, depthwise_conv2d)
QBNN_OP(MAX_POOL_2D, max_pool2d)
QBNN_OP(AVERAGE_POOL_2D, average_pool2d)
QBNN_OP(RESHAPE, reshape)
QBNN_OP(GLOBAL_AVERAGE_POOL_2D, global_average_pool2d)
#endif
