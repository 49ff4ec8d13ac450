"""The deterministic baseline: the paper's pretraining MLP (Keras 3, in process), one softmax pass."""

from __future__ import annotations

import time

import keras
import numpy as np

from tfqbnn import models
from tfqbnn.baselines._worker_io import TEST_SETS


def train_and_predict(data, epochs, seed=0, batch_size=128, lr=3e-3, verbose=0):
    """Trains `models.deterministic_mlp` (Adam, cosine decay) and predicts the three test sets.

    Returns:
        (probs dict set -> [1, N, C], info dict).
    """
    keras.utils.set_random_seed(seed)
    model = models.deterministic_mlp(seed=seed)
    steps = epochs * int(np.ceil(len(data.x_train) / batch_size))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    h = model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                  validation_data=(data.x_val, data.y_val) if len(data.x_val) else None,
                  verbose=2 if verbose else 0)
    t_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    probs = {name: model.predict(getattr(data, key), batch_size=4096, verbose=0)[None]
             for name, key in TEST_SETS.items()}
    t_pred = time.perf_counter() - t1
    history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
    num_weights = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    info = {
        "history": history,
        "val_accuracy": history.get("val_accuracy", [None])[-1],
        "num_weights": num_weights,
        "param_bytes": 4 * num_weights,  # float32 kernels
        "train_seconds": round(t_train, 2),
        "predict_seconds": round(t_pred, 2),
    }
    return probs, info
