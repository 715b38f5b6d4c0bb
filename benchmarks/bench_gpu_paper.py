"""Timings of the ``paper`` profile at full size on synthetic CIFAR-shaped data, and the projected
wall time of Table 1 (CIFAR-10, three seeds) and of the whole paper book.

No download is possible on the GPU machine, so the data are random tensors of CIFAR-10's shape
(50,000 training and 10,000 test images, 3x32x32, 10 balanced classes; forget class 0: 5,000
images).  Timings do not depend on what the images show; the models are untrained, which changes
no method's amount of work (every method runs a fixed number of steps).  Every measurement is a
short timed window through the library's own code paths (``train_classifier``, each method's
``unlearn``, ``pgd_linf``/``predict_logits``, ``PRA``), extrapolated to the full run:

* original training: images/s of ResNet-18 (bf16 autocast and channels-last on CUDA), after a
  warm-up window; a training run is ``train_epochs`` x 50,000 images;
* each method: a 2-epoch run timed epoch by epoch (``Method.after_epoch``): the first epoch pays
  the preparation, the second is the steady epoch, projected to the method's own epochs; Retrain
  is projected from the training throughput on D_r; Fisher from two sample counts;
* OU@eps (PGD neighbours of D_f + both models' logits, JS and KL, and the Gaussian neighbours) and
  PRA (embeddings of D_f and D_r + the alpha sweeps of every form).

    python benchmarks/bench_gpu_paper.py                 # one GPU, about 5-8 minutes
    python benchmarks/bench_gpu_paper.py --tiny          # CPU, a few seconds (tests)
    python benchmarks/bench_gpu_paper.py --status book/generated/results/status.json

``--status`` scales the Table 1 projection to the whole book by the chapter times of a built book's
status page (chapters' total / s5_2_main_results); it is a rough ratio (it comes from the profile
that built that book), printed as such.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch

from mu_lib.attacks.pra import DEFAULT_ALPHAS, FORMS, PRA
from mu_lib.backbones import build_model
from mu_lib.claims import BASELINES
from mu_lib.data import ForgetSplit
from mu_lib.infer import predict_logits
from mu_lib.metrics import ou_from_logits
from mu_lib.perturb import gaussian, pgd_linf
from mu_lib.profiles import get_profile
from mu_lib.train import train_classifier
from mu_lib.unlearn import Context, build_method, make_context
from mu_lib.util import resolve_device, seed_everything, to_device

# Table 1's rows (notebooks/s5_2_main_results.md: ``methods``; Spotter twice, lambda2 0.1 and 1).
TABLE1_METHODS = ["original", "retrain", *BASELINES, "scrub", "spotter"]
TABLE1_SPOTTER_ROWS = 2


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def synthetic_split(n_train: int, n_test: int, seed: int = 0) -> ForgetSplit:
    """Random CIFAR-shaped images with balanced labels; forget class 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train, 3, 32, 32, generator=g)
    y = torch.arange(n_train) % 10
    y = y[torch.randperm(n_train, generator=g)]
    xt = torch.rand(n_test, 3, 32, 32, generator=g)
    yt = torch.arange(n_test) % 10
    return ForgetSplit("synthetic-cifar10", 10, (0,), x, y, xt, yt)


def train_throughput(prof, split, device: str, backbone: str, steps: int) -> float:
    """Images/s of ``train_classifier`` (the paper profile's batch and augmentation)."""
    n = steps * prof.train_batch
    x, y = split.x_train[:n], split.y_train[:n]
    model = to_device(build_model(backbone, 10, 3, 32), device)

    def window():
        train_classifier(
            model,
            x,
            y,
            epochs=1,
            lr=prof.train_lr,
            batch_size=prof.train_batch,
            seed=0,
            device=device,
            augment=prof.train_augment,
            desc="bench",
        )

    timed(window, device)  # warm-up: kernels, cuDNN autotuning, allocator
    return n / timed(window, device)


def context(method, prof, split, original, device: str, seed: int = 0) -> Context:
    """The context ``experiment.unlearn_from`` builds: a frozen copy of the original, D_f (and
    D_r for the methods that use it) on the device."""
    return make_context(
        method,
        original,
        copy.deepcopy(original),
        split.forget_train,
        split.retain_train,
        num_classes=split.num_classes,
        forget_classes=split.forget_classes,
        seed=seed,
        device=device,
        profile=prof,
        generator_seed=seed,
    )


