"""`tfqbnn.two_stage.fit_two_stage` on non-MNIST data, and the frozen-sigma warning (callback, export)."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfqbnn import callbacks, models, moments
from tfqbnn.layers import DenseVariational
from tfqbnn.two_stage import fit_two_stage


def _blobs(n=600, dim=20, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, size=(classes, dim))
    y = rng.integers(0, classes, n)
    x = np.clip(centres[y] + rng.normal(0, 0.15, size=(n, dim)), 0, 1).astype("float32")
    return x, y


def test_fit_two_stage_on_arrays_and_datasets():
    x, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sigma barely moves in 2 epochs (checked below)
        r = fit_two_stage(x, y, hidden=(16,), num_classes=3, input_dim=20, pretrain_epochs=3, bnn_epochs=2,
                          batch_size=32, verbose=0, seed=1)
    assert r.deterministic.evaluate(x, y, verbose=0)[1] > 0.9
    acc = (r.model.predict(x, verbose=0).argmax(-1) == y).mean()
    assert acc > 0.9  # chance: 1/3
    layers = [l for l in r.model.layers if isinstance(l, DenseVariational)]
    assert [l.num_examples for l in layers] == [600, 600]
    assert [float(l.kl_weight) for l in layers] == [1.0, 1.0]  # the warm-up reached the full KL
    assert len(r.pretrain_history.history["loss"]) == 3 and len(r.bnn_history.history["loss"]) == 2
    # stage 2 starts from the twin: mu <- its weights (within the 4-bit grid the training then moves over)
    w0 = np.asarray(r.deterministic.layers[0].kernel)
    assert np.corrcoef(np.asarray(layers[0].mu).ravel(), w0.ravel())[0, 1] > 0.9

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    with pytest.raises(ValueError, match="num_examples"):
        fit_two_stage(ds, hidden=(8,), num_classes=3, input_dim=20, pretrain_epochs=1, bnn_epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        r2 = fit_two_stage(ds, num_examples=600, hidden=(8,), num_classes=3, input_dim=20, pretrain_epochs=1,
                           bnn_epochs=1, verbose=0, quantization="fp32")
    assert [l.num_examples for l in r2.model.layers if isinstance(l, DenseVariational)] == [600, 600]
    with pytest.raises(ValueError, match="same length"):
        fit_two_stage(x, y[:10], verbose=0)
    with pytest.raises(ValueError, match="both `model` and `deterministic`"):
        fit_two_stage(x, y, model=r.model, verbose=0)


def _jq4(sigma, input_dim=20, num_classes=3):
    model = models.mlp(hidden=(8,), quantization="jq4", num_examples=100, input_dim=input_dim,
                       num_classes=num_classes, seed=0)
    for layer in model.layers:
        if isinstance(layer, DenseVariational):
            layer.rho.assign(np.full(layer.rho.shape, (sigma + np.log(-np.expm1(-sigma))) / layer.rho_scale,
                                     "float32"))
    return model


def test_frozen_sigma_warns_once_per_layer_naming_it():
    half = 1 / 7 / 2  # JQ-4: step 1/7 on [-1, 1]
    frozen = _jq4(0.2 * half)
    assert all(v == 1.0 for v in moments.sigma_below_half_step(frozen).values())
    warned = set()
    with pytest.warns(UserWarning) as rec:
        flagged = moments.warn_frozen_sigma(frozen, warned=warned)
    names = [l.name for l in frozen.layers if isinstance(l, DenseVariational)]
    assert sorted(flagged) == sorted(names) and len(rec) == len(names)
    for name in names:
        assert sum(f"layer {name!r}" in str(w.message) for w in rec) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moments.warn_frozen_sigma(frozen, warned=warned)  # once per layer: nothing new
        moments.warn_frozen_sigma(_jq4(3 * half))  # sigma well above half the step: silent
    assert all(v == 0.0 for v in moments.sigma_below_half_step(_jq4(3 * half)).values())


def test_frozen_sigma_callback_during_fit():
    x, y = _blobs(200)
    model = _jq4(0.05 / 7)
    model.compile("adam", "sparse_categorical_crossentropy")
    cb = callbacks.FrozenSigmaCheck(every_epoch=True, start_epoch=0)
    with pytest.warns(UserWarning, match="FrozenSigmaCheck: layer") as rec:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    msgs = [str(w.message) for w in rec if "FrozenSigmaCheck" in str(w.message)]
    assert len(msgs) == len(cb.warned) == 2  # two epochs and the end of training, still once per layer


def test_export_warns_about_frozen_layers():
    from tflite_export import convert

    with pytest.warns(UserWarning, match="export: layer"):
        convert.integer_model_from_keras(_jq4(0.01, input_dim=784, num_classes=10))
