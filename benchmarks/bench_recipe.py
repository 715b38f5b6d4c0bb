"""Time-to-accuracy of training recipes for the original model of a profile (default cpu).

Trains the profile's original (its dataset, backbone and per-class caps) with today's recipe and
with candidate fast recipes, through the library's one optimisation loop (``mu_lib.train.fit``),
and prints per epoch: test accuracy, the epoch's mean training loss and the training wall time
(evaluation excluded).  At the end of each run it also prints the training cross-entropy of the
final model in eval mode over the whole training set, without label smoothing, so that recipes
with and without smoothing are compared on the same loss.

    OMP_NUM_THREADS=1 python benchmarks/bench_recipe.py [--profile cpu] [--recipes today,onecycle10]
    python benchmarks/bench_recipe.py --list

``library`` trains with ``mu_lib.train.train_classifier`` and the profile's own settings, i.e. what
the book does now.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from mu_lib.backbones import build_model
from mu_lib.data import batches, get_dataset_info, make_split
from mu_lib.infer import predict_logits
from mu_lib.profiles import get_profile
from mu_lib.train import fit, train_classifier
from mu_lib.util import seed_everything, to_device


@dataclass(frozen=True)
class Recipe:
    """One training recipe: SGD (momentum 0.9, weight decay 5e-4) and a learning-rate schedule."""

    epochs: int
    lr: float  # peak learning rate
    batch: int = 128
    schedule: str = "cosine_epoch"  # cosine_epoch | onecycle (warm-up, linear decay) | warm_cosine
    warmup: float = 0.0  # fraction of all steps spent warming up linearly from lr / 10
    nesterov: bool = False
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: none)


# today's recipe (cpu profile before issue 18): 30 epochs, cosine stepped once per epoch
RECIPES: dict[str, Recipe] = {
    "today": Recipe(epochs=30, lr=0.05),
    "today8": Recipe(epochs=8, lr=0.05),  # the transformer's length (backbone_train_epochs)
    "today10": Recipe(epochs=10, lr=0.05),
    "today15": Recipe(epochs=15, lr=0.05),
    "today20": Recipe(epochs=20, lr=0.05),
    "onecycle10": Recipe(epochs=10, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle10_ls": Recipe(
        epochs=10, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True, label_smoothing=0.1
    ),
    "onecycle10_b256": Recipe(
        epochs=10, lr=0.2, batch=256, schedule="onecycle", warmup=0.15, nesterov=True
    ),
    "warmcos10": Recipe(epochs=10, lr=0.1, schedule="warm_cosine", warmup=0.1, nesterov=True),
    "onecycle10_ema": Recipe(
        epochs=10, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True, ema=0.99
    ),
    "onecycle15": Recipe(epochs=15, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle20": Recipe(epochs=20, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle15_lr05": Recipe(epochs=15, lr=0.05, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle8": Recipe(epochs=8, lr=0.1, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle10_lr05": Recipe(epochs=10, lr=0.05, schedule="onecycle", warmup=0.15, nesterov=True),
    "onecycle10_lr02": Recipe(epochs=10, lr=0.2, schedule="onecycle", warmup=0.15, nesterov=True),
}


def lr_factor(recipe: Recipe, step: int, total: int) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` of ``total``."""
    warm = int(round(recipe.warmup * total))
    if step < warm:
        return 0.1 + 0.9 * step / warm
    t = (step - warm) / max(total - warm, 1)
    if recipe.schedule == "onecycle":
        return max(1.0 - t, 0.0)
    if recipe.schedule == "warm_cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown per-step schedule {recipe.schedule!r}")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_logits(model, x, device="cpu").argmax(1) == y).float().mean())


@torch.no_grad()
def clean_train_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of the final model on the whole training set, eval mode, no smoothing."""
    return float(nn.functional.cross_entropy(predict_logits(model, x, device="cpu"), y))


class EMA:
    """Exponential moving average of parameters and BN buffers, evaluated in place of the model."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(
            self.shadow.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if s.dtype.is_floating_point:
                s.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
            else:
                s.copy_(p)


