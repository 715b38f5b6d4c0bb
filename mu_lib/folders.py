"""Image-folder datasets (Tiny-ImageNet-style and face identities); registered on import.

Two layouts are understood:

* **class folders** (``layout="classes"``, Tiny-ImageNet): ``root/train/<class>/images/*`` or
  ``root/train/<class>/*``, with the test split from ``root/val/val_annotations.txt`` (+
  ``root/val/images/``) or ``root/val/<class>/*``; a bare ``root/<class>/*`` (or a ``train/``
  without ``val/``) is split per class, deterministically.
* **identity folders** (``layout="identities"``, CASIA-WebFace, LFW): ``root/<identity>/*``;
  identities with fewer than ``min_images`` images are dropped and each remaining one is split
  per identity (the paper notes that these datasets have no dedicated test split).

Images are decoded with PIL, converted to RGB (or grayscale for ``channels=1``), resized to a
fixed square ``size`` and scaled to float32 in [0, 1].  The number of classes of a folder dataset
depends on what is on disk (and on ``min_images``), so :class:`FolderDatasetInfo` discovers it
by scanning the folder the first time it is asked, before any image is decoded.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import MuError
from .dataset_info import DatasetInfo, cache_dir, register_dataset

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
LAYOUTS = ("classes", "identities")


@dataclass(frozen=True)
class FolderSpec:
    """How to read one folder dataset (everything that changes the resulting arrays)."""

    layout: str = "classes"
    size: int = 64
    channels: int = 3
    min_images: int = 1  # identities: keep classes with at least this many images
    max_images: int | None = None  # per class, before the split (caps memory on CASIA)
    test_fraction: float = 0.2  # per-class share held out when the folder has no test split

    def check(self) -> None:
        if self.layout not in LAYOUTS:
            raise MuError(f"unknown folder layout {self.layout!r}; choose one of {LAYOUTS}")
        if self.size < 4:
            raise MuError(f"image size must be >= 4 pixels, got {self.size}")
        if self.channels not in (1, 3):
            raise MuError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.min_images < 1:
            raise MuError(f"min_images must be >= 1, got {self.min_images}")
        if self.max_images is not None and self.max_images < 2:
            raise MuError(f"max_images must be >= 2 (or None for all), got {self.max_images}")
        if not 0.0 < self.test_fraction < 1.0:
            raise MuError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class FolderIndex:
    """The files of a folder dataset, found by scanning (no image decoded yet)."""

    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _class_images(folder: Path) -> list[Path]:
    """Images of one class folder: Tiny-ImageNet keeps them in ``<class>/images/``."""
    return _images_in(folder / "images") or _images_in(folder)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _stable_rng(name: str) -> np.random.Generator:
    """A generator seeded from a class name: the per-class split does not depend on scan order."""
    digest = hashlib.sha256(name.encode()).digest()[:8]
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _split_per_class(
    files: dict[str, list[Path]], spec: FolderSpec
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Deterministic per-class train/test split (at least one image on each side)."""
    train: list[tuple[str, int]] = []
    test: list[tuple[str, int]] = []
    for label, name in enumerate(sorted(files)):
        paths = files[name]
        order = _stable_rng(name).permutation(len(paths))
        n_test = min(max(1, round(spec.test_fraction * len(paths))), len(paths) - 1)
        for rank, i in enumerate(order):
            (test if rank < n_test else train).append((str(paths[i]), label))
    return train, test


def _cap(paths: list[Path], spec: FolderSpec, name: str) -> list[Path]:
    if spec.max_images is None or len(paths) <= spec.max_images:
        return paths
    keep = np.sort(_stable_rng("cap:" + name).permutation(len(paths))[: spec.max_images])
    return [paths[i] for i in keep]


