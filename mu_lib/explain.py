"""Grad-CAM for our classifiers, clean and with a PRA-patched head (paper section 5.3, Figure 4).

The heatmaps come from the maintained ``grad-cam`` package (``pytorch_grad_cam``, a book-only
dependency, imported lazily).  A small implementation with a forward hook and
``torch.autograd.grad`` is kept as a fallback for when that package is not installed or cannot
handle a model (it then raises); it computes the same quantity (channel weights = spatial mean of
the gradient of the target logit, weighted sum of activations, ReLU, per-image min-max scaling)
and is also what the tests compare the package against.

Which layer: Grad-CAM needs the last spatial feature map.  We take the last top-level child of
``model.features`` that is, or contains, a ``Conv2d``: for a conv-BN-ReLU stack (``SmallCNN``)
that is the last convolution itself; for a ResNet it is the last residual block (its output, not
the 1x1 shortcut convolution inside it, is the last full feature map).  A PRA-patched model
(``mu_lib.attacks.pra.PatchedModel``) shares its body with the unlearned model, so its layer is
``model.model.features``: the only difference under PRA is the head, and therefore the gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import MuError
from .util import eval_mode as _eval_mode

BACKENDS = ("auto", "package", "hooks")


def _features(model: nn.Module) -> nn.Module:
    body = model
    if not hasattr(body, "features") and hasattr(body, "model"):  # PatchedModel wraps the model
        body = body.model
    feats = getattr(body, "features", None)
    if not isinstance(feats, nn.Module):
        raise MuError(
            f"{type(model).__name__} has no `features` module, so Grad-CAM cannot find a "
            "convolutional layer; pass target_layer=<the last spatial layer> explicitly "
            "(transformer backbones need a token-to-grid reshape and are not supported here)"
        )
    return feats


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose output Grad-CAM weighs: the last conv stage of ``model.features``."""
    feats = _features(model)
    children = list(feats.children()) or [feats]
    for child in reversed(children):
        if isinstance(child, nn.Conv2d) or any(isinstance(m, nn.Conv2d) for m in child.modules()):
            return child
    raise MuError(
        f"no Conv2d inside {type(model).__name__}.features; pass target_layer= explicitly"
    )


def _check_inputs(x: torch.Tensor, targets) -> torch.Tensor:
    if x.ndim != 4:
        raise MuError(f"Grad-CAM needs images of shape (N, C, H, W); got shape {tuple(x.shape)}")
    t = torch.as_tensor(targets, dtype=torch.long).flatten()
    if len(t) == 1 and len(x) > 1:
        t = t.expand(len(x))
    if len(t) != len(x):
        raise MuError(
            f"give one target class per image (or a single one for all): {len(x)} images, "
            f"{len(t)} targets"
        )
    return t


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    """Per-image scaling to [0, 1] (as the package does: subtract the min, divide by the max)."""
    flat = cam.flatten(1)
    flat = flat - flat.min(1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(1, keepdim=True).values)
    return flat.view_as(cam)


