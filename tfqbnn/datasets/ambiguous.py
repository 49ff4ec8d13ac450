"""Ambiguous-MNIST: regenerated per the DDU recipe (cached with a JSON manifest) or the real DDU files.

Layout (both sources) is DDU's flattened one: 12000 unique images, each repeated 10 times in a row
with its 10 labels; split="train" is flat[:60000] (images 0..5999), split="test" is flat[60000:].
"""

import dataclasses
import datetime
import json
import os
import platform
import warnings

import numpy as np

from tfqbnn.datasets.errors import DatasetFileError
from tfqbnn.datasets.files import file_digest, verify_checksum

ENV_CACHE_DIR = "TFQBNN_CACHE_DIR"
REGENERATED_NAME = "Ambiguous-MNIST (regenerated per DDU recipe)"
LABELS_PER_IMAGE = 10
NUM_TRAIN_IMAGES = 6000


class SourcedArrays(tuple):
    """An `(x, y)` pair (unpacks like a tuple) that also carries `.source`, a dict saying where the
    data came from (`source["name"]` is "regenerated" or "ddu", plus file, hash and manifest)."""

    def __new__(cls, x, y, source):
        obj = super().__new__(cls, (x, y))
        obj.source = source
        return obj

    @property
    def x(self):
        return self[0]

    @property
    def y(self):
        return self[1]


def cache_dir(path=None):
    """Cache directory: `path`, else `$TFQBNN_CACHE_DIR`, else `~/.cache/tfqbnn`."""
    return os.fspath(path or os.environ.get(ENV_CACHE_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "tfqbnn"))


def cache_stem(profile="default", seed=0, pool_size=None):
    from tfqbnn.datasets.recipe import get_config

    stem = f"ambiguous_mnist-{profile}-seed{int(seed)}"
    if pool_size is not None and pool_size != get_config(profile).pool_size:
        stem += f"-pool{int(pool_size)}"
    return stem


def _versions():
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("numpy", "tensorflow", "keras", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def make_ambiguous_mnist(seed=0, profile="default", out_dir=None, data_dir=None, progress=True, verbose=True, **overrides):
    """Regenerates Ambiguous-MNIST and writes, in `out_dir` (default: the cache dir),
    `<stem>.npz`, `<stem>.json` (manifest), `<stem>_report.json`, `<stem>_entropy.png`, `<stem>_samples.png`.

    `overrides` change fields of the profile's `RegenerationConfig` (e.g. pool_size=...).
    Returns the manifest dict (its "quality" entry holds the report figures).
    """
    from tfqbnn.datasets import quality, recipe

    cfg = recipe.get_config(profile, **overrides)
    out_dir = cache_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = cache_stem(profile, seed, cfg.pool_size)
    prefix = os.path.join(out_dir, stem)

    arrays, info = recipe.regenerate(seed=seed, config=cfg, data_dir=data_dir, progress=progress)
    check = quality.independent_check(arrays["x"], data_dir=data_dir, epochs=cfg.check_epochs, seed=seed)
    summary = quality.summarize(arrays, cfg.num_train)
    figures = quality.save_figures(arrays, prefix, cfg.hist_range)

    npz = prefix + ".npz"
    tmp = prefix + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, npz)
    report = {
        "name": REGENERATED_NAME,
        "profile": profile,
        "seed": int(seed),
        "info": info,
        "summary": summary,
        "independent_check": check,
    }
    manifest = {
        "name": REGENERATED_NAME,
        "file": os.path.basename(npz),
        "sha256": file_digest(npz),
        "seed": int(seed),
        "profile": profile,
        "pool_size": cfg.pool_size,
        "config": dataclasses.asdict(cfg),
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "info": info,
        "quality": {"summary": summary, "independent_check": check},
        "report": os.path.basename(prefix + "_report.json"),
        "figures": [os.path.basename(f) for f in figures],
    }
    quality.write_report(report, prefix + "_report.json")
    quality.write_report(manifest, prefix + ".json")  # manifest last: its presence marks a complete cache
    if verbose:
        print(quality.format_report(report))
        print(f"  wrote {npz} (sha256 {manifest['sha256']}) and {prefix}.json")
    return manifest


