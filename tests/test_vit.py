"""Transformer backbones: the embed/head interface, PRA on the class token, timm offline."""

from __future__ import annotations

import pytest
import torch

from mu_lib import MuError
from mu_lib.attacks.pra import PRA
from mu_lib.backbones import MODELS, build_model
from mu_lib.models import check_classifier
from mu_lib.vit import TimmViT, TinyViT, default_patch, timm_patch


@pytest.mark.parametrize("channels,size,patch", [(1, 8, 2), (1, 28, 7), (3, 32, 8)])
def test_vit_tiny_shapes_and_embed_head(channels, size, patch):
    torch.manual_seed(0)
    m = build_model("vit_tiny", 7, channels, size).eval()
    assert isinstance(m, TinyViT) and m.patch == patch == default_patch(size)
    check_classifier(m)
    x = torch.rand(3, channels, size, size)
    emb = m.embed(x)
    assert emb.shape == (3, m.embed_dim) and m(x).shape == (3, 7)
    assert torch.allclose(m.head(emb), m(x), atol=1e-6)
    # the embedding is the final-norm class token: zero mean, unit variance per row
    assert torch.allclose(emb.mean(1), torch.zeros(3), atol=1e-4)


def test_vit_tiny_learns():
    torch.manual_seed(0)
    m = TinyViT(2, 1, 8)
    y = torch.arange(64) % 2
    x = 0.7 * torch.rand(64, 1, 8, 8)
    x[:, :, :4] += 0.3 * y.view(-1, 1, 1, 1)  # class 1: brighter top half
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_pra_runs_on_class_token():
    torch.manual_seed(0)
    m = build_model("vit_tiny", 4, 1, 8).eval()
    x = torch.rand(40, 1, 8, 8)
    y = torch.arange(40) % 4
    fmask = y == 1
    attack = PRA(m, (x[fmask], y[fmask]), (x[~fmask], y[~fmask]), [1], batch_size=16)
    assert attack.ef.shape == (10, m.embed_dim)
    res = attack.sweep(torch.arange(3), "l2", (0.0, 0.5, 1.0))
    assert len(res.proto_acc_f) == 3 and 0.0 <= res.chosen_proto_acc_f <= 100.0
    patched = attack.patched_model(torch.arange(3), "cos", 1.0)
    assert patched(x).shape == (40, 4)


def test_bad_sizes_are_clear_errors():
    with pytest.raises(MuError, match="not divisible"):
        build_model("vit_tiny", 10, 1, 30)
    with pytest.raises(MuError, match="not divisible"):
        timm_patch(36)


@pytest.mark.parametrize("name", ["vit_s", "deit_s"])
def test_timm_models_build_offline(name, monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.delenv("MU_VIT_PRETRAINED", raising=False)
    assert name in MODELS
    m = build_model(name, 5, 3, 16).eval()  # 16x16 input, patch 2: small and fast
    assert isinstance(m, TimmViT) and isinstance(m.head, torch.nn.Linear)
    assert m.head.in_features == 384 and m.head.out_features == 5
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        emb = m.embed(x)
        assert emb.shape == (2, 384)
        assert torch.allclose(m.head(emb), m(x), atol=1e-5)
        # embed is timm's pre-logits class token
        body = m.features
        ref = body.forward_head(body.forward_features(m.norm(x)), pre_logits=True)
        assert torch.allclose(emb, ref, atol=1e-6)


def test_timm_missing_weights_file(monkeypatch, tmp_path):
    pytest.importorskip("timm")
    monkeypatch.setenv("MU_VIT_PRETRAINED", str(tmp_path / "nope.safetensors"))
    with pytest.raises(MuError, match="MU_VIT_PRETRAINED"):
        build_model("vit_s", 5, 3, 16)


def test_vit_tiny_through_the_experiment(monkeypatch, tmp_path):
    """The whole pipeline (original, Spotter, OU, PRA) runs with the transformer backbone."""
    from mu_lib.experiment import RunConfig, run

    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    res = run(
        RunConfig(
            "spotter", profile="smoke", backbone="vit_tiny", device="cpu", overrides={"epochs": 1}
        )
    )
    assert res.config["backbone"] == "vit_tiny"
    for k in ("acc_f", "acc_r", "ou_pgd", "proto_acc_f", "acc_r_star"):
        assert res.metrics[k] == res.metrics[k]  # not NaN
