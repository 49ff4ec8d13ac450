"""Locating, checksumming and (if missing) downloading the official dataset files.

Search order for a file `<dataset>/<name>`: the `data_dir` argument, then `$TFQBNN_DATA_DIR`, then the
Keras cache (`$KERAS_HOME` or `~/.keras`, sub-directory `datasets/<dataset>`). When no directory has it,
it is downloaded into the Keras cache with `keras.utils.get_file`. A file found anywhere must match the
official SHA-256 hard-coded below; a mismatch is an error and the file is never replaced, so a user's
file is never overwritten. Directories are only read, so a read-only data directory works.
"""

import hashlib
import os

from tfqbnn.datasets.errors import DatasetFileError

# SHA-256 of the official .gz files (equal to TensorFlow Datasets' url_checksums and the project's
# verified copy in ../shared/data/SHA256SUMS).
SHA256 = {
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "fashion_mnist/train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "fashion_mnist/train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "fashion_mnist/t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "fashion_mnist/t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

# Official origins, tried in order (the TFDS / Keras mirrors of the original distributions).
URLS = {
    "mnist": (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "fashion_mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

# Keras' own cache sub-directories (keras.datasets.fashion_mnist uses the same .gz files).
KERAS_SUBDIR = {
    "mnist": "datasets/mnist",
    "fashion_mnist": "datasets/fashion-mnist",
    "ambiguous_mnist": "datasets/ambiguous_mnist",  # the released DDU files (see ddu_pt.py)
}

ENV_DATA_DIR = "TFQBNN_DATA_DIR"

_verified = {}  # (realpath, size, mtime_ns) -> sha256, so a file is hashed once per process


def keras_cache_dir():
    """The Keras cache root used by `keras.utils.get_file` (`$KERAS_HOME` or `~/.keras`)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def file_digest(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path, expected, algorithm="sha256"):
    """Raises `DatasetFileError` naming the file, the expected and the actual hash on mismatch."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, algorithm)
    actual = _verified.get(key) or file_digest(path, algorithm)
    if actual != expected:
        raise DatasetFileError(path, f"{algorithm} mismatch: expected {expected}, actual {actual}")
    _verified[key] = actual
    return path


def search_dirs(dataset, data_dir=None):
    """The candidate directories for `dataset`, in lookup order, as (label, path) pairs."""
    dirs = []
    if data_dir is not None:
        dirs.append(("data_dir", os.path.join(os.fspath(data_dir), dataset)))
    if os.environ.get(ENV_DATA_DIR):
        dirs.append((ENV_DATA_DIR, os.path.join(os.environ[ENV_DATA_DIR], dataset)))
    dirs.append(("keras cache", os.path.join(keras_cache_dir(), KERAS_SUBDIR[dataset])))
    return dirs


def download_file(dataset, name, digest, algorithm="sha256", origins=None):
    """Downloads `<dataset>/<name>` into the Keras cache from the first working origin, checksum-verified.

    `origins` are base URLs (default: the official mirrors of `dataset`). A partial or corrupt download is
    removed; when every origin fails, a `DatasetFileError` lists each URL's error.
    """
    import keras  # imported lazily: locating local files must not need TensorFlow

    target_dir = os.path.join(keras_cache_dir(), KERAS_SUBDIR[dataset])
    target = os.path.join(target_dir, name)
    errors = []
    for base in origins or URLS[dataset]:
        try:
            path = keras.utils.get_file(
                fname=name,
                origin=base + name,
                file_hash=digest,
                hash_algorithm=algorithm,
                cache_dir=keras_cache_dir(),
                cache_subdir=KERAS_SUBDIR[dataset],
            )
            return verify_checksum(path, digest, algorithm)
        except Exception as e:  # network, permission or hash errors: try the next mirror
            errors.append(f"{base}{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if os.path.exists(target):  # our own partial/corrupt download (the file was absent before)
                try:
                    os.remove(target)
                except OSError:
                    pass
    raise DatasetFileError(target, "download failed; " + "; ".join(errors))


def locate(dataset, name, data_dir=None, download=True):
    """Returns the path of a verified official file `<dataset>/<name>`, downloading it if missing.

    Raises:
        DatasetFileError: the first file found has the wrong SHA-256, or the file is found nowhere and
            cannot be downloaded (the message lists the directories searched).
    """
    key = f"{dataset}/{name}"
    if key not in SHA256:
        raise ValueError(f"Unknown dataset file {key!r}; known: {sorted(SHA256)}")
    searched = []
    for label, d in search_dirs(dataset, data_dir):
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return verify_checksum(path, SHA256[key])
        searched.append(f"{label} {d}" + ("" if os.path.isdir(d) else " (missing directory)"))
    if not download:
        raise DatasetFileError(key, "not found in " + ", ".join(searched) + "; downloads disabled")
    try:
        return download_file(dataset, name, SHA256[key])
    except DatasetFileError as e:
        raise DatasetFileError(key, "not found in " + ", ".join(searched) + f"; {e.problem}") from None
