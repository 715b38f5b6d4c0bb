"""The feature adapter: give any classifier the ``embed(x)`` / ``head`` interface the attacks need.

The library's models expose their penultimate features (``embed``) and their final linear layer
(``head``).  A torchvision, timm or hand-written classifier does not, so the adapter finds the
final ``nn.Linear`` by running one forward pass with hooks on every linear layer: the last one to
run, whose output is the model's output, is the head, and its input is the penultimate feature.
When that cannot be established (no linear layer, the last one is followed by other operations),
the error lists the linear layers so that the user can name one with ``layer=``.

Inputs stay images in [0, 1], as everywhere in the library: the adapter applies the
normalisation (``mean``/``std``) that the wrapped model expects as its first step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import MuError
from .models import Normalize

# torchvision's ImageNet classifiers all expect this normalisation (their weights' transforms).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def has_interface(model: nn.Module) -> bool:
    """True for models that already expose ``embed`` and a linear ``head`` (the registry's)."""
    return callable(getattr(model, "embed", None)) and isinstance(
        getattr(model, "head", None), nn.Linear
    )


def linear_layers(model: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` of ``model``, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def find_head(model: nn.Module, example: torch.Tensor) -> str:
    """Name of the linear layer whose output is ``model``'s output on ``example``.

    Raises a ``MuError`` that lists the candidates when no such layer exists (the last linear
    layer is followed by other operations, or the model has none).
    """
    names = linear_layers(model)
    if not names:
        raise MuError(
            f"{type(model).__name__} has no nn.Linear layer: the attacks need a final linear "
            "classifier layer over penultimate features"
        )
    ran: list[tuple[str, torch.Tensor]] = []
    modules = dict(model.named_modules())
    handles = [
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: ran.append((n, out)))
        for n in names
    ]
    was_training = model.training
    model.eval()
    try:
        out = model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if isinstance(out, (tuple, list)):
        out = out[0]
    last = [n for n, o in ran if o.shape == out.shape and torch.allclose(o, out, atol=1e-5)]
    if not last:
        raise MuError(
            f"could not tell which linear layer of {type(model).__name__} gives its output (the "
            f"last one to run is followed by other operations); name it with layer=... "
            f"(--head-layer on the command line), one of {names}"
        )
    return last[-1]


class FeatureAdapter(nn.Module):
    """Wrap ``model`` so that it has ``embed(x)`` (the head's input) and ``head`` (nn.Linear).

    ``forward(x)`` is ``model(normalise(x))``; ``embed(x)`` runs the same forward pass and returns
    what enters the head, flattened to (N, features).  Parameters are shared with ``model``:
    training the adapter trains ``model``.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        super().__init__()
        modules = dict(model.named_modules())
        if layer not in modules or not isinstance(modules[layer], nn.Linear):
            raise MuError(
                f"layer {layer!r} is not an nn.Linear of {type(model).__name__}; "
                f"choose one of {linear_layers(model)}"
            )
        self.model = model
        self.layer = layer
        self.head = modules[layer]  # a shared reference: edits of the head edit the model
        self.norm = Normalize(tuple(mean), tuple(std)) if mean is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(self.norm(x))
        return out[0] if isinstance(out, (tuple, list)) else out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
        try:
            self.forward(x)
        finally:
            handle.remove()
        if not seen:
            raise MuError(f"layer {self.layer!r} did not run in the forward pass")
        return seen[-1].flatten(1)

    @property
    def embed_dim(self) -> int:
        return self.head.in_features


def adapt(
    model: nn.Module,
    *,
    layer: str | None = None,
    example: torch.Tensor | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """``model`` itself when it already has ``embed``/``head`` and needs no normalisation, else a
    :class:`FeatureAdapter`; the head is ``layer`` or found on ``example`` (a batch in [0, 1])."""
    if (mean is None) != (std is None):
        raise MuError("give both mean and std for the input normalisation, or neither")
    if layer is None and mean is None and has_interface(model):
        return model
    if layer is None:
        if example is None:
            raise MuError(
                "finding the head of a model without `embed`/`head` needs an example input "
                "batch (example=...), or name the final linear layer with layer=..."
            )
        norm = Normalize(tuple(mean), tuple(std)) if mean is not None else nn.Identity()
        layer = find_head(model, norm.to(example.device)(example[:2]))
    return FeatureAdapter(model, layer, mean, std)
