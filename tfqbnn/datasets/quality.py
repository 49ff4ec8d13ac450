"""Quality report of a regenerated Ambiguous-MNIST: kept ranges, an independent check, and figures."""

import json
import os

import numpy as np


def _entropy(p):
    p = np.clip(p.astype(np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(-1)


def independent_check(x_amb_u8, data_dir=None, epochs=5, seed=0):
    """A deterministic MLP (784-100-100-10, ReLU) trained on MNIST only, never on the ensemble's output.

    Returns mean softmax entropy on MNIST test and on the regenerated images, their ratio and the
    entropy AUROC (MNIST test = 0, Ambiguous = 1). Each unique image counts once; the flattened DDU
    layout repeats each image 10 times, which changes neither figure.
    """
    import keras
    from sklearn.metrics import roc_auc_score

    from tfqbnn.datasets.mnist import load_mnist

    keras.utils.set_random_seed(seed + 7)
    x, y = load_mnist("train", data_dir)
    xt, yt = load_mnist("test", data_dir)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    p_test = model.predict(xt, batch_size=2048, verbose=0)
    xa = x_amb_u8.reshape(len(x_amb_u8), 784).astype(np.float32) / 255.0
    p_amb = model.predict(xa, batch_size=2048, verbose=0)
    h_test, h_amb = _entropy(p_test), _entropy(p_amb)
    auroc = roc_auc_score(np.r_[np.zeros(len(h_test)), np.ones(len(h_amb))], np.r_[h_test, h_amb])
    return {
        "mlp_mnist_test_accuracy": float(np.mean(p_test.argmax(-1) == yt)),
        "mean_entropy_mnist_test": float(h_test.mean()),
        "mean_entropy_ambiguous": float(h_amb.mean()),
        "entropy_ratio": float(h_amb.mean() / h_test.mean()),
        "entropy_auroc": float(auroc),
        "passes_ratio_ge_5": bool(h_amb.mean() >= 5 * h_test.mean()),
        "passes_auroc_ge_0_9": bool(auroc >= 0.9),
    }


def summarize(arrays, num_train):
    e, mi = arrays["entropy"], arrays["mi"]
    out = {
        "pool_size_kept": int(len(arrays["pool_entropy"])),
        "pool_entropy_range": [float(arrays["pool_entropy"].min()), float(arrays["pool_entropy"].max())],
        "pool_mi_range": [float(arrays["pool_mi"].min()), float(arrays["pool_mi"].max())],
        "selected_entropy_range": [float(e.min()), float(e.max())],
        "selected_mi_range": [float(mi.min()), float(mi.max())],
        "selected_entropy_mean": {"train": float(e[:num_train].mean()), "test": float(e[num_train:].mean())},
        "unique_images": int(len(np.unique(arrays["x"].reshape(len(e), -1), axis=0))),
        "label_histogram": np.bincount(arrays["labels"].ravel(), minlength=10).tolist(),
    }
    return out


def save_figures(arrays, out_prefix, hist_range=(0.05, 1.6)):
    """Writes <prefix>_entropy.png (kept pool vs selected) and <prefix>_samples.png (grid by entropy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0.0, max(3.0, float(arrays["pool_entropy"].max())), 61)
    ax.hist(arrays["pool_entropy"], bins=bins, alpha=0.6, label=f"kept pool ({len(arrays['pool_entropy'])})")
    ax.hist(arrays["entropy"], bins=bins, alpha=0.8, label=f"selected ({len(arrays['entropy'])})")
    ax.set_yscale("log")
    ax.set_xlabel("ensemble predictive entropy (nats)")
    ax.set_ylabel("count")
    ax.axvspan(*hist_range, color="grey", alpha=0.1, label="flattening range")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_prefix + "_entropy.png", dpi=100)
    plt.close(fig)

    rows, cols = 8, 12
    e = arrays["entropy"]
    order = np.argsort(e, kind="stable")
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05))
    for r in range(rows):
        chunk = order[r * len(order) // rows : (r + 1) * len(order) // rows]
        for c in range(cols):
            i = chunk[c * len(chunk) // cols]
            a = axes[r, c]
            a.imshow(arrays["x"][i], cmap="gray", vmin=0, vmax=255)
            top = np.argsort(arrays["predictions"][i])[::-1][:2]
            a.set_title(f"{top[0]}/{top[1]} H{e[i]:.2f}", fontsize=6)
            a.axis("off")
    fig.tight_layout()
    fig.savefig(out_prefix + "_samples.png", dpi=100)
    plt.close(fig)
    return [out_prefix + "_entropy.png", out_prefix + "_samples.png"]


def write_report(report, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def format_report(report):
    q, c = report["summary"], report["independent_check"]
    return "\n".join(
        [
            f"Ambiguous-MNIST regenerated (profile={report['profile']}, seed={report['seed']}): "
            f"{report['info']['kept']} kept of {report['info']['candidates_scored']} candidates",
            f"  kept pool: entropy {q['pool_entropy_range'][0]:.4f}..{q['pool_entropy_range'][1]:.4f}, "
            f"MI {q['pool_mi_range'][0]:.4f}..{q['pool_mi_range'][1]:.4f}",
            f"  selected 12000: entropy {q['selected_entropy_range'][0]:.4f}..{q['selected_entropy_range'][1]:.4f}, "
            f"MI {q['selected_mi_range'][0]:.4f}..{q['selected_mi_range'][1]:.4f}, unique images {q['unique_images']}",
            f"  ensemble MNIST-test accuracy {report['info']['ensemble']['mnist_test_accuracy']:.4f}",
            f"  independent MLP (acc {c['mlp_mnist_test_accuracy']:.4f}): mean entropy MNIST-test "
            f"{c['mean_entropy_mnist_test']:.4f} vs Ambiguous {c['mean_entropy_ambiguous']:.4f} "
            f"(ratio {c['entropy_ratio']:.1f}, need >= 5), entropy AUROC {c['entropy_auroc']:.4f} (need >= 0.9)",
            f"  timings (s): {report['info']['timings_s']}",
        ]
    )
