"""What ``mu audit`` reads: architectures by name, checkpoints in any of the usual formats, and
labelled data (a registered dataset or an image folder), each checked with an error that names the
fix before any compute."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import MuError
from .backbones import MODELS, build_model
from .data import DATASETS, ForgetSplit, check_forget_classes, get_dataset_info, make_split

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")

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


def arch_sources(name: str) -> Iterator[str]:
    """Where ``name`` (optionally ``registry:``, ``torchvision:`` or ``timm:`` prefixed) is found,
    in the order ``mu audit`` tries them.  Lazily: torchvision's and timm's model lists are read
    only if the sources before did not fit the checkpoint (listing them costs about 6 s, which a
    registry backbone's audit used to pay first)."""
    if ":" in name:
        src, _ = name.split(":", 1)
        if src not in ("registry", "torchvision", "timm"):
            raise MuError(
                f"unknown model source {src!r} in {name!r}; use registry:, torchvision:, timm:"
            )
        yield src
        return
    found = False
    if name in MODELS:
        found = True
        yield "registry"
    if name in _torchvision_names():
        found = True
        yield "torchvision"
    try:
        import timm

        is_timm = timm.is_model(name)
    except ImportError:
        is_timm = False
    if is_timm:
        found = True
        yield "timm"
    if not found:
        raise MuError(
            f"unknown architecture {name!r}: not in the registry {sorted(MODELS)}, not a "
            "torchvision classification model (torchvision.models.list_models()) and not a timm "
            "model (or timm is not installed)"
        )


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
