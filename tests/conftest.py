import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_shared = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
if "TFQBNN_DATA_DIR" not in os.environ and os.path.isdir(os.path.join(_shared, "mnist")):
    os.environ["TFQBNN_DATA_DIR"] = _shared
