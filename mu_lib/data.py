"""Datasets (one registry) and the forget split of class-level unlearning.

All images are float32 tensors in [0, 1], shape (N, C, H, W); normalisation lives inside the
models.  Datasets are small enough (or capped by the profile) to sit in memory, which lets every
loop batch by indexing instead of going through a DataLoader.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import MuError
from .dataset_info import DATASETS, Arrays, DatasetInfo, cache_dir, register_dataset
from .fingerprint import files_fingerprint
from .folders import export_image_folder, register_folder_dataset


def get_dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise MuError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def data_fingerprint(name: str, root: str | None = None) -> str:
    """Fingerprint of the files dataset ``name`` reads (sha256 of each, remembered per path,
    size and mtime, so a warm run only stats them): other data under one name is another key."""
    info = get_dataset_info(name)
    if info.source_files is None:
        return f"name:{name}"
    book = cache_dir() / "fingerprints" / "data.json"
    return files_fingerprint(info.source_files(root), book, f"{name}:{getattr(info, 'spec', '')}")


# ---------------------------------------------------------------- loaders


def _digits_files(root: str | None = None) -> list[tuple[str, Path]]:
    from importlib.util import find_spec

    sklearn = Path(find_spec("sklearn").origin).parent  # found without importing it
    return [("digits.csv.gz", sklearn / "datasets" / "data" / "digits.csv.gz")]


def _load_digits(train: bool, root: str | None = None) -> Arrays:
    """scikit-learn's bundled 8x8 digits, split 70/30 per class with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return (xtr, ytr) if train else (xte, yte)


FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """An IDX file (gzip), checked: its header, its length and its number of dimensions."""
    refetch = "delete it and fetch it again (apt-get install --reinstall dataset-fashion-mnist)"
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise MuError(f"{path} is empty or truncated (no IDX header); {refetch}")
            _zero, dtype, nd = struct.unpack(">HBB", head)
            if dtype != 0x08 or (ndim is not None and nd != ndim):
                raise MuError(
                    f"{path} is not an unsigned-byte IDX file of {ndim or nd} dimensions "
                    f"(type 0x{dtype:02x}, {nd} dimensions); {refetch}"
                )
            dims = f.read(4 * nd)
            if len(dims) < 4 * nd:
                raise MuError(f"{path} is truncated (incomplete IDX header); {refetch}")
            shape = struct.unpack(">" + "I" * nd, dims)
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise MuError(f"{path} is not a readable gzip file ({err}); {refetch}") from None
    need = int(np.prod(shape))
    if len(data) != need:
        raise MuError(
            f"{path} holds {len(data)} bytes of data, its header says {need} "
            f"(shape {list(shape)}): the file is truncated or corrupt; {refetch}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def check_arrays(
    x: np.ndarray, y: np.ndarray, x_file: Path | str, y_file: Path | str, num_classes: int
) -> None:
    """Images and labels read from two files belong together: same count, labels in range."""
    if len(x) != len(y):
        raise MuError(
            f"{x_file} holds {len(x)} images but {y_file} holds {len(y)} labels: the files "
            "do not belong together (e.g. training images with test labels); put the matching "
            "pair in place"
        )
    if len(y) == 0:
        raise MuError(f"{x_file} holds no images; fetch the dataset again")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise MuError(
            f"{y_file} has labels in [{lo}, {hi}], expected 0..{num_classes - 1}; "
            "it is not this dataset's label file"
        )


def fashion_mnist_roots(root: str | None = None) -> list[Path]:
    """Search order: explicit root, ``$MU_DATA_DIR``(/fashion-mnist), Debian's package, cache dir."""
    cands: list[Path] = []
    if root:
        cands.append(Path(root))
    if os.environ.get("MU_DATA_DIR"):
        d = Path(os.environ["MU_DATA_DIR"]).expanduser()
        cands += [d / "fashion-mnist", d]
    cands += [FASHION_DEBIAN, cache_dir() / "data" / "fashion-mnist"]
    tv = cache_dir() / "data" / "FashionMNIST" / "raw"
    cands.append(tv)
    return cands


def _fashion_dir(train: bool, root: str | None = None) -> Path:
    """The folder holding the split's two files (downloaded first when allowed)."""
    img_name, lab_name = FASHION_FILES[train]
    for attempt in range(2):
        for d in fashion_mnist_roots(root):
            if (d / img_name).exists() and (d / lab_name).exists():
                return d
        if attempt == 0 and os.environ.get("MU_ALLOW_DOWNLOAD", "") == "1":
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cache_dir() / "data"), train=train, download=True)
        else:
            break
    searched = ", ".join(str(p) for p in fashion_mnist_roots(root))
    raise MuError(
        "Fashion-MNIST not found (searched: " + searched + "). Install it with "
        "`sudo apt-get install -y dataset-fashion-mnist`, or put the four *-idx*-ubyte.gz files "
        "in $MU_DATA_DIR/fashion-mnist, or set MU_ALLOW_DOWNLOAD=1 to let torchvision download it."
    )


