"""One call to unlearn classes from your own classifier with any method of the registry.

``mu_lib.unlearn`` is the package of methods, so the function is exported as
``mu_lib.unlearn_model`` (and lives here as ``mu_lib.api.unlearn``)::

    from mu_lib import unlearn_model
    forgotten = unlearn_model(model, forget=(x_f, y_f), method="spotter", lambda2=1.0)

It builds the method's :class:`~mu_lib.unlearn.base.Context` (the frozen original, the
forget and retained data, the class counts, the seed and device) and, for a model without
``embed``/``head``, the feature adapter of :mod:`mu_lib.adapter`.  The model you pass is left
untouched; the unlearned copy is returned as the same kind of module.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from . import MuError
from .adapter import adapt
from .profiles import get_profile
from .util import resolve_device


def _labels(y: torch.Tensor, what: str) -> torch.Tensor:
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise MuError(f"{what} labels must be integer class indices, got dtype {y.dtype}")
    return y.long()


def unlearn(
    model: nn.Module,
    forget: tuple[torch.Tensor, torch.Tensor],
    method: str = "spotter",
    retain: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    forget_classes: Sequence[int] | None = None,
    num_classes: int | None = None,
    base: str | None = None,
    profile: str | None = None,
    seed: int = 0,
    device: str = "auto",
    layer: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **hparams,
) -> nn.Module:
    """Return a copy of ``model`` with the classes of ``forget`` unlearned by ``method``.

    forget: (images in [0, 1], labels) of the data to forget (D_f).
    retain: (images, labels) of retained data, required by methods that use it (``mu methods``
        marks them ``retain``); ignored by forget-only methods such as Spotter.
    forget_classes: default, the classes present in ``forget``'s labels.
    num_classes: default, the output size of the model's final linear layer.
    base: plug this method's loss into Spotter (``method="spotter"`` only).
    profile: whose per-profile defaults (epochs, batch) to use; default ``MU_PROFILE`` or cpu.
    layer, mean, std: the feature adapter's final linear layer (found automatically when
        unambiguous) and the input normalisation your model expects (none by default).
    hparams: the method's hyperparameters (e.g. ``lr=1e-4, epochs=10, lambda2=1.0``).
    """
    from .unlearn import build_method, make_context

    x, y = forget
    y = _labels(y, "forget")
    if len(y) == 0:
        raise MuError("forget is empty: give the images and labels of the data to forget")
    dev = resolve_device(device)
    prof = get_profile(profile)
    fc = tuple(sorted({int(c) for c in (forget_classes or y.unique().tolist())}))
    work = copy.deepcopy(model).to(dev)
    adapted = adapt(work, layer=layer, example=x[:2].to(dev), mean=mean, std=std)
    n = num_classes or adapted.head.out_features
    bad = [c for c in fc if not 0 <= c < n]
    if bad or len(fc) >= n:
        raise MuError(f"forget classes {list(fc)} do not fit a head of {n} classes (0..{n - 1})")
    m = build_method(method, prof.name, hparams, prof.unlearn_epochs, base=base)
    if m.needs_retain and retain is None:
        raise MuError(f"method {method!r} uses retained data: pass retain=(images, labels)")
    ret = (retain[0], _labels(retain[1], "retain")) if m.needs_retain else None
    ctx = make_context(
        m, adapted, adapted, (x, y), ret, num_classes=n, forget_classes=fc, seed=seed,
        device=dev, profile=prof,
    )  # fmt: skip
    out = m.unlearn(ctx)
    if out is not adapted:  # methods that return a new model (e.g. retraining)
        return out
    return work.eval()
