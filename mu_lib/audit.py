"""``mu audit``: the paper's blind-spot checks for a classifier someone else unlearned.

Given the original and the unlearned model (any backbone of the registry, any torchvision
classification model by name, any timm model, or in Python any ``nn.Module``), labelled data (an
image folder with one sub-folder per class, or a registered dataset) and the forgotten classes,
it measures what the paper measures: accuracies on forget / retained data, OU@eps with PGD and
Gaussian neighbours against the original, PRA with its alpha sweep and stealth rule, fine-tuning
relearning, and the feature attacks of ``attacks.probe`` (k-NN recovery, linear probe), with the
original's values beside the unlearned model's where they apply; MRA when asked.

Everything that can be wrong with the input (files, architecture, class count, checkpoint format,
forget classes, report folder) is checked before any compute.  The report folder is written
atomically: into a temporary sibling folder that is renamed at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import MuError, __version__
from .adapter import adapt
from .attacks.pra import DEFAULT_ALPHAS, PRA
from .attacks.probe import DEFAULT_SHOTS, FeatureAttacks
from .attacks.relearn import relearn_sweep
from .audit_inputs import (
    Arch,
    arch_sources,
    build_arch,
    data_classes,
    load_split,
    load_weights,
    read_state_dict,
)
from .audit_report import AuditResult, check_report_dir, summary_line, write_report
from .data import ForgetSplit, check_forget_classes, get_dataset_info
from .infer import predict_logits
from .metrics import accuracy, ou_from_logits
from .perturb import gaussian, pgd_linf
from .util import progress, resolve_device

# ------------------------------------------------------------------ measures


@dataclass
class AuditSettings:
    """What the audit measures and how (defaults: the paper's evaluation settings)."""

    ks: tuple[int, ...] = DEFAULT_SHOTS  # shots per class for PRA, k-NN and the probe
    seed: int = 0
    eps: float = 0.03  # PGD l-inf radius, step 0.01, 3 steps (section 5.1)
    pgd_step: float = 0.01
    pgd_steps: int = 3
    gaussian_std: float = 0.1  # Appendix A: variance 0.01
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    pra_form: str = "cos"
    tolerance: float = 1.0  # stealth budget: Acc*_r >= Acc_r - 1 point
    relearn: bool = True
    mra: bool = False
    batch_size: int = 256
    device: str = "auto"


def _accuracies(model: nn.Module, split: ForgetSplit, bs: int) -> dict[str, float]:
    return {
        "acc_f": accuracy(model, *split.forget_train, bs),
        "acc_r": accuracy(model, *split.retain_train, bs),
        "acc_ft": accuracy(model, *split.forget_test, bs),
        "acc_rt": accuracy(model, *split.retain_test, bs),
    }


def audit_models(
    original: nn.Module,
    unlearned: nn.Module,
    split: ForgetSplit,
    settings: AuditSettings | None = None,
    *,
    layer: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    meta: dict | None = None,
) -> AuditResult:
    """Audit two ``nn.Module`` classifiers on ``split`` (images in [0, 1]).  ``layer`` names the
    final linear layer when it cannot be found; ``mean``/``std`` normalise the inputs first."""
    s = settings or AuditSettings()
    device = resolve_device(s.device)
    fc = list(split.forget_classes)
    ks = sorted({int(k) for k in s.ks})
    xf, yf = split.forget_train
    if len(yf) == 0:
        raise MuError(f"the data holds no training images of forget class(es) {fc}")
    example = xf[:2].to(device)
    models = {}
    for name, m in (("original", original), ("unlearned", unlearned)):
        m = m.to(device).eval()
        models[name] = adapt(m, layer=layer, example=example, mean=mean, std=std)
    t0 = time.perf_counter()
    steps = ["accuracies", "OU@eps", "PRA", "feature attacks"]
    steps += ["relearning"] if s.relearn else []
    steps += ["MRA"] if s.mra else []
    bar = progress(steps, desc="audit", total=len(steps))
    rec: dict[str, Any] = {"models": {}, "timings": {}}
    feats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    pras: dict[str, PRA] = {}
    for step in bar:
        t = time.perf_counter()
        if step == "accuracies":
            for name, m in models.items():
                rec["models"][name] = _accuracies(m, split, s.batch_size)
        elif step == "OU@eps":
            rec["ou"] = _ou(models, split, s, device)
        elif step == "PRA":
            rec["pra"] = {}
            for name, m in models.items():
                pras[name] = PRA(m, split.forget_train, split.retain_train, fc, s.batch_size)
                rec["pra"][name] = _pra_sweeps(pras[name], split, ks, s)
                feats[name] = (
                    torch.cat([pras[name].ef, pras[name].er]),
                    torch.cat([pras[name].yf, pras[name].yr]),
                )
        elif step == "feature attacks":
            rec["feature_attacks"] = {
                name: [r.to_dict() for r in FeatureAttacks.from_pra(p).run(ks, s.seed)]
                for name, p in pras.items()
            }
        elif step == "relearning":
            k = ks[0]
            shots = split.shots(min(k, _max_forget_shots(split)), s.seed)
            r = relearn_sweep(
                models["unlearned"],
                shots,
                split.forget_train,
                split.retain_train,
                tolerance=s.tolerance,
                device=device,
                seed=s.seed,
            )
            rec["relearn"] = {"k": len(shots[1]) // len(fc), **r.__dict__}
        elif step == "MRA":
            rec["mra"] = _mra(models["unlearned"], split, s)
        rec["timings"][step] = round(time.perf_counter() - t, 2)
    rec["timings"]["total"] = round(time.perf_counter() - t0, 2)
    rec["data"] = split.describe()
    rec["settings"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()}
    rec["meta"] = {"version": __version__, "device": device, **(meta or {})}
    rec["summary"] = summary_line(rec)
    return AuditResult(rec, feats)


def _max_forget_shots(split: ForgetSplit) -> int:
    _, yf = split.forget_train
    return min(int((yf == c).sum()) for c in split.forget_classes)


def _ou(models: dict, split: ForgetSplit, s: AuditSettings, device: str) -> dict[str, float]:
    xf, yf = split.forget_train
    out = {}
    orig = models["original"]
    for kind in ("pgd", "gauss"):
        if kind == "pgd":
            xp = pgd_linf(
                orig,
                xf,
                yf,
                eps=s.eps,
                step=s.pgd_step,
                steps=s.pgd_steps,
                seed=s.seed,
                device=device,
            )
        else:
            xp = gaussian(xf, std=s.gaussian_std, seed=s.seed)
        zo = predict_logits(orig, xp, s.batch_size)
        zu = predict_logits(models["unlearned"], xp, s.batch_size)
        out[kind] = ou_from_logits(zo, zu, split.forget_classes)
    return out


def _pra_sweeps(pra: PRA, split: ForgetSplit, ks: list[int], s: AuditSettings) -> dict:
    top = _max_forget_shots(split)
    return {
        str(k): pra.sweep(
            split.shot_indices(k, s.seed), s.pra_form, s.alphas, s.tolerance
        ).to_dict()
        for k in ks
        if k <= top
    }


def _mra(model: nn.Module, split: ForgetSplit, s: AuditSettings) -> dict:
    from .attacks.mra import MRAHparams, membership_recall

    xf, yf = split.forget_train
    res = membership_recall(
        model, xf, split.retain_test[0], split.num_classes, MRAHparams(seed=s.seed)
    )
    return {
        "recall": 100.0 * float((res.labels.cpu() == yf).float().mean()),
        "own_acc_f": 100.0 * float((res.teacher_labels.cpu() == yf).float().mean()),
    }


# ------------------------------------------------------------------ files in, report out


@dataclass
class AuditInputs:
    """Everything ``mu audit`` was given, checked and loaded (before any compute)."""

    arch: Arch
    original: nn.Module
    unlearned: nn.Module
    num_classes: int
    forget_classes: tuple[int, ...]


def prepare(
    arch: str,
    original: str | Path,
    unlearned: str | Path,
    data: str | Path,
    forget_classes: Sequence[int],
    num_classes: int | None = None,
    size: int | None = None,
    report: str | Path | None = None,
) -> AuditInputs:
    """Check and load the inputs of ``mu audit``; every error is raised here, before compute."""
    for what, p in (("--original", original), ("--unlearned", unlearned)):
        if not Path(p).is_file():
            raise MuError(f"{what} {p} does not exist")
    check_report_dir(report)
    n_data, _ = data_classes(data)
    if num_classes is not None and num_classes != n_data:
        raise MuError(
            f"--num-classes {num_classes} but --data {data} has {n_data} classes; the classes of "
            "the data must be the classes of the model's head, in sorted folder-name order"
        )
    n = num_classes or n_data
    fc = check_forget_classes(forget_classes, n, str(data))
    channels = _data_channels(data)
    if size is None and not Path(data).is_dir():  # a registry backbone at the dataset's own size
        native = get_dataset_info(str(data)).size
    else:
        native = size
    states = {
        what: read_state_dict(p) for what, p in (("original", original), ("unlearned", unlearned))
    }
    errors = []
    for source in arch_sources(arch):
        built = {}
        try:
            for what, p in (("original", original), ("unlearned", unlearned)):
                reg = source == "registry"
                a = build_arch(arch, source, n, channels if reg else 3, native if reg else size)
                load_weights(a.model, states[what], str(p), f"{source}:{a.name}")
                built[what] = a
        except MuError as err:
            errors.append(err)
            continue
        o, u = built["original"], built["unlearned"]
        return AuditInputs(o, o.model.eval(), u.model.eval(), n, fc)
    head_hint = _head_rows(states["original"])
    if head_hint is not None and head_hint != n:
        raise MuError(
            f"the checkpoint's final layer has {head_hint} outputs but --data {data} has {n} "
            "classes; audit with data of the classes the model was trained on"
        )
    raise errors[0]


def _head_rows(state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the last 2-D weight in the state dict (the classifier head in usual layouts)."""
    mats = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(mats[-1].shape[0]) if mats else None


def _data_channels(data: str | Path) -> int:
    if Path(data).is_dir():
        return 3
    return get_dataset_info(str(data)).channels


def audit_files(
    arch: str,
    original: str | Path,
    unlearned: str | Path,
    data: str | Path,
    forget_classes: Sequence[int],
    *,
    num_classes: int | None = None,
    report: str | Path | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    layer: str | None = None,
    max_per_class: int | None = None,
    settings: AuditSettings | None = None,
) -> AuditResult:
    """What ``mu audit`` does: check and load, measure, write the report (if ``report``)."""
    inputs = prepare(arch, original, unlearned, data, forget_classes, num_classes, size, report)
    a = inputs.arch
    if (mean is None) != (std is None):
        raise MuError("give both --mean and --std, or neither")
    mean = a.mean if mean is None else tuple(mean)
    std = a.std if std is None else tuple(std)
    channels = 3 if a.source != "registry" else _data_channels(data)
    split = load_split(data, inputs.forget_classes, a.size, channels, max_per_class)
    if _max_forget_shots(split) < 2:
        raise MuError(f"forget class(es) {list(inputs.forget_classes)} need >= 2 training images")
    meta = {
        "arch": f"{a.source}:{a.name}",
        "original": str(original),
        "unlearned": str(unlearned),
        "data": str(data),
        "input": {"size": a.size, "mean": mean, "std": std},
    }
    res = audit_models(
        inputs.original,
        inputs.unlearned,
        split,
        settings,
        layer=layer,
        mean=mean,
        std=std,
        meta=meta,
    )
    if report is not None:
        write_report(res, report)
    return res
