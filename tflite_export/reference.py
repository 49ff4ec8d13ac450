"""The numpy integer engine of SPEC.md: `IntegerModel` holds every code, scale and table of an
exported model and runs it bit-exactly (sampling, FULLY_CONNECTED, SoftPlus LUT, int8 softmax); the uncertainty of its samples is
`tflite_export.statistics.uncertainty`."""

from __future__ import annotations

import numpy as np

from tflite_export.intmath import fixedpoint, sampler
from tflite_export.ir.activation import ACTIVATIONS, softplus_lut  # noqa: F401  (public names of v1)
from tflite_export.ir.fully_connected import IntegerLayer  # noqa: F401
from tflite_export.ir.softmax import SOFTMAX_SCALE, SOFTMAX_ZERO_POINT, Softmax
from tflite_export.ir.weighted import INPUT_SCALE, INPUT_ZERO_POINT


class IntegerModel:
    """A list of IR ops (`tflite_export.ir`) ending in SOFTMAX, run in integers.

    `IntegerModel(layers)` with the v1 list of Bayesian `IntegerLayer`s still works: a SOFTMAX op is appended
    when the list does not end in one. `layers` are the ops before the softmax; every Bayesian op (sampled
    weights) has its own byte stream (SPEC 3.1, stream id `op.index`); ops before the first Bayesian op are the
    deterministic prefix, computed once per input in `predict_codes`.
    """

    def __init__(self, layers, default_seed=0, num_classes=None, rounding="double", input_shape=None):
        ops = list(layers)
        if not ops:
            raise ValueError("IntegerModel needs at least one layer")
        if not isinstance(ops[-1], Softmax):
            ops.append(Softmax())
        if any(isinstance(op, Softmax) for op in ops[:-1]):
            raise ValueError("IntegerModel: SOFTMAX must be the last op")
        self.ops = ops
        self.default_seed = int(default_seed)
        self._input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self._num_classes = num_classes
        # "double": TFLM and the SPEC; "single": LiteRT's TFLITE_SINGLE_ROUNDING build (SPEC.md section 8)
        self.rounding = rounding

    @property
    def layers(self):
        return self.ops[:-1]

    @property
    def bayesian_ops(self):
        return [op for op in self.layers if op.bayesian]

    @property
    def input_shape(self):
        """Per-example input shape (a v1 model: [C0] from its first layer)."""
        if self._input_shape is not None:
            return self._input_shape
        first = self.layers[0]
        if isinstance(first, IntegerLayer):
            return (first.shape[1],)
        if first.kind == "FULLY_CONNECTED":
            return (first.weights.shape[1],)
        raise ValueError(f"IntegerModel: pass input_shape (the first op is {first.kind})")

    @property
    def input_dim(self):
        return int(np.prod(self.input_shape))

    @property
    def num_classes(self):
        if self._num_classes:
            return self._num_classes
        shape = self.input_shape
        for op in self.layers:
            shape = op.output_shape(shape)
        return int(shape[-1])

    @num_classes.setter
    def num_classes(self, value):
        self._num_classes = value

    def quants(self):
        """(scale, zero point) of the input of every op (the last: the softmax's input)."""
        quant, out = (INPUT_SCALE, INPUT_ZERO_POINT), []
        for op in self.ops:
            out.append(quant)
            quant = op.output_quant(quant)
        return out

    def streams(self, seed=None):
        seed = self.default_seed if seed is None else seed
        return [sampler.ByteStream(seed, op.index) for op in self.bayesian_ops]

    def sample_weights(self, streams):
        """Weight codes of one pass, aligned with `layers` (None for ops without weights)."""
        it = iter(streams)
        return [op.sample(next(it)) if op.bayesian else (op.sample(None) if op.has_weights else None)
                for op in self.layers]

    @property
    def prefix_length(self):
        """Number of leading deterministic ops (run once per input, not once per sample)."""
        return next((i for i, op in enumerate(self.layers) if op.bayesian), len(self.layers))

    @staticmethod
    def quantize_input(x):
        """uint8 pixels -> p - 128; float pixels in [0, 1] -> TFLite QUANTIZE (scale 1/255, zp -128)."""
        x = np.asarray(x)
        if x.dtype == np.uint8:
            return (x.astype(np.int16) - 128).astype(np.int8)
        if x.dtype == np.int8:
            return x
        return fixedpoint.quantize_to_int8(x, INPUT_SCALE, INPUT_ZERO_POINT)

    def _run(self, q, weights, start, stop):
        quants = self.quants()
        for i in range(start, stop):
            q = self.ops[i].run(q, quants[i], weights[i], self.rounding)
        return q

    def logits(self, q_in, weights):
        return self._run(self.quantize_input(q_in), weights, 0, len(self.layers))

    def forward(self, x, weights):
        """int8 softmax codes [N, K] for one weight sample."""
        return self.ops[-1].run(self.logits(x, weights), self.quants()[-1], None, self.rounding)

    def predict_codes(self, x, num_samples=30, seed=None, streams=None, batch_size=4096, progress=None):
        """[S, N, K] int8 softmax codes; sample s continues the streams left by sample s-1. The deterministic
        prefix runs once per input. `progress`: a label shows a progress bar over the samples (tqdm)."""
        streams = self.streams(seed) if streams is None else streams
        q = self.quantize_input(x)
        k, n_layers = self.prefix_length, len(self.layers)
        if k:
            fixed = [op.sample(None) if op.has_weights else None for op in self.layers[:k]]
            q = np.concatenate([self._run(q[i:i + batch_size], fixed, 0, k) for i in range(0, q.shape[0], batch_size)])
        out = np.empty((num_samples, q.shape[0], self.num_classes), np.int8)
        softmax, quant = self.ops[-1], self.quants()[-1]
        samples = range(num_samples)
        if progress:
            from tqdm.auto import tqdm

            samples = tqdm(samples, desc=str(progress), unit="sample")
        for s in samples:
            w = self.sample_weights(streams)
            for i in range(0, q.shape[0], batch_size):
                out[s, i:i + batch_size] = softmax.run(self._run(q[i:i + batch_size], w, k, n_layers), quant, None,
                                                       self.rounding)
        return out
