"""Ambiguous-MNIST regeneration following the DDU recipe (Mukhoti et al., arXiv:2102.11582).

Steps (see ../shared/docs/ambiguous_mnist.md and BlackHC/ddu_dirty_mnist 02_dirtymnist.ipynb):
1. MLP VAE 784-512-256-(z 32)-256-512-784 (ReLU, sigmoid out) on normalised MNIST-train, BCE + KL.
2. An ensemble of 5 LeNet-5 trained on normalised MNIST, each keeping its best epoch. Deviation: the
   epoch is chosen on a validation slice of MNIST-train, not on the MNIST test set.
3. "Adjusted" post-processing of decoder outputs: standardise with the mean/std of the VAE
   reconstructions of MNIST-train, map to MNIST scale, clamp(1.2 x - 0.15, 0, 1). We also round to
   the uint8 grid (k/255) *before* scoring, so the scores and labels belong to exactly the stored image.
4. Candidates: for k in {2,3,4}: k distinct classes, 32 MNIST-train images per class encoded to mu,
   64 Dirichlet(1) weight vectors per group (sorted-uniform spacings), decode the convex mixtures,
   score with the ensemble, keep MI <= 0.05 and 0.05 <= H < 3. Stop at `pool_size` kept samples.
5. Entropy-flattened subsampling: 50 bins on [0.05, 1.6], per-bin targets proportional to
   count**0.2, uniform entropy draws matched by searchsorted, per-bin train/test split by ratio,
   shuffle, truncate to 6000 + 6000. Deviation: draws are made unique (no image twice), so train and
   test never share an image; shortfalls are filled from unused kept samples.
6. 10 labels per image drawn from the ensemble-mean softmax; train images first, then test.

Everything random is drawn from one numpy Generator and TF generators seeded from `seed`, so a run is
deterministic for a seed on one machine (not bit-exact with the released DDU files, which is impossible).
"""

import dataclasses
import math
import time

import numpy as np

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclasses.dataclass(frozen=True)
class RegenerationConfig:
    """Sizes of one regeneration run. `pool_size` = number of kept candidates to collect (DDU: 4 * 2**20)."""

    profile: str = "default"
    pool_size: int = 250_000
    max_candidates: int = 6_000_000
    train_images: int = 60_000  # MNIST-train images used to fit the VAE and the ensemble
    validation_images: int = 5_000  # held out of those for the LeNet best-epoch choice
    vae_epochs: int = 74  # as DDU
    vae_milestones: tuple = (0.34, 0.68, 0.88)  # DDU: [25, 50, 65] of 74 epochs, gamma 0.2
    lenet_epochs: int = 19  # as DDU: 19 epochs, keeping the best
    ensemble_size: int = 5
    latent_dim: int = 32
    group_size: int = 32  # images per class per clique (DDU label_batch_size)
    mixtures_per_group: int = 64
    groups_per_step: int = 512  # groups per class count per step (DDU: 65536 // 64 = 1024)
    mi_threshold: float = 0.05
    entropy_range: tuple = (0.05, 3.0)
    hist_bins: int = 50
    hist_range: tuple = (0.05, 1.6)
    num_train: int = 6000
    num_test: int = 6000
    labels_per_image: int = 10
    check_epochs: int = 5  # independent deterministic MLP for the quality check
    batch_size: int = 128

    def __post_init__(self):
        if self.pool_size < self.num_train + self.num_test:
            raise ValueError(
                f"pool_size must be >= num_train + num_test = {self.num_train + self.num_test}, "
                f"received pool_size={self.pool_size}"
            )
        if self.validation_images >= self.train_images:
            raise ValueError(
                f"validation_images must be < train_images={self.train_images}, "
                f"received validation_images={self.validation_images}"
            )


PROFILES = {
    "default": RegenerationConfig(),
    "small": RegenerationConfig(
        profile="small",
        pool_size=60_000,  # 5x the 12000 needed, so the entropy flattening has room
        max_candidates=1_000_000,
        train_images=15_000,
        validation_images=2_000,
        vae_epochs=6,
        lenet_epochs=3,
        groups_per_step=256,
        check_epochs=3,
    ),
}


