"""Two-stage training of the paper: deterministic pretraining, then the Bayesian model.

Stage 1 trains the bias-free deterministic twin of the architecture (``arch``:
``"mlp"`` or ``"lenet5"``, `models.deterministic_model`); stage 2 initialises the
(fully or, for the LeNet, head-only ``bayesian``) Bayesian model from it (mu <- pretrained weights, sigma <- small) and trains it by
variational inference with `KLAnnealing`.  Both stages are plain ``model.fit`` with
`BackupAndRestore` (a killed run resumes at the last finished epoch),
`ModelCheckpoint`, `TerminateOnNaN`, CSV and TensorBoard logs.

Each stage's folder is a `tfqbnn.rundir.RunDir`: ``run.json`` (fingerprint of the `RunConfig`
and the data, list of the files written) comes first; backups and checkpoints live in its
``tfqbnn-scratch/`` and are removed when the stage finishes.  A folder holding another
configuration is refused unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import keras
import numpy as np

from tfqbnn import callbacks as qcallbacks
from tfqbnn import models
from tfqbnn.config import QuantizationConfig
from tfqbnn.rundir import RunDir, digest, write_json


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
    # learning-rate schedule of each stage (`lr_schedule`): "cosine" (cosine decay to 0 over the stage),
    # "step" (the rate, then a tenth of it for the last third of the epochs) or "constant"
    pretrain_lr_schedule: str = "cosine"
    bnn_lr_schedule: str = "cosine"
    # pretraining only: each training image shifted by a random whole number of pixels in [-n, n] per axis
    # (zero fill), drawn anew every epoch; the model and the Bayesian stage are unchanged
    augment_shift: int = 0
    # the same for the Bayesian stage's training images (0: the unshifted images)
    bnn_augment_shift: int = 0

    def __post_init__(self):
        for name in ("pretrain_lr_schedule", "bnn_lr_schedule"):
            if getattr(self, name) not in LR_SCHEDULES:
                raise ValueError(f"`{name}` must be one of {list(LR_SCHEDULES)}; received {getattr(self, name)!r}")
        for name in ("augment_shift", "bnn_augment_shift"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 14:
                raise ValueError(f"`{name}` must be an integer in [0, 13]; received {v!r}")


LR_SCHEDULES = ("cosine", "step", "constant")
# Profile fields added after runs were published: left out of a run's fingerprint while at their default,
# so the existing profiles keep their fingerprints (and their cached pretrainings / resumable run folders).
_FINGERPRINT_OPTIONAL = {"pretrain_lr_schedule": "cosine", "bnn_lr_schedule": "cosine", "augment_shift": 0,
                        "bnn_augment_shift": 0}


def profile_fingerprint(profile):
    """``dataclasses.asdict`` of a profile without the later fields that are at their default."""
    d = dataclasses.asdict(profile)
    return {k: v for k, v in d.items() if not (k in _FINGERPRINT_OPTIONAL and v == _FINGERPRINT_OPTIONAL[k])}


def lr_schedule(name, lr, epochs, steps_per_epoch):
    """The learning rate (a float or a Keras schedule) of one stage; see `Profile.pretrain_lr_schedule`."""
    steps = max(epochs * steps_per_epoch, 1)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    if name == "step":
        boundary = max(int(round(epochs * 2 / 3)), 1) * steps_per_epoch
        # the schedule sees the 0-based step and keeps the first value while step <= boundary
        return keras.optimizers.schedules.PiecewiseConstantDecay([boundary - 1], [lr, lr / 10])
    if name == "constant":
        return lr
    raise ValueError(f"Unknown lr schedule {name!r}; expected one of {list(LR_SCHEDULES)}")


def shift_images(x, max_shift, seed=None):
    """Flat (N, 784) or (N, 28, 28[, 1]) images, each shifted by random whole pixels in [-max_shift, max_shift]
    per axis, zero-filled (a tf function: usable in a tf.data map).  Shape and dtype are kept."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    img = tf.reshape(x, (-1, 28, 28, 1))
    n = tf.shape(img)[0]
    pad = tf.pad(img, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    size = 2 * max_shift + 1
    if seed is None:
        off = tf.random.uniform((n, 2), 0, size, dtype=tf.int32)
    else:
        off = tf.random.stateless_uniform((n, 2), seed, 0, size, dtype=tf.int32)
    rows = off[:, :1] + tf.range(28)[None]  # (n, 28)
    cols = off[:, 1:] + tf.range(28)[None]
    out = tf.gather(pad, rows, axis=1, batch_dims=1)  # (n, 28, 28 + 2s, 1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)  # (n, 28, 28, 1)
    return tf.reshape(out, shape)


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
    # LeNet-5 (issue 11): the fast schedule with a 3x lower Bayesian learning rate (on seed 0 the smallest
    # head/all MI AUROC gap of the variants tried, but below "fast" on accuracy and MI AUROC; README "LeNet-5 on
    # Dirty-MNIST (lenet profile)"), evaluated on the whole test sets with each Ambiguous-MNIST test image once
    # (10,000 / 6,000 / 10,000 images: the same AUROCs as the 10x-repeated rows, 3x less evaluation time)
    "lenet": Profile(pretrain_epochs=10, bnn_epochs=5, bnn_lr=3e-4, eval_images=10000),
    # "lenet" with +-2 px random shifts in pretraining: JQ-4 LeNet-5 "all" 99.12 % over 3 seeds (README)
    "lenet-aug": Profile(pretrain_epochs=10, bnn_epochs=5, bnn_lr=3e-4, eval_images=10000, augment_shift=2),
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


def _fit(model, data, profile, seed, epochs, lr, run_dir, extra_callbacks=(), fail_after_epoch=None, verbose=1,
         schedule="cosine", augment_shift=0):
    """``model.fit`` with Adam at the ``schedule`` (`lr_schedule`) and the crash-safe callback set; with
    ``augment_shift`` the training images are randomly shifted (`shift_images`) in a tf.data pipeline.

    Logs go to the run folder; the backup and the per-epoch checkpoint to its scratch folder.
    """
    out_dir, scratch = run_dir.path, run_dir.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    if not (scratch / "backup").exists() and (out_dir / "log.csv").exists():
        (out_dir / "log.csv").unlink()  # ours (manifest); no backup means the fit restarts at epoch 0
    x, y = _train_slice(data, profile, seed)
    rate = lr_schedule(schedule, lr, epochs, int(np.ceil(len(x) / profile.batch_size)))
    # XLA for the whole step: Keras' CPU default leaves it off, and the Bayesian layers'
    # sampling, quantizers and KL then fuse with the optimizer (jq4: ~1.5x a Dense step
    # instead of ~1.9x, scripts/bench_train.py).
    model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=True)
    cbs = [
        *extra_callbacks,
        keras.callbacks.TerminateOnNaN(),
        # BackupAndRestore before the loggers: when the CSV shows an epoch, its backup exists.
        # Its delete_checkpoint=True only ever removes our own scratch folder.
        keras.callbacks.BackupAndRestore(str(scratch / "backup")),
        keras.callbacks.ModelCheckpoint(str(scratch / "checkpoint.keras")),
        keras.callbacks.CSVLogger(str(out_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ]
    if fail_after_epoch is not None:
        cbs.append(FailAfterEpoch(fail_after_epoch))
    keras.utils.set_random_seed(seed)
    fit_args = dict(x=x, y=y, batch_size=profile.batch_size, shuffle=True)
    if augment_shift:
        fit_args = dict(x=_augmented_dataset(x, y, profile.batch_size, augment_shift, seed), shuffle=False)
    return model.fit(
        **fit_args, epochs=epochs, verbose=verbose,
        validation_data=(data.x_val, data.y_val) if len(data.x_val) else None, callbacks=cbs,
    )


def _augmented_dataset(x, y, batch_size, max_shift, seed):
    """Shuffled batches (reshuffled every epoch) with `shift_images` applied to the images.

    Each batch's shifts come from a stateless seed drawn for it from a seeded sequence that is redrawn every
    epoch, so a run is reproducible: a stateful random op in the parallel map would depend on the order in
    which the map's calls happen to run."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds.batch(batch_size), keys))
    ds = ds.map(lambda batch, key: (shift_images(batch[0], max_shift, seed=key), batch[1]),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# Names a training run writes in its folder (besides run.json and the scratch folder).
RUN_FILES = ("model.keras", "train.json", "log.csv", "tensorboard")

# arch -> (deterministic builder, Bayesian builder); the builders live in `tfqbnn.models`.
def _bayesian_builder(arch):
    def build(cfg, profile, num_examples):
        q = cfg.quantization
        # "head": the deterministic layers are trained with kernels quantized to the variational weight bits
        extra = {"deterministic_bits": q.weight_bits} if cfg.bayesian == "head" else {}
        return models.bayesian_model(arch, cfg.bayesian, activation=cfg.activation, quantization=q,
                                     num_examples=num_examples, prior_std=profile.prior_std,
                                     init_sigma=profile.init_sigma, rho_scale=profile.rho_scale, seed=cfg.seed, **extra)
    return build


ARCHITECTURES = {
    arch: (lambda cfg, arch=arch: models.deterministic_model(arch, activation=cfg.activation, seed=cfg.seed),
           _bayesian_builder(arch))
    for arch in models.ARCHS
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run's result; every field joins the run fingerprint.

    A new option (an architecture, which layers are Bayesian, ...) is a new field here: it then
    takes part in ``--out`` / resume checks without further code.
    """

    quantization: QuantizationConfig | str | dict | None = "jq4"
    profile: Profile | str = "fast"
    seed: int = 0
    activation: str = "softplus"
    arch: str = "mlp"
    bayesian: str = "all"

    def __post_init__(self):
        object.__setattr__(self, "quantization", QuantizationConfig.get(self.quantization))
        get_profile(self.profile)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"Unknown arch {self.arch!r}; expected one of {sorted(ARCHITECTURES)}")
        if self.bayesian not in models.BAYESIAN:
            raise ValueError(f"`bayesian` must be one of {list(models.BAYESIAN)}; received bayesian={self.bayesian!r}")
        if self.arch == "mlp" and self.bayesian != "all":
            raise ValueError(f"bayesian={self.bayesian!r} is defined for arch='lenet5' only; the MLP is fully Bayesian")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an integer; received seed={self.seed!r}")

    @property
    def profile_name(self):
        return self.profile if isinstance(self.profile, str) else "custom"

    def fingerprint(self, data, stage="bnn"):
        """JSON dict of the run; ``stage="pretrain"`` leaves out what stage 1 does not depend on."""
        fp = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "quantization":
                v = v.get_config()
            elif f.name == "profile":
                v = {"name": self.profile_name, **profile_fingerprint(get_profile(v))}
            fp[f.name] = v
        if stage == "pretrain":  # stage 1 is shared by every quantization and by "all" / "head"
            del fp["quantization"], fp["bayesian"]
        fp["data"] = data_fingerprint(data)
        return fp


def data_fingerprint(data):
    """Sizes and a SHA-256 over the labels and a strided subset of the images (cheap, and still
    different for any other regeneration, source or split of the data)."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_val", "y_val"):
        a = np.asarray(getattr(data, name))
        h.update(f"{name}{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a[::7] if name.startswith("x") else a).tobytes())
    return {"sizes": {"train": len(data.x_train), "val": len(data.x_val)}, "sha256": h.hexdigest()[:32]}


def weights_digest(model):
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:32]


def _save_model(model, run_dir):
    partial = run_dir.scratch / "model.partial.keras"
    run_dir.scratch.mkdir(parents=True, exist_ok=True)
    model.save(partial)
    os.replace(partial, run_dir.path / "model.keras")  # atomic: a crash never leaves a half file


def _config(quantization, profile, seed, activation, arch="mlp", bayesian="all", config=None):
    return config if config is not None else RunConfig(quantization, profile, seed, activation, arch, bayesian)


def pretrain(data, out_dir, profile="fast", seed=0, activation="softplus", verbose=1, fail_after_epoch=None,
             overwrite=False, config=None, arch="mlp"):
    """Stage 1: the deterministic model, cached as ``out_dir/model.keras`` (reused if the same run finished).

    Raises:
        RunDirError: ``out_dir`` holds something else than this run (and not ``overwrite``).
    """
    cfg = _config(None, profile, seed, activation, arch, config=config)
    profile = get_profile(cfg.profile)
    rd = RunDir(out_dir, "pretrain", cfg.fingerprint(data, stage="pretrain"), RUN_FILES, overwrite)
    if rd.open() == "done" and (rd.path / "model.keras").is_file():
        return keras.models.load_model(rd.path / "model.keras")
    keras.utils.set_random_seed(cfg.seed)
    model = ARCHITECTURES[cfg.arch][0](cfg)
    t = time.perf_counter()
    _fit(model, data, profile, cfg.seed, profile.pretrain_epochs, profile.pretrain_lr, rd,
         fail_after_epoch=fail_after_epoch, verbose=verbose, schedule=profile.pretrain_lr_schedule,
         augment_shift=profile.augment_shift)
    _save_model(model, rd)
    write_json(rd.path / "train.json", {"stage": "pretrain", "seconds": time.perf_counter() - t,
                                        "profile": dataclasses.asdict(profile), "seed": cfg.seed,
                                        "activation": cfg.activation, "arch": cfg.arch})
    rd.finish()
    rd.remove_scratch()
    return model


def train_bnn(data, pretrained, out_dir, quantization="jq4", profile="fast", seed=0, activation="softplus",
              verbose=1, fail_after_epoch=None, overwrite=False, config=None, arch="mlp", bayesian="all"):
    """Stage 2: the Bayesian model initialised from ``pretrained``; writes ``out_dir/model.keras``.

    A run folder of the same configuration (and the same pretrained weights) resumes where it was
    killed, or, if finished, returns its model; anything else is refused unless ``overwrite``.

    Raises:
        RunDirError: ``out_dir`` holds something else than this run (and not ``overwrite``).
    """
    cfg = _config(quantization, profile, seed, activation, arch, bayesian, config=config)
    profile = get_profile(cfg.profile)
    fp = {**cfg.fingerprint(data), "pretrained_weights_sha256": weights_digest(pretrained)}
    rd = RunDir(out_dir, "train", fp, RUN_FILES, overwrite)
    if rd.open() == "done" and (rd.path / "model.keras").is_file():
        return keras.models.load_model(rd.path / "model.keras")
    keras.utils.set_random_seed(cfg.seed)
    x, _ = _train_slice(data, profile, cfg.seed)
    bnn = ARCHITECTURES[cfg.arch][1](cfg, profile, len(x))
    models.init_from_deterministic(bnn, pretrained)
    t = time.perf_counter()
    hist = _fit(bnn, data, profile, cfg.seed, profile.bnn_epochs, profile.bnn_lr, rd,
                extra_callbacks=[qcallbacks.KLAnnealing("linear", warmup=profile.kl_warmup),
                                 qcallbacks.FrozenSigmaCheck()],
                fail_after_epoch=fail_after_epoch, verbose=verbose, schedule=profile.bnn_lr_schedule,
                augment_shift=profile.bnn_augment_shift)
    _save_model(bnn, rd)
    write_json(rd.path / "train.json", {
        "stage": "bnn", "seconds": time.perf_counter() - t, "quantization": cfg.quantization.get_config(),
        "profile": dataclasses.asdict(profile), "seed": cfg.seed, "activation": cfg.activation, "arch": cfg.arch,
        "bayesian": cfg.bayesian,
        "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
        "sigma_mean": [float(np.mean(l.sigma)) for l in bnn.layers if hasattr(l, "rho")],
    })
    rd.finish()
    rd.remove_scratch()
    return bnn


def load_data(profile="fast", data_dir=None, ambiguous_source="regenerated"):
    """Dirty-MNIST for a profile (the data seed is fixed: seeds vary the training only)."""
    from tfqbnn.datasets import load_dirty_mnist

    profile = get_profile(profile)
    return load_dirty_mnist(data_dir=data_dir, ambiguous_source=ambiguous_source,
                            profile=profile.ambiguous_profile, validation_fraction=0.1, seed=0)


def pretrain_dir(profile_name, seed, activation, root=None, config=None, data=None):
    """Where the stage-1 model of a configuration is cached and shared by every stage-2 run.

    With ``config`` and ``data`` the folder name carries a digest of the stage-1 fingerprint, so
    different data or a custom profile never share (and never resume) one cache entry.
    """
    from tfqbnn.datasets.ambiguous import cache_dir

    base = Path(root) if root else Path(cache_dir()) / "pretrain"
    name = f"{profile_name}-s{seed}-{activation}"
    if config is not None:
        name = f"{config.profile_name}-s{config.seed}-{config.activation}-{config.arch}-" + \
            digest(config.fingerprint(data, stage="pretrain"))[:8]
    return base / name


def run(out_dir, quantization="jq4", profile="fast", seed=0, activation="softplus", data=None,
        pretrain_root=None, verbose=1, fail_after_epoch=None, fail_stage="bnn", overwrite=False, arch="mlp",
        config=None, bayesian="all"):
    """Both stages for one configuration (``config``, or built from the arguments); returns the Bayesian model.

    ``out_dir`` is a run folder (see `tfqbnn.rundir`): refused if it holds anything but this run,
    unless ``overwrite``.
    """
    cfg = _config(quantization, profile, seed, activation, arch, bayesian, config)
    _check_out(out_dir, overwrite)  # refuse a foreign --out before spending the data and pretraining time
    data = data if data is not None else load_data(cfg.profile)
    det = pretrain(data, pretrain_dir(None, None, None, pretrain_root, cfg, data), verbose=verbose,
                   fail_after_epoch=fail_after_epoch if fail_stage == "pretrain" else None, config=cfg)
    return train_bnn(data, det, out_dir, verbose=verbose, fail_after_epoch=fail_after_epoch if fail_stage == "bnn"
                     else None, overwrite=overwrite, config=cfg)


def _check_out(out_dir, overwrite):
    """Early refusal of a foreign non-empty ``out_dir`` (the full fingerprint check follows in train_bnn)."""
    p = Path(out_dir)
    rd = RunDir(p, "train", {}, RUN_FILES)
    if overwrite or not p.is_dir() or not rd._entries():
        return
    m = rd.read_manifest()
    if m is None or m.get("kind") != "train":
        rd.open()  # raises the one-line refusal
