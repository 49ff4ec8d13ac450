"""`tfqbnn-bundle EXPORT_DIR --out DIR [--layout cmake|arduino] [--board NAME] [--sample-table derived|offset]`:
a self-contained C library of an exported model to copy into a board project (tflite_export.bundle)."""

from __future__ import annotations

import argparse
import os

from tfqbnn.cli import samples_arg


def main(argv=None):
    from tflite_export import bundle, firmware_runner

    p = argparse.ArgumentParser(description="Write a self-contained C library bundle of an exported model.")
    p.add_argument("export_dir", help="directory written by tfqbnn-export (model.tflite + manifest.json)")
    p.add_argument("--out", required=True, help="bundle folder (new, or an earlier bundle's)")
    p.add_argument("--layout", choices=bundle.LAYOUTS, default="cmake", help="CMake project or Arduino library")
    p.add_argument("--board", choices=sorted(firmware_runner.BOARD_TABLE), default=None,
                   help="CMake board settings for this board only (default: every board of boards.mk)")
    p.add_argument("--sample-table", choices=["derived", "offset"], default="derived",
                   help="sampling table in flash: derived (64 KB per grid, fastest) or offset (4 KB per grid)")
    p.add_argument("--samples", type=samples_arg, default=10, help="MC samples of the example's test images (1..65536)")
    p.add_argument("--name", default="QbnnModel", help="library name (Arduino)")
    a = p.parse_args(argv)
    if not os.path.isdir(a.export_dir):
        p.error(f"export_dir {a.export_dir!r} is not a directory")
    try:
        res = bundle.write_bundle(a.export_dir, a.out, layout=a.layout, board=a.board, sample_table=a.sample_table,
                                  num_samples=a.samples, name=a.name)
    except ValueError as e:
        p.exit(2, f"tfqbnn-bundle: error: {e}\n")
    print(f"wrote a {a.layout} bundle ({len(res['files'])} files; ops {', '.join(res['ops'])}) to {a.out}")


if __name__ == "__main__":
    main()
