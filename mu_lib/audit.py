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

import json
import os
import pickle
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import MuError, __version__
from .adapter import adapt
from .attacks.pra import DEFAULT_ALPHAS, PRA
from .attacks.probe import DEFAULT_SHOTS, FeatureAttacks
from .attacks.relearn import relearn_sweep
from .backbones import MODELS, build_model
from .data import DATASETS, ForgetSplit, check_forget_classes, get_dataset_info, make_split
from .infer import predict_logits
from .metrics import accuracy, ou_from_logits
from .perturb import gaussian, pgd_linf
from .util import progress, resolve_device

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
REPORT_MARKER = "audit.json"

# ------------------------------------------------------------------ architectures


@dataclass
class Arch:
    """A model built by name, with the input transform it expects (size, normalisation)."""

    source: str  # "registry" | "torchvision" | "timm"
    name: str
    model: nn.Module
    size: int
    mean: tuple[float, ...] | None  # None: the model normalises inside (the registry's)
    std: tuple[float, ...] | None


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def arch_sources(name: str) -> list[str]:
    """Where ``name`` (optionally ``registry:``, ``torchvision:`` or ``timm:`` prefixed) is found."""
    if ":" in name:
        src, _ = name.split(":", 1)
        if src not in ("registry", "torchvision", "timm"):
            raise MuError(
                f"unknown model source {src!r} in {name!r}; use registry:, torchvision:, timm:"
            )
        return [src]
    out = []
    if name in MODELS:
        out.append("registry")
    if name in _torchvision_names():
        out.append("torchvision")
    try:
        import timm

        if timm.is_model(name):
            out.append("timm")
    except ImportError:
        pass
    if not out:
        raise MuError(
            f"unknown architecture {name!r}: not in the registry {sorted(MODELS)}, not a "
            "torchvision classification model (torchvision.models.list_models()) and not a timm "
            "model (or timm is not installed)"
        )
    return out


def build_arch(
    name: str, source: str, num_classes: int, channels: int = 3, size: int | None = None
) -> Arch:
    """Build ``name`` from ``source`` with random weights (nothing is downloaded)."""
    bare = name.split(":", 1)[-1]
    if source == "registry":
        s = size or 32
        return Arch(source, bare, build_model(bare, num_classes, channels, s), s, None, None)
    if channels != 3:
        raise MuError(f"{source} models take RGB images; got channels={channels}")
    if source == "torchvision":
        import torchvision
        from torchvision.models import get_model_weights

        model = torchvision.models.get_model(bare, weights=None, num_classes=num_classes)
        try:  # the weights' documented transform, read from metadata (no download)
            t = get_model_weights(bare).DEFAULT.transforms()
            crop, mean, std = int(t.crop_size[0]), tuple(t.mean), tuple(t.std)
        except (ValueError, AttributeError):
            crop, mean, std = 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return Arch(source, bare, model, size or crop, mean, std)
    if source == "timm":
        import timm

        model = timm.create_model(bare, pretrained=False, num_classes=num_classes)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        crop = int(cfg.get("input_size", (3, 224, 224))[-1])
        mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        return Arch(source, bare, model, size or crop, mean, std)
    raise MuError(f"unknown model source {source!r}")


# ------------------------------------------------------------------ checkpoints


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a ``.pt``/``.pth``/``.bin`` *plain* state dict loaded
    with ``torch.load(weights_only=True)`` (no arbitrary pickle is ever executed)."""
    path = Path(path)
    if not path.is_file():
        raise MuError(f"checkpoint {path} does not exist")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise MuError(
            f"checkpoint {path}: unknown format {path.suffix!r}; use one of {CHECKPOINT_SUFFIXES}"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise MuError(f"checkpoint {path} is not a readable safetensors file: {err}") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        first = f"it holds a pickled {found.group(1)}" if found else type(err).__name__
        raise MuError(
            f"checkpoint {path} is not a plain state dict: torch.load(weights_only=True) refused "
            f"it ({first}). Save `model.state_dict()` with torch.save, or convert it to "
            "safetensors; a pickled model object is never loaded"
        ) from err
    if not isinstance(obj, dict) or not obj:
        raise MuError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        nested = [k for k in bad if isinstance(obj[k], dict)]
        hint = f"; save checkpoint[{nested[0]!r}] alone" if nested else ""
        raise MuError(
            f"checkpoint {path} is not a plain state dict: entries {bad[:5]} are not tensors{hint}"
        )
    return obj


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str, arch: str) -> None:
    """``load_state_dict(strict=True)`` with an error that says what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise MuError(
            f"checkpoint {path} does not fit --arch {arch}: "
            f"{len(missing)} missing key(s) {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}, {len(shapes)} shape mismatch(es) {shapes[:2]}. Check --arch "
            "(e.g. torchvision:resnet18 vs registry:resnet18) and --num-classes"
        )
    model.load_state_dict(state)


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict as safetensors (the format ``mu audit`` reads first)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


