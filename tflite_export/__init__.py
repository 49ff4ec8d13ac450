"""tflite_export: integer deployment of tfqbnn JQ models (see SPEC.md in this package).

* `sampler` / `storage` -- weight sampler and stored layouts (SPEC sections 2-3)
* `fixedpoint` / `softmax` -- TFLite's integer requantization and int8 softmax
* `reference` -- the numpy integer engine (`IntegerModel`)
* `convert` -- Keras model -> `IntegerModel` -> model.tflite / model_split.tflite / manifest.json
* `export_all(model, out_dir, weights=...)` -- the one call `scripts/export.py` makes
"""

SPEC_VERSION = 1


def export_all(*args, **kwargs):
    from tflite_export.convert import export_all as _export_all

    return _export_all(*args, **kwargs)


__all__ = ["SPEC_VERSION", "export_all"]
