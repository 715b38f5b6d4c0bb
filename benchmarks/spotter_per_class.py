"""How well Spotter resists PRA, forget class by forget class, on one profile.

The book forgets class 0 only.  This script runs Spotter (defaults: lambda1 0.7, lambda2 1,
the profile's learning rate) once per class and prints, beside the original model's Acc_rt,
Spotter's Acc_f, Acc_rt, OU@eps, Proto-Acc_f under both PRA forms and the reported dispersion
(1 - mean within-class cosine similarity of the forget embeddings).  Extra ``--set`` pairs
change Spotter's hyperparameters, e.g. ``--set lr=1e-3 --set lambda2=2.0`` (parsed as ``mu run --set``).

    python benchmarks/spotter_per_class.py --profile cpu
    python benchmarks/spotter_per_class.py --profile cpu --classes 1 3 --set lr=3e-4

Every run goes through ``mu_lib.experiment.run`` (cached).
"""

from __future__ import annotations

import argparse
import json

from mu_lib.cli import parse_sets
from mu_lib.data import get_dataset_info
from mu_lib.experiment import RunConfig, run
from mu_lib.profiles import get_profile


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, nargs="*", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    overrides = parse_sets(args.set)
    classes = args.classes
    if classes is None:
        classes = list(range(get_dataset_info(prof.dataset).num_classes))
    rows = {}
    for c in classes:
        base = dict(profile=prof.name, seed=args.seed, forget_classes=(c,))
        orig = run(RunConfig("original", **base)).metrics
        res = run(RunConfig("spotter", overrides=overrides, **base))
        m = res.metrics
        rows[c] = {
            "orig_acc_rt": round(orig["acc_rt"], 2),
            "acc_f": round(m["acc_f"], 2),
            "acc_rt": round(m["acc_rt"], 2),
            "ou_pgd": round(m["ou_pgd"], 4),
            "proto_cos": round(res.details["pra"]["cos"]["chosen_proto_acc_f"], 1),
            "proto_l2": round(res.details["pra"]["l2"]["chosen_proto_acc_f"], 1),
            "dispersion": round(m["dispersion_f"], 3),
        }
        print(c, rows[c], flush=True)
    if args.json:
        print(json.dumps({"profile": prof.name, "overrides": overrides, "rows": rows}))


if __name__ == "__main__":
    main()
