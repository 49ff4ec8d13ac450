import keras
import numpy as np
import pytest

from tfqbnn import callbacks, models


@pytest.mark.parametrize("schedule", ["linear", "cosine", "cyclical", "constant"])
def test_schedules(schedule):
    cb = callbacks.KLAnnealing(schedule, start=0.0, end=2.0, warmup=0.5, cycles=2)
    vals = [cb.weight_at(s, 100) for s in range(100)]
    if schedule == "constant":
        assert set(vals) == {2.0}
        return
    assert vals[0] == 0.0 and vals[99] == 2.0
    if schedule == "cyclical":
        assert vals[50] == 0.0 and vals[25] == 2.0  # second cycle restarts
    else:
        assert np.all(np.diff(vals) >= 0) and vals[50] == 2.0
        assert vals[12] == pytest.approx(0.48 if schedule == "linear" else 2 * (0.5 - 0.5 * np.cos(np.pi * 0.24)))


def _fit_and_watch_kl_weight(annealing, n, epochs):
    """Fit a small MLP with ``annealing``; the layers' kl_weight after each step, and the History."""
    model = models.mlp(hidden=(8,), quantization="fp32", num_examples=n)
    model.compile("adam", "sparse_categorical_crossentropy")
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(model.layers[0].kl_weight.numpy()))

    x = np.random.default_rng(0).uniform(size=(n, 784)).astype("float32")
    hist = model.fit(x, np.zeros(n), batch_size=16, epochs=epochs, verbose=0, callbacks=[annealing, Spy()])
    return seen, hist


def test_annealing_drives_layers_in_fit():
    seen, hist = _fit_and_watch_kl_weight(callbacks.KLAnnealing("linear", warmup=1.0), n=64, epochs=2)
    assert seen == pytest.approx([s / 8 for s in range(8)])
    assert hist.history["kl_weight"] == pytest.approx([3 / 8, 7 / 8])


def test_annealing_tolerance_skips_small_moves_but_reaches_the_end():
    seen, _ = _fit_and_watch_kl_weight(callbacks.KLAnnealing("linear", warmup=0.5, tolerance=0.25), n=160, epochs=1)
    schedule = [min(s / 5, 1.0) for s in range(10)]
    # assigned only once the schedule has moved by more than 0.25; always exactly 1.0 at the end
    assert seen == pytest.approx([0.0, 0.0, 0.4, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert all(abs(a - b) <= 0.25 for a, b in zip(seen, schedule))


def test_annealing_bad_args():
    with pytest.raises(ValueError, match="received schedule='exp'"):
        callbacks.KLAnnealing("exp")
    with pytest.raises(ValueError, match="warmup=0"):
        callbacks.KLAnnealing(warmup=0)
    with pytest.raises(ValueError, match="tolerance=1.5"):
        callbacks.KLAnnealing(tolerance=1.5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="no variational layer"):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0, callbacks=[callbacks.KLAnnealing()])


def test_init_from_deterministic():
    det = models.deterministic_mlp(hidden=(16,), seed=0)
    det.layers[0].kernel.assign(np.full((784, 16), 1.7, "float32"))  # beyond the clip
    bnn = models.init_from_deterministic(models.mlp(hidden=(16,)), det, init_sigma=0.02)
    np.testing.assert_array_equal(bnn.layers[0].mu.numpy(), 1.0)
    np.testing.assert_array_equal(bnn.layers[1].mu.numpy(), det.layers[1].kernel.numpy())
    np.testing.assert_allclose(bnn.layers[0].sigma.numpy(), 0.02, rtol=1e-4)
    with pytest.raises(ValueError, match="2 weighted layers in .qbnn_mlp. vs 3 in .det_mlp."):
        models.init_from_deterministic(models.mlp(hidden=(16,)), models.deterministic_mlp(hidden=(16, 16)))


def test_model_builders_validate_and_match_paper():
    m = models.mlp()
    assert [l.units for l in m.layers[:-1]] == [100, 100, 10]
    assert all(not l.use_bias for l in m.layers[:-1])
    assert m.layers[0].activation.__name__ == "softplus" and m.layers[2].activation.__name__ == "linear"
    with pytest.raises(ValueError, match=r"hidden\[1\]=0"):
        models.mlp(hidden=(10, 0))
    with pytest.raises(ValueError, match="num_classes=-2"):
        models.deterministic_mlp(num_classes=-2)
    det = models.deterministic_mlp()
    det.compile("adam", "sparse_categorical_crossentropy")
    det.layers[0].kernel.assign(np.full((784, 100), 0.9, "float32"))
    det.fit(np.ones((4, 784), "float32"), np.zeros(4), verbose=0, epochs=3)
    assert np.abs(det.layers[0].kernel.numpy()).max() <= 1.0