# ------------------------------------------------------------------ data


def data_classes(data: str | Path) -> tuple[int, str]:
    """(number of classes, kind) of an image folder or a registered dataset, without decoding."""
    from .folders import FolderSpec, scan_folder

    if Path(data).is_dir():
        return len(scan_folder(data, FolderSpec("classes", size=8)).classes), "folder"
    if str(data) in DATASETS:
        return get_dataset_info(str(data)).num_classes, "registry"
    raise MuError(
        f"--data {data}: no such folder and no registered dataset of that name; give an image "
        f"folder with one sub-folder per class, or one of {sorted(DATASETS)}"
    )


def load_split(
    data: str | Path,
    forget_classes: Sequence[int],
    size: int,
    channels: int = 3,
    max_per_class: int | None = None,
) -> ForgetSplit:
    """The forget split of an image folder (class sub-folders, train/val or split per class) or a
    registered dataset, as images of ``size`` x ``size`` in [0, 1]."""
    from .folders import FolderSpec, decode_images, scan_folder

    n, kind = data_classes(data)
    fc = check_forget_classes(forget_classes, n, str(data))
    if kind == "folder":
        spec = FolderSpec("classes", size=size, channels=channels, max_images=max_per_class)
        index = scan_folder(data, spec)
        xtr, ytr = decode_images(index.train, spec)
        xte, yte = decode_images(index.test, spec)
        t = [torch.from_numpy(a) for a in (xtr, ytr, xte, yte)]
        return ForgetSplit(str(data), n, fc, *t)
    split = make_split(str(data), fc, max_per_class, max_per_class)
    split.x_train, split.x_test = (
        _fit_images(x, size, channels) for x in (split.x_train, split.x_test)
    )
    return split


def _fit_images(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != channels:
        raise MuError(f"the data has {x.shape[1]} channels, the model takes {channels}")
    if x.shape[-1] != size:
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous()


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


@dataclass
class AuditResult:
    record: dict[str, Any]
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return self.record["summary"]


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


def _first(items: list[dict], attack: str) -> dict | None:
    return next((r for r in items if r["attack"] == attack), None)


def summary_line(rec: dict) -> str:
    """The one line printed on the terminal."""
    o, u = rec["models"]["original"], rec["models"]["unlearned"]
    parts = [
        f"Acc_f {u['acc_f']:.1f} (orig {o['acc_f']:.1f})",
        f"Acc_rt {u['acc_rt']:.1f} (orig {o['acc_rt']:.1f})",
        f"OU@eps {rec['ou']['pgd']:.4f}",
    ]
    pra = rec["pra"]["unlearned"]
    if pra:
        k = min(pra, key=int)
        parts.append(f"PRA@{k} {pra[k]['chosen_proto_acc_f']:.1f} (alpha {pra[k]['alpha']:g})")
    fa = rec["feature_attacks"]["unlearned"]
    for attack in ("knn", "probe"):
        r = _first(fa, attack)
        if r:
            parts.append(f"{'k-NN' if attack == 'knn' else 'probe'}@{r['k']} {r['acc_f']:.1f}")
    if "relearn" in rec:
        parts.append(f"relearn {rec['relearn']['chosen_acc_f']:.1f}")
    if "mra" in rec:
        parts.append(f"MRA {rec['mra']['recall']:.1f}")
    return "forget accuracy: " + " | ".join(parts)


# ------------------------------------------------------------------ files in, report out


@dataclass
class AuditInputs:
    """Everything ``mu audit`` was given, checked and loaded (before any compute)."""

    arch: Arch
    original: nn.Module
    unlearned: nn.Module
    num_classes: int
    forget_classes: tuple[int, ...]


def check_report_dir(report: str | Path | None) -> None:
    """A report folder may be new, empty or an earlier audit's (which it replaces)."""
    if report is None:
        return
    out = Path(report)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_MARKER).exists())
    ):
        raise MuError(
            f"--report {out} exists and is not an earlier audit report; choose a new folder"
        )


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