def method_time(name: str, prof, split, original, device: str, overrides=None) -> dict:
    """Projected unlearning time of ``name`` on ``prof`` from a 2-epoch run timed per epoch."""
    full = build_method(name, prof.name, dict(overrides or {}), prof.unlearn_epochs)
    epochs = full.hp.epochs or 0
    if name == "fisher":
        return fisher_time(prof, split, original, device)
    short = build_method(
        name, prof.name, {**(overrides or {}), "epochs": min(epochs, 2)}, prof.unlearn_epochs
    )
    stamps: list[float] = []
    short.after_epoch = lambda ctx, epoch: (sync(device), stamps.append(time.perf_counter()))
    ctx = context(short, prof, split, original, device)
    sync(device)
    t0 = time.perf_counter()
    short.unlearn(ctx)
    sync(device)
    t_end = time.perf_counter()
    if len(stamps) >= 2:
        first, steady, tail = stamps[0] - t0, stamps[1] - stamps[0], t_end - stamps[-1]
        projected = first + (epochs - 1) * steady + tail
    else:  # one-shot methods (or 1 epoch): what was measured is the whole run
        first, steady, projected = t_end - t0, 0.0, t_end - t0
    return {
        "epochs": epochs,
        "first_epoch_s": first,
        "steady_epoch_s": steady,
        "projected_s": projected,
    }