def load_regenerated_arrays(profile="default", seed=0, cache=None, data_dir=None, regenerate=True, progress=True):
    """Returns (arrays, manifest, npz_path) from the cache, regenerating (and caching) when absent.

    The cached file's SHA-256 must match its manifest; a mismatch is a `DatasetFileError`.
    """
    d = cache_dir(cache)
    stem = cache_stem(profile, seed)
    man_path = os.path.join(d, stem + ".json")
    if not os.path.isfile(man_path):
        if not regenerate:
            raise DatasetFileError(man_path, "no regenerated Ambiguous-MNIST cache (run scripts/make_ambiguous_mnist.py)")
        print(f"Regenerating Ambiguous-MNIST (profile={profile}, seed={seed}) into {d} ...", flush=True)
        make_ambiguous_mnist(seed=seed, profile=profile, out_dir=d, data_dir=data_dir, progress=progress)
    try:
        with open(man_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetFileError(man_path, f"unreadable manifest ({e})") from None
    from tfqbnn.datasets.recipe import get_config

    current = json.loads(json.dumps(dataclasses.asdict(get_config(profile))))
    changed = sorted(k for k in current if manifest.get("config", {}).get(k) != current[k])
    if changed:  # still usable and traceable (the manifest says what it is); regeneration is the user's call
        warnings.warn(f"{man_path}: made with another '{profile}' profile config (differs in {changed}); "
                      "delete it to regenerate", stacklevel=2)
    npz = os.path.join(d, manifest.get("file", stem + ".npz"))
    if not os.path.isfile(npz):
        raise DatasetFileError(npz, f"listed in {man_path} but missing")
    verify_checksum(npz, manifest["sha256"])
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("x", "labels", "predictions", "entropy", "mi")}
    if arrays["x"].shape != (12000, 28, 28) or arrays["labels"].shape != (12000, LABELS_PER_IMAGE):
        raise DatasetFileError(npz, f"wrong shapes x {arrays['x'].shape}, labels {arrays['labels'].shape}")
    return arrays, manifest, npz


def flatten_ddu(images, labels, split):
    """DDU flattening: image j//10 with label labels[j//10, j%10]; train = first 6000 images."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', received split={split!r}")
    sl = slice(0, NUM_TRAIN_IMAGES) if split == "train" else slice(NUM_TRAIN_IMAGES, None)
    imgs, labs = images[sl], labels[sl]
    return np.repeat(imgs, LABELS_PER_IMAGE, axis=0), labs.reshape(-1).astype(np.int64)


def load_ambiguous_unique(source="regenerated", data_dir=None, profile="default", seed=0, cache=None):
    """The 12000 unique images (uint8 [12000, 28, 28] when regenerated, float32 [12000, 28, 28] in
    [0, 1] for the real DDU files), labels int64 [12000, 10], and the source dict."""
    if source == "regenerated":
        arrays, manifest, npz = load_regenerated_arrays(profile, seed, cache, data_dir)
        src = {
            "name": "regenerated",
            "description": REGENERATED_NAME,
            "file": npz,
            "sha256": manifest["sha256"],
            "profile": manifest["profile"],
            "seed": manifest["seed"],
            "pool_size": manifest["pool_size"],
            "manifest": npz[: -len(".npz")] + ".json",
        }
        return arrays["x"], arrays["labels"], src
    if source == "ddu":
        from tfqbnn.datasets.ddu_pt import load_ddu_files

        x, labels, src = load_ddu_files(data_dir)
        return x, labels, src
    raise ValueError(f"source must be 'regenerated' or 'ddu', received source={source!r}")


def load_ambiguous_mnist(split="train", source="regenerated", data_dir=None, profile="default", seed=0, cache_dir=None):
    """Ambiguous-MNIST in the DDU flattened layout: x float32 [60000, 784] in [0, 1], y int64 [60000].

    Args:
        split: "train" (unique images 0..5999) or "test" (6000..11999); each image appears 10 times in a
            row, once per drawn label.
        source: "regenerated" (this project's regeneration per the DDU recipe, cached under
            `cache_dir` / `$TFQBNN_CACHE_DIR` / `~/.cache/tfqbnn`, generated on first use) or "ddu" (the
            released `amnist_samples.pt` / `amnist_labels.pt`, MD5-checked, read without torch).
        data_dir: where the official MNIST (and the DDU files, under `ambiguous_mnist/`) are looked up.
        profile: which regeneration, "default" or "small"; ignored for source="ddu".
        seed: seed of the regeneration; ignored for source="ddu".

    Returns:
        A `SourcedArrays`: unpack as `x, y = ...`; `.source` is a dict naming the source, file and hash.
        Pixels are not mean/std-normalised (DDU normalises in its loader; do it yourself if needed).
    """
    images, labels, src = load_ambiguous_unique(source, data_dir, profile, seed, cache_dir)
    x, y = flatten_ddu(images, labels, split)
    x = x.reshape(len(x), 784)
    x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    return SourcedArrays(x, y, dict(src, split=split))