def _val_annotations(root: Path, classes: Sequence[str]) -> list[tuple[str, int]]:
    """Tiny-ImageNet's ``val/val_annotations.txt``: file name, class id, bounding box."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2 or parts[1] not in index:
            continue
        path = root / "val" / "images" / parts[0]
        if not path.exists():
            path = root / "val" / parts[0]
        if path.exists():
            out.append((str(path), index[parts[1]]))
    return out


def scan_folder(root: str | Path, spec: FolderSpec) -> FolderIndex:
    """List classes and image files of ``root`` for ``spec`` (errors say what was expected).

    Files and class folders that are symbolic links out of ``root`` are skipped with a warning:
    the dataset is what lies under its root."""
    spec.check()
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MuError(f"image folder {root} does not exist")
    try:
        index = _scan(root, spec)
    except PermissionError as err:
        raise MuError(
            f"cannot read {err.filename or root} in image folder {root} (permission denied); "
            "make it readable (chmod -R u+rX) or point the dataset at another folder"
        ) from None
    real = os.path.realpath(root)
    inside = [
        [(p, y) for p, y in part if os.path.realpath(p).startswith(real + os.sep)]
        for part in (index.train, index.test)
    ]
    dropped = len(index.train) + len(index.test) - sum(map(len, inside))
    if dropped:
        warnings.warn(
            f"image folder {root}: skipped {dropped} file(s) that link outside it", stacklevel=2
        )
    if not inside[0] or not inside[1]:
        raise MuError(f"image folder {root} holds no images of its own (only links out of it)")
    return FolderIndex(index.classes, tuple(inside[0]), tuple(inside[1]))


def _scan(root: Path, spec: FolderSpec) -> FolderIndex:
    has_train = (root / "train").is_dir()
    base = root / "train" if (has_train and spec.layout == "classes") else root
    real = os.path.realpath(root) + os.sep
    # a class folder that links out of the root is not part of the dataset
    subdirs = [d for d in _subdirs(base) if (os.path.realpath(d) + os.sep).startswith(real)]
    files = {d.name: _class_images(d) for d in subdirs}
    files = {k: v for k, v in files.items() if v}
    if spec.layout == "identities":
        files = {k: v for k, v in files.items() if len(v) >= max(spec.min_images, 2)}
    if len(files) < 2:
        raise MuError(
            f"found {len(files)} usable class folder(s) under {base}; a {spec.layout} folder "
            f"needs at least 2 sub-folders with images"
            + (f" (and >= {spec.min_images} images each)" if spec.layout == "identities" else "")
        )
    files = {k: _cap(v, spec, k) for k, v in files.items()}
    classes = tuple(sorted(files))
    if spec.layout == "classes" and has_train and (root / "val").is_dir():
        train = [(str(p), i) for i, c in enumerate(classes) for p in files[c]]
        if (root / "val" / "val_annotations.txt").exists():
            test = _val_annotations(root, classes)
        else:
            index = {c: i for i, c in enumerate(classes)}
            test = [
                (str(p), index[d.name])
                for d in _subdirs(root / "val")
                if d.name in index
                for p in _class_images(d)
            ]
        if not test:
            raise MuError(
                f"{root / 'val'} holds no labelled images of the training classes; remove it "
                "to split train/ per class instead"
            )
    else:
        train, test = _split_per_class({k: list(v) for k, v in files.items()}, spec)
    return FolderIndex(classes, tuple(train), tuple(test))


@lru_cache(maxsize=32)
def _scan_cached(root: str, spec: FolderSpec, mtime: float) -> FolderIndex:
    return scan_folder(root, spec)


def cached_scan(root: str | Path, spec: FolderSpec) -> FolderIndex:
    """``scan_folder`` memoised per (root, spec, root's modification time)."""
    root = Path(root).expanduser()
    mtime = root.stat().st_mtime if root.exists() else 0.0
    return _scan_cached(str(root.resolve()), spec, mtime)


def _decode(path: str, spec: FolderSpec) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L" if spec.channels == 1 else "RGB")
            if im.size != (spec.size, spec.size):
                im = im.resize((spec.size, spec.size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for unreadable images
        raise MuError(
            f"{path} is not a readable image ({type(err).__name__}: {err}); delete it or move it "
            "out of the dataset folder"
        ) from None
    return arr[None] if spec.channels == 1 else arr.transpose(2, 0, 1)


def decode_images(items: Sequence[tuple[str, int]], spec: FolderSpec):
    """Decode (path, label) pairs into float32 images (N, C, size, size) in [0, 1] and labels."""
    from .util import progress

    x = np.empty((len(items), spec.channels, spec.size, spec.size), dtype=np.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        decoded = pool.map(lambda it: _decode(it[0], spec), items, chunksize=64)
        for i, arr in enumerate(progress(decoded, desc="decode images", total=len(items))):
            x[i] = arr
    y = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))
    return x.astype(np.float32) / 255.0, y


# ------------------------------------------------------------------ registry glue


def default_root(name: str) -> Path:
    """``$MU_DATA_DIR/<name>``, else ``<cache dir>/data/<name>``."""
    base = os.environ.get("MU_DATA_DIR")
    return Path(base).expanduser() / name if base else cache_dir() / "data" / name


class FolderDatasetInfo(DatasetInfo):
    """A ``DatasetInfo`` whose ``num_classes`` is discovered by scanning its folder.

    ``num_classes`` is a property: the dataclass ``__init__`` of ``DatasetInfo`` writes the
    declared value through its setter (0 means "discover"), and reading it scans the folder
    (cached), so the registry can answer before any image is decoded.
    """

    spec: FolderSpec
    fixed_root: str | None

    def _get_num_classes(self) -> int:
        declared = self.__dict__.get("_declared_classes", 0)
        return declared or len(cached_scan(self.root(), self.spec).classes)

    def _set_num_classes(self, value: int) -> None:
        self.__dict__["_declared_classes"] = int(value)

    num_classes = property(_get_num_classes, _set_num_classes)  # type: ignore[assignment]

    def __repr__(self) -> str:  # no folder scan (the folder may be missing)
        where = self.fixed_root or f"$MU_DATA_DIR/{self.name}"
        return f"FolderDatasetInfo({self.name!r}, {self.spec}, root={where!r})"

    def root(self, root: str | None = None) -> Path:
        """The folder to read: an explicit root, the registered root or ``$MU_DATA_DIR/<name>``."""
        path = Path(root or self.fixed_root or default_root(self.name)).expanduser()
        if not path.is_dir():
            raise MuError(f"{self.name} not found at {path}. {self.how_to_get}")
        return path


def register_folder_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    layout: str = "classes",
    size: int = 64,
    channels: int = 3,
    min_images: int = 1,
    max_images: int | None = None,
    test_fraction: float = 0.2,
    stands_in_for: str = "",
    how_to_get: str | None = None,
) -> FolderDatasetInfo:
    """Register an image folder as a dataset (``root`` None: ``$MU_DATA_DIR/<name>``).

    After this, ``name`` works everywhere a dataset name does (``RunConfig(dataset=name)``,
    ``make_split(name, ...)``, ``mu run --dataset name``).
    """
    spec = FolderSpec(layout, size, channels, min_images, max_images, test_fraction)
    spec.check()
    where = f"{root}" if root else f"$MU_DATA_DIR/{name} (or {cache_dir() / 'data' / name})"
    shape = (
        "root/train/<class>/[images/]*.JPEG with root/val/val_annotations.txt, or root/<class>/*"
        if layout == "classes"
        else "root/<identity>/*.jpg"
    )
    how = how_to_get or f"Put the images at {where} laid out as {shape}."
    info_box: dict[str, FolderDatasetInfo] = {}

    def loader(train: bool, explicit_root: str | None = None):
        info = info_box["info"]
        index = cached_scan(info.root(explicit_root), spec)
        return decode_images(index.train if train else index.test, spec)

    def source_files(explicit_root: str | None = None) -> list[tuple[str, Path]]:
        """Each image the loader reads, named by split and path under the root (the class)."""
        index = cached_scan(info_box["info"].root(explicit_root), spec)
        real = os.path.realpath(info_box["info"].root(explicit_root))
        return [
            (f"{split}:{os.path.relpath(p, real)}:{label}", Path(p))
            for split, part in (("train", index.train), ("test", index.test))
            for p, label in part
        ]

    info = FolderDatasetInfo(
        name, 0, channels, size, loader, stands_in_for or name, how, source_files
    )
    object.__setattr__(info, "spec", spec)
    object.__setattr__(info, "fixed_root", str(root) if root else None)
    info_box["info"] = info
    register_dataset(info)
    return info


def export_image_folder(
    x: np.ndarray,
    y: np.ndarray,
    root: str | Path,
    class_names: Sequence[str] | None = None,
    ext: str = ".png",
) -> Path:
    """Write images (N, C, H, W) in [0, 1] as ``root/<class>/<i>.<ext>`` (an identity layout).

    Used by the tests and by the book to exercise the folder code path on data that ships with
    the package; writing is skipped for files that already exist.
    """
    from PIL import Image

    root = Path(root)
    x = np.asarray(x)
    for i, (img, label) in enumerate(zip(x, np.asarray(y), strict=True)):
        name = class_names[int(label)] if class_names is not None else f"class_{int(label):04d}"
        path = root / name / f"{i:06d}{ext}"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
        mode_img = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
        Image.fromarray(mode_img).save(path)
    return root


TINY_HOW = (
    "Download tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip), unzip "
    "it and point $MU_DATA_DIR at the folder that contains tinyimagenet/ (rename "
    "tiny-imagenet-200 to tinyimagenet), i.e. $MU_DATA_DIR/tinyimagenet/{train,val}/."
)
FACES_HOW = (
    "Put the aligned face crops at $MU_DATA_DIR/{name}/<identity>/*.jpg ({src}); identities "
    "with fewer than {n} images are dropped."
)

register_folder_dataset(
    "tinyimagenet",
    layout="classes",
    size=64,
    stands_in_for="Tiny-ImageNet (Appendix D)",
    how_to_get=TINY_HOW,
)
register_folder_dataset(
    "casia-webface",
    layout="identities",
    size=64,
    min_images=20,
    max_images=40,
    stands_in_for="CASIA-WebFace (Appendix D)",
    how_to_get=FACES_HOW.format(
        name="casia-webface", src="the 112x112 aligned CASIA-WebFace release", n=20
    ),
)
register_folder_dataset(
    "lfw",
    layout="identities",
    size=64,
    min_images=20,
    stands_in_for="LFW (face identities)",
    how_to_get=FACES_HOW.format(
        name="lfw", src="e.g. the extracted lfw.tgz or lfw-deepfunneled", n=20
    ),
)
