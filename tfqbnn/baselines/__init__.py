"""Baselines for the paper's Table I: a deterministic MLP (``det``), a deterministic 4-bit QAT MLP
with tensorflow-model-optimization (``qat4``) and an FP32 TFP DenseFlipout BNN (``flipout``).

``qat4`` and ``flipout`` need tf_keras and run in a child process: nothing here imports tfmot or
``tfp.layers`` into the caller's (Keras 3) process.
"""

from tfqbnn.baselines.runner import BASELINES, run_baseline, run_worker

__all__ = ["BASELINES", "run_baseline", "run_worker"]
