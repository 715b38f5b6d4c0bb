"""Image-folder datasets: layouts, class discovery, the forget split and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mu_lib import MuError, data, folders
from mu_lib.data import DATASETS, get_dataset_info, load_raw, make_split


def _img(path, value: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size, size, 3), value, dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def registered():
    """Names registered by a test are removed from the registry afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        DATASETS.pop(n, None)
    load_raw.cache_clear()
    data._capped_tensors.cache_clear()


def _tiny_imagenet(root, wnids=("n01", "n02", "n03"), per_class=5, val_per_class=2):
    lines = []
    for i, w in enumerate(wnids):
        for j in range(per_class):
            _img(root / "train" / w / "images" / f"{w}_{j}.JPEG", 40 * i + 10)
        for j in range(val_per_class):
            name = f"val_{i}_{j}.JPEG"
            _img(root / "val" / "images" / name, 40 * i + 10)
            lines.append(f"{name}\t{w}\t0\t0\t16\t16")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tinyimagenet_layout_loads_through_registry_and_split(tmp_path, registered):
    root = _tiny_imagenet(tmp_path / "tiny")
    info = folders.register_folder_dataset("t-tiny", root, layout="classes", size=8)
    registered.append("t-tiny")
    assert get_dataset_info("t-tiny").num_classes == 3  # discovered before any decoding
    x, y = load_raw("t-tiny", True)
    assert x.shape == (15, 3, 8, 8) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert sorted(np.bincount(y).tolist()) == [5, 5, 5]
    # class index follows the sorted wnids; colour 40*i+10 identifies the class
    for c in range(3):
        assert np.allclose(x[y == c], (40 * c + 10) / 255.0, atol=2 / 255)
    xt, yt = load_raw("t-tiny", False)
    assert xt.shape == (6, 3, 8, 8) and np.bincount(yt).tolist() == [2, 2, 2]
    split = make_split("t-tiny", (1,), None, None)
    assert split.num_classes == info.num_classes == 3
    xf, yf = split.forget_train
    assert len(yf) == 5 and bool((yf == 1).all())
    assert len(split.retain_train[1]) == 10 and len(split.forget_test[1]) == 2
    shots = split.shot_indices(2, seed=0)
    assert len(shots) == 2 and isinstance(xf, torch.Tensor)


def test_identity_layout_filters_and_splits_deterministically(tmp_path, registered):
    root = tmp_path / "faces"
    counts = {"alice": 6, "bob": 5, "carol": 2, "dave": 8}
    for k, (name, n) in enumerate(counts.items()):
        for j in range(n):
            _img(root / name / f"{name}_{j:04d}.jpg", 30 * k)
    folders.register_folder_dataset(
        "t-faces", root, layout="identities", size=12, min_images=5, test_fraction=0.4
    )
    registered.append("t-faces")
    assert get_dataset_info("t-faces").num_classes == 3  # carol (2 images) dropped
    spec = folders.FolderSpec("identities", 12, 3, 5, None, 0.4)
    a, b = folders.scan_folder(root, spec), folders.scan_folder(root, spec)
    assert a == b and a.classes == ("alice", "bob", "dave")
    assert not set(a.train) & set(a.test)
    assert np.bincount([lab for _, lab in a.test]).tolist() == [2, 2, 3]
    x, y = load_raw("t-faces", True)
    assert x.shape == (len(a.train), 3, 12, 12)
    split = make_split("t-faces", (0, 2), None, None)
    assert split.forget_classes == (0, 2) and split.retain_classes == (1,)


def test_bare_class_folders_and_caps(tmp_path):
    root = tmp_path / "bare"
    for c in ("cat", "dog"):
        for j in range(10):
            _img(root / c / f"{j}.png", 100)
    idx = folders.scan_folder(root, folders.FolderSpec("classes", 8, 1, 1, 6, 0.5))
    assert idx.classes == ("cat", "dog")
    assert len(idx.train) == 6 and len(idx.test) == 6  # capped to 6 per class, split 3/3
    x, _ = folders.decode_images(idx.train, folders.FolderSpec("classes", 8, 1))
    assert x.shape == (6, 1, 8, 8)


def test_registered_names_use_mu_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MU_DATA_DIR", str(tmp_path))
    _tiny_imagenet(tmp_path / "tinyimagenet", wnids=("a", "b"), per_class=3, val_per_class=1)
    assert get_dataset_info("tinyimagenet").num_classes == 2
    assert {"tinyimagenet", "casia-webface", "lfw"} <= set(DATASETS)


@pytest.mark.parametrize("name", ["tinyimagenet", "casia-webface", "lfw"])
def test_missing_folder_is_a_clear_error(tmp_path, monkeypatch, name):
    monkeypatch.setenv("MU_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(MuError, match="MU_DATA_DIR"):
        _ = get_dataset_info(name).num_classes
    with pytest.raises(MuError, match="not found"):
        get_dataset_info(name).loader(True, None)


def test_too_few_classes_and_bad_spec(tmp_path):
    _img(tmp_path / "only" / "a" / "0.png", 1)
    with pytest.raises(MuError, match="at least 2"):
        folders.scan_folder(tmp_path / "only", folders.FolderSpec())
    with pytest.raises(MuError, match="layout"):
        folders.FolderSpec(layout="nope").check()


def test_export_round_trip(tmp_path, registered):
    x, y = load_raw("digits", True)
    folders.export_image_folder(x[:60], y[:60], tmp_path / "d")
    folders.register_folder_dataset(
        "t-digits", tmp_path / "d", layout="identities", size=8, channels=1, min_images=2
    )
    registered.append("t-digits")
    xs, ys = load_raw("t-digits", True)
    xt, _ = load_raw("t-digits", False)
    assert len(ys) + len(xt) == 60
    # the pixels survive the PNG round trip up to 8-bit rounding
    assert np.isin(np.round(xs * 255), np.round(x[:60] * 255)).all()
