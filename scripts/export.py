"""Thin wrapper: `python scripts/export.py ...` is `tfqbnn-export ...` (tfqbnn/cli/export.py)."""

from tfqbnn.cli.export import main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
