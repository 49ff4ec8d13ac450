import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_shared = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
if "TFQBNN_DATA_DIR" not in os.environ and os.path.isdir(os.path.join(_shared, "mnist")):
    os.environ["TFQBNN_DATA_DIR"] = _shared

import pathlib  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_ambiguous_cache(tmp_path_factory):
    """A cache dir holding the small-profile regenerated Ambiguous-MNIST (seed 0), made once per session."""
    from tfqbnn.datasets import ambiguous

    d = tmp_path_factory.mktemp("tfqbnn-cache")
    ambiguous.make_ambiguous_mnist(seed=0, profile="small", out_dir=d, progress=False, verbose=False)
    return pathlib.Path(d)