def get_config(profile="default", **overrides):
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, received profile={profile!r}")
    return dataclasses.replace(PROFILES[profile], **overrides) if overrides else PROFILES[profile]


# ---------------------------------------------------------------------------------------------
# Models


def build_vae(latent_dim=32):
    import keras

    encoder = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(2 * latent_dim),  # [mu, log_var]
        ],
        name="vae_encoder",
    )
    decoder = keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(784, activation="sigmoid"),
        ],
        name="vae_decoder",
    )
    return encoder, decoder


def build_lenet(name="lenet5"):
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(6, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(120, activation="relu"),
            keras.layers.Dense(84, activation="relu"),
            keras.layers.Dense(10),  # logits
        ],
        name=name,
    )


def _normalize(x01):
    return (x01 - MNIST_MEAN) / MNIST_STD


def _batches(n, batch_size, rng):
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def train_vae(x_train01, cfg, seed, rng, progress=True):
    """Trains the VAE (custom loop: BCE on [0,1] pixels summed + KL, Adam, step-decayed lr)."""
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    encoder, decoder = build_vae(cfg.latent_dim)
    opt = keras.optimizers.Adam(learning_rate=1e-3)
    noise = tf.random.Generator.from_seed(seed + 101)
    variables = encoder.trainable_variables + decoder.trainable_variables

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            h = encoder(_normalize(x))
            mu, log_var = h[:, : cfg.latent_dim], h[:, cfg.latent_dim :]
            z = mu + tf.exp(0.5 * log_var) * noise.normal(tf.shape(mu))
            r = tf.clip_by_value(decoder(z), 1e-7, 1 - 1e-7)
            bce = -tf.reduce_sum(x * tf.math.log(r) + (1 - x) * tf.math.log(1 - r))
            kld = -0.5 * tf.reduce_sum(1 + log_var - tf.square(mu) - tf.exp(log_var))
            loss = (bce + kld) / tf.cast(tf.shape(x)[0], tf.float32)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    milestones = [round(m * cfg.vae_epochs) for m in cfg.vae_milestones]
    history = []
    bar = tqdm(range(cfg.vae_epochs), desc="VAE", disable=not progress)
    for epoch in bar:
        opt.learning_rate.assign(1e-3 * 0.2 ** sum(epoch >= m for m in milestones))
        losses = [float(step(tf.constant(x_train01[b]))) for b in _batches(len(x_train01), cfg.batch_size, rng)]
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.2f}")
    return encoder, decoder, history


def train_ensemble(x_tr01, y_tr, x_val01, y_val, cfg, rng, progress=True):
    """Trains `ensemble_size` LeNet-5 in one fused step (own batch order each), keeping each one's
    epoch with the lowest validation loss (DDU kept the best test-loss epoch)."""
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    m = cfg.ensemble_size
    nets = [build_lenet(f"lenet5_{i}") for i in range(m)]
    opt = keras.optimizers.Adam(1e-3)  # elementwise, so one Adam over all nets = one Adam per net
    variables = [v for n in nets for v in n.trainable_variables]
    xt = _normalize(x_tr01.reshape(-1, 28, 28, 1)).astype(np.float32)
    xv = _normalize(x_val01.reshape(-1, 28, 28, 1)).astype(np.float32)

    @tf.function
    def step(xb, yb):  # xb [m, B, 28, 28, 1], yb [m, B]
        with tf.GradientTape() as tape:
            loss = 0.0
            for i, n in enumerate(nets):
                loss += tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(yb[i], n(xb[i], training=True), from_logits=True)
                )
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def val_logits(xb):
        return tf.stack([n(xb, training=False) for n in nets])

    def val_losses():
        logits = np.concatenate([val_logits(tf.constant(xv[i : i + 1000])).numpy() for i in range(0, len(xv), 1000)], 1)
        ce = [keras.losses.sparse_categorical_crossentropy(y_val, lg, from_logits=True) for lg in logits]
        return np.array([float(np.mean(c)) for c in ce])

    best = [None] * m
    best_loss = np.full(m, np.inf)
    best_epoch = [0] * m
    n = len(xt)
    steps = n // cfg.batch_size  # drop the ragged last batch so all members share one batch shape
    for epoch in tqdm(range(cfg.lenet_epochs), desc="LeNet-5 ensemble", disable=not progress):
        perms = np.stack([rng.permutation(n)[: steps * cfg.batch_size] for _ in range(m)])
        perms = perms.reshape(m, steps, cfg.batch_size)
        for s in range(steps):
            idx = perms[:, s]
            step(tf.constant(xt[idx]), tf.constant(y_tr[idx]))
        losses = val_losses()
        for i in range(m):
            if losses[i] < best_loss[i]:
                best_loss[i], best[i], best_epoch[i] = losses[i], nets[i].get_weights(), epoch + 1
    for i in range(m):
        nets[i].set_weights(best[i])
    return nets, {"val_loss": best_loss.tolist(), "best_epoch": best_epoch}


