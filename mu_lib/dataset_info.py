"""The dataset registry: what a dataset is (``DatasetInfo``), where data and the cache live
(``cache_dir``) and the table that loaders register into.  A leaf: :mod:`mu_lib.data` (the
built-in loaders) and :mod:`mu_lib.folders` (image folders) both register here, and
``data.get_dataset_info`` reads the table once both are imported."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the library needs to know about a dataset before loading it."""

    name: str
    num_classes: int
    channels: int
    size: int
    loader: Callable[[bool, str | None], Arrays]
    stands_in_for: str
    how_to_get: str
    # (name, path) of every file the loader reads (name: as the dataset refers to it); keys the
    # cache by the data's content (None: by the dataset's name only)
    source_files: Callable[[str | None], list[tuple[str, Path]]] | None = None


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def cache_dir() -> Path:
    """Where downloads and the result cache go: ``$MU_CACHE_DIR`` or ``~/.cache/unlearning-blindspots``."""
    root = os.environ.get("MU_CACHE_DIR") or Path.home() / ".cache" / "unlearning-blindspots"
    return Path(root).expanduser()
