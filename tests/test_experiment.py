"""End to end on the smoke profile: forgetting, PRA, the cache, determinism, errors, the CLI."""

import json
import os

import pandas as pd
import pytest

from mu_lib import MuError
from mu_lib.cli import main as mu
from mu_lib.experiment import RunConfig, original_model, run, unlearn_config
from mu_lib.store import Store, config_key

BASE = RunConfig(profile="smoke", seed=0, forget_classes=(3,))


def test_original_is_accurate_and_retrain_forgets():
    orig = run(BASE.replace(method="original")).metrics
    assert orig["acc_f"] > 90 and orig["acc_rt"] > 90
    ret = run(BASE.replace(method="retrain")).metrics
    assert ret["acc_f"] < 5 and ret["acc_ft"] < 5
    assert abs(ret["acc_rt"] - orig["acc_rt"]) < 3


def test_pra_restores_delete_but_not_spotter():
    delete = run(BASE.replace(method="delete")).metrics
    assert delete["acc_f"] < 5
    assert delete["proto_acc_f"] > delete["acc_f"] + 30
    assert delete["acc_r_star"] >= delete["acc_r"] - 1.0
    spot = run(BASE.replace(method="spotter", overrides={"lambda2": 1.0})).metrics
    assert spot["acc_f"] < 5
    assert spot["proto_acc_f"] < delete["proto_acc_f"]


def test_cache_returns_identical_result_and_is_keyed_by_config():
    cfg = BASE.replace(method="delete")
    first, second = run(cfg), run(cfg)
    assert second.cached
    assert first.metrics == second.metrics
    assert config_key(unlearn_config(cfg)) != config_key(unlearn_config(cfg.replace(seed=1)))


def test_result_cache_is_keyed_by_resolved_hyperparameters_not_spelling():
    """``lambda2=1``, ``lambda2=1.0`` and the default are one run; a real change is another."""
    cfg = BASE.replace(method="spotter", seed=3)
    first = run(cfg.replace(overrides={"lambda2": 1}))
    assert not first.cached
    for over in ({"lambda2": 1.0}, {}, {"lambda2": "1"}):
        again = run(cfg.replace(overrides=over))
        assert again.cached, over
        assert again.metrics == first.metrics
    assert not run(cfg.replace(overrides={"lambda2": 0.5})).cached
    with pytest.raises(MuError, match="lambda2 must be a number"):
        run(cfg.replace(overrides={"lambda2": "one"}))


def test_a_run_resolves_its_configuration_and_builds_its_method_once(tmp_path, monkeypatch):
    """One resolved configuration is passed down: the method that is described in the cache key
    is the instance that unlearns (it used to be built four times per run)."""
    import mu_lib.experiment as ex

    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    built, resolved = [], []
    real_build, real_resolve = ex.build_method, ex.resolve
    monkeypatch.setattr(ex, "build_method", lambda *a, **k: built.append(a) or real_build(*a, **k))
    monkeypatch.setattr(ex, "resolve", lambda c: resolved.append(c) or real_resolve(c))
    res = run(BASE.replace(method="neggrad", seed=4))
    assert not res.cached and len(built) == 1 and len(resolved) == 1
    assert res.config["hparams"] == ex.method_for(BASE.replace(method="neggrad")).describe()
    built.clear()
    assert run(BASE.replace(method="neggrad", seed=4)).cached and len(built) == 1


def test_corrupt_cache_entries_are_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    cfg = BASE.replace(method="original", seed=5)
    good = run(cfg).metrics
    for p in (tmp_path / "store").glob("*/*"):
        p.write_bytes(b"\x00garbage")
    import mu_lib.experiment as ex

    ex.store().memo.clear()
    with pytest.warns(UserWarning, match="rebuilding"):
        again = run(cfg)
    assert not again.cached
    assert again.metrics == good


def test_same_seed_same_numbers_without_cache(monkeypatch):
    monkeypatch.setenv("MU_NO_CACHE", "1")
    import mu_lib.experiment as ex

    cfg = BASE.replace(method="spotter", seed=2)
    ex.store().memo.clear()
    a = run(cfg).metrics
    ex.store().memo.clear()
    b = run(cfg).metrics
    assert a == b


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "nope"}, "unknown method"),
        ({"dataset": "imagenet"}, "unknown dataset"),
        ({"profile": "huge"}, "unknown profile"),
        ({"forget_classes": (10,)}, "out of range"),
        ({"pra_k": 10_000}, "shots per class is impossible"),
        ({"alphas": (0.5, 1.5)}, r"alpha must be in \[0, 1\]"),
        ({"overrides": {"lambda9": 1}}, "no hyperparameter"),
        ({"overrides": {"lambda1": 2.0}}, "lambda1 must be in"),
        ({"method": "delete", "base": "salun"}, "--base only applies to spotter"),
    ],
)
def test_bad_input_raises_a_helpful_error(kw, match):
    kw = {"profile": "smoke", "forget_classes": (3,), "method": "spotter", **kw}
    with pytest.raises(MuError, match=match):
        run(RunConfig(**kw))


def test_missing_dataset_says_how_to_install(monkeypatch, tmp_path):
    import mu_lib.data as data

    monkeypatch.setattr(data, "FASHION_DEBIAN", tmp_path / "nothing")
    monkeypatch.setenv("MU_DATA_DIR", str(tmp_path))
    data.load_raw.cache_clear()
    try:
        with pytest.raises(MuError, match="apt-get install -y dataset-fashion-mnist"):
            data.load_raw("fashion-mnist", True)
    finally:
        data.load_raw.cache_clear()


