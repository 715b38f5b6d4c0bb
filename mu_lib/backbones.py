"""Build any registered backbone by name.

The registry (``models.MODELS``) is filled by the modules that define backbones; this module
imports all of them (as timm's ``models/__init__`` does), so the registry is complete whenever
:func:`build_model` runs and no backbone module imports another at its bottom.
"""

from __future__ import annotations

import torch
from torch import nn

from . import MuError, vit  # noqa: F401  (vit registers the transformer backbones)
from .models import MODELS, Classifier

__all__ = ["MODELS", "build_model", "fresh_model"]


def build_model(name: str, num_classes: int, channels: int, size: int) -> Classifier:
    """Instantiate a registered backbone (a clear error names the available ones).

    The model remembers how it was built (``build_spec``), so that :func:`fresh_model` can
    build it again from scratch.
    """
    if name not in MODELS:
        raise MuError(f"unknown backbone {name!r}; choose one of {sorted(MODELS)}")
    model = MODELS[name](num_classes=num_classes, channels=channels, size=size)
    model.build_spec = dict(name=name, num_classes=num_classes, channels=channels, size=size)
    return model


def fresh_model(model: nn.Module, seed: int) -> Classifier:
    """A newly built model of ``model``'s backbone, initialised under ``seed`` (torch's global
    random state is left as it was).

    Rebuilding draws every parameter anew; calling ``reset_parameters`` on a copy would keep the
    transformer's class token, position embeddings and attention in-projections.
    """
    spec = getattr(model, "build_spec", None)
    if spec is None:
        raise MuError(
            f"{type(model).__name__} was not built by mu_lib.backbones.build_model, so it cannot be "
            "rebuilt from scratch; build it with build_model(name, num_classes, channels, size)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(**spec)
