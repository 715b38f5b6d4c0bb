"""Spotter's trade-off, epoch by epoch: resistance to PRA against retained accuracy.

Spotter sees no retained data, so every step of its dispersion loss that scatters the forget
class also moves the features the retained classes share.  This script trains Spotter (lambda2 = 1
unless ``--set`` says otherwise) for ``--epochs`` epochs on each forget class and, after every
``--every`` epochs, prints Acc_f, Acc_rt minus the original's, and the cosine Proto-Acc_f of PRA
(k shots, alpha chosen by the 1-point rule), plus whether the foundation's claim holds at that
point (Acc_f < 1%, |delta Acc_rt| <= 2, Proto-Acc_f <= 10%).  The path shows how far the method
can honestly go on a class: where no epoch meets both bounds, no stopping point or rate along that
path does either.

    python benchmarks/spotter_frontier.py --profile cpu --classes 0 8 9 --epochs 20
    python benchmarks/spotter_frontier.py --profile cpu --classes 9 --epochs 20 --set lr=1e-4

Nothing is cached (the run is watched while it trains); the original comes from the cache.  About
one minute per class and 20 epochs on two CPU cores.
"""

from __future__ import annotations

import argparse
import json

import torch
from spotter_per_class import add_run_args, forget_classes

from mu_lib.attacks.pra import PRA
from mu_lib.cli import parse_sets
from mu_lib.experiment import (
    RunConfig,
    method_for,
    new_model,
    original_model,
    run,
    split_for,
    unlearn_from,
)
from mu_lib.metrics import accuracy
from mu_lib.profiles import get_profile


def trajectory(cfg: RunConfig, orig_acc_rt: float, every: int) -> list[dict]:
    """Train ``cfg``'s Spotter and measure it after every ``every`` epochs."""
    split = split_for(cfg)
    shots = split.shot_indices(cfg.pra_k or cfg.prof.pra_shots, cfg.seed)
    original, *_ = original_model(cfg)
    model = new_model(cfg)
    method = method_for(cfg)
    epochs = method.hp.epochs or 0
    rows: list[dict] = []

    def measure(ctx, epoch: int) -> None:
        if (epoch + 1) % every and epoch + 1 != epochs:
            return
        was_training = model.training
        model.eval()
        with torch.no_grad():
            attack = PRA(model, split.forget_train, split.retain_train, split.forget_classes)
            pra = attack.sweep(shots, "cos", cfg.alphas)
            d_rt = accuracy(model, *split.retain_test) - orig_acc_rt
        model.train(was_training)
        row = {
            "epoch": epoch + 1,
            "acc_f": round(attack.acc_f, 2),
            "d_acc_rt": round(d_rt, 2),
            "proto_cos": round(pra.chosen_proto_acc_f, 1),
            "alpha": pra.alpha,
            "claim": attack.acc_f < 1 and abs(d_rt) <= 2 and pra.chosen_proto_acc_f <= 10,
        }
        rows.append(row)
        print(json.dumps({"class": list(cfg.forget_classes), **row}), flush=True)

    method.after_epoch = measure  # type: ignore[method-assign]
    unlearn_from(cfg, original, model, method)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_args(ap)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--every", type=int, default=2, help="measure after every N epochs")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.every < 1:
        ap.error("--epochs and --every must be >= 1")
    prof = get_profile(args.profile)
    overrides = {"lambda2": 1.0, **parse_sets(args.set), "epochs": args.epochs}
    classes = forget_classes(prof, args.classes)
    summary = {}
    for c in classes:
        base = dict(profile=prof.name, seed=args.seed, forget_classes=(c,))
        orig = run(RunConfig("original", **base)).metrics
        rows = trajectory(
            RunConfig("spotter", overrides=overrides, **base), orig["acc_rt"], args.every
        )
        summary[c] = [r["epoch"] for r in rows if r["claim"]]
    for c, ok in summary.items():
        print(f"class {c}: claim holds after epochs {ok or 'none'}")


if __name__ == "__main__":
    main()
