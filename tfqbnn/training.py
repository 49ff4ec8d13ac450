"""Two-stage training of the paper: deterministic pretraining, then the Bayesian model.

Stage 1 trains the bias-free deterministic twin of the architecture (``arch``:
``"mlp"`` or ``"lenet5"``, `models.deterministic_model`); stage 2 initialises the
(fully or, for the LeNet, head-only ``bayesian``) Bayesian model from it (mu <- pretrained weights, sigma <- small) and trains it by
variational inference with `KLAnnealing`.  Both stages are plain ``model.fit`` with
`BackupAndRestore` (a killed run resumes at the last finished epoch),
`ModelCheckpoint`, `TerminateOnNaN`, CSV and TensorBoard logs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from tfqbnn import callbacks as qcallbacks
from tfqbnn import models
from tfqbnn.config import QuantizationConfig


@dataclasses.dataclass(frozen=True)
class Profile:
    """Training schedule.  ``max_train`` caps the training set (smoke tests)."""

    pretrain_epochs: int
    bnn_epochs: int
    batch_size: int = 128
    pretrain_lr: float = 3e-3
    bnn_lr: float = 1e-3
    kl_warmup: float = 0.5
    init_sigma: float = 5e-3
    prior_std: float = 1.0
    rho_scale: float = 10.0
    max_train: int | None = None
    eval_samples: int = 30
    ambiguous_profile: str = "default"
    eval_images: int | None = None  # cap per test set in the sweep (None: the whole sets)


PROFILES = {
    # seconds: for tests and CI
    "smoke": Profile(pretrain_epochs=2, bnn_epochs=3, batch_size=128, max_train=2048, eval_samples=5,
                     ambiguous_profile="small"),
    # `make demo`: a few minutes end to end on 2 cores
    "demo": Profile(pretrain_epochs=3, bnn_epochs=3, ambiguous_profile="small"),
    # <= 30 epochs in total; chosen on the validation split (see README "Reproducing the paper")
    "fast": Profile(pretrain_epochs=10, bnn_epochs=5),
    # the paper's schedule
    "paper": Profile(pretrain_epochs=1500, bnn_epochs=1000),
    # what a LeNet-5 sweep (12 runs) fits in under an hour on 2 shared cores: 20k training images,
    # 4 + 2 epochs, the small Ambiguous-MNIST, 1000 images per test set (README "LeNet-5")
    "conv-quick": Profile(pretrain_epochs=4, bnn_epochs=2, max_train=20000, ambiguous_profile="small",
                          eval_images=1000),
}


def get_profile(name):
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[name]


class FailAfterEpoch(keras.callbacks.Callback):
    """Fault injection for resume tests: kill the process hard after an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = int(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os._exit(3)


def _train_slice(data, profile, seed):
    x, y = data.x_train, data.y_train
    if profile.max_train and len(x) > profile.max_train:
        idx = np.random.default_rng(seed).permutation(len(x))[: profile.max_train]
        x, y = x[idx], y[idx]
    return x, y


def _fit(model, data, profile, seed, epochs, lr, out_dir, extra_callbacks=(), fail_after_epoch=None, verbose=1):
    """``model.fit`` with cosine-decayed Adam and the crash-safe callback set."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x, y = _train_slice(data, profile, seed)
    steps = epochs * int(np.ceil(len(x) / profile.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))
    # XLA for the whole step: Keras' CPU default leaves it off, and the Bayesian layers'
    # sampling, quantizers and KL then fuse with the optimizer (jq4: ~1.5x a Dense step
    # instead of ~1.9x, scripts/bench_train.py).
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=True)
    cbs = [
        *extra_callbacks,
        keras.callbacks.TerminateOnNaN(),
        # BackupAndRestore before the loggers: when the CSV shows an epoch, its backup exists.
        keras.callbacks.BackupAndRestore(str(out_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoint.keras")),
        keras.callbacks.CSVLogger(str(out_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ]
    if fail_after_epoch is not None:
        cbs.append(FailAfterEpoch(fail_after_epoch))
    keras.utils.set_random_seed(seed)
    return model.fit(
        x, y, batch_size=profile.batch_size, epochs=epochs, shuffle=True, verbose=verbose,
        validation_data=(data.x_val, data.y_val) if len(data.x_val) else None, callbacks=cbs,
    )


def pretrain(data, out_dir, profile="fast", seed=0, activation="softplus", verbose=1, fail_after_epoch=None,
             arch="mlp"):
    """Stage 1: the deterministic model of ``arch``, cached as ``out_dir/model.keras`` (reused if present)."""
    profile = get_profile(profile)
    out_dir = Path(out_dir)
    final = out_dir / "model.keras"
    if final.exists():
        return keras.models.load_model(final)
    keras.utils.set_random_seed(seed)
    model = models.deterministic_model(arch, activation=activation, seed=seed)
    t = time.perf_counter()
    _fit(model, data, profile, seed, profile.pretrain_epochs, profile.pretrain_lr, out_dir,
         fail_after_epoch=fail_after_epoch, verbose=verbose)
    model.save(out_dir / "model.partial.keras")
    os.replace(out_dir / "model.partial.keras", final)  # atomic: a crash never leaves a half file
    _write_json(out_dir / "train.json", {"stage": "pretrain", "seconds": time.perf_counter() - t,
                                          "profile": dataclasses.asdict(profile), "seed": seed,
                                          "activation": activation, "arch": arch})
    return model


def train_bnn(data, pretrained, out_dir, quantization="jq4", profile="fast", seed=0, activation="softplus",
              verbose=1, fail_after_epoch=None, arch="mlp", bayesian="all"):
    """Stage 2: the Bayesian model initialised from ``pretrained``; writes ``out_dir/model.keras``.

    With ``bayesian="head"`` the deterministic layers are trained with their kernels
    quantized to the variational layers' weight bits (float for fp32).
    """
    profile = get_profile(profile)
    quantization = QuantizationConfig.get(quantization)
    out_dir = Path(out_dir)
    keras.utils.set_random_seed(seed)
    x, _ = _train_slice(data, profile, seed)
    extra = {"deterministic_bits": quantization.weight_bits} if bayesian == "head" else {}
    bnn = models.bayesian_model(arch, bayesian, activation=activation, quantization=quantization,
                                num_examples=len(x), prior_std=profile.prior_std, init_sigma=profile.init_sigma,
                                rho_scale=profile.rho_scale, seed=seed, **extra)
    models.init_from_deterministic(bnn, pretrained)
    t = time.perf_counter()
    hist = _fit(bnn, data, profile, seed, profile.bnn_epochs, profile.bnn_lr, out_dir,
                extra_callbacks=[qcallbacks.KLAnnealing("linear", warmup=profile.kl_warmup)],
                fail_after_epoch=fail_after_epoch, verbose=verbose)
    bnn.save(out_dir / "model.partial.keras")
    os.replace(out_dir / "model.partial.keras", out_dir / "model.keras")
    _write_json(out_dir / "train.json", {
        "stage": "bnn", "seconds": time.perf_counter() - t, "quantization": quantization.get_config(),
        "profile": dataclasses.asdict(profile), "seed": seed, "activation": activation, "arch": arch,
        "bayesian": bayesian, "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
        "sigma_mean": [float(np.mean(l.sigma)) for l in bnn.layers if hasattr(l, "rho")],
    })
    return bnn


def _write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def load_data(profile="fast", data_dir=None, ambiguous_source="regenerated"):
    """Dirty-MNIST for a profile (the data seed is fixed: seeds vary the training only)."""
    from tfqbnn.datasets import load_dirty_mnist

    profile = get_profile(profile)
    return load_dirty_mnist(data_dir=data_dir, ambiguous_source=ambiguous_source,
                            profile=profile.ambiguous_profile, validation_fraction=0.1, seed=0)


def pretrain_dir(profile_name, seed, activation, root=None, arch="mlp"):
    """Where the stage-1 model of (profile, seed, activation, arch) is cached and shared."""
    from tfqbnn.datasets.ambiguous import cache_dir

    base = Path(root) if root else Path(cache_dir()) / "pretrain"
    return base / (f"{profile_name}-s{seed}-{activation}" + ("" if arch == "mlp" else f"-{arch}"))


def run(out_dir, quantization="jq4", profile="fast", seed=0, activation="softplus", data=None,
        pretrain_root=None, verbose=1, fail_after_epoch=None, fail_stage="bnn", arch="mlp", bayesian="all"):
    """Both stages for one configuration; returns the trained Bayesian model."""
    models.bayesian_model(arch, bayesian)  # fail on a bad arch / bayesian before loading data
    name = profile if isinstance(profile, str) else "custom"
    data = data if data is not None else load_data(profile)
    det = pretrain(data, pretrain_dir(name, seed, activation, pretrain_root, arch), profile, seed, activation,
                   verbose=verbose, fail_after_epoch=fail_after_epoch if fail_stage == "pretrain" else None,
                   arch=arch)
    return train_bnn(data, det, out_dir, quantization, profile, seed, activation, verbose=verbose,
                     fail_after_epoch=fail_after_epoch if fail_stage == "bnn" else None, arch=arch,
                     bayesian=bayesian)
