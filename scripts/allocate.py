"""Thin wrapper: `python scripts/allocate.py ...` is `tfqbnn-allocate ...` (tfqbnn/cli/allocate.py)."""

from tfqbnn.cli.allocate import main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
