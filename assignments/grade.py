"""Grade a submitted notebook locally: ``python -m assignments.grade <assignment> <submission.ipynb>``.

Builds the autograder first if needed.  Prints the score per question; ``--verbose`` adds
otter's messages for failed tests, ``--json PATH`` writes the scores.  Exit status 0 when the
submission was graded (whatever the score), 1 with ``--require-full`` and missing points, 2 on
an error (unknown assignment, unreadable notebook, otter failure).
"""

from __future__ import annotations

import argparse
import json
import sys

from .tools import AssignmentError, assignments, grade


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m assignments.grade", description=__doc__)
    ap.add_argument("assignment", help=f"one of {assignments()}")
    ap.add_argument("submission", help="the student's .ipynb (or a zip otter exported)")
    ap.add_argument("--json", metavar="PATH", help="write the scores as JSON")
    ap.add_argument("--verbose", action="store_true", help="show otter's output for each question")
    ap.add_argument("--require-full", action="store_true", help="exit 1 unless full marks")
    args = ap.parse_args(argv)
    try:
        g = grade(args.assignment, args.submission)
    except AssignmentError as err:
        print(f"grade: error: {err}", file=sys.stderr)
        return 2
    print(g.table())
    if args.verbose:
        for q, text in g.output.items():
            print(f"\n--- {q}\n{text}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "assignment": g.assignment,
                    "score": g.score,
                    "possible": g.possible,
                    "questions": g.questions,
                },
                f,
                indent=1,
            )
    return 1 if args.require_full and not g.full_marks else 0


if __name__ == "__main__":
    sys.exit(main())
