/* TFLite Micro custom op QBNN_SAMPLE (tflite_export/SPEC.md section 6): draws one int8 weight
 * tensor per invocation from the constant mu / sigma code tensors with the qbnn_sampler core.
 *
 *   static tflite::MicroMutableOpResolver<8> resolver;
 *   resolver.AddCustom(QBNN_SAMPLE_OP_NAME, qbnn::Register_QBNN_SAMPLE());
 *   qbnn::SetSeed(trng_word);   // optional: reseeds every QBNN_SAMPLE stream at its next Eval
 */
#ifndef QBNN_SAMPLE_OP_H_
#define QBNN_SAMPLE_OP_H_

#include <cstdint>

#include "tensorflow/lite/micro/micro_common.h"

#define QBNN_SAMPLE_OP_NAME "QBNN_SAMPLE"

namespace qbnn {

const TFLMRegistration* Register_QBNN_SAMPLE();

// Reseeds all QBNN_SAMPLE streams (stream l: qbnn_seed_state(seed, l)) before their next Eval.
void SetSeed(uint32_t seed);

}  // namespace qbnn

#endif  // QBNN_SAMPLE_OP_H_
