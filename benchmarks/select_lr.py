"""Choose the baselines' learning rates for a profile by one stated rule, not by hand.

Rule: for each method, try the grid in increasing order (lr in {1e-4, 3e-4, 1e-3, 3e-3, 1e-2,
3e-2, 1e-1}, the half-decade grid DELETE was set with; Fisher Forgetting has no
learning rate and uses its noise scale alpha in {1e-8, 3e-8, ..., 1e-4}) and keep the first value
whose unlearned model has Acc_f below 5% after the profile's unlearning epochs (seed 0 and forget
class 0 unless ``--seed`` / ``--forget-classes`` name another dev pair; every other
hyperparameter at its default).  If no value passes, try the grid again with
twice, then four times the epochs (a method that needs more steps gets them, rather than a
learning rate so large that it wrecks the retained classes); if still none passes, keep the
trial with the lowest Acc_f and say so.  Small first: the smallest step that forgets does the
least collateral damage.

Every trial goes through ``mu_lib.experiment.run`` (cached), so re-running after a change of the
profile's original-model settings only recomputes what changed.  The script prints a table and
the ``profile_defaults`` entries to paste into each method class.

    python benchmarks/select_lr.py --profile cpu
    python benchmarks/select_lr.py --profile smoke --methods salun unsc
    python benchmarks/select_lr.py --profile cpu --methods fisher --seed 1 --forget-classes 1 \
        --csv benchmarks/results/select_fisher_alpha_cpu.csv
"""

from __future__ import annotations

import argparse
import sys
import time

from mu_lib import MuError
from mu_lib.experiment import RunConfig, run
from mu_lib.profiles import get_profile
from mu_lib.unlearn import get_method_class

BASELINES = (
    "random_label",
    "neggrad",
    "boundary_shrink",
    "boundary_expand",
    "salun",
    "l2ul",
    "fisher",
    "unsc",
    "scrub",
)
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# Methods whose forgetting strength is not a learning rate: (hyperparameter, grid).
# Fisher Forgetting: its noise scale, half-decade steps from the reference's 1e-8 .. 1e-6 upwards
# (with its forget-row reset off, the noise alone must forget).
FISHER_GRID = (1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
OTHER_GRIDS = {"fisher": ("alpha", FISHER_GRID)}
NO_EPOCHS = {"fisher"}  # one-shot methods: no training loop, no epochs to give them
# If no value passes within the profile's epochs, the grid is tried again with more epochs: a
# method that needs more steps gets them, rather than a learning rate that wrecks the model.
EPOCH_MULTIPLIERS = (1, 2, 4)


def select(
    method: str,
    profile: str,
    seed: int,
    threshold: float,
    grid: tuple[float, ...] | None,
    forget_classes: tuple[int, ...] = (0,),
) -> tuple[dict, bool, list[dict]]:
    """Apply the rule to one method; returns (chosen overrides, passed, trials)."""
    get_method_class(method)  # clear error for unknown names
    param, values = OTHER_GRIDS.get(method, ("lr", LR_GRID))
    if grid is not None and param == "lr":
        values = tuple(sorted(grid))
    base_epochs = get_profile(profile).unlearn_epochs
    trials = []
    for mult in (1,) if method in NO_EPOCHS else EPOCH_MULTIPLIERS:
        for v in values:
            # epochs always explicit, so that a profile default set by an earlier pass of this
            # rule (more epochs) does not leak into the trials; shown only when it differs
            over = {param: v} if mult == 1 else {param: v, "epochs": base_epochs * mult}
            t0 = time.perf_counter()
            cfg = RunConfig(
                method=method,
                profile=profile,
                seed=seed,
                forget_classes=forget_classes,
                overrides=over if method in NO_EPOCHS else {**over, "epochs": base_epochs * mult},
            )
            m = run(cfg).metrics
            trials.append(
                {
                    "method": method,
                    "param": param,
                    "value": v,
                    "epochs": 0 if method in NO_EPOCHS else base_epochs * mult,
                    "over": over,
                    "acc_f": m["acc_f"],
                    "acc_r": m["acc_r"],
                    "acc_rt": m["acc_rt"],
                    "ou_pgd": m["ou_pgd"],
                    "proto_acc_f": m["proto_acc_f"],
                    "secs": time.perf_counter() - t0,
                }
            )
            if m["acc_f"] < threshold:
                return over, True, trials
    best = min(trials, key=lambda t: (t["acc_f"], t["epochs"], t["value"]))
    return best["over"], False, trials


def write_csv(path: str, rows: list[dict], profile: str, seed: int, classes: list[int]) -> None:
    """The selection table, one row per trial, with the dev pair it was chosen on."""
    import csv

    keys = ["method", "param", "value", "epochs", "acc_f", "acc_r", "acc_rt", "ou_pgd"]
    keys += ["proto_acc_f", "secs", "chosen"]
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["profile", "seed", "forget_classes", *keys])
        for r in rows:
            out.writerow([profile, seed, " ".join(map(str, classes)), *(r[k] for k in keys)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper")
    ap.add_argument("--methods", nargs="+", default=list(BASELINES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=5.0, help="Acc_f (percent) to get below")
    ap.add_argument("--grid", type=float, nargs="+", default=None, help="learning-rate grid")
    ap.add_argument("--forget-classes", type=int, nargs="+", default=[0], help="e.g. 1")
    ap.add_argument("--csv", default=None, help="also write the selection table to this CSV")
    args = ap.parse_args(argv)
    try:
        prof = get_profile(args.profile)
        rows, chosen = [], {}
        for method in args.methods:
            over, ok, trials = select(
                method,
                prof.name,
                args.seed,
                args.threshold,
                args.grid and tuple(args.grid),
                tuple(args.forget_classes),
            )
            for t in trials:
                t["chosen"] = "<-" if t["over"] == over else ""
            rows += trials
            chosen[method] = (over, ok)
            text = ", ".join(f"{k}={v:g}" for k, v in over.items())
            print(
                f"{method}: {text} ({'passes' if ok else 'NO value passes'})",
                file=sys.stderr,
                flush=True,
            )
    except MuError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    print(
        f"\nProfile {prof.name}: dataset {prof.dataset}, {prof.unlearn_epochs} unlearning epochs, "
        f"seed {args.seed}, rule: first value with Acc_f < {args.threshold:g}%\n"
    )
    head = (
        f"{'method':16s} {'param':6s} {'value':>8s} {'epochs':>6s} {'Acc_f':>7s} {'Acc_r':>7s} "
        f"{'Acc_rt':>7s} {'OU':>7s} {'secs':>6s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['method']:16s} {r['param']:6s} {r['value']:8.0e} {r['epochs']:6d} "
            f"{r['acc_f']:7.2f} {r['acc_r']:7.2f} {r['acc_rt']:7.2f} {r['ou_pgd']:7.4f} "
            f"{r['secs']:6.1f} {r['chosen']}"
        )
    if args.csv:
        write_csv(args.csv, rows, prof.name, args.seed, args.forget_classes)
    print("\nprofile_defaults entries (paste into each method class):")
    for method, (over, ok) in chosen.items():
        note = "" if ok else f"  # nothing brings Acc_f below {args.threshold:g}%: lowest Acc_f"
        text = ", ".join(f'"{k}": {v:g}' for k, v in over.items())
        print(f'{method:16s} "{prof.name}": {{{text}}},{note}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
