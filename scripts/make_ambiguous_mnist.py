"""Regenerate Ambiguous-MNIST per the DDU recipe and write it (with manifest and quality report) to a cache dir."""

import argparse

from tfqbnn.datasets.ambiguous import make_ambiguous_mnist


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="the fast 'small' profile (tests, demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output dir (default: $TFQBNN_CACHE_DIR or ~/.cache/tfqbnn)")
    p.add_argument("--data-dir", default=None, help="where the official MNIST files are (default: lookup order)")
    p.add_argument("--pool-size", type=int, default=None, help="kept candidates to collect (profile default)")
    a = p.parse_args(argv)
    overrides = {"pool_size": a.pool_size} if a.pool_size else {}
    make_ambiguous_mnist(
        seed=a.seed, profile="small" if a.small else "default", out_dir=a.out, data_dir=a.data_dir, **overrides
    )


if __name__ == "__main__":
    main()