def make_scorer(decoder, nets, recon_mean, recon_std):
    """tf.function z [B, latent] -> (uint8 image [B, 784], ensemble mean probs [B, 10], H [B], MI [B])."""
    import tensorflow as tf

    @tf.function
    def score(z):
        s = decoder(z)
        x = (s - recon_mean) / recon_std * MNIST_STD + MNIST_MEAN  # "adjusted" post-processing
        x = tf.clip_by_value(1.20 * x - 0.15, 0.0, 1.0)
        q = tf.round(x * 255.0)  # score exactly the stored uint8 image
        xin = tf.reshape(_normalize(q / 255.0), (-1, 28, 28, 1))
        probs = tf.stack([tf.nn.softmax(n(xin, training=False)) for n in nets])  # [M, B, 10]
        mean = tf.reduce_mean(probs, 0)
        h = -tf.reduce_sum(tf.math.xlogy(mean, mean), -1)
        avg_h = tf.reduce_mean(-tf.reduce_sum(tf.math.xlogy(probs, probs), -1), 0)
        return tf.cast(q, tf.uint8), mean, h, h - avg_h

    return score


def ensemble_probs(nets, x01, batch_size=2048):
    import tensorflow as tf

    xin = _normalize(x01.reshape(-1, 28, 28, 1)).astype(np.float32)
    out = []
    for i in range(0, len(xin), batch_size):
        b = tf.constant(xin[i : i + batch_size])
        out.append(np.mean([tf.nn.softmax(n(b, training=False)).numpy() for n in nets], 0))
    return np.concatenate(out)


