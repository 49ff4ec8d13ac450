"""`tfqbnn-c-sources EXPORT_DIR --out GEN_DIR` (or `python -m tfqbnn.cli.c_sources`): the C runtime's
model_data.c/.h and test_vectors.c/.h for an exported model, with real test images of the three Dirty-MNIST
sets (the firmware Makefile's `gen`)."""

from __future__ import annotations

import argparse
import os
import sys

from tfqbnn.cli import samples_arg, seed32_arg


def main(argv=None):
    p = argparse.ArgumentParser(description="Write model_data.c/.h and test_vectors.c/.h for the C runtime.")
    p.add_argument("export_dir", help="directory written by tfqbnn-export (model.tflite + manifest.json)")
    p.add_argument("--out", required=True, help="output directory for the C sources")
    p.add_argument("--samples", type=samples_arg, default=10, help="MC samples per test image (1..65536)")
    p.add_argument("--seed", type=seed32_arg, default=None, help="32-bit stream seed (default: the model's)")
    p.add_argument("--per-set", type=int, default=4, help="test images per data set")
    p.add_argument("--sample-table", choices=["derived", "offset"], default="derived",
                   help="sampling table in flash: derived (64 KB per grid, fastest) or offset (4 KB per grid)")
    a = p.parse_args(argv)
    if not os.path.isdir(a.export_dir):
        p.error(f"export_dir {a.export_dir!r} is not a directory")
    if a.per_set < 1:
        p.error(f"--per-set must be >= 1; received {a.per_set}")
    from tflite_export import c_source
    from tfqbnn.datasets.test_images import sample_test_images

    try:
        images, sources = sample_test_images(a.per_set)
        c_source.generate(a.export_dir, a.out, images, sources, num_samples=a.samples, seed=a.seed,
                          sample_table=a.sample_table)
    except ValueError as e:  # a bad export, a folder we must not write into: one line naming it
        sys.exit(f"{p.prog}: {e}")
    print(f"wrote model_data.c/.h and test_vectors.c/.h to {a.out}")


if __name__ == "__main__":
    main()
