"""Speed ratios of the core on one profile (default cpu), in one run:

* the PRA alpha sweep (11 alphas, embeddings computed once) vs one embedding pass over the same data,
* OU@eps (PGD neighbours + both models' logits) vs one inference pass over D_f,
* one Spotter epoch vs one DELETE epoch (same forget batches).

    python benchmarks/bench_core.py [--profile cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from mu_lib.attacks.pra import DEFAULT_ALPHAS, PRA
from mu_lib.experiment import RunConfig, neighbours, original_model, split_for
from mu_lib.infer import embed_all, predict_logits
from mu_lib.metrics import ou_from_logits
from mu_lib.perturb import pgd_linf
from mu_lib.unlearn import build_method, make_context
from mu_lib.util import resolve_device


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def one_epoch(cfg: RunConfig, name: str, overrides: dict) -> None:
    p = cfg.prof
    original, _, _ = original_model(cfg)
    split = split_for(cfg)
    method = build_method(name, p.name, {**overrides, "epochs": 1}, 1)
    ctx = make_context(
        method,
        original,
        copy.deepcopy(original),
        split.forget_train,
        None,
        num_classes=split.num_classes,
        forget_classes=split.forget_classes,
        seed=0,
        device=resolve_device(cfg.device),
        profile=p,
        generator_seed=0,
    )
    method.unlearn(ctx)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = RunConfig(profile=args.profile, forget_classes=(0,))
    p = cfg.prof
    split = split_for(cfg)
    model, _, _ = original_model(cfg)
    xf, yf = split.forget_train
    xr, _ = split.retain_train
    torch.set_grad_enabled(True)

    t_embed = timed(
        lambda: (embed_all(model, xf, p.eval_batch), embed_all(model, xr, p.eval_batch)),
        args.repeats,
    )
    shots = split.shot_indices(p.pra_shots, 0)
    t_pra = timed(
        lambda: PRA(
            model, split.forget_train, split.retain_train, split.forget_classes, p.eval_batch
        ).sweep(shots, "l2", DEFAULT_ALPHAS),
        args.repeats,
    )

    t_infer = timed(lambda: predict_logits(model, xf, p.eval_batch), args.repeats)

    def ou_full():
        xp = pgd_linf(model, xf, yf, eps=p.pgd_eps, step=p.pgd_step, steps=p.pgd_steps, seed=0)
        ou_from_logits(
            predict_logits(model, xp, p.eval_batch), predict_logits(model, xp, p.eval_batch), [0]
        )

    t_ou = timed(ou_full, args.repeats)
    neighbours(cfg, "pgd")  # warm
    t_delete = timed(lambda: one_epoch(cfg, "delete", {}), args.repeats)
    t_spotter = timed(lambda: one_epoch(cfg, "spotter", {"lambda2": 1.0}), args.repeats)

    print(
        f"profile {p.name}: |D_f| = {len(yf)}, |D_r| = {len(xr)}, device {resolve_device()}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    rows = [
        ("PRA sweep (11 alphas) / one embedding pass over D_f + D_r", t_pra, t_embed),
        ("OU@eps (PGD 3 steps + 2 inference passes) / one inference pass over D_f", t_ou, t_infer),
        ("one Spotter epoch (incl. PGD neighbours) / one DELETE epoch", t_spotter, t_delete),
    ]
    for name, a, b in rows:
        print(f"{name:78s} {a:7.3f}s / {b:7.3f}s = {a / b:5.2f}x")


if __name__ == "__main__":
    main()
