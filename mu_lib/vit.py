"""Vision transformers with embed() = class-token embedding; registered on import.

* ``vit_tiny``: a small ViT written here (patch embedding, class token, learned positions, pre-norm
  transformer blocks, final LayerNorm) for the ``smoke`` and ``cpu`` profiles.  ``embed(x)`` is the
  final-norm class-token embedding, which is what Appendix E uses for PRA prototypes.
* ``vit_s`` / ``deit_s``: timm's ViT-Small and DeiT-Small (the paper's Table 7 backbones), built
  with ``pretrained=False`` for the input size of the dataset (patch 4 on 32x32 CIFAR).  timm is
  imported only when one of them is built.

Pretrained weights need a download; offline, set ``MU_VIT_PRETRAINED`` to a local
``.safetensors``/``.bin`` checkpoint of the same timm architecture (e.g. saved from
``timm.create_model('vit_small_patch16_224', pretrained=True)`` on a machine with internet):
timm then resamples its patch and position embeddings to the new patch and image size.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from . import MuError
from .models import Classifier, Normalize, register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def grid_patch(size: int, grid: int) -> int:
    """Patch size that cuts a ``size``x``size`` image into a ``grid``x``grid`` token grid."""
    if size % grid:
        raise MuError(
            f"image size {size} is not divisible into a {grid}x{grid} patch grid; resize the "
            f"images to a multiple of {grid} pixels or pass patch= explicitly"
        )
    return size // grid


def default_patch(size: int) -> int:
    """``vit_tiny``: a 4x4 grid of patches (16 tokens + the class token), so that training on
    two CPU cores stays cheap: 8x8 -> patch 2, 28x28 -> 7, 32x32 -> 8, 64x64 -> 16."""
    return grid_patch(size, 4)


def _norm_for(channels: int) -> Normalize:
    if channels == 3:
        return Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return Normalize((0.5,) * channels, (0.25,) * channels)


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTFeatures(nn.Module):
    """Patch embedding + class token + positions + blocks + final LayerNorm -> class token."""

    def __init__(
        self, channels: int, size: int, patch: int, dim: int, depth: int, heads: int, mlp: float
    ):
        super().__init__()
        if size % patch:
            raise MuError(f"patch size {patch} does not divide the image size {size}")
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch)
        n_tokens = (size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(len(tokens), -1, -1)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embed
        return self.norm(self.blocks(h))[:, 0]


class TinyViT(Classifier):
    """A small ViT for 8x8 to 64x64 inputs; ``embed`` is the final-norm class token."""

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        size: int = 28,
        patch: int | None = None,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ):
        super().__init__()
        self.patch = patch or default_patch(size)
        self.norm = _norm_for(channels)
        self.features = ViTFeatures(channels, size, self.patch, dim, depth, heads, mlp_ratio)
        self.head = nn.Linear(dim, num_classes)


class TimmViT(Classifier):
    """A timm VisionTransformer split into ``features`` (-> class token after the final norm)
    and ``head`` (its ``nn.Linear``), with the input normalisation inside."""

    def __init__(self, body: nn.Module, channels: int):
        super().__init__()
        head = getattr(body, "head", None)
        if not isinstance(head, nn.Linear):
            raise MuError(f"{type(body).__name__} has no linear `head`; cannot wrap it")
        if getattr(body, "global_pool", "token") != "token":
            raise MuError("only class-token ViTs are supported (global_pool='token')")
        self.norm = _norm_for(channels)
        self.head = head
        body.reset_classifier(0)  # body(x) now returns the pre-logits class token
        self.features = body


def timm_patch(size: int) -> int:
    """timm backbones: the native patch 16 from 224 pixels up, else an 8x8 grid (patch 4 on 32x32
    CIFAR, the usual choice for ViTs trained on CIFAR; patch 8 on 64x64 Tiny-ImageNet)."""
    return 16 if size >= 224 and size % 16 == 0 else grid_patch(size, 8)


def timm_vit(arch: str, num_classes: int, channels: int, size: int) -> TimmViT:
    """Build timm's ``arch`` for ``size``x``size`` inputs (patch :func:`timm_patch`)."""
    try:
        import timm
    except ImportError as err:
        raise MuError(
            f"backbone {arch!r} needs timm: pip install timm (or the book extra)"
        ) from err
    weights = os.environ.get("MU_VIT_PRETRAINED")
    kw = {}
    if weights:
        if not os.path.exists(weights):
            raise MuError(f"MU_VIT_PRETRAINED={weights} does not exist; unset it or fix the path")
        kw["pretrained_cfg_overlay"] = {"file": weights}
    body = timm.create_model(
        arch,
        pretrained=bool(weights),
        num_classes=num_classes,
        img_size=size,
        patch_size=timm_patch(size),
        in_chans=channels,
        **kw,
    )
    return TimmViT(body, channels)


@register_model("vit_tiny")
def _vit_tiny(num_classes: int, channels: int, size: int) -> Classifier:
    return TinyViT(num_classes, channels, size)


@register_model("vit_s")
def _vit_s(num_classes: int, channels: int, size: int) -> Classifier:
    return timm_vit("vit_small_patch16_224", num_classes, channels, size)


@register_model("deit_s")
def _deit_s(num_classes: int, channels: int, size: int) -> Classifier:
    return timm_vit("deit_small_patch16_224", num_classes, channels, size)
