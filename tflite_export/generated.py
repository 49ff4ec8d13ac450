"""The command line of a generated C header (`python -m <module>` rewrites it, `--check` exits 1 when the file in
the tree differs from what its generator writes; a test runs the check, so a header cannot go stale)."""

from __future__ import annotations

import argparse
import sys


def main(path, text, prog, description, argv=None, summary=""):
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--check", action="store_true", help=f"exit 1 if {path.name} is not current")
    args = p.parse_args(argv)
    if args.check:
        if (path.read_text() if path.exists() else "") != text:
            print(f"{path.name} is out of date: run {prog}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path.name}{summary}")
    return 0
