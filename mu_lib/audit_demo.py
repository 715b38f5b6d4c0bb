"""Inputs for the audit page: our cached models exported as checkpoint files, and an
external-format pair (a torchvision model trained here, unlearned with ``mu_lib.unlearn_model``
and saved as plain ``.pt`` state dicts) with the image folder it was trained on."""

from __future__ import annotations

from pathlib import Path

import torch

from .adapter import IMAGENET_MEAN, IMAGENET_STD, adapt
from .api import unlearn
from .audit_inputs import load_split, save_checkpoint
from .data import load_raw
from .folders import export_image_folder
from .labels import method_label
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


def tv_settings(profile, epochs: int | None, images_per_class: int | None):
    """Epochs and images per class of the page's torchvision model: the parameters if given,
    else ``Profile.audit_torchvision``."""
    default_epochs, default_images = profile.audit_torchvision
    return epochs or default_epochs, images_per_class or default_images


def mu_audit(*args, device: str = "auto") -> dict:
    """Run ``mu audit`` as a user would (a subprocess), display the command, its terminal line,
    the report and its figures, and return ``audit.json``."""
    import json
    import os
    import shlex
    import subprocess
    import sys

    from IPython.display import Image, Markdown, display

    cmd = ["mu", "audit", *map(str, args), "--device", device]
    display(Markdown(f"```\n$ {shlex.join(cmd)}\n```"))
    out = subprocess.run(
        [sys.executable, "-m", "mu_lib", *cmd[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, "MU_QUIET": "1"},
    )
    display(Markdown(f"```\n{(out.stdout + out.stderr).strip()}\n```"))
    report = Path(args[list(args).index("--report") + 1])
    if out.returncode != 0:
        raise RuntimeError(f"mu audit failed (exit {out.returncode}); its output is shown above")
    # the report without its title line and figures (shown below as images)
    display(Markdown((report / "report.md").read_text().split("\n", 2)[2].split("![")[0]))
    for f in ("alpha_sweep.png", "features_pca.png"):
        display(Image(filename=str(report / f), width=640))
    return json.loads((report / "audit.json").read_text())


def reading(records: dict[str, dict]) -> str:
    """One line per audited pair: accuracies before -> after, OU and what PRA and k-NN recover."""
    lines = []
    for name, r in records.items():
        u, o = r["models"]["unlearned"], r["models"]["original"]
        k = min(r["pra"]["unlearned"], key=int)
        knn = next(a for a in r["feature_attacks"]["unlearned"] if a["attack"] == "knn")
        lines.append(
            f"- **{method_label(name)}** ({r['meta']['arch']}): Acc_f {o['acc_f']:.1f}% -> "
            f"{u['acc_f']:.1f}%, "
            f"Acc_rt {o['acc_rt']:.1f}% -> {u['acc_rt']:.1f}%, OU@ε {r['ou']['pgd']:.4f}; PRA with "
            f"{k} shots brings the forget accuracy back to "
            f"{r['pra']['unlearned'][k]['chosen_proto_acc_f']:.1f}%, k-NN with {knn['k']} shots to "
            f"{knn['acc_f']:.1f}%."
        )
    return "\n".join(lines)
