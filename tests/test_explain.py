"""Grad-CAM (mu_lib.explain): layer choice, shapes, range, class dependence, both backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mu_lib import MuError
from mu_lib.attacks.pra import PRA
from mu_lib.backbones import build_model
from mu_lib.explain import cam_grid, cam_similarity, gradcam, target_layer, target_probability
from mu_lib.models import BasicBlock


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("cnn_small", 10, 1, 8).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_target_layer_is_last_conv_stage():
    cnn = build_model("cnn_small", 10, 1, 28)
    convs = [m for m in cnn.features if isinstance(m, nn.Conv2d)]
    assert target_layer(cnn) is convs[-1]
    res = build_model("resnet_small", 10, 1, 28)
    layer = target_layer(res)
    assert isinstance(layer, BasicBlock) and layer is list(res.features)[-3]


@pytest.mark.parametrize("backend", ["package", "hooks"])
def test_shape_range_and_class_dependence(cnn, images, backend):
    a = gradcam(cnn, images, 3, backend=backend)
    assert a.shape == (5, 8, 8) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    peak = a.reshape(5, -1).max(1)
    assert np.all((np.abs(peak - 1) < 1e-3) | (peak == 0))  # scaled per image (or all zero)
    b = gradcam(cnn, images, [7] * 5, backend=backend)
    assert np.abs(a - b).max() > 0.1  # another target class, another map


def test_backends_agree(cnn, images):
    a = gradcam(cnn, images, [0, 1, 2, 3, 4], backend="package")
    b = gradcam(cnn, images, [0, 1, 2, 3, 4], backend="hooks")
    assert np.abs(a - b).max() < 1e-4
    live = a.reshape(len(a), -1).max(1) > 0  # an all-negative map is all zeros in both
    assert live.sum() >= 3 and np.all(cam_similarity(a, b)[live] > 0.999)


def test_frozen_model_and_no_grad_context(images):
    torch.manual_seed(0)
    m = build_model("cnn_small", 10, 1, 8).eval()
    ref = gradcam(m, images, 2)
    for p in m.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        out = gradcam(m, images, 2, backend="package")
    assert np.allclose(ref, out, atol=1e-6)
    assert all(p.grad is None for p in m.parameters())


def test_patched_model_uses_body_features_and_head_changes_the_map(cnn, images):
    y = torch.tensor([0] * 6 + [1] * 6 + [2] * 6)
    x = torch.rand(18, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    f = y == 0
    attack = PRA(cnn, (x[f], y[f]), (x[~f], y[~f]), [0])
    patched = attack.patched_model(torch.arange(3), "l2", 1.0)
    assert target_layer(patched) is target_layer(cnn)
    clean = gradcam(cnn, images, 0)
    pra = gradcam(patched, images, 0)
    assert pra.shape == clean.shape
    # the fresh wrapper is in train mode; the shared body must stay in eval mode (BatchNorm)
    assert patched.training and not any(m.training for m in cnn.modules())
    p_patched = target_probability(patched, images, 0)
    with torch.no_grad():
        ref = torch.softmax(patched.eval()(images), 1)[:, 0].numpy()
    assert np.allclose(p_patched, ref, atol=1e-6)
    assert np.abs(clean - pra).max() > 0.05
    # the other classes' rows are untouched, so their maps are the same
    assert np.allclose(gradcam(cnn, images, 4), gradcam(patched, images, 4), atol=1e-5)


def test_modes_are_restored(images):
    m = build_model("cnn_small", 10, 1, 8).train()
    gradcam(m, images, 1)
    target_probability(m, images, 1)
    assert all(mod.training for mod in m.modules())


def test_errors(cnn, images):
    with pytest.raises(MuError, match="backend"):
        gradcam(cnn, images, 0, backend="nope")
    with pytest.raises(MuError, match="one target class per image"):
        gradcam(cnn, images, [0, 1])
    with pytest.raises(MuError, match="features"):
        target_layer(nn.Linear(3, 3))


def test_probability_and_grid(cnn, images):
    p = target_probability(cnn, images, 3)
    assert p.shape == (5,) and np.all((p > 0) & (p < 1))
    cams = {"m · clean": gradcam(cnn, images, 3), "m · PRA": gradcam(cnn, images, 4)}
    fig = cam_grid(images, cams, {"m · clean": p})
    assert len(fig.axes) == 3 * 5 + 1  # the image row, one row per map, and the colour bar
    assert fig.axes[-1].get_ylabel() or fig.axes[-1].get_label() == "<colorbar>"
    with pytest.raises(MuError, match="shape"):
        cam_grid(images[:2], cams)


def test_fallback_when_package_is_missing(cnn, images, monkeypatch):
    import sys

    ref = gradcam(cnn, images, 3, backend="hooks")
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # import now raises ImportError
    assert np.allclose(gradcam(cnn, images, 3), ref)  # auto: falls back to the hooks
    with pytest.raises(MuError, match="grad-cam"):
        gradcam(cnn, images, 3, backend="package")
