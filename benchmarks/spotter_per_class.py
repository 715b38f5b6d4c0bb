"""How well Spotter resists PRA, forget class by forget class, on one profile.

The book forgets class 0 only.  This script runs Spotter (defaults: lambda1 0.7, lambda2 1,
the profile's learning rate) once per class and prints, beside the original model's Acc_rt,
Spotter's Acc_f, Acc_rt, OU@eps, Proto-Acc_f under both PRA forms and the reported dispersion
(1 - mean within-class cosine similarity of the forget embeddings).  Extra ``--set`` pairs
change Spotter's hyperparameters, e.g. ``--set lr=1e-3 --set lambda2=2.0`` (parsed as ``mu run --set``).

``--checks`` also runs Retrain, DELETE and Spotter with lambda2 = 0.1 for each class and prints
whether the foundation's claims hold there: Retrain forgets with Acc_rt within 1 point of the
original; PRA lifts DELETE far above its Acc_f with Acc*_r at most 1 point down; Spotter
(lambda2 = 0.1) has a lower OU@eps than DELETE; Spotter (lambda2 = 1) forgets with Acc_rt within
2 points and Proto-Acc_f at most 10%.

    python benchmarks/spotter_per_class.py --profile cpu
    python benchmarks/spotter_per_class.py --profile cpu --classes 1 3 --set lr=3e-4
    python benchmarks/spotter_per_class.py --profile cpu --checks --classes 0 4 9

Every run goes through ``mu_lib.experiment.run`` (cached).
"""

from __future__ import annotations

import argparse
import json

from mu_lib.cli import parse_sets
from mu_lib.data import get_dataset_info
from mu_lib.experiment import RunConfig, run
from mu_lib.profiles import Profile, get_profile


def spotter_row(base: dict, overrides: dict, orig: dict) -> dict:
    """Spotter's numbers for one forget class."""
    res = run(RunConfig("spotter", overrides=overrides, **base))
    m = res.metrics
    return {
        "orig_acc_rt": round(orig["acc_rt"], 2),
        "acc_f": round(m["acc_f"], 2),
        "acc_rt": round(m["acc_rt"], 2),
        "ou_pgd": round(m["ou_pgd"], 4),
        "proto_cos": round(res.details["pra"]["cos"]["chosen_proto_acc_f"], 1),
        "proto_l2": round(res.details["pra"]["l2"]["chosen_proto_acc_f"], 1),
        "dispersion": round(m["dispersion_f"], 3),
    }


def claim_checks(base: dict, orig: dict, spot: dict) -> dict:
    """The foundation's four claims on one forget class (each value: measured numbers + verdict)."""
    ret = run(RunConfig("retrain", **base)).metrics
    dele = run(RunConfig("delete", **base)).metrics
    low = run(RunConfig("spotter", overrides={"lambda2": 0.1}, **base)).metrics
    gap = ret["acc_rt"] - orig["acc_rt"]
    drop = dele["acc_r"] - dele["acc_r_star"]
    return {
        "retrain": f"Acc_f {ret['acc_f']:.1f}, Acc_rt {gap:+.2f} -> "
        + ("ok" if ret["acc_f"] < 1 and abs(gap) <= 1 else "MISS"),
        "delete_pra": f"Acc_f {dele['acc_f']:.1f} -> Proto {dele['proto_acc_f']:.1f}, "
        f"Acc*_r -{drop:.2f} -> "
        + ("ok" if dele["proto_acc_f"] >= dele["acc_f"] + 30 and drop <= 1 else "MISS"),
        "ou_spotter_0.1_vs_delete": f"{low['ou_pgd']:.4f} vs {dele['ou_pgd']:.4f} -> "
        + ("ok" if low["ou_pgd"] < dele["ou_pgd"] else "MISS"),
        "spotter_1": f"Acc_f {spot['acc_f']:.1f}, Acc_rt {spot['acc_rt'] - orig['acc_rt']:+.2f}, "
        f"Proto {spot['proto_cos']:.1f} -> "
        + ("ok" if spotter_claim_holds(spot, orig) else "MISS"),
    }


def spotter_claim_holds(spot: dict, orig: dict) -> bool:
    """The claim for Spotter with lambda2 = 1: Acc_f about 0 (below 1%), Acc_rt within 2 points of
    the original, cosine Proto-Acc_f at most 10%."""
    return (
        spot["acc_f"] < 1 and abs(spot["acc_rt"] - orig["acc_rt"]) <= 2 and spot["proto_cos"] <= 10
    )


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The options every per-class Spotter script takes: profile, seed, classes, ``--set``."""
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, nargs="*", default=None, help="default: all")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def forget_classes(prof: Profile, classes: list[int] | None) -> list[int]:
    """The classes asked for, or every class of the profile's dataset."""
    if classes is None:
        return list(range(get_dataset_info(prof.dataset).num_classes))
    return classes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_args(ap)
    ap.add_argument("--checks", action="store_true", help="also run the foundation's claims")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    overrides = parse_sets(args.set)
    classes = forget_classes(prof, args.classes)
    rows = {}
    for c in classes:
        base = dict(profile=prof.name, seed=args.seed, forget_classes=(c,))
        orig = run(RunConfig("original", **base)).metrics
        rows[c] = spotter_row(base, overrides, orig)
        if args.checks:
            rows[c]["checks"] = claim_checks(base, orig, rows[c])
        print(c, rows[c], flush=True)
    if args.json:
        print(json.dumps({"profile": prof.name, "overrides": overrides, "rows": rows}))


if __name__ == "__main__":
    main()
