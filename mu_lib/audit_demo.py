"""Inputs for the audit page: our cached models exported as checkpoint files, and an
external-format pair (a torchvision model trained here, unlearned with ``mu_lib.unlearn_model``
and saved as plain ``.pt`` state dicts) with the image folder it was trained on."""

from __future__ import annotations

from pathlib import Path

import torch

from .adapter import IMAGENET_MEAN, IMAGENET_STD, adapt
from .api import unlearn
from .audit import load_split, save_checkpoint
from .data import load_raw
from .folders import export_image_folder
from .train import train_classifier
from .util import resolve_device


def export_run(cfg, folder: str | Path) -> tuple[Path, Path]:
    """The original and unlearned models of a run configuration (from the cache, trained if
    missing) written as ``original.safetensors`` and ``<method>.safetensors``."""
    from .experiment import original_model, unlearned_model

    folder = Path(folder)
    orig = save_checkpoint(original_model(cfg)[0], folder / "original.safetensors")
    unl = save_checkpoint(unlearned_model(cfg)[0], folder / f"{cfg.method}.safetensors")
    return orig, unl


def export_dataset_folder(dataset: str, folder: str | Path) -> Path:
    """A registered dataset's training and test images written as ``folder/<class>/*.png``."""
    folder = Path(folder)
    if not (folder / ".complete").exists():
        for train in (True, False):
            x, y = load_raw(dataset, train)
            names = [f"class_{c:02d}" for c in range(int(y.max()) + 1)]
            export_image_folder(x, y, folder / ("train" if train else "val"), names)
        (folder / ".complete").write_text(f"{dataset} exported by mu_lib.audit_demo\n")
    return folder


def torchvision_pair(
    data_folder: str | Path,
    out: str | Path,
    forget_classes=(0,),
    arch: str = "resnet18",
    size: int = 32,
    epochs: int = 4,
    seed: int = 0,
    device: str = "auto",
    max_per_class: int | None = None,
    **unlearn_hparams,
) -> tuple[Path, Path]:
    """Train a torchvision ``arch`` (random initial weights) on ``data_folder``, unlearn
    ``forget_classes`` with Spotter through ``unlearn_model``, save both as ``.pt`` state dicts
    (``max_per_class``: train on at most that many images per class, as ``mu audit`` reads them)."""
    import torchvision

    dev = resolve_device(device)
    split = load_split(data_folder, forget_classes, size, 3, max_per_class)
    torch.manual_seed(seed)
    net = torchvision.models.get_model(arch, weights=None, num_classes=split.num_classes).to(dev)
    wrapped = adapt(net, example=split.x_train[:2].to(dev), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    train_classifier(
        wrapped, split.x_train, split.y_train, epochs=epochs, lr=0.05, batch_size=64,
        seed=seed, device=dev, desc=f"train {arch}",
    )  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "original.pt")
    forgotten = unlearn(
        net, forget=split.forget_train, method="spotter", seed=seed, device=dev,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, **unlearn_hparams,
    )  # fmt: skip
    torch.save(forgotten.state_dict(), out / "unlearned.pt")
    return out / "original.pt", out / "unlearned.pt"
