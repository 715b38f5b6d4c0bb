"""Run the tuning protocol (``mu_lib.tuning``) for a profile and store what it chooses.

Each trial's row is appended to ``mu_lib/tuned/<profile>_trials.csv`` as it completes; rows
already there are skipped, so an interrupted run resumes.  At the end the selection table
(``<profile>_selection.csv``) and the choices (``<profile>.json``, which the methods read as
their defaults) are rewritten from all rows.

    OMP_NUM_THREADS=2 python benchmarks/tune.py --profile cpu
    python benchmarks/tune.py --profile smoke --methods salun spotter
    python benchmarks/tune.py --profile cpu --select-only    # re-derive the choice from the CSV
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from mu_lib import MuError
from mu_lib.tuning import (
    TUNED_METHODS,
    data_dir,
    read_trials,
    run_protocol,
    write_selection,
)


def head_commit() -> str:
    """The commit the trials ran on (the working tree may hold uncommitted edits too)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="smoke | cpu")
    ap.add_argument("--methods", nargs="+", default=list(TUNED_METHODS))
    ap.add_argument("--out-dir", type=Path, default=None, help="default: mu_lib/tuned")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--select-only", action="store_true", help="no new trials")
    args = ap.parse_args(argv)
    out_dir = args.out_dir or data_dir()
    trials_csv = out_dir / f"{args.profile}_trials.csv"
    commit = head_commit()
    t0 = time.perf_counter()
    try:
        if args.select_only:
            trials = read_trials(trials_csv)
        else:
            trials = run_protocol(
                args.profile,
                trials_csv,
                methods=args.methods,
                commit=commit,
                device=args.device,
                log=lambda s: print(s, file=sys.stderr, flush=True),
            )
        doc = write_selection(args.profile, trials, out_dir, None, commit)
    except MuError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.profile}: {len(trials)} trials, {time.perf_counter() - t0:.0f} s")
    for view in ("default", "pra"):
        print(f"{view}: " + ", ".join(f"{m} {doc[view][m]}" for m in sorted(doc[view])))
    for m, note in doc["notes"].items():
        print(f"note {m}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