def _fashion_files(root: str | None = None) -> list[tuple[str, Path]]:
    return [
        (n, _fashion_dir(train, root) / n) for train in (True, False) for n in FASHION_FILES[train]
    ]


def _load_fashion(train: bool, root: str | None = None) -> Arrays:
    d = _fashion_dir(train, root)
    img_name, lab_name = FASHION_FILES[train]
    x = _read_idx(d / img_name, ndim=3)
    y = _read_idx(d / lab_name, ndim=1)
    check_arrays(x, y, d / img_name, d / lab_name, num_classes=10)
    return x.astype(np.float32)[:, None] / 255.0, y.astype(np.int64)


def _cifar_base(root: str | None) -> Path:
    return Path(root or os.environ.get("MU_DATA_DIR") or cache_dir() / "data").expanduser()


def _cifar_files(folder: str) -> Callable[[str | None], list[tuple[str, Path]]]:
    """The extracted python version's files (none yet: keyed by name until downloaded)."""

    def files(root: str | None = None) -> list[tuple[str, Path]]:
        d = _cifar_base(root) / folder
        return [(p.name, p) for p in sorted(d.iterdir()) if p.is_file()] if d.is_dir() else []

    return files


def _torchvision_cifar(cls_name: str) -> Callable[[bool, str | None], Arrays]:
    def load(train: bool, root: str | None = None) -> Arrays:
        import torchvision.datasets as tvd

        base = _cifar_base(root)
        download = os.environ.get("MU_ALLOW_DOWNLOAD", "") == "1"
        try:
            ds = getattr(tvd, cls_name)(str(base), train=train, download=download)
        except RuntimeError as err:
            raise MuError(
                f"{cls_name} not found under {base}. Put the extracted python version there "
                f"(set MU_DATA_DIR), or set MU_ALLOW_DOWNLOAD=1 to download it with torchvision."
            ) from err
        x = np.asarray(ds.data, dtype=np.float32).transpose(0, 3, 1, 2) / 255.0
        return x, np.asarray(ds.targets, dtype=np.int64)

    return load


register_dataset(
    DatasetInfo(
        "digits",
        10,
        1,
        8,
        _load_digits,
        "CIFAR-10 (smoke tests)",
        "bundled with scikit-learn",
        _digits_files,
    )
)
register_dataset(
    DatasetInfo(
        "fashion-mnist",
        10,
        1,
        28,
        _load_fashion,
        "CIFAR-10",
        "sudo apt-get install -y dataset-fashion-mnist",
        _fashion_files,
    )
)
register_dataset(
    DatasetInfo(
        "cifar10",
        10,
        3,
        32,
        _torchvision_cifar("CIFAR10"),
        "CIFAR-10",
        "MU_ALLOW_DOWNLOAD=1",
        _cifar_files("cifar-10-batches-py"),
    )
)
register_dataset(
    DatasetInfo(
        "cifar100",
        100,
        3,
        32,
        _torchvision_cifar("CIFAR100"),
        "CIFAR-100",
        "MU_ALLOW_DOWNLOAD=1",
        _cifar_files("cifar-100-python"),
    )
)


@lru_cache(maxsize=8)
def load_raw(name: str, train: bool = True, root: str | None = None) -> Arrays:
    """Images (N, C, H, W) float32 in [0, 1] and int64 labels of one split of a dataset."""
    info = get_dataset_info(name)
    x, y = info.loader(train, root)
    check_loaded(info, train, x, y)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def check_loaded(info: DatasetInfo, train: bool, x: np.ndarray, y: np.ndarray) -> None:
    """What a loader returned has the registered shape, values in [0, 1] and valid labels."""
    split = "training" if train else "test"
    where = f"{info.name} ({split} split)"
    want = (info.channels, info.size, info.size)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise MuError(f"{where}: images have shape {list(x.shape)}, expected [N, {list(want)}]")
    if len(x) != len(y) or len(y) == 0:
        raise MuError(f"{where}: {len(x)} images but {len(y)} labels; fetch the dataset again")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise MuError(f"{where}: pixel values outside [0, 1] or not finite; fetch it again")
    if y.min() < 0 or y.max() >= info.num_classes:
        raise MuError(
            f"{where}: labels in [{y.min()}, {y.max()}], expected 0..{info.num_classes - 1}"
        )


def _cap_per_class(y: np.ndarray, cap: int | None, seed: int = 0) -> np.ndarray:
    """Indices keeping at most ``cap`` examples per class (fixed seed: same subset for every run)."""
    if cap is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[:cap] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


# ---------------------------------------------------------------- forget split


