"""Thin wrapper: `python scripts/train.py ...` is `tfqbnn-train ...` (tfqbnn/cli/train.py)."""

from tfqbnn.cli.train import main, parse_args, quantization_from_args  # noqa: F401

if __name__ == "__main__":
    main()
