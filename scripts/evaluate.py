"""Thin wrapper: `python scripts/evaluate.py ...` is `tfqbnn-evaluate ...` (tfqbnn/cli/evaluate.py)."""

from tfqbnn.cli.evaluate import main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