def test_cli_run_json_contract(capsys):
    assert (
        mu(["run", "--profile", "smoke", "--method", "delete", "--forget-classes", "3", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    for k in (
        "acc_f",
        "acc_r",
        "acc_ft",
        "acc_rt",
        "ou_pgd",
        "ou_gauss",
        "proto_acc_f",
        "acc_r_star",
        "alpha",
    ):
        assert isinstance(out["metrics"][k], float)
    assert out["config"]["method"] == "delete" and out["config"]["forget_classes"] == [3]
    assert set(out["timings"]) >= {"original", "unlearn"}


def test_cli_errors_exit_2_with_message(capsys):
    assert mu(["run", "--profile", "smoke", "--method", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert mu(["run", "--profile", "smoke", "--set", "lambda2"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_cli_methods_lists_every_registered_method(capsys):
    from mu_lib.unlearn import METHODS

    assert mu(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in METHODS)


def test_original_model_trained_once_per_seed():
    _, _, hit1 = original_model(BASE)
    _, _, hit2 = original_model(BASE.replace(forget_classes=(1,)))
    assert hit2  # the original does not depend on the forget class
    assert os.path.isdir(Store().root)


def test_cached_model_reports_its_build_time_not_its_load_time(tmp_path, monkeypatch):
    """Tables of unlearning seconds read ``secs`` from models that other chapters built."""
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    import mu_lib.experiment as ex
    from mu_lib.experiment import unlearned_model

    cfg = BASE.replace(method="delete", seed=6, overrides={"epochs": 2})
    _, built_secs, hit, _ = unlearned_model(cfg)
    assert not hit and built_secs > 0
    ex.store().memo.clear()  # a new process: the model now comes from the store
    _, loaded_secs, hit, _ = unlearned_model(cfg)
    assert hit and loaded_secs == pytest.approx(built_secs)
    _, memo_secs, hit, _ = unlearned_model(cfg)  # and from this process's memo
    assert hit and memo_secs == pytest.approx(built_secs)


def test_backbone_train_epochs_reach_the_original_and_the_retrain(monkeypatch):
    """A backbone with its own training length is trained (and cached) with that length."""
    import mu_lib.unlearn.simple as simple
    from mu_lib.experiment import original_config
    from mu_lib.profiles import PROFILES, get_profile

    cpu = get_profile("cpu")
    vit_epochs = dict(cpu.backbone_train_epochs)["vit_tiny"]
    assert vit_epochs != cpu.train_epochs
    cfg = RunConfig("retrain", profile="cpu")
    assert original_config(cfg)["train"]["train_epochs"] == cpu.train_epochs
    vit = original_config(cfg.replace(backbone="vit_tiny"))
    assert vit["train"]["train_epochs"] == vit_epochs

    smoke = PROFILES["smoke"]
    monkeypatch.setitem(PROFILES, "smoke", smoke.with_(backbone_train_epochs=(("cnn_small", 1),)))
    seen = []

    def spy(*args, **kw):
        seen.append(kw["epochs"])

    monkeypatch.setattr(simple, "train_classifier", spy)
    monkeypatch.setenv("MU_NO_CACHE", "1")
    from mu_lib.experiment import unlearned_model

    unlearned_model(BASE.replace(method="retrain", seed=7))
    assert seen == [1]


def test_spotter_runs_share_their_training_neighbours(monkeypatch):
    """Spotter's PGD neighbours depend on the original, D_f and the seed only: one PGD per process
    for every Spotter variant on them, with the numbers of a fresh computation."""
    import mu_lib.experiment as ex
    import mu_lib.unlearn.spotter as spotter_mod

    monkeypatch.setenv("MU_NO_CACHE", "1")
    calls = []
    real = spotter_mod.pgd_linf

    def counting(*args, **kw):
        calls.append(kw["eps"])
        return real(*args, **kw)

    monkeypatch.setattr(spotter_mod, "pgd_linf", counting)
    cfg = BASE.replace(method="spotter", seed=8, overrides={"epochs": 1})
    first = run(cfg).metrics
    run(cfg.replace(overrides={"epochs": 1, "lambda2": 0.1}))
    run(cfg.replace(base="delete", overrides={"epochs": 1}))
    assert calls == [0.03]
    ex.store().memo.clear()  # a fresh process recomputes them and gets the same result
    assert run(cfg).metrics == first
    assert calls == [0.03, 0.03]


def test_relearning_curves_come_back_from_the_store(monkeypatch):
    from mu_lib import analysis

    cfg = RunConfig(method="original", profile="smoke", seed=0)
    first = analysis.relearning_curves([cfg], shots=(1,), lrs=(1e-3,))

    def refuse(*_a, **_k):
        raise AssertionError("recomputed: the curves were not read from the store")

    monkeypatch.setattr(analysis, "relearn_sweep", refuse)
    again = analysis.relearning_curves([cfg], shots=(1,), lrs=(1e-3,))
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns[:3]) == ["method", "N", "unlearned acc_f"]


def test_the_store_follows_mu_no_cache_both_ways(monkeypatch):
    import mu_lib.experiment as ex

    monkeypatch.setenv("MU_NO_CACHE", "1")
    assert ex.store().disabled
    monkeypatch.delenv("MU_NO_CACHE")
    assert not ex.store().disabled  # a store made while caching was off does not stay off
