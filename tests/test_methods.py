"""The baseline unlearning methods on the ``smoke`` profile: each one forgets, uses exactly the
data it declares, rejects unknown hyperparameters, and plugs into Spotter.

One cache directory for the module (the original model is trained once); every method runs once
through the same ``Context`` the experiment layer builds, so the data counts are checked directly.
"""

from __future__ import annotations

import copy

import pytest
import torch

from mu_lib import MuError
from mu_lib.experiment import RunConfig, original_model, split_for
from mu_lib.metrics import accuracy
from mu_lib.unlearn import METHODS, Context, build_method
from mu_lib.util import seed_everything

PROFILE = "smoke"
FORGET_ONLY = ("random_label", "neggrad", "boundary_shrink", "boundary_expand", "salun", "l2ul")
USES_RETAIN = ("fisher", "unsc", "scrub")
BASELINES = FORGET_ONLY + USES_RETAIN


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One fresh cache directory for this module (restored afterwards)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MU_CACHE_DIR", str(tmp_path_factory.mktemp("mu-cache")))
    mp.setenv("MU_QUIET", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def setup(cache):
    cfg = RunConfig(method="original", profile=PROFILE, device="cpu")
    original, _, _ = original_model(cfg)
    return cfg, original, split_for(cfg)


def unlearn(setup, method, give_retain: bool):
    """Run ``method`` (a built Method) as ``experiment.unlearned_model`` would; return the
    unlearned model and the context (for its data counts and state)."""
    cfg, original, split = setup
    frozen = copy.deepcopy(original).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    ctx = Context(
        original=frozen,
        model=copy.deepcopy(original),
        forget=split.forget_train,
        retain=split.retain_train if give_retain else None,
        num_classes=split.num_classes,
        forget_classes=split.forget_classes,
        seed=0,
        device="cpu",
        profile=cfg.prof,
        generator=seed_everything(1),
    )
    return method.unlearn(ctx), ctx


def acc_f(setup, model) -> float:
    return accuracy(model, *setup[2].forget_train)


def acc_rt(setup, model) -> float:
    return accuracy(model, *setup[2].retain_test)


def build(name: str, overrides=None, base=None):
    return build_method(name, PROFILE, overrides or {}, 5, base=base)


def test_registry_entries_are_documented():
    for name in BASELINES:
        cls = METHODS[name]
        assert cls.summary and cls.source and cls.Hparams.__doc__, name
        for field in cls.Hparams.__dataclass_fields__:
            if field in ("epochs", "batch_size", "retain_batch", "momentum", "optimizer"):
                continue  # documented once in HParams
            if field in cls.Hparams.__dict__.get("__annotations__", {}):
                assert field in cls.Hparams.__doc__, f"{name}: field {field} undocumented"
        assert cls.uses_retain == (name in USES_RETAIN), name


@pytest.mark.parametrize("name", FORGET_ONLY)
def test_forget_only_method_forgets_without_retained_data(setup, name):
    model, ctx = unlearn(setup, build(name), give_retain=False)
    assert ctx.counts["retain_batches"] == 0
    assert ctx.counts["forget_batches"] > 0
    assert acc_f(setup, model) <= 5.0, f"{name} stopped forgetting"
    assert acc_rt(setup, model) > 10.0, f"{name} destroyed the model"


@pytest.mark.parametrize("name", USES_RETAIN)
def test_retained_data_method_forgets_and_gets_retained_batches(setup, name):
    # Fisher's noise alone forgets this pair only by wrecking the model (test_definitions_b checks
    # the noise on its dev pair); the reference's full recipe (its scale, forget rows reset) does not.
    over = {"reset_forget_rows": True, "alpha": 1e-7} if name == "fisher" else None
    method = build(name, over)
    assert method.needs_retain
    with pytest.raises(MuError):  # without retained data the method must refuse, not guess
        unlearn(setup, build(name, over), give_retain=False)
    model, ctx = unlearn(setup, method, give_retain=True)
    assert ctx.counts["retain_batches"] > 0, f"{name} never received retained data"
    assert acc_f(setup, model) <= 5.0, f"{name} stopped forgetting"
    assert acc_rt(setup, model) > 50.0, f"{name} destroyed the retained classes"


def test_salun_retained_data_is_a_switch(setup):
    assert not build("salun").needs_retain
    method = build("salun", {"use_retain": True})
    assert method.needs_retain
    _, ctx = unlearn(setup, method, give_retain=True)
    assert ctx.counts["retain_batches"] == ctx.counts["forget_batches"] > 0


def test_hooks_do_what_they_claim(setup):
    _, original, _ = setup
    # SalUn: weights outside the saliency mask move only by weight decay.
    model, ctx = unlearn(setup, build("salun", {"weight_decay": 0.0}), give_retain=False)
    frozen = [(p, m) for p, m in ctx.state["salun_masks"] if p.dim() > 1 and float(m.mean()) < 1.0]
    assert frozen and 0.3 < ctx.state["salun_kept"] < 0.7
    named = dict(original.named_parameters())
    by_id = {id(p): n for n, p in model.named_parameters()}
    for p, m in frozen:
        before = named[by_id[id(p)]]
        assert torch.equal(p.detach()[m == 0], before.detach()[m == 0])
    # Boundary Expand: the shadow row is pruned, the head keeps its C outputs.
    model, ctx = unlearn(setup, build("boundary_expand"), give_retain=False)
    assert "shadow" not in ctx.state and model.head.out_features == setup[2].num_classes
    # UNSC: every layer's update stays orthogonal to its protected retained directions.
    model, ctx = unlearn(setup, build("unsc"), give_retain=True)
    before = dict(original.named_modules())
    names = {id(m): n for n, m in model.named_modules()}
    for module, proj, rank in ctx.state["unsc_projectors"]:
        old = before[names[id(module)]]
        delta = (module.weight - old.weight).detach().reshape(module.weight.shape[0], -1)
        if module.bias is not None:
            delta = torch.cat([delta, (module.bias - old.bias).detach().reshape(-1, 1)], dim=1)
        assert 1 <= rank <= proj.shape[0]
        assert torch.allclose(delta @ proj, delta, atol=1e-5), names[id(module)]
    assert float((model.head.weight - original.head.weight).detach().abs().sum()) > 0  # trained
    # Fisher with the reference's forget-row reset: the forget rows are redrawn as N(0, 1e-3).
    model, _ = unlearn(setup, build("fisher", {"reset_forget_rows": True}), give_retain=True)
    assert 0.0 < float(model.head.weight[0].detach().std()) < 0.1


@pytest.mark.parametrize("name", BASELINES)
def test_unknown_or_bad_hyperparameter_raises(name):
    with pytest.raises(MuError, match="no hyperparameter"):
        build(name, {"no_such_setting": 1})
    with pytest.raises(MuError):
        build(name, {"bn_mode": "sometimes"})


def test_method_specific_values_are_checked():
    for name, bad in [
        ("fisher", {"epochs": 3}),
        ("salun", {"keep": 0.0}),
        ("unsc", {"energy": 1.5}),
        ("boundary_shrink", {"relabel": "closest"}),
        ("l2ul", {"adv_eps": -1.0}),
        ("scrub", {"temperature": 0.0}),
    ]:
        with pytest.raises(MuError):
            build(name, bad)


# Spotter on top of a base runs with every optimisation setting of the base.
PLUG = ("salun", "delete", "unsc")


@pytest.mark.parametrize("base", PLUG)
def test_plug_and_play_with_spotter(setup, base):
    method = build("spotter", base=base)
    assert method.hp.lr == build(base).hp.lr
    assert method.needs_retain == build(base).needs_retain
    model, ctx = unlearn(setup, method, give_retain=method.needs_retain)
    if base == "salun":
        assert "salun_masks" in ctx.state  # the base's prepare ran through Spotter
    if base == "unsc":
        assert "unsc_projectors" in ctx.state and ctx.counts["retain_batches"] > 0
    else:
        assert ctx.counts["retain_batches"] == 0
    assert acc_f(setup, model) <= 5.0, f"spotter + {base} stopped forgetting"


@pytest.mark.parametrize("base", PLUG)
def test_plugged_in_spotter_ignores_standalone_profile_rate(base):
    """On ``cpu`` a lone Spotter has its own rate; plugged in, it must still take the base's."""
    from mu_lib import tuned
    from mu_lib.unlearn import build_method
    from mu_lib.unlearn.spotter import Spotter

    alone = build_method("spotter", "cpu")
    plugged = build_method("spotter", "cpu", base=base)
    assert alone.hp.lr == tuned.chosen("cpu", "spotter").get("lr", Spotter.Hparams.lr)
    assert plugged.hp.lr == build_method(base, "cpu").hp.lr
    assert plugged.hp.batch_size == build_method(base, "cpu").hp.batch_size
    assert build_method("spotter", "cpu", {"lr": 0.02}, base=base).hp.lr == 0.02


def test_after_epoch_sees_each_epoch_once_and_reaches_a_plugged_base(setup):
    seen = []
    spotter = build("spotter", {"epochs": 3}, base="delete")
    spotter.base.after_epoch = lambda ctx, epoch: seen.append(epoch)
    model, _ = unlearn(setup, spotter, give_retain=False)
    assert seen == [0, 1, 2]
    # the uncached path the monitoring scripts use gives the model the cache would hold
    from mu_lib.experiment import new_model, unlearn_from, unlearned_model

    cfg = setup[0].replace(method="spotter", overrides={"epochs": 2})
    cached, _, hit, _ = unlearned_model(cfg)
    fresh = new_model(cfg)
    unlearn_from(cfg, setup[1], fresh)
    assert not hit
    for name, value in cached.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[name]), name
