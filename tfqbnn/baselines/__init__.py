"""Baselines for the paper's Table I: a deterministic MLP (``det``), a deterministic 4-bit QAT MLP
with tensorflow-model-optimization (``qat4``) and an FP32 TFP DenseFlipout BNN (``flipout``).

`tfqbnn.baselines.mixed_precision` is the deterministic mixed-precision point set of the memory-uncertainty
front (HGQ2 per-weight bit widths; hgq2 is an optional extra, imported only when it runs).

``qat4`` and ``flipout`` need tf_keras and run in a child process: nothing here imports tfmot or
``tfp.layers`` into the caller's (Keras 3) process.
"""

from tfqbnn.baselines.runner import BASELINES, run_baseline, run_worker

__all__ = ["BASELINES", "run_baseline", "run_worker"]