@dataclass
class ForgetSplit:
    """Class-level forget split: D_f / D_r on train and test, plus the attacker's shots."""

    dataset: str
    num_classes: int
    forget_classes: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    _masks: dict = field(default_factory=dict, repr=False)

    def _is_forget(self, y: torch.Tensor) -> torch.Tensor:
        return torch.isin(y, torch.tensor(self.forget_classes, dtype=y.dtype))

    def _part(self, train: bool, forget: bool) -> tuple[torch.Tensor, torch.Tensor]:
        key = (train, forget)
        x, y = (self.x_train, self.y_train) if train else (self.x_test, self.y_test)
        if key not in self._masks:
            m = self._is_forget(y)
            self._masks[key] = m if forget else ~m
        m = self._masks[key]
        return x[m], y[m]

    @property
    def forget_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._part(True, True)

    @property
    def retain_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._part(True, False)

    @property
    def forget_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._part(False, True)

    @property
    def retain_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._part(False, False)

    @property
    def retain_classes(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.num_classes) if c not in self.forget_classes)

    def shot_indices(self, k: int, seed: int) -> torch.Tensor:
        """Indices into ``forget_train`` of k random shots per forget class (the attacker's data)."""
        _, yf = self.forget_train
        g = torch.Generator().manual_seed(10_000 + seed)
        out = []
        for c in self.forget_classes:
            idx = torch.nonzero(yf == c).flatten()
            if k < 1 or k > len(idx):
                raise MuError(
                    f"k={k} shots per class is impossible: forget class {c} has {len(idx)} "
                    f"training examples; choose 1 <= k <= {len(idx)}"
                )
            out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
        return torch.cat(out)

    def shots(self, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        xf, yf = self.forget_train
        idx = self.shot_indices(k, seed)
        return xf[idx], yf[idx]

    def describe(self) -> dict:
        """Sizes of the split (the audit's JSON record)."""
        return {
            "dataset": self.dataset,
            "forget_classes": list(self.forget_classes),
            "n_forget_train": int(len(self.forget_train[1])),
            "n_retain_train": int(len(self.retain_train[1])),
            "n_forget_test": int(len(self.forget_test[1])),
            "n_retain_test": int(len(self.retain_test[1])),
        }


def check_forget_classes(forget_classes, num_classes: int, dataset: str) -> tuple[int, ...]:
    fc = tuple(sorted({int(c) for c in forget_classes}))
    if not fc:
        raise MuError("forget_classes is empty; give at least one class, e.g. --forget-classes 0")
    bad = [c for c in fc if c < 0 or c >= num_classes]
    if bad:
        raise MuError(
            f"forget class(es) {bad} out of range for {dataset} ({num_classes} classes: "
            f"use 0..{num_classes - 1})"
        )
    if len(fc) >= num_classes:
        raise MuError(f"cannot forget all {num_classes} classes of {dataset}; keep at least one")
    return fc


_LOADED: dict[str, str] = {}  # dataset -> data fingerprint of the arrays cached in memory


@lru_cache(maxsize=16)
def _capped_tensors(name: str, train: bool, cap: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_raw(name, train)
    idx = _cap_per_class(y, cap)
    return torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(y[idx].copy())


def make_split(
    dataset: str,
    forget_classes,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
) -> ForgetSplit:
    """Build the forget split of ``dataset`` (capped per class as the profile says)."""
    info = get_dataset_info(dataset)
    fc = check_forget_classes(forget_classes, info.num_classes, dataset)
    fp = data_fingerprint(dataset)
    if _LOADED.setdefault(dataset, fp) != fp:  # the files changed under this process
        load_raw.cache_clear()
        _capped_tensors.cache_clear()
        _LOADED[dataset] = fp
    xtr, ytr = _capped_tensors(dataset, True, train_per_class)
    xte, yte = _capped_tensors(dataset, False, test_per_class)
    return ForgetSplit(dataset, info.num_classes, fc, xtr, ytr, xte, yte)


def batches(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)`` (in-memory datasets: no DataLoader needed)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


DIGITS_IDENTITIES = "digits-identities"


def register_digits_identities(root: str | Path | None = None, min_images: int = 20) -> str:
    """scikit-learn's bundled digits (train and test, 1797 images) written once as an identity
    folder (``root/<digit>/*.png``) and registered under ``digits-identities``: an offline
    stand-in that runs the face-identity code path (scan, per-identity split, decode) end to end.
    Returns the dataset name."""
    root = Path(root) if root else cache_dir() / "data" / DIGITS_IDENTITIES
    marker = root / ".complete"
    if not marker.exists():
        xs, ys = zip(*(load_raw("digits", t) for t in (True, False)), strict=True)
        export_image_folder(
            np.concatenate(xs), np.concatenate(ys), root, [f"id_{c}" for c in range(10)]
        )
        marker.write_text("digits exported by mu_lib.data\n")
    register_folder_dataset(
        DIGITS_IDENTITIES,
        root,
        layout="identities",
        size=8,
        channels=1,
        min_images=min_images,
        stands_in_for="CASIA-WebFace (offline stand-in: digits as 10 identities)",
    )
    return DIGITS_IDENTITIES
