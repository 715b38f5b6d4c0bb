"""Hostile inputs (issue 14): each is refused with an error that names the bad value and the fix,
before any compute, or gives a correct result; and no cache entry is lost or poisoned by it.

Most cases train nothing.  One smoke original (seed 0, the session's cache) serves the cases that
need a stored result; entries are poisoned on copies or rebuilt in place and checked afterwards.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import struct
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import mu_lib.experiment as ex
from mu_lib import MuError, data, fingerprint, folders, store
from mu_lib.backbones import build_model
from mu_lib.cli import main
from mu_lib.data import DATASETS, data_fingerprint
from mu_lib.experiment import Result, RunConfig, result_key, run
from mu_lib.store import Store
from mu_lib.validate import check_chapter_parameters, check_parameter

REPO = Path(__file__).resolve().parents[1]
BASE = RunConfig(method="original", seed=0)


# ------------------------------------------------------------------------------ helpers


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the cache): compared before and after a case."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "fingerprints" not in p.parts
    }


@pytest.fixture
def cache_root() -> Path:
    return Path(os.environ["MU_CACHE_DIR"])


@pytest.fixture
def untouched(cache_root):
    """Asserts after the test that the cache holds exactly what it held before."""
    before = snapshot(cache_root / "store")
    yield
    assert snapshot(cache_root / "store") == before, "a refused input changed the cache"


@pytest.fixture
def no_compute(monkeypatch):
    """Any training or data loading is a test failure: the input must be refused before."""

    def boom(*a, **k):
        raise AssertionError("computed before refusing the input")

    monkeypatch.setattr(ex, "original_model", boom)
    monkeypatch.setattr(ex, "train_classifier", boom)


@pytest.fixture(scope="module")
def base_result():
    """The smoke original (seed 0) and its evaluation, through the session cache."""
    return run(BASE)


def _result_path(cfg: RunConfig = BASE) -> Path:
    return ex.store().root / "results" / f"{result_key(cfg)}.json"


@contextmanager
def no_cache_warning():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    bad = [str(w.message) for w in seen if "cache entry" in str(w.message)]
    assert not bad, bad


def _cli(capsys, *argv) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mu: error:")
    return err


# ------------------------------------------------------------------- A. settings (Python API)

BAD_RUNS = [
    # (RunConfig/run keywords, words the error must contain)
    ({"overrides": {"lr": float("nan")}}, ["lr", "nan"]),
    ({"overrides": {"lr": "NaN"}}, ["lr", "nan"]),
    ({"method": "spotter", "overrides": {"lambda2": float("inf")}}, ["lambda2", "inf"]),
    ({"method": "spotter", "overrides": {"lambda2": "inf"}}, ["lambda2", "inf"]),
    ({"overrides": {"lr": True}}, ["lr", "True", "--set lr="]),
    ({"overrides": {"epochs": 1.5}}, ["epochs", "1.5", "whole number"]),
    ({"overrides": {"momentum": -1}}, ["momentum", "-1"]),
    ({"overrides": {"lr": [1, 2]}}, ["lr", "[1, 2]"]),
    ({"overrides": {"lr": "[1,2]"}}, ["lr", "[1,2]"]),
    ({"overrides": {"lr": 0}}, ["lr", "0"]),
    ({"overrides": {"epochs": -1}}, ["epochs", "-1"]),
    ({"overrides": {"batch_size": 0}}, ["batch_size", "0"]),
    ({"overrides": {"weight_decay": -1e-4}}, ["weight_decay", "-0.0001"]),
    ({"overrides": {"bn_mode": "sometimes"}}, ["bn_mode", "sometimes"]),
    ({"overrides": {"lrr": 0.1}}, ["lrr", "valid ones"]),
    ({"method": "spotter", "overrides": {"lambda1": 2}}, ["lambda1", "2"]),
    ({"method": "spotter", "base": "salun", "overrides": {"base.lr": "nan"}}, ["lr", "nan"]),
    ({"method": "salun", "overrides": {"use_retain": "yes"}}, ["use_retain", "yes"]),
    ({"eval_eps": float("nan")}, ["eval_eps", "nan"]),
    ({"eval_eps": float("inf")}, ["eval_eps", "inf"]),
    ({"eval_eps": -0.1}, ["eval_eps", "-0.1"]),
    ({"eval_eps": "0.03"}, ["eval_eps", "0.03"]),
    ({"seed": 2**64}, ["seed", str(2**64), "--seed"]),
    ({"seed": -1}, ["seed", "-1"]),
    ({"seed": True}, ["seed", "True"]),
    ({"seed": 1.5}, ["seed", "1.5"]),
    ({"device": "foo"}, ["foo", "cpu"]),
    ({"device": "mps"}, ["mps", "cpu"]),
    ({"device": "cuda:99"}, ["cuda:99"]),
    ({"forget_classes": (1.5,)}, ["forget class", "1.5"]),
    ({"forget_classes": (10,)}, ["10", "0..9"]),
    ({"forget_classes": ()}, ["forget_classes", "--forget-classes"]),
    ({"forget_classes": "03"}, ["forget_classes", "'03'"]),
    ({"pra_k": 0}, ["pra_k", "0"]),
    ({"pra_k": 2.5}, ["pra_k", "2.5"]),
    ({"pra_k": 10_000}, ["k=10000", "choose 1 <= k"]),
    ({"alphas": (float("nan"),)}, ["alpha", "nan"]),
    ({"alphas": ()}, ["alphas", "()"]),
    ({"alphas": (1.5,)}, ["alpha", "1.5"]),
    ({"method": "nope"}, ["nope", "mu methods"]),
    ({"dataset": "nope"}, ["nope", "digits"]),
    ({"profile": "huge"}, ["huge", "smoke"]),
    ({"pra_form": "l3"}, ["l3", "cos"]),
]


@pytest.mark.parametrize("kw, words", BAD_RUNS, ids=[str(k) for k, _ in BAD_RUNS])
def test_bad_setting_is_refused_before_compute(kw, words, untouched, no_compute):
    if "cuda" in str(kw.get("device", "")) and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a GPU 99")
    if kw.get("device") == "mps" and getattr(torch.backends, "mps", None):
        if torch.backends.mps.is_available():
            pytest.skip("MPS is available here")
    with pytest.raises(MuError) as err:
        run(**kw)
    msg = str(err.value)
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)


# ------------------------------------------------------------------------- B. the CLI

BAD_CLI = [
    (["run", "--set", "lr=NaN"], ["lr", "nan"]),
    (["run", "--method", "spotter", "--set", "lambda2=inf"], ["lambda2", "inf"]),
    (["run", "--set", "lr=true"], ["lr", "true"]),
    (["run", "--set", "epochs=1.5"], ["epochs", "1.5"]),
    (["run", "--set", "momentum=-1"], ["momentum", "-1"]),
    (["run", "--set", "lr=[1,2]"], ["lr", "[1, 2]"]),
    (["run", "--seed", str(2**64)], ["seed", "--seed 0"]),
    (["run", "--device", "foo"], ["foo", "--device"]),
    (["run", "--forget-classes", "a,b"], ["a,b", "integers"]),
    (["run", "--alphas", "2"], ["alpha", "2"]),
    (["run", "--set", "lr"], ["key=value"]),
]


@pytest.mark.parametrize("argv, words", BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_bad_cli_setting_is_refused_before_compute(argv, words, capsys, untouched, no_compute):
    err = _cli(capsys, *argv)
    for w in words:
        assert w.lower() in err.lower(), (w, err)


def test_sweep_json_out_to_a_path_under_a_file_is_refused_first(
    tmp_path, capsys, untouched, no_compute
):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    err = _cli(capsys, "sweep", "--methods", "original", "--json-out", str(blocker / "out.json"))
    assert "--json-out" in err and "file.txt" in err and "not a folder" in err
    assert blocker.read_text() == "x"


def test_sweep_json_out_to_a_folder_is_refused_first(tmp_path, capsys, untouched, no_compute):
    err = _cli(capsys, "sweep", "--methods", "original", "--json-out", str(tmp_path))
    assert "is a folder" in err and "results.json" in err


@pytest.mark.parametrize("chapter", ["../README", "nope", "/etc/passwd", "notebooks/status"])
def test_book_accepts_only_chapter_names_from_its_list(chapter, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    before = (REPO / "README.md").stat().st_mtime_ns
    err = _cli(capsys, "book", "--profile", "smoke", "--chapter", chapter, "--no-build")
    assert repr(chapter) in err and "available" in err and "s3_1_over_unlearning" in err
    assert (REPO / "README.md").stat().st_mtime_ns == before


def test_book_checks_every_chapter_name_before_running_any(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    import mu_lib.book as book

    monkeypatch.setattr(book, "execute_chapter", lambda *a, **k: pytest.fail("ran a chapter"))
    err = _cli(capsys, "book", "--chapter", "status", "--chapter", "../README", "--no-build")
    assert "'../README'" in err


def test_cache_clear_through_a_symlink_is_refused(tmp_path, capsys, monkeypatch):
    real = tmp_path / "real"
    (real / "store" / "results").mkdir(parents=True)
    (real / "store" / "results" / "x.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("MU_CACHE_DIR", str(link))
    err = _cli(capsys, "cache", "clear")
    assert "symbolic link" in err and "MU_CACHE_DIR" in err
    assert (real / "store" / "results" / "x.json").exists()


def test_cache_clear_of_a_store_that_is_a_symlink_is_refused(tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "store").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path / "cache"))
    err = _cli(capsys, "cache", "clear")
    assert "symbolic link" in err
    assert (elsewhere / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("action", ["clear", "ls"])
def test_cache_commands_on_a_file_are_refused(action, tmp_path, capsys, monkeypatch):
    f = tmp_path / "cachefile"
    f.write_text("not a folder")
    monkeypatch.setenv("MU_CACHE_DIR", str(f))
    err = _cli(capsys, "cache", action)
    assert "is a file" in err and "MU_CACHE_DIR" in err
    assert f.read_text() == "not a folder"


# ----------------------------------------------------------------- C. an unwritable cache


def test_cache_path_that_is_a_file_fails_before_compute(tmp_path, monkeypatch, no_compute):
    f = tmp_path / "cachefile"
    f.write_text("x")
    monkeypatch.setenv("MU_CACHE_DIR", str(f))
    with pytest.raises(MuError, match="not a folder.*MU_CACHE_DIR"):
        run(BASE)
    assert f.read_text() == "x"


def test_read_only_cache_fails_before_compute(tmp_path, monkeypatch, no_compute):
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    (tmp_path / "store").mkdir()

    def denied(*a, **k):  # what a read-only folder answers (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store.tempfile, "mkstemp", denied)
    with pytest.raises(MuError, match="not writable.*Permission denied.*MU_CACHE_DIR"):
        run(BASE)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_for_real(tmp_path, monkeypatch, no_compute):
    (tmp_path / "store").mkdir()
    os.chmod(tmp_path / "store", 0o500)
    monkeypatch.setenv("MU_CACHE_DIR", str(tmp_path))
    try:
        with pytest.raises(MuError, match="not writable"):
            run(BASE)
    finally:
        os.chmod(tmp_path / "store", 0o700)


def test_no_cache_mode_needs_no_writable_folder(tmp_path, monkeypatch):
    f = tmp_path / "cachefile"
    f.write_text("x")
    monkeypatch.setenv("MU_CACHE_DIR", str(f))
    monkeypatch.setenv("MU_NO_CACHE", "1")
    Store().check_writable()  # no error: nothing will be written


# ------------------------------------------------------- D. poisoned result entries (end to end)


def _rewrite(path: Path, edit) -> None:
    entry = json.loads(path.read_text())
    path.write_text(edit(entry))


POISONS = {
    "edited metric": lambda e: json.dumps(
        {**e, "value": {**e["value"], "metrics": {**e["value"]["metrics"], "acc_r": 12.5}}}
    ),
    "wrong JSON type": lambda e: json.dumps([1, 2, 3]),
    "value of the wrong type": lambda e: json.dumps(
        {**e, "value": [1], "checksum": store.value_checksum([1])}
    ),
    "bare NaN": lambda e: json.dumps(e).replace('"acc_r": ', '"acc_r": NaN, "x": ', 1),
    "truncated": lambda e: json.dumps(e)[:50],
    "key of another entry": lambda e: json.dumps({**e, "key": "0" * 24}),
    "no checksum (old format)": lambda e: json.dumps(
        {k: v for k, v in e.items() if k != "checksum"}
    ),
    "not UTF-8": lambda e: "\udcff",
}


@pytest.mark.parametrize("poison", list(POISONS))
def test_poisoned_result_is_discarded_and_rebuilt(poison, base_result):
    path = _result_path()
    good = json.loads(path.read_text())
    if poison == "not UTF-8":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        _rewrite(path, POISONS[poison])
    with pytest.warns(UserWarning, match="invalid.*rebuilding"):
        again = run(BASE)
    assert not again.cached
    assert again.metrics == base_result.metrics  # the correct numbers, not the poisoned ones
    rebuilt = json.loads(path.read_text())
    assert rebuilt["value"]["metrics"] == good["value"]["metrics"]
    with no_cache_warning():
        assert run(BASE).cached  # and the rebuilt entry verifies


def test_result_without_metrics_is_recomputed_not_a_crash(base_result):
    path = _result_path()
    entry = json.loads(path.read_text())
    value = {"timings": {}}
    path.write_text(json.dumps({**entry, "value": value, "checksum": store.value_checksum(value)}))
    again = run(BASE)
    assert not again.cached and again.metrics == base_result.metrics


def test_result_json_is_strict_json(base_result):
    res = Result({"a": 1}, {"ou_pgd": float("nan"), "acc_f": 1.0}, {"t": float("inf")})
    text = res.to_json()
    assert "NaN" not in text and "Infinity" not in text
    out = json.loads(text)
    assert out["metrics"]["ou_pgd"] is None and sorted(out["nonfinite"]) == [
        "metrics.ou_pgd",
        "timings.t",
    ]
    json.loads(base_result.to_json(), parse_constant=lambda c: pytest.fail(c))


def test_store_never_writes_bare_nan(tmp_path):
    s = Store(tmp_path)
    s.put_json("results", "k" * 24, {"m": float("nan"), "ok": 1.0})
    text = (tmp_path / "results" / f"{'k' * 24}.json").read_text()
    assert "NaN" not in text and "nonfinite_set_to_null" in text
    assert s.get_json("results", "k" * 24) == {"m": None, "ok": 1.0}


# ------------------------------------------------------------- D. poisoned checkpoints (store)


@pytest.fixture
def ckpt(tmp_path):
    """A stored checkpoint of the smoke CNN (untrained: no compute) and what it must fit."""
    model = build_model("cnn_small", 10, 1, 8)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    s = Store(tmp_path)
    s.put_tensors("models", "a" * 24, state, {"config": {"what": "original"}, "secs": 1.0})
    fits = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    return s, "a" * 24, state, fits


def _poison_tensors(s: Store, key: str, state: dict, edit, resign: bool) -> None:
    """Rewrite the checkpoint with ``edit(state)``; with ``resign`` also its recorded checksum,
    dtypes and shapes (so only the finiteness / fit checks can catch it)."""
    path = s.root / "models" / f"{key}.safetensors"
    new = edit({k: v.clone() for k, v in state.items()})
    save_file(new, str(path), metadata={"key": key})
    if resign:
        meta = s.get_json("models", key)
        meta["sha256"] = fingerprint.file_sha256(path)
        meta["tensors"] = {k: [str(t.dtype), list(t.shape)] for k, t in new.items()}
        s.put_json("models", key, meta, meta.get("config"))


def _first_float(state) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


def _nan(st):
    k = _first_float(st)
    st[k].view(-1)[0] = float("nan")
    return st


def _fp16(st):
    return {k: (v.half() if v.is_floating_point() else v) for k, v in st.items()}


def _drop(st):
    st.pop(_first_float(st))
    return st


def _reshape(st):
    k = _first_float(st)
    st[k] = torch.zeros(3, 3)
    return st


CKPT_POISONS = {
    "NaN weights (checksum re-signed)": (_nan, True, "non-finite"),
    "NaN weights": (_nan, False, "checksum"),
    "fp16 weights (re-signed)": (_fp16, True, "torch.float16"),
    "missing tensor (re-signed)": (_drop, True, "missing"),
    "wrong shape for the model (re-signed)": (_reshape, True, "model needs"),
}


@pytest.mark.parametrize("poison", list(CKPT_POISONS))
def test_poisoned_checkpoint_is_discarded(poison, ckpt):
    s, key, state, fits = ckpt
    edit, resign, why = CKPT_POISONS[poison]
    _poison_tensors(s, key, state, edit, resign)
    with pytest.warns(UserWarning, match=why):
        assert s.get_tensors("models", key, expect=fits) is None
    assert not list((s.root / "models").glob(f"{key}.*"))  # both files gone: rebuilt next time


def test_checkpoint_of_another_entry_copied_over_is_discarded(ckpt):
    s, key, state, fits = ckpt
    other = "b" * 24
    s.put_tensors("models", other, {k: v + 1 for k, v in state.items()}, {"config": {}})
    shutil.copy(
        s.root / "models" / f"{other}.safetensors", s.root / "models" / f"{key}.safetensors"
    )
    with pytest.warns(UserWarning, match="checksum|another entry"):
        assert s.get_tensors("models", key, expect=fits) is None
    assert s.get_tensors("models", other, expect=fits) is not None  # the other entry is intact


def test_checkpoint_with_both_files_copied_over_is_discarded(ckpt):
    s, key, state, fits = ckpt
    other = "b" * 24
    s.put_tensors("models", other, state, {"config": {}})
    for ext in ("safetensors", "json"):
        shutil.copy(s.root / "models" / f"{other}.{ext}", s.root / "models" / f"{key}.{ext}")
    with pytest.warns(UserWarning, match="key does not match"):
        assert s.get_tensors("models", key, expect=fits) is None


def test_truncated_checkpoint_is_discarded(ckpt):
    s, key, _, fits = ckpt
    path = s.root / "models" / f"{key}.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="checksum"):
        assert s.get_tensors("models", key, expect=fits) is None


def test_checkpoint_without_its_record_is_not_trusted(ckpt):
    s, key, _, fits = ckpt
    (s.root / "models" / f"{key}.json").unlink()
    assert s.get_tensors("models", key, expect=fits) is None
    assert not (s.root / "models" / f"{key}.safetensors").exists()


def test_checkpoint_of_a_model_with_another_class_count_is_discarded(ckpt):
    s, key, _, _ = ckpt
    bigger = build_model("cnn_small", 12, 1, 8).state_dict()
    fits = {k: (tuple(v.shape), v.dtype) for k, v in bigger.items()}
    with pytest.warns(UserWarning, match="model needs"):
        assert s.get_tensors("models", key, expect=fits) is None


def test_good_checkpoint_loads_bitwise(ckpt):
    s, key, state, fits = ckpt
    with no_cache_warning():
        got = s.get_tensors("models", key, expect=fits)
    assert all(torch.equal(got[k], v) for k, v in state.items())


def test_store_refuses_to_write_non_finite_tensors(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(MuError, match="non-finite.*learning rate"):
        s.put_tensors("models", "c" * 24, {"w": torch.tensor([1.0, float("inf")])}, {})
    assert not list(tmp_path.rglob("*.safetensors"))


def test_poisoned_original_model_is_rebuilt_end_to_end(base_result):
    key = ex.entry_key(ex.original_config(BASE))
    path = ex.store().root / "models" / f"{key}.safetensors"
    st = {k: v.clone() for k, v in ex.store().get_tensors("models", key).items()}
    st[_first_float(st)].view(-1)[0] = float("nan")
    save_file(st, str(path), metadata={"key": key})
    ex.store().memo.clear()
    with pytest.warns(UserWarning, match="checksum"):
        model, _, hit = ex.original_model(BASE)
    assert not hit and all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert run(BASE).metrics == base_result.metrics  # same seed, same model, same numbers


# ------------------------------------------------------------------------ E. diverged runs


def test_nan_loss_stops_training_with_the_setting_to_change():
    from mu_lib.train import fit

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with pytest.raises(MuError, match=r"unlearn:x.*nan.*--set lr=0.05"):
        fit(
            model,
            lambda e: [torch.zeros(1, 2)],
            lambda b: model(b).sum() * float("nan"),
            opt,
            2,
            device="cpu",
            desc="unlearn:x",
        )


def test_diverged_unlearning_stores_nothing(base_result, monkeypatch, cache_root):
    from mu_lib.unlearn.neggrad import NegGrad

    def exploding(self, ctx, batch):
        return ctx.model(batch.x).sum() * float("inf")

    monkeypatch.setattr(NegGrad, "loss", exploding)
    before = snapshot(cache_root / "store")
    # a learning rate no other test asks for: a NegGrad model another test left in the session
    # cache would be loaded instead of trained, and nothing would diverge
    with pytest.raises(MuError, match="diverged.*nothing was stored.*lr"):
        run(method="neggrad", seed=0, overrides={"lr": 0.0123})
    assert snapshot(cache_root / "store") == before


def test_non_finite_weights_without_nan_loss_store_nothing(base_result, monkeypatch, cache_root):
    from mu_lib.unlearn.neggrad import NegGrad

    def poison(self, ctx):
        with torch.no_grad():
            next(ctx.model.parameters()).fill_(float("nan"))

    monkeypatch.setattr(NegGrad, "finish", poison)
    before = snapshot(cache_root / "store")
    with pytest.raises(MuError, match="non-finite weights.*--set lr"):
        run(method="neggrad", seed=0, overrides={"epochs": 0})
    assert snapshot(cache_root / "store") == before


# ----------------------------------------------------------------------- F. data files


def _idx(path: Path, arr: np.ndarray, truncate: int = 0, codes: int = 0x08) -> None:
    head = struct.pack(">HBB", 0, codes, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    blob = head + arr.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(blob[: len(blob) - truncate] if truncate else blob)


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    """A tiny valid Fashion-MNIST layout in $MU_DATA_DIR/fashion-mnist."""
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for train, n in ((True, 30), (False, 20)):
        img, lab = data.FASHION_FILES[train]
        _idx(d / img, rng.integers(0, 256, (n, 28, 28)))
        _idx(d / lab, np.arange(n) % 10)
    monkeypatch.setenv("MU_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "FASHION_DEBIAN", tmp_path / "none")
    return d


def test_valid_small_fashion_files_load(fashion_dir):
    x, y = data._load_fashion(True)
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert list(y[:3]) == [0, 1, 2]


FASHION_DAMAGE = {
    "truncated images": ("train-images-idx3-ubyte.gz", "truncated"),
    "train images with test labels": ("train-labels-idx1-ubyte.gz", "do not belong together"),
    "labels out of range": ("train-labels-idx1-ubyte.gz", "labels in [200, 200]"),
    "not gzip": ("train-images-idx3-ubyte.gz", "not a readable gzip"),
    "empty": ("train-images-idx3-ubyte.gz", "empty or truncated"),
    "labels in the images' place": ("train-images-idx3-ubyte.gz", "3 dimensions"),
    "wrong element type": ("train-images-idx3-ubyte.gz", "unsigned-byte"),
}


@pytest.mark.parametrize("damage", list(FASHION_DAMAGE))
def test_damaged_fashion_file_is_named_in_the_error(damage, fashion_dir, untouched):
    name, words = FASHION_DAMAGE[damage]
    path = fashion_dir / name
    rng = np.random.default_rng(1)
    if damage == "truncated images":
        _idx(path, rng.integers(0, 256, (30, 28, 28)), truncate=500)
    elif damage == "train images with test labels":
        shutil.copy(fashion_dir / "t10k-labels-idx1-ubyte.gz", path)
    elif damage == "labels out of range":
        _idx(path, np.full(30, 200))
    elif damage == "not gzip":
        path.write_bytes(b"<html>not found</html>")
    elif damage == "empty":
        with gzip.open(path, "wb"):
            pass
    elif damage == "labels in the images' place":
        _idx(path, np.arange(30) % 10)
    elif damage == "wrong element type":
        _idx(path, rng.integers(0, 256, (30, 28, 28)), codes=0x0D)
    with pytest.raises(MuError) as err:
        data._load_fashion(True)
    msg = str(err.value)
    assert str(path) in msg or (damage == "train images with test labels" and name in msg), msg
    assert words in msg, msg


def test_changed_dataset_file_changes_the_cache_key(fashion_dir):
    cfg = RunConfig(method="original", dataset="fashion-mnist")
    first = ex.entry_key(ex.original_config(cfg))
    assert ex.entry_key(ex.original_config(cfg)) == first  # stable
    time.sleep(0.05)  # a new modification time (the digest is remembered per size and mtime)
    _idx(fashion_dir / "t10k-labels-idx1-ubyte.gz", (np.arange(20) + 1) % 10)
    assert ex.entry_key(ex.original_config(cfg)) != first


def test_data_fingerprint_is_free_on_a_warm_run(fashion_dir, monkeypatch):
    data_fingerprint("fashion-mnist")
    calls = []
    real = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda p: calls.append(p) or real(p))
    fingerprint._DIGESTS.clear()  # a new process: only the file on disk remembers
    data_fingerprint("fashion-mnist")
    assert calls == []


def _png(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)


def _faces(root: Path, classes=("a", "b"), per=4, value=10) -> Path:
    for i, c in enumerate(classes):
        for j in range(per):
            _png(root / c / f"{j}.png", value + 30 * i + j)
    return root


@pytest.fixture
def folder_name():
    names = []

    def register(root, name="hostile-faces"):
        folders.register_folder_dataset(name, root, layout="identities", size=8, channels=1)
        names.append(name)
        return name

    yield register
    for n in names:
        DATASETS.pop(n, None)
    data.load_raw.cache_clear()
    data._capped_tensors.cache_clear()


def test_non_image_with_an_image_name_is_refused_by_name(tmp_path, folder_name):
    root = _faces(tmp_path / "faces")
    bad = root / "a" / "9.png"
    bad.write_text("this is not a png")
    name = folder_name(root)
    with pytest.raises(MuError, match=r"9\.png is not a readable image.*delete it"):
        for train in (True, False):  # wherever the per-class split put it
            data.load_raw(name, train)


def test_non_image_files_are_ignored(tmp_path, folder_name):
    root = _faces(tmp_path / "faces")
    (root / "a" / "notes.txt").write_text("hello")
    x, y = data.load_raw(folder_name(root), True)
    assert len(x) == len(y) == 6  # 4 images per class, one of each held out for testing
    assert not any("notes" in n for n, _ in DATASETS["hostile-faces"].source_files(None))


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path, folder_name):
    root = _faces(tmp_path / "faces")
    outside = tmp_path / "secret.png"
    _png(outside, 255)
    (root / "a" / "link.png").symlink_to(outside)
    (root / "c").symlink_to(_faces(tmp_path / "elsewhere", ("c",)) / "c")
    name = folder_name(root)
    with pytest.warns(UserWarning, match="link outside"):
        files = DATASETS[name].source_files(None)
    assert not any("link" in n or "secret" in str(p) or "elsewhere" in str(p) for n, p in files)


def test_unreadable_folder_gives_a_clear_error(tmp_path, monkeypatch):
    root = _faces(tmp_path / "faces")
    real_iterdir = Path.iterdir

    def denied(self):
        if self.name == "a":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", denied)
    spec = folders.FolderSpec(layout="identities", size=8, channels=1)
    with pytest.raises(MuError, match=r"cannot read .*faces/a.*permission denied.*chmod"):
        folders.scan_folder(root, spec)


def test_tilde_in_folder_paths_is_expanded(tmp_path, monkeypatch, folder_name):
    monkeypatch.setenv("HOME", str(tmp_path))
    _faces(tmp_path / "faces")
    x, _ = data.load_raw(folder_name("~/faces"), True)
    assert len(x) == 6


def test_tilde_in_data_and_cache_dirs_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MU_CACHE_DIR", "~/cache")
    assert data.cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("MU_DATA_DIR", "~/data")
    assert folders.default_root("x") == tmp_path / "data" / "x"


def test_another_folder_under_the_same_name_is_another_cache_entry(tmp_path, folder_name):
    """The issue's case: MU_DATA_DIR pointed at another folder of the same dataset name (here with
    another class count) must not reuse the first folder's model."""
    first = folder_name(_faces(tmp_path / "one"), "samename")
    cfg = RunConfig(method="original", dataset=first)
    key_one = ex.entry_key(ex.original_config(cfg))
    DATASETS.pop("samename")
    folder_name(_faces(tmp_path / "two", ("a", "b", "c")), "samename")
    assert ex.entry_key(ex.original_config(cfg)) != key_one
    # the same images copied elsewhere are the same data: same key
    shutil.copytree(tmp_path / "one", tmp_path / "three")
    DATASETS.pop("samename")
    folder_name(tmp_path / "three", "samename")
    assert ex.entry_key(ex.original_config(cfg)) == key_one


