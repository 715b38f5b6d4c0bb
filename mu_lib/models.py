"""The convolutional backbones and the backbone registry (``MODELS``, filled by
``register_model``; :mod:`mu_lib.backbones` imports every plug-in and builds).  Every model exposes ``embed(x)`` (penultimate features) and
``head`` (an ``nn.Linear``), so PRA can read prototypes and patch the head of any of them.
Inputs are images in [0, 1]; normalisation is the model's first step."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import MuError


class Normalize(nn.Module):
    """Per-channel standardisation inside the model, so attacks work in [0, 1] pixel space."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Feature extractor + linear head; subclasses build ``self.features``."""

    features: nn.Module
    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    @property
    def embed_dim(self) -> int:
        return self.head.in_features


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(Classifier):
    """Three conv-BN-ReLU stages with pooling and global average pooling (8x8 to 32x32 inputs)."""

    def __init__(self, num_classes: int, channels: int = 1, size: int = 28, width: int = 32):
        super().__init__()
        self.norm = Normalize((0.5,) * channels, (0.25,) * channels)
        w = width
        layers: list[nn.Module] = [*_conv_bn(channels, w)]
        if size >= 16:
            layers.append(nn.MaxPool2d(2))
        layers += [*_conv_bn(w, 2 * w), nn.MaxPool2d(2), *_conv_bn(2 * w, 4 * w)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(4 * w, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNetCifar(Classifier):
    """CIFAR ResNet (3x3 stem, no max-pool), as in the paper's ResNet-18."""

    def __init__(
        self,
        num_classes: int,
        channels: int = 3,
        size: int = 32,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
    ):
        super().__init__()
        if channels == 3:
            self.norm = Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
        else:
            self.norm = Normalize((0.5,) * channels, (0.25,) * channels)
        layers: list[nn.Module] = [*_conv_bn(channels, width)]
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)


ModelFactory = Callable[..., Classifier]
MODELS: dict[str, ModelFactory] = {}


def register_model(name: str):
    def deco(fn: ModelFactory) -> ModelFactory:
        MODELS[name] = fn
        return fn

    return deco


@register_model("cnn_small")
def _cnn_small(num_classes: int, channels: int, size: int) -> Classifier:
    return SmallCNN(num_classes, channels, size, width=32)


@register_model("resnet_small")
def _resnet_small(num_classes: int, channels: int, size: int) -> Classifier:
    return ResNetCifar(num_classes, channels, size, blocks=(1, 1, 1), width=16)


@register_model("resnet18")
def _resnet18(num_classes: int, channels: int, size: int) -> Classifier:
    return ResNetCifar(num_classes, channels, size, blocks=(2, 2, 2, 2), width=64)


def check_classifier(model: nn.Module) -> None:
    """Attacks need ``embed`` and a linear ``head``; say so clearly when a model lacks them."""
    if not callable(getattr(model, "embed", None)) or not isinstance(
        getattr(model, "head", None), nn.Linear
    ):
        raise MuError(
            f"{type(model).__name__} lacks the expected interface: it needs an `embed(x)` method "
            "and a `head` attribute that is an nn.Linear (see mu_lib.models.Classifier)"
        )
