"""Run-time helpers every layer uses: device choice and placement, seeding, progress bars,
eval mode and autocast.  A leaf: it imports nothing else of the package at import time."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch import nn


def resolve_device(device: str | None = None) -> str:
    """``auto``/None picks CUDA when present, else CPU; anything else must exist here."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    from .validate import check_device

    return check_device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def quiet_default() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get(
        "MU_QUIET", ""
    ) not in ("", "0")


def progress(
    iterable: Iterable, desc: str = "", total: int | None = None, quiet: bool | None = None
):
    """A tqdm bar, silent under ``CI=true`` or ``MU_QUIET=1``."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=quiet_default() if quiet is None else quiet,
        leave=False,
    )


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside; after, every submodule gets back its own ``training`` flag.

    ``model.train(was)`` would set one flag for all and so unfreeze a BatchNorm that the
    unlearning loop froze (``bn_mode='eval'``); helpers called mid-training use this instead.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in modes:
            m.training = flag


def autocast(device: str):
    """bf16 autocast on CUDA, nothing on CPU (keeps CPU results exact and deterministic)."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(model: nn.Module, device: str) -> nn.Module:
    """Move to ``device`` in channels-last layout (faster convolutions on both CUDA and CPU)."""
    return model.to(device).to(memory_format=torch.channels_last)
