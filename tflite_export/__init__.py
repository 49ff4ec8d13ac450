"""tflite_export: integer deployment of tfqbnn JQ models (see SPEC.md in this package).

* `intmath` -- pure-numpy integer arithmetic: `sampler` (SPEC section 3), `fixedpoint` / `softmax` (TFLite's
  requantization and int8 softmax), `window` (padding rules)
* `ir` -- the op-level IR (SPEC section 10): op protocol, one module per op, `ir.registry.OPS`
* `storage` -- stored layouts (SPEC section 2)
* `reference` -- the numpy integer engine (`IntegerModel`, a list of IR ops)
* `artifacts` -- SHA-256 of the written files; `load_exported` verifies and cross-checks an export directory
* `frontend` -- Keras layer class -> IR op(s): the registry of supported Keras layers
* `tflite_io` -- the TFLite graph writer (each op's `lower_tflite`) and validating readers
* `convert` -- Keras model -> `IntegerModel` -> model.tflite / model_split.tflite / manifest.json
* `export_all(model, out_dir, weights=...)` -- the one call `scripts/export.py` makes
"""

SPEC_VERSION = 4  # SPEC.md: 1 = Bayesian MLP; 2 = + op-level IR (section 10), QBNN_SAMPLE options v2;
#   3 = + section 11, the HYBRID / PFP inference modes (exported files unchanged)
#   4 = + the PACKED layout (per-layer mu / sigma bits, sum <= 8) and manifest version 3 for such exports


def _read_version():
    """tfqbnn's `__version__`, the single source (setup.cfg reads it with `attr:`), read statically the same
    way so that importing tflite_export does not import TensorFlow."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("tfqbnn")
    with open(spec.origin) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"no __version__ in {spec.origin}")


__version__ = _read_version()


def export_all(*args, **kwargs):
    from tflite_export.convert import export_all as _export_all

    return _export_all(*args, **kwargs)


__all__ = ["SPEC_VERSION", "__version__", "export_all"]
