"""Pure-numpy integer arithmetic shared by every IR op (no TensorFlow, no Keras):

* `fixedpoint` -- TFLite's requantization (QuantizeMultiplier, MultiplyByQuantizedMultiplier, rounding)
* `softmax` -- TFLite's int8 softmax, bit-exact
* `sampler` -- the SPEC section 3 weight sampler (xorshift32 byte streams, Q12 eps table)
* `window` -- TFLite's padding / output-size rules for conv and pooling windows
"""