def run(name: str, recipe: Recipe | None, split, prof, seed: int, backbone: str) -> dict:
    info = get_dataset_info(split.dataset)
    seed_everything(seed)
    model = to_device(build_model(backbone, info.num_classes, info.channels, info.size), "cpu")
    log: list[dict] = []
    train_secs = [0.0]
    t_epoch = [time.perf_counter()]
    ema: EMA | None = None

    def after_epoch(epoch: int) -> None:
        train_secs[0] += time.perf_counter() - t_epoch[0]
        judged = ema.shadow if ema is not None else model
        acc = accuracy(judged, split.x_test, split.y_test)
        log.append({"epoch": epoch + 1, "test_acc": acc, "secs": train_secs[0]})
        print(f"  {name} seed {seed} epoch {epoch + 1:2d}  test {acc:.4f}  {train_secs[0]:6.1f} s")
        t_epoch[0] = time.perf_counter()

    if recipe is None:  # the library's train_classifier with the profile's settings
        hist = _library(model, split, prof, seed, after_epoch, backbone)
        epochs, batch = prof.epochs_for(backbone), prof.train_batch
    else:
        g = seed_everything(seed)
        opt = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=recipe.nesterov,
        )
        steps_per_epoch = math.ceil(len(split.y_train) / recipe.batch)
        total = steps_per_epoch * recipe.epochs
        step = [0]
        sched = None
        after_step = None
        if recipe.schedule == "cosine_epoch":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
        ema = EMA(model, recipe.ema) if recipe.ema > 0 else None

        def after_step_fn() -> None:
            step[0] += 1
            if recipe.schedule != "cosine_epoch":
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * lr_factor(recipe, min(step[0], total - 1), total)
            if ema is not None:
                ema.update(model)

        after_step = after_step_fn
        if recipe.schedule != "cosine_epoch":
            for group in opt.param_groups:
                group["lr"] = recipe.lr * lr_factor(recipe, 0, total)

        def make_batches(_epoch: int):
            for idx in batches(len(split.y_train), recipe.batch, shuffle=True, generator=g):
                yield split.x_train[idx], split.y_train[idx]

        def loss_fn(b):
            xb, yb = b
            return nn.functional.cross_entropy(
                model(xb), yb, label_smoothing=recipe.label_smoothing
            )

        t_epoch[0] = time.perf_counter()
        hist = fit(
            model,
            make_batches,
            loss_fn,
            opt,
            recipe.epochs,
            device="cpu",
            after_step=after_step,
            after_epoch=after_epoch,
            scheduler=sched,
            desc=name,
            quiet=True,
        )
        epochs, batch = recipe.epochs, recipe.batch
    final = ema.shadow if ema is not None else model
    out = {
        "name": name,
        "seed": seed,
        "recipe": asdict(recipe) if recipe else "library",
        "epochs": epochs,
        "batch": batch,
        "test_acc": log[-1]["test_acc"],
        "train_loss_last_epoch": hist[-1] if hist else float("nan"),
        "train_ce_eval": clean_train_ce(final, split.x_train, split.y_train),
        "train_secs": train_secs[0],
        "images_per_s": epochs * len(split.y_train) / max(train_secs[0], 1e-9),
        "per_epoch": log,
    }
    print(
        f"{name} seed {seed}: test acc {out['test_acc']:.4f}, last-epoch train loss "
        f"{out['train_loss_last_epoch']:.4f}, eval train CE {out['train_ce_eval']:.4f}, "
        f"{epochs} epochs in {out['train_secs']:.1f} s ({out['images_per_s']:.0f} images/s)"
    )
    return out


def _library(model, split, prof, seed, after_epoch, backbone):
    """``train_classifier`` exactly as the book calls it, with an epoch hook for the log."""
    import mu_lib.train as train_mod

    real_fit = train_mod.fit

    def fit_with_hook(*args, **kwargs):
        kwargs["after_epoch"] = after_epoch
        kwargs["quiet"] = True
        return real_fit(*args, **kwargs)

    train_mod.fit = fit_with_hook
    try:
        return train_classifier(
            model,
            split.x_train,
            split.y_train,
            epochs=prof.epochs_for(backbone),
            lr=prof.train_lr,
            batch_size=prof.train_batch,
            seed=seed,
            device="cpu",
            augment=prof.train_augment,
            schedule=prof.train_schedule,
            warmup=prof.train_warmup,
            nesterov=prof.train_nesterov,
        )
    finally:
        train_mod.fit = real_fit


def _warm_up() -> None:
    """Pay torch's one-time kernel set-up before any run is timed (it took ~10 s in the first)."""
    m = to_device(build_model("cnn_small", 10, 1, 28), "cpu")
    m(torch.zeros(8, 1, 28, 28)).sum().backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--recipes", default="today,onecycle10,onecycle10_ls")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--backbone", default=None, help="default: the profile's")
    ap.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for k, r in RECIPES.items():
            print(k, r)
        return
    prof = get_profile(args.profile)
    _warm_up()
    split = make_split(prof.dataset, (0,), prof.train_per_class, prof.test_per_class)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n != "library" and n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; choose from library, {', '.join(RECIPES)}")
    print(
        f"profile {prof.name}: {prof.dataset}, {args.backbone or prof.backbone}, {len(split.y_train)} training "
        f"images, {len(split.y_test)} test images, {torch.get_num_threads()} torch threads"
    )
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for n in names:
            r = None if n == "library" else RECIPES[n]
            if r is not None and args.epochs:
                r = replace(r, epochs=args.epochs)
            results.append(run(n, r, split, prof, seed, args.backbone or prof.backbone))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