def fisher_time(prof, split, original, device: str) -> dict:
    """Fisher's cost is linear in its sample count: two short runs give the slope and offset."""
    n_retain = len(split.retain_train[1])
    full = build_method("fisher", prof.name, {}, prof.unlearn_epochs)
    target = full.hp.fisher_samples or n_retain
    small = max(min(64, n_retain // 16), 2)
    times = []
    for n in (small, 2 * small):
        m = build_method("fisher", prof.name, {"fisher_samples": n}, prof.unlearn_epochs)
        ctx = context(m, prof, split, original, device)
        times.append(timed(lambda m=m, ctx=ctx: m.unlearn(ctx), device))
    per_sample = max(times[1] - times[0], 0.0) / small
    offset = max(times[0] - per_sample * small, 0.0)
    return {
        "epochs": 0,
        "fisher_samples": target,
        "per_sample_s": per_sample,
        "projected_s": offset + per_sample * target,
    }


def evaluation_time(prof, split, original, device: str) -> dict:
    """OU@eps (PGD JS + KL, Gaussian) and PRA for one unlearned model, as ``evaluate`` runs them."""
    xf, yf = split.forget_train
    model = copy.deepcopy(original)
    out = {}

    def neighbours():
        xp = pgd_linf(
            original, xf, yf, eps=prof.pgd_eps, step=prof.pgd_step, steps=prof.pgd_steps, seed=0
        )
        return xp, predict_logits(original, xp, prof.eval_batch)

    out["pgd_neighbours_s"] = timed(neighbours, device)  # once per (original, forget set)
    xp, orig_logits = neighbours()
    xg = gaussian(xf, std=prof.gaussian_std, seed=0)
    orig_g = predict_logits(original, xg, prof.eval_batch)

    def ou():
        z = predict_logits(model, xp, prof.eval_batch)
        ou_from_logits(orig_logits, z, split.forget_classes, "js")
        ou_from_logits(orig_logits, z, split.forget_classes, "kl")
        ou_from_logits(orig_g, predict_logits(model, xg, prof.eval_batch), split.forget_classes)

    out["ou_s"] = timed(ou, device)

    def pra():
        attack = PRA(model, split.forget_train, split.retain_train, split.forget_classes)
        shots = split.shot_indices(prof.pra_shots, 0)
        for form in FORMS:
            attack.sweep(shots, form, DEFAULT_ALPHAS)

    out["pra_s"] = timed(pra, device)
    return out


def project(res: dict, prof, n_train: int, n_retain: int, seeds: int) -> dict:
    """Table 1 on CIFAR-10: per seed one original, every row's unlearning, every row's evaluation."""
    ips = res["train_images_per_s"]
    original = prof.train_epochs * n_train / ips
    retrain = prof.train_epochs * n_retain / ips
    unlearn = sum(
        m["projected_s"] * (TABLE1_SPOTTER_ROWS if name == "spotter" else 1)
        for name, m in res["methods"].items()
    )
    rows = len(TABLE1_METHODS) - 1 + TABLE1_SPOTTER_ROWS
    ev = res["evaluation"]
    evaluation = ev["pgd_neighbours_s"] + rows * (ev["ou_s"] + ev["pra_s"])
    per_seed = original + retrain + unlearn + evaluation
    return {
        "original_training_s": original,
        "retrain_s": retrain,
        "unlearning_s": unlearn,
        "evaluation_s": evaluation,
        "per_seed_s": per_seed,
        "table1_s": seeds * per_seed,
    }


def book_ratio(status_path: str | None) -> float | None:
    if not status_path or not Path(status_path).exists():
        return None
    status = json.loads(Path(status_path).read_text())
    total = sum(float(v.get("seconds", 0)) for v in status.values() if isinstance(v, dict))
    main = float(status.get("s5_2_main_results", {}).get("seconds", 0))
    return total / main if main > 0 else None


def hours(s: float) -> str:
    return f"{s:9.1f} s = {s / 3600:6.2f} h"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small sizes for a CPU test run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", default=",".join(m for m in TABLE1_METHODS))
    ap.add_argument("--status", default=None, help="a built book's status.json (book ratio)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    prof = get_profile("paper")
    if args.tiny:  # same code paths, sizes for seconds on one CPU thread
        prof = prof.with_(train_batch=32, eval_batch=64, unlearn_batch=16)
        n_train, n_test, steps, backbone = 200, 20, 1, "resnet_small"
    else:
        n_train, n_test, steps, backbone = 50_000, 10_000, 60, "resnet18"
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    split = synthetic_split(n_train, n_test)
    n_retain = len(split.retain_train[1])
    res: dict = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "backbone": backbone,
        "n_train": n_train,
        "n_forget": len(split.forget_train[1]),
    }
    res["train_images_per_s"] = train_throughput(prof, split, device, backbone, steps)
    print(
        f"{res['device']}: {backbone} training {res['train_images_per_s']:.0f} images/s "
        f"(batch {prof.train_batch}, augment {prof.train_augment}, "
        f"{'bf16 autocast, ' if device.startswith('cuda') else ''}channels-last)",
        flush=True,
    )
    seed_everything(0)
    original = to_device(build_model(backbone, 10, 3, 32), device).eval()
    res["evaluation"] = evaluation_time(prof, split, original, device)
    ev = res["evaluation"]
    print(
        f"PGD neighbours of D_f {ev['pgd_neighbours_s']:.2f} s; per model: OU@eps {ev['ou_s']:.2f} "
        f"s, PRA {ev['pra_s']:.2f} s",
        flush=True,
    )
    res["methods"] = {}
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in names:
        if name in ("original", "retrain"):
            continue
        overrides = {"lambda2": 1.0} if name == "spotter" else {}
        m = method_time(name, prof, split, original, device, overrides)
        res["methods"][name] = m
        print(
            f"  {name:16s} projected {m['projected_s']:8.2f} s ({m['epochs']} epochs, "
            f"|D_f| = {res['n_forget']})",
            flush=True,
        )
    res["projection"] = project(res, prof, n_train, n_retain, len(prof.seeds))
    pr = res["projection"]
    print(f"Table 1 projection ({len(prof.seeds)} seeds, {prof.train_epochs}-epoch trainings):")
    for k in ("original_training_s", "retrain_s", "unlearning_s", "evaluation_s", "per_seed_s"):
        print(f"  {k:22s} {hours(pr[k])}")
    print(f"  {'Table 1':22s} {hours(pr['table1_s'])}")
    ratio = book_ratio(args.status)
    if ratio is not None:
        pr["book_s"] = ratio * pr["table1_s"]
        print(f"  whole book (x{ratio:.2f}, the status page's total / s5_2) {hours(pr['book_s'])}")
    else:
        print("  whole book: pass --status <a built book's status.json> for the chapter ratio")
    res["bench_wall_s"] = time.perf_counter() - t_start
    print(f"benchmark wall time {res['bench_wall_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    assert all(math.isfinite(v) for v in pr.values())
    return res


if __name__ == "__main__":
    main()
