"""Training under tf.distribute.MirroredStrategy on two logical CPUs scales the KL like one device
(issue 10; findings.md: works without jit_compile). Runs in a subprocess: logical devices must be
configured before TensorFlow initialises."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfqbnn import models

    N = 128
    rng = np.random.default_rng(0)
    x = rng.random((N, 784), dtype=np.float32)
    y = rng.integers(0, 10, N)

    def kl_only(y_true, y_pred):  # zero data term: the loss and its gradient are the KL alone (deterministic)
        return 0.0 * tf.reduce_sum(y_pred, axis=-1)

    out = {}
    for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            m = models.mlp(hidden=(16,), quantization="jq4", num_examples=N, seed=0)
            m.compile(keras.optimizers.SGD(0.5), kl_only, jit_compile=False)
        kl0 = float(sum(float(l.kl_divergence()) for l in m.layers if hasattr(l, "kl_divergence")))
        # one step per epoch over the whole set: each history entry is one step's loss
        h = m.fit(x, y, batch_size=N, epochs=2, shuffle=False, verbose=0)
        out[name] = {"replicas": strategy.num_replicas_in_sync, "kl0_over_n": kl0 / N, "loss": h.history["loss"],
                     "weights": [w.numpy().ravel().tolist() for w in m.trainable_weights]}
    print("RESULT" + json.dumps(out))
""")


def test_mirrored_two_cpus_scales_kl_like_one_device():
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.split("RESULT", 1)[1])
    one, two = res["one"], res["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    # the first step's loss is KL / N on both: not KL / (2N) (averaged over replicas) nor 2 KL / N (summed)
    np.testing.assert_allclose(one["loss"][0], one["kl0_over_n"], rtol=1e-5)
    np.testing.assert_allclose(two["loss"][0], two["kl0_over_n"], rtol=1e-5)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    # the KL gradient is applied once, not once per replica: the same weights after two steps
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert one["loss"][1] < one["loss"][0]  # the step moved the weights (the comparison is not vacuous)
