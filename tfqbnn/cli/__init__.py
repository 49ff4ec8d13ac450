"""Command-line entry points (``tfqbnn-train``, ``tfqbnn-evaluate``, ``tfqbnn-sweep``, ``tfqbnn-export``).

Each module holds ``main(argv=None)``; ``scripts/*.py`` and the console scripts of setup.cfg call them.
Imports of the heavy parts (data, export) happen inside ``main``: `tflite_export` is downstream of the library
(it converts tfqbnn models), so only the CLI reaches it, and lazily.
"""

import argparse

from qbnn_safeio import check_num_samples, check_seed


def samples_arg(text):
    """argparse ``type`` of every sample-count option: an int in 1..QBNN_MAX_SAMPLES, as the C runtime bounds it."""
    try:
        return check_num_samples(int(text), "samples")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("`samples`", "S").replace("samples=", "")) from None


def seed32_arg(text):
    """argparse ``type`` of a 32-bit sampler seed (decimal or 0x...)."""
    try:
        return check_seed(int(text, 0), "seed")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("`seed`", "the seed").replace("seed=", "")) from None
