"""Thin wrapper: `python scripts/sweep.py ...` is `tfqbnn-sweep ...` (tfqbnn/cli/sweep.py)."""

from tfqbnn.cli.sweep import main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