def test_a_changed_image_changes_the_key(tmp_path, folder_name):
    name = folder_name(_faces(tmp_path / "faces"))
    cfg = RunConfig(method="original", dataset=name)
    before = ex.entry_key(ex.original_config(cfg))
    time.sleep(0.05)  # a new modification time (the digest is remembered per size and mtime)
    _png(tmp_path / "faces" / "a" / "0.png", 200)
    assert ex.entry_key(ex.original_config(cfg)) != before


# ----------------------------------------------------------------------- G. code fingerprint


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    dst = tmp_path_factory.mktemp("pkg") / "mu_lib"
    shutil.copytree(fingerprint.PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _edited(package_copy: Path, tmp_path: Path, module: str, old: str, new: str) -> Path:
    dst = tmp_path / "mu_lib"
    shutil.copytree(package_copy, dst)
    f = dst / module
    text = f.read_text()
    assert old in text, old
    f.write_text(text.replace(old, new, 1))
    return dst


def _fp(pkg: Path, root: str = "mu_lib.experiment") -> str:
    return fingerprint.code_fingerprint(root, package_dir=pkg)


CODE_EDITS = {
    # name: (module, old, new, experiment's fingerprint changes?)
    "docstring only": ("metrics.py", '"""', '"""Edited docstring. ', False),
    "comment only": ("metrics.py", "\nimport ", "\n# a new comment\nimport ", False),
    "reformatted": ("experiment.py", "def run(", "def   run(", False),
    "a function body": (
        "metrics.py",
        "def ",
        "def _unused_helper():\n    return 1\n\n\ndef ",
        True,
    ),
    "a method's default": (
        "unlearn/spotter.py",
        "lambda1: float = 0.7",
        "lambda1: float = 0.6",
        True,
    ),
    "a module experiment does not import": (
        "book.py",
        "def ",
        "def _x():\n    pass\n\n\ndef ",
        False,
    ),
}


@pytest.mark.parametrize("edit", list(CODE_EDITS))
def test_code_fingerprint_follows_code_not_prose(edit, package_copy, tmp_path):
    module, old, new, changes = CODE_EDITS[edit]
    edited = _edited(package_copy, tmp_path, module, old, new)
    assert (_fp(edited) != _fp(package_copy)) is changes
    if module == "book.py":  # the whole package's fingerprint does see it
        assert _fp(edited, "mu_lib") != _fp(package_copy, "mu_lib")


def test_run_recomputes_after_a_code_edit(base_result, package_copy, tmp_path, monkeypatch):
    real = fingerprint.code_fingerprint
    same = _edited(package_copy, tmp_path / "same", "metrics.py", '"""', '"""Docstring edit. ')
    monkeypatch.setattr(store, "code_fingerprint", lambda root, book=None: real(root, same))
    if _fp(same) == real("mu_lib.experiment"):  # the copy is this checkout: a docstring edit
        assert run(BASE).cached  # keeps the cached result
    edited = _edited(
        package_copy, tmp_path / "edit", "metrics.py", "def ", "def _new():\n    return 2\n\n\ndef "
    )
    monkeypatch.setattr(store, "code_fingerprint", lambda root, book=None: real(root, edited))
    ex.store().memo.clear()
    again = run(BASE)
    assert not again.cached and not again.details["original_cached"]  # all recomputed
    assert again.metrics == base_result.metrics  # (the edit changed nothing that counts)


def test_code_fingerprint_is_remembered_between_processes(package_copy, tmp_path, monkeypatch):
    book = tmp_path / "code.json"
    fingerprint._PARSED.pop(package_copy, None)
    first = fingerprint.code_fingerprint("mu_lib.experiment", package_copy, book)
    fingerprint._PARSED.pop(package_copy)  # a new process: only the file on disk remembers
    fingerprint._DIGESTS.clear()
    fingerprint._code_fingerprint.cache_clear()
    monkeypatch.setattr(fingerprint, "_imports", lambda *a: pytest.fail("parsed again"))
    assert fingerprint.code_fingerprint("mu_lib.experiment", package_copy, book) == first


# --------------------------------------------------------------- H. chapter (papermill) parameters

PARAMS_CELL = 'profile = "cpu"\nseeds = None\nmethods = ["delete"]\nn = 5\neps = 0.03\nflag = False'


def _kernel(injected: str) -> dict:
    """A namespace as IPython leaves it after the parameters and papermill's injected cells."""
    ns: dict = {}
    exec(PARAMS_CELL, ns)
    exec(injected, ns)
    ns["_ih"] = ["", PARAMS_CELL, "# Parameters\n" + injected, "check_chapter_parameters(...)"]
    return ns


def test_unknown_chapter_parameter_is_refused():
    with pytest.raises(MuError, match=r"no parameter 'k'.*profile, seeds, methods"):
        check_chapter_parameters(_kernel('profile = "smoke"\nk = 100000\n'))


def test_list_given_as_a_string_is_parsed_not_iterated():
    ns = _kernel('seeds = "[0, 1, 2]"\nmethods = "[\\"delete\\", \\"spotter\\"]"\n')
    check_chapter_parameters(ns)
    assert ns["seeds"] == [0, 1, 2] and ns["methods"] == ["delete", "spotter"]


BAD_PARAMS = [
    ("methods", "delete", "expects a list"),
    ("n", "1.5", "whole number"),
    ("n", "true", "whole number"),
    ("eps", "nan", "finite"),
    ("eps", "[1, 2]", "number"),
    ("flag", "maybe", "True or False"),
    ("profile", [1], "single value"),
]


@pytest.mark.parametrize("name, value, words", BAD_PARAMS)
def test_chapter_parameter_of_the_wrong_type_is_refused(name, value, words):
    with pytest.raises(MuError, match=words):
        check_chapter_parameters(_kernel(f"{name} = {value!r}\n"))


def test_chapter_parameters_without_injection_are_left_alone():
    ns = {"_ih": ["", PARAMS_CELL, "check"], "n": 5}
    check_chapter_parameters(ns)
    assert ns["n"] == 5
    assert check_parameter("eps", 0.03, 1) == 1.0
    assert check_parameter("n", 5, None) is None  # chapters use None for "the profile's choice"
    assert check_parameter("classes", (0,), [3, 4]) == (3, 4)
    assert check_parameter("n", 5, "7") == 7


def test_papermill_run_with_an_unknown_parameter_fails(tmp_path):
    """The real path: papermill's injected cell, IPython's history, the chapter's check cell."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seeds = None\nn = 1")
    params.metadata["tags"] = ["parameters"]
    check = nbformat.v4.new_code_cell(
        "from mu_lib.validate import check_chapter_parameters\ncheck_chapter_parameters(globals())"
    )
    nb.cells = [params, check, nbformat.v4.new_code_cell("assert seeds == [0, 1, 2], seeds")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, src)
    kw = dict(kernel_name="python3", progress_bar=False, cwd=str(REPO))
    with pytest.raises(papermill.PapermillExecutionError, match="no parameter 'k'"):
        papermill.execute_notebook(str(src), str(tmp_path / "o1.ipynb"), {"k": 100000}, **kw)
    papermill.execute_notebook(str(src), str(tmp_path / "o2.ipynb"), {"seeds": "[0, 1, 2]"}, **kw)


def test_every_chapter_calls_the_parameter_check():
    for md in sorted((REPO / "notebooks").glob("*.md")):
        text = md.read_text()
        if "[parameters]" not in text:
            continue  # a page without parameters (e.g. the API reference)
        assert "check_chapter_parameters(globals())" in text, md.name
        assert text.index("check_chapter_parameters") > text.index("[parameters]"), md.name


# ----------------------------------------------------------------------- the cache survives


def test_no_entry_was_lost_or_poisoned(base_result):
    """After all of the above, the session's entries verify and give the first numbers."""
    with no_cache_warning():
        again = run(BASE)
    assert again.cached and again.metrics == base_result.metrics
    assert all(math.isfinite(v) for v in again.metrics.values() if isinstance(v, float))