def generate_pool(encoder, score, x_train01, y_train, cfg, rng, progress=True):
    """Step 4: convex latent mixtures of 2-4 classes; returns the kept candidates (uint8 images,
    mean probs, H, MI) and counters."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    mu = []
    for i in range(0, len(x_train01), 4096):
        mu.append(encoder(tf.constant(_normalize(x_train01[i : i + 4096])))[:, : cfg.latent_dim].numpy())
    mu = np.concatenate(mu)
    class_idx = [np.flatnonzero(y_train == c) for c in range(10)]
    keep = {"x": [], "p": [], "h": [], "mi": []}
    kept = seen = 0
    lo, hi = cfg.entropy_range
    chunk = 8192
    bar = tqdm(total=cfg.pool_size, desc="kept candidates", disable=not progress)
    while kept < cfg.pool_size and seen < cfg.max_candidates:
        for k in (2, 3, 4):
            cliques = max(1, cfg.groups_per_step // cfg.group_size)
            sel = []
            for _ in range(cliques):
                classes = rng.choice(10, k, replace=False)
                sel.append(np.stack([rng.choice(class_idx[c], cfg.group_size) for c in classes], 1))
            sel = np.concatenate(sel)  # [groups, k]
            u = np.sort(rng.random((len(sel), cfg.mixtures_per_group, k - 1)), -1)
            edges = np.concatenate([np.zeros(u.shape[:-1] + (1,)), u, np.ones(u.shape[:-1] + (1,))], -1)
            w = np.diff(edges, axis=-1).astype(np.float32)  # Dirichlet(1) weights [groups, 64, k]
            z = np.einsum("gmk,gkd->gmd", w, mu[sel]).reshape(-1, cfg.latent_dim).astype(np.float32)
            for i in range(0, len(z), chunk):
                q, p, h, mi = (t.numpy() for t in score(tf.constant(z[i : i + chunk])))
                ok = (mi <= cfg.mi_threshold) & (h >= lo) & (h < hi)
                keep["x"].append(q[ok])
                keep["p"].append(p[ok])
                keep["h"].append(h[ok])
                keep["mi"].append(mi[ok])
                kept += int(ok.sum())
                bar.update(int(ok.sum()))
            seen += len(z)
        bar.set_postfix(candidates=seen, kept_frac=f"{kept / max(seen, 1):.3f}")
    bar.close()
    pool = {key: np.concatenate(v) for key, v in keep.items()}
    if len(pool["h"]) < cfg.num_train + cfg.num_test:
        raise RuntimeError(
            f"only {len(pool['h'])} candidates kept from {seen}; raise max_candidates={cfg.max_candidates}"
        )
    return pool, {"candidates_scored": seen, "kept": len(pool["h"])}


def subsample_flattened(entropy, cfg, rng):
    """Step 5: returns (train_idx, test_idx) into the pool, unique and disjoint."""
    n_total = cfg.num_train + cfg.num_test
    hist, edges = np.histogram(entropy, bins=cfg.hist_bins, range=cfg.hist_range)
    weights = hist.astype(np.float64) ** 0.2
    # (an empty histogram only happens with untrained toy models; then everything comes from the fill)
    targets = weights / max(weights.sum(), 1.0) * (n_total + cfg.hist_bins)
    ratio = cfg.num_train / n_total
    used = np.zeros(len(entropy), bool)
    train, test = [], []
    for lo, hi, t in zip(edges[:-1], edges[1:], targets):
        idx = np.flatnonzero((entropy >= lo) & (entropy < hi))
        if len(idx) == 0:
            continue
        order = idx[np.argsort(entropy[idx], kind="stable")]
        draws = rng.random(math.ceil(t)) * (hi - lo) + lo
        pos = np.clip(np.searchsorted(entropy[order], draws), 0, len(order) - 1)
        picked = list(dict.fromkeys(order[pos].tolist()))  # unique, in draw order
        short = min(math.ceil(t), len(order)) - len(picked)
        if short > 0:  # duplicates: fill from the bin's unused samples
            rest = np.setdiff1d(order, picked)
            picked += rng.choice(rest, short, replace=False).tolist()
        used[picked] = True
        n_tr = math.ceil(len(picked) * ratio)
        train += picked[:n_tr]
        test += picked[n_tr:]
    train, test = rng.permutation(train), rng.permutation(test)
    # Fill shortfalls (small pools) from unused kept samples; move test surplus to train if needed.
    for part, need in ((0, cfg.num_train), (1, cfg.num_test)):
        cur = (train, test)[part]
        if len(cur) < need:
            extra = rng.choice(np.flatnonzero(~used), need - len(cur), replace=False)
            used[extra] = True
            cur = np.concatenate([cur, extra])
        if part == 0:
            train = cur
        else:
            test = cur
    return train[: cfg.num_train].astype(np.int64), test[: cfg.num_test].astype(np.int64)


def draw_labels(probs, num_labels, rng):
    """Step 6: `num_labels` categorical draws per row of `probs` (like torch.multinomial, replacement)."""
    cdf = np.cumsum(probs.astype(np.float64), -1)
    cdf /= cdf[:, -1:]
    u = rng.random((len(probs), num_labels))
    return np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(-1), probs.shape[1] - 1).astype(np.int64)


def regenerate(seed=0, config=None, data_dir=None, progress=True):
    """Runs steps 1-6. Returns (arrays, info): arrays holds `x` uint8 [12000, 28, 28] (train images
    first), `labels` int64 [12000, 10], `predictions` float32 [12000, 10], `entropy`, `mi` float32 [12000],
    `pool_entropy`, `pool_mi` (all kept candidates); info holds timings and training figures."""
    import keras
    import tensorflow as tf

    from tfqbnn.datasets.mnist import load_idx_uint8

    cfg = config or get_config("default")
    from tensorflow.python.framework import config as tf_config  # has the is/disable counterparts

    was_deterministic = tf_config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:
        t0 = time.time()
        rng = np.random.default_rng(seed)
        x_u8, y = load_idx_uint8("mnist", "train", data_dir)
        x01 = x_u8.reshape(-1, 784).astype(np.float32) / 255.0
        sub = rng.permutation(len(x01))[: cfg.train_images]
        fit_idx, val_idx = sub[cfg.validation_images :], sub[: cfg.validation_images]
        timings = {}

        t = time.time()
        encoder, decoder, vae_hist = train_vae(x01[fit_idx], cfg, seed, rng, progress)
        timings["vae"] = time.time() - t

        t = time.time()
        nets, ens_info = train_ensemble(x01[fit_idx], y[fit_idx], x01[val_idx], y[val_idx], cfg, rng, progress)
        timings["ensemble"] = time.time() - t
        xt_u8, yt = load_idx_uint8("mnist", "test", data_dir)
        ens_info["mnist_test_accuracy"] = float(
            np.mean(ensemble_probs(nets, xt_u8.reshape(-1, 784) / 255.0).argmax(-1) == yt)
        )

        t = time.time()
        recon = []
        for i in range(0, len(x01), 4096):
            h = encoder(tf.constant(_normalize(x01[i : i + 4096])))
            recon.append(decoder(h[:, : cfg.latent_dim]).numpy())
        recon = np.concatenate(recon)
        recon_mean, recon_std = float(recon.mean()), float(recon.std())
        del recon
        score = make_scorer(decoder, nets, recon_mean, recon_std)
        pool, pool_info = generate_pool(encoder, score, x01, y, cfg, rng, progress)
        timings["candidates"] = time.time() - t

        # Different latents can round to the same uint8 image (mixtures near a vertex): keep one copy,
        # so no image appears twice (in particular not in both train and test).
        flat = np.ascontiguousarray(pool["x"]).view(np.dtype((np.void, pool["x"].shape[1])))[:, 0]
        first = np.sort(np.unique(flat, return_index=True)[1])
        pool_info["duplicates_removed"] = int(len(flat) - len(first))
        pool = {k: v[first] for k, v in pool.items()}
        tr, te = subsample_flattened(pool["h"], cfg, rng)
        sel = np.concatenate([tr, te])
        probs = pool["p"][sel]
        arrays = {
            "x": pool["x"][sel].reshape(-1, 28, 28),
            "labels": draw_labels(probs, cfg.labels_per_image, rng),
            "predictions": probs.astype(np.float32),
            "entropy": pool["h"][sel].astype(np.float32),
            "mi": pool["mi"][sel].astype(np.float32),
            "pool_entropy": pool["h"].astype(np.float32),
            "pool_mi": pool["mi"].astype(np.float32),
        }
        timings["total"] = time.time() - t0
        info = {
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "vae_final_loss": vae_hist[-1],
            "ensemble": ens_info,
            "vae_recon_mean": recon_mean,
            "vae_recon_std": recon_std,
            **pool_info,
        }
        return arrays, info
    finally:
        if not was_deterministic:  # do not leave a process-wide switch on for the caller
            tf_config.disable_op_determinism()