def _gradcam_hooks(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    """Own Grad-CAM: capture the layer's output, differentiate the target logits w.r.t. it."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _inp, out):
        store["act"] = out

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            xi = x.detach().clone().requires_grad_(True)  # a graph even for frozen models
            logits = model(xi)
            act = store["act"]
            score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
            (grad,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    if act.ndim != 4:
        raise MuError(f"the target layer's output must be (N, C, H, W); got {tuple(act.shape)}")
    weights = grad.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(1, keepdim=True)).detach().float()
    cam = _minmax(cam)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _minmax(cam.clamp_min(0)).squeeze(1).cpu().numpy().astype(np.float32)


def _gradcam_package(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=model, target_layers=[layer])
    # BaseCAM's switch (GradCAM's constructor does not expose it): the input requires grad, so
    # frozen models (parameters with requires_grad=False) still build a graph.
    cam.compute_input_gradient = True
    try:  # not `with`: the package's __exit__ swallows IndexError
        with torch.enable_grad():
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # the package backpropagates into the parameters
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    targets: int | Sequence[int] | torch.Tensor,
    backend: str = "auto",
    layer: nn.Module | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] for images ``x`` and their target classes.

    backend: ``package`` (pytorch_grad_cam), ``hooks`` (own implementation) or ``auto`` (the
    package, falling back to the hooks when it is missing or fails on this model).
    """
    if backend not in BACKENDS:
        raise MuError(f"unknown Grad-CAM backend {backend!r}; choose one of {BACKENDS}")
    t = _check_inputs(x, targets)
    layer = layer if layer is not None else target_layer(model)
    with _eval_mode(model):
        device = next(model.parameters()).device
        parts = []
        for i in range(0, len(x), batch_size):
            xb, tb = x[i : i + batch_size].to(device), t[i : i + batch_size]
            parts.append(_one_batch(model, layer, xb, tb, backend))
    return np.concatenate(parts) if parts else np.zeros((0, *x.shape[-2:]), np.float32)


def _one_batch(model, layer, x, t, backend: str) -> np.ndarray:
    if backend == "hooks":
        return _gradcam_hooks(model, layer, x, t)
    try:
        return _gradcam_package(model, layer, x, t)
    except ImportError as err:
        if backend == "package":
            raise MuError(
                "backend='package' needs the grad-cam package: pip install 'grad-cam>=1.5' "
                "(or pip install -e '.[book]'), or use backend='hooks'"
            ) from err
    except (RuntimeError, ValueError, IndexError):
        if backend == "package":
            raise
    return _gradcam_hooks(model, layer, x, t)


def target_probability(
    model: nn.Module, x: torch.Tensor, targets: int | Sequence[int] | torch.Tensor
) -> np.ndarray:
    """Softmax probability of each image's target class (how strong the evidence is: Grad-CAM
    maps are min-max scaled per image, so a faint map and a strong one look alike)."""
    t = _check_inputs(x, targets)
    device = next(model.parameters()).device
    with torch.no_grad(), _eval_mode(model):
        p = torch.softmax(model(x.to(device)).float(), 1)
    return p.gather(1, t.view(-1, 1).to(device)).squeeze(1).cpu().numpy()


def cam_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image Pearson correlation between two stacks of heatmaps (0 where one is constant)."""
    if a.shape != b.shape:
        raise MuError(f"heatmap stacks differ in shape: {a.shape} vs {b.shape}")
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    a2 = a2 - a2.mean(1, keepdims=True)
    b2 = b2 - b2.mean(1, keepdims=True)
    den = np.sqrt((a2**2).sum(1) * (b2**2).sum(1))
    num = (a2 * b2).sum(1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def clean_and_attacked(
    models: Mapping[str, tuple[nn.Module, nn.Module]],
    x: torch.Tensor,
    targets: int | Sequence[int] | torch.Tensor,
    backend: str = "auto",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Heatmaps and target probabilities for every (clean model, PRA-patched model) pair.

    Keys are ``"<name> · clean"`` and ``"<name> · PRA"``, in the order of ``models``.
    """
    cams: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    for name, (clean, attacked) in models.items():
        for tag, m in (("clean", clean), ("PRA", attacked)):
            key = f"{name} · {tag}"
            cams[key] = gradcam(m, x, targets, backend=backend)
            probs[key] = target_probability(m, x, targets)
    return cams, probs


def cam_grid(
    images: torch.Tensor | np.ndarray,
    cams: Mapping[str, np.ndarray],
    probs: Mapping[str, np.ndarray] | None = None,
    overlay: float = 0.5,
    cmap: str = "jet",
    cell: float = 1.3,
):
    """A figure: first row the images, then one row per entry of ``cams`` (e.g. model x clean/PRA),
    one column per example; each panel titled with the target probability when given."""
    import matplotlib.pyplot as plt

    from .labels import method_label

    imgs = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    imgs = np.asarray(imgs, dtype=np.float32)
    if imgs.ndim != 4:
        raise MuError(f"images must be (N, C, H, W); got shape {imgs.shape}")
    n = len(imgs)
    for k, c in cams.items():
        if c.shape != (n, *imgs.shape[-2:]):
            raise MuError(
                f"heatmaps for {k!r} have shape {c.shape}, expected {(n, *imgs.shape[-2:])}"
            )
    gray = imgs.shape[1] == 1
    shown = imgs[:, 0] if gray else imgs.transpose(0, 2, 3, 1)
    rows = len(cams) + 1
    fig, axes = plt.subplots(rows, n, figsize=(cell * n + 1.6, cell * rows), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(shown[j], cmap="gray" if gray else None, vmin=0, vmax=1)
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize=8)
    for i, (name, c) in enumerate(cams.items(), start=1):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(shown[j], cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.imshow(c[j], cmap=cmap, alpha=overlay, vmin=0, vmax=1)
            if probs is not None and name in probs:
                ax.set_title(f"p={probs[name][j]:.2f}", fontsize=7, pad=2)
        shown_name = " · ".join([method_label(name.split(" · ")[0]), *name.split(" · ")[1:]])
        axes[i, 0].set_ylabel(shown_name, rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if cams:
        scale = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
        bar = fig.colorbar(scale, ax=axes[1:, :].ravel().tolist(), fraction=0.02, pad=0.01)
        bar.set_label("Grad-CAM (normalised)", fontsize=8)
    return fig
