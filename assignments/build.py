"""Build the student and autograder versions: ``python -m assignments.build [name ...]``.

Writes ``assignments/build/<name>/student/<name>.ipynb`` (hand this out) and
``assignments/build/<name>/autograder/`` (solutions notebook + autograder zip).  By default otter
also runs every test against the solutions; ``--no-run-tests`` skips that.
"""

from __future__ import annotations

import argparse
import sys

from .tools import AssignmentError, assignments, build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m assignments.build", description=__doc__)
    ap.add_argument("names", nargs="*", help=f"default: all of {assignments()}")
    ap.add_argument("--no-run-tests", action="store_true", help="skip checking the solutions")
    args = ap.parse_args(argv)
    try:
        for name in args.names or assignments():
            out = build(name, run_tests=not args.no_run_tests)
            print(f"{name}: student notebook {out / 'student' / (name + '.ipynb')}")
    except AssignmentError as err:
        print(f"build: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
