"""The paper's metrics: masked softmax, divergences, OU@eps, dispersion."""

import torch
from torch import nn

from mu_lib import metrics
from mu_lib.models import SmallCNN


def test_masked_softmax_zero_on_forget_and_normalised():
    z = torch.randn(64, 10)
    p = metrics.masked_softmax(z, [2, 7])
    assert torch.all(p[:, [2, 7]] == 0)
    assert torch.allclose(p.sum(1), torch.ones(64, dtype=p.dtype))
    # relative weights of the retained classes are those of the plain softmax
    s = torch.softmax(z, 1)
    assert torch.allclose(p[:, 0] / p[:, 1], s[:, 0] / s[:, 1], rtol=1e-4)


def test_js_symmetric_zero_on_equal_and_bounded():
    p = torch.softmax(torch.randn(32, 5), 1)
    q = torch.softmax(torch.randn(32, 5), 1)
    assert torch.allclose(metrics.js_div(p, q), metrics.js_div(q, p))
    assert torch.allclose(metrics.js_div(p, p), torch.zeros(32), atol=1e-7)
    assert torch.all(metrics.js_div(p, q) > 0)
    assert torch.all(metrics.js_div(p, q) <= torch.log(torch.tensor(2.0)) + 1e-6)
    # KL is not symmetric in general, and handles exact zeros (0 log 0 = 0)
    assert not torch.allclose(metrics.kl_div(p, q), metrics.kl_div(q, p))
    z = metrics.masked_softmax(torch.randn(4, 5), [0])
    assert torch.isfinite(metrics.kl_div(z, p[:4])).all()


class ForgetMasked(nn.Module):
    """The original model with its forget logits at -inf: the ideal unlearned model of eq. 3."""

    def __init__(self, model, forget):
        super().__init__()
        self.model, self.forget = model, forget

    def forward(self, x):
        return metrics.masked_logits(self.model(x), self.forget)


def test_ou_is_exactly_zero_for_masked_original_and_positive_otherwise():
    torch.manual_seed(0)
    model = SmallCNN(10, 1, 8).eval()
    x = torch.rand(50, 1, 8, 8)
    assert metrics.ou_eps(model, ForgetMasked(model, [3]), x, [3]) == 0.0
    assert metrics.ou_eps(model, model, x, [3]) > 0.0  # unmasked original keeps forget mass
    other = SmallCNN(10, 1, 8).eval()
    assert metrics.ou_eps(model, other, x, [3], divergence="kl") > 0.0


def test_dispersion_loss_detects_collapsed_and_spread_features():
    y = torch.zeros(20, dtype=torch.long)
    same = torch.ones(20, 8)
    assert torch.isclose(metrics.dispersion_loss(same, y, [0]), torch.tensor(1.0))
    eye = torch.cat([torch.eye(8), -torch.eye(8)])
    assert metrics.dispersion_loss(eye, torch.zeros(16, dtype=torch.long), [0]) < 0
    # pairwise formula agrees with the explicit O(n^2) mean over distinct pairs
    z = torch.randn(9, 4)
    zn = nn.functional.normalize(z, dim=1)
    c = zn @ zn.T
    explicit = (c.sum() - c.diag().sum()) / (9 * 8)
    assert torch.isclose(metrics.mean_pairwise_cosine(z), explicit, atol=1e-6)


def test_cpu_inference_chunks_do_not_change_outputs(monkeypatch):
    """On CPU, logits, embeddings and PGD neighbours are computed in small chunks for speed; they
    must equal one pass over the whole set (bitwise on the reference machine)."""
    import mu_lib.infer as infer
    from mu_lib.backbones import build_model
    from mu_lib.perturb import pgd_linf

    torch.manual_seed(0)
    x, y = torch.rand(300, 1, 28, 28), torch.randint(0, 10, (300,))
    for name in ("cnn_small", "vit_tiny"):
        model = build_model(name, 10, 1, 28).eval()
        with torch.no_grad():
            whole_logits, whole_emb = model(x), model.embed(x)
        logits = infer.predict_logits(model, x, 1024, "cpu")
        emb = infer.embed_all(model, x, 1024, "cpu")
        torch.testing.assert_close(logits, whole_logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(emb, whole_emb, rtol=1e-5, atol=1e-6)
    assert infer.inference_batch(1024, "cpu") < 300  # the comparison above really chunked
    assert infer.inference_batch(1024, "cuda") == 1024
    chunked = pgd_linf(
        model, x, y, eps=0.03, step=0.01, steps=2, seed=3, batch_size=512, device="cpu"
    )
    monkeypatch.setattr(infer, "CPU_INFERENCE_CHUNK", 10_000)
    whole = pgd_linf(
        model, x, y, eps=0.03, step=0.01, steps=2, seed=3, batch_size=512, device="cpu"
    )
    assert (chunked - x).abs().max() > 0.01  # the attack moved the images
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_fgsm_is_one_signed_gradient_step_from_the_input():
    """Boundary Shrink's one-step attack: x + eps * sign(grad of the loss), clipped, no random
    start (so it is deterministic and every pixel moves by eps unless clipped)."""
    from mu_lib.backbones import build_model
    from mu_lib.perturb import fgsm

    torch.manual_seed(1)
    model = build_model("cnn_small", 10, 1, 28).eval()
    x, y = torch.rand(40, 1, 28, 28) * 0.8 + 0.1, torch.randint(0, 10, (40,))
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xg), y), xg)
    expected = (x + 0.05 * grad.sign()).clamp(0, 1)
    adv = fgsm(model, x, y, eps=0.05, device="cpu")
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    moved = (adv - x).abs()
    assert torch.allclose(moved[grad != 0], torch.tensor(0.05), atol=1e-6)