def write_report(res: AuditResult, report: str | Path) -> list[str]:
    """Write ``audit.json``, ``report.md`` and the figures into ``report`` atomically; returns the
    file names written."""
    check_report_dir(report)
    out = Path(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        figures = _figures(res, tmp)
        (tmp / "report.md").write_text(markdown_report(res.record, figures))
        (tmp / REPORT_MARKER).write_text(json.dumps(res.record, indent=2, default=float))
        names = sorted(p.name for p in tmp.iterdir())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names


def _figures(res: AuditResult, folder: Path) -> list[str]:
    """The alpha sweep and a 2-D PCA map of the features; none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rec = res.record
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, style in (("original", "--"), ("unlearned", "-")):
        sweeps = rec["pra"][name]
        if not sweeps:
            continue
        k = min(sweeps, key=int)
        r = sweeps[k]
        ax.plot(r["alphas"], r["proto_acc_f"], style, color="C3", label=f"Proto-Acc_f ({name})")
        ax.plot(r["alphas"], r["acc_r_star"], style, color="C0", label=f"Acc*_r ({name})")
    ax.set(xlabel="alpha", ylabel="accuracy (%)", title="PRA alpha sweep")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "alpha_sweep.png", dpi=110)
    plt.close(fig)
    out.append("alpha_sweep.png")
    if res.features:
        from sklearn.decomposition import PCA

        fc = set(rec["data"]["forget_classes"])
        fig, axes = plt.subplots(1, len(res.features), figsize=(4 * len(res.features), 3.6))
        for ax, (name, (emb, y)) in zip(
            list(getattr(axes, "flat", [axes])), res.features.items(), strict=True
        ):
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:2000]
            e, yy = emb[keep].numpy(), y[keep]
            xy = PCA(2, random_state=0).fit_transform(e) if e.shape[1] >= 2 else e.repeat(2, 1)
            f = torch.tensor([int(c) in fc for c in yy])
            ax.scatter(xy[~f, 0], xy[~f, 1], s=3, c=yy[~f].numpy(), cmap="tab10", alpha=0.4)
            ax.scatter(xy[f, 0], xy[f, 1], s=6, c="k", label="forget classes")
            ax.set(title=f"{name}: penultimate features (PCA)", xticks=[], yticks=[])
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "features_pca.png", dpi=110)
        plt.close(fig)
        out.append("features_pca.png")
    return out


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    fmt = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        fmt.append(
            "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |"
        )
    return "\n".join(fmt)


def markdown_report(rec: dict, figures: Sequence[str] = ()) -> str:
    """The human-readable report: tables of the record, then the figures."""
    meta, o, u = rec["meta"], rec["models"]["original"], rec["models"]["unlearned"]
    lines = [
        "# Unlearning audit",
        "",
        f"Model `{meta.get('arch', 'nn.Module')}`, data `{meta.get('data', '-')}`, forget classes "
        f"{rec['data']['forget_classes']}, device {meta['device']}, mu_lib {meta['version']}.",
        "",
        f"**Summary:** {rec['summary']}",
        "",
        "## Accuracy (%)",
        "",
        _md_table(
            ["", "original", "unlearned"],
            [[k, o[k], u[k]] for k in ("acc_f", "acc_r", "acc_ft", "acc_rt")],
        ),
        "",
        f"OU@eps against the original (Jensen-Shannon, 0 = retained classes untouched): PGD "
        f"{rec['ou']['pgd']:.4f}, Gaussian {rec['ou']['gauss']:.4f}.",
        "",
        "## Relearning attacks (forget accuracy after the attack, %)",
        "",
    ]
    rows = []
    for name in ("original", "unlearned"):
        for k, r in rec["pra"][name].items():
            rows.append(
                [name, "PRA (stealthy alpha)", k, r["chosen_proto_acc_f"], r["chosen_acc_r_star"]]
            )
        for r in rec["feature_attacks"][name]:
            label = "k-NN recovery" if r["attack"] == "knn" else "linear probe"
            rows.append([name, label, r["k"], r["acc_f"], r["acc_r"]])
    if "relearn" in rec:
        r = rec["relearn"]
        rows.append(
            [
                "unlearned",
                f"fine-tuning (lr {r['lr']:g})",
                r["k"],
                r["chosen_acc_f"],
                r["chosen_acc_r"],
            ]
        )
    lines.append(_md_table(["model", "attack", "k", "forget acc", "retained acc"], rows))
    if "mra" in rec:
        lines += [
            "",
            f"MRA label recall on D_f: {rec['mra']['recall']:.2f}% (the unlearned "
            f"model's own accuracy there: {rec['mra']['own_acc_f']:.2f}%).",
        ]
    for f in figures:
        lines += ["", f"![{f}]({f})"]
    lines += ["", "All numbers: `audit.json`."]
    return "\n".join(lines) + "\n"
