"""The training recipe of a profile reaches both the original and the retrained models (one loop),
and the one-cycle schedule does what its definition says."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from mu_lib import MuError
from mu_lib.experiment import RunConfig, original_config
from mu_lib.profiles import PROFILES
from mu_lib.train import onecycle_factor, train_classifier

ROOT = Path(__file__).resolve().parents[1]


def test_onecycle_warms_up_from_a_tenth_then_decays_linearly_to_zero():
    total, warmup = 100, 0.2
    assert onecycle_factor(0, total, warmup) == pytest.approx(0.1)
    assert onecycle_factor(10, total, warmup) == pytest.approx(0.55)
    assert onecycle_factor(20, total, warmup) == pytest.approx(1.0)
    assert onecycle_factor(60, total, warmup) == pytest.approx(0.5)
    assert onecycle_factor(100, total, warmup) == pytest.approx(0.0)
    assert onecycle_factor(0, total, 0.0) == pytest.approx(1.0)  # no warm-up: start at the peak


def test_train_classifier_follows_the_schedule_step_by_step(monkeypatch):
    import mu_lib.train as train_mod

    seen = []
    real_step = torch.optim.SGD.step

    def spy(self, *a, **kw):
        seen.append((self.param_groups[0]["lr"], self.param_groups[0]["nesterov"]))
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.randn(40, 1, 2, 2), torch.randint(0, 2, (40,))
    kw = dict(epochs=2, lr=0.1, batch_size=10, seed=0, device="cpu")
    train_classifier(model, x, y, schedule="onecycle", warmup=0.25, nesterov=True, **kw)
    lrs = [lr for lr, _ in seen]
    assert len(lrs) == 8 and all(n for _, n in seen)
    assert lrs[0] == pytest.approx(0.01) and lrs[2] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(0.1 / 6)  # linear decay over the 6 steps after warm-up
    seen.clear()
    train_classifier(model, x, y, **kw)  # default: cosine once per epoch, no Nesterov
    assert [lr for lr, _ in seen] == pytest.approx([0.1] * 4 + [0.05] * 4)
    assert not any(n for _, n in seen)
    with pytest.raises(MuError, match="unknown training schedule 'linear'"):
        train_classifier(model, x, y, schedule="linear", **kw)
    with pytest.raises(MuError, match="warm-up must be"):
        train_classifier(model, x, y, schedule="onecycle", warmup=1.5, **kw)
    assert train_mod.SCHEDULES == ("cosine", "onecycle")


def test_profile_recipe_reaches_original_and_retrain_and_keys_the_cache(monkeypatch):
    import mu_lib.experiment as ex
    import mu_lib.unlearn.simple as simple

    smoke = PROFILES["smoke"]
    recipe = dict(train_schedule="onecycle", train_warmup=0.3, train_nesterov=True)
    monkeypatch.setitem(PROFILES, "smoke", smoke.with_(train_epochs=1, **recipe))
    seen = []

    def spy(*args, **kw):
        seen.append({k: kw[k] for k in ("schedule", "warmup", "nesterov", "epochs")})

    monkeypatch.setattr(simple, "train_classifier", spy)
    monkeypatch.setattr(ex, "train_classifier", spy)
    monkeypatch.setenv("MU_NO_CACHE", "1")
    cfg = RunConfig("retrain", profile="smoke", seed=11)
    ex.unlearned_model(cfg)
    want = {"schedule": "onecycle", "warmup": 0.3, "nesterov": True, "epochs": 1}
    assert seen == [want, want]  # the original, then the retrained model
    train = original_config(cfg)["train"]
    assert {k: train[k] for k in recipe} == recipe
    monkeypatch.setitem(PROFILES, "smoke", smoke)
    assert ex.entry_key(original_config(cfg)) != ex.entry_key(
        {**original_config(cfg), "train": train}
    )


def _book_root(tmp_path):
    import shutil

    from mu_lib.book import CHAPTERS

    src = ROOT / "notebooks"
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("")
    for name in CHAPTERS:
        if (src / f"{name}.md").exists():
            shutil.copy(src / f"{name}.md", tmp_path / "notebooks" / f"{name}.md")
    return tmp_path


def test_parallel_book_trains_shared_models_first_then_chapters_one_thread_each(
    tmp_path, monkeypatch
):
    import mu_lib.book as book

    root = _book_root(tmp_path)
    monkeypatch.setattr(book, "repo_root", lambda: root)
    status = root / "book" / "generated" / "results" / "status.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"s3_1_over_unlearning": {"seconds": 500.0}}))
    events, running, peak = [], set(), [0]
    lock = threading.Lock()

    def fake_execute(root_, name, profile, params=None, out_dir=None, env=None):
        (root_ / "book" / "generated" / f"{name}.ipynb").write_text("{}")  # papermill's output
        with lock:
            running.add(name)
            peak[0] = max(peak[0], len(running))
            events.append((name, os.environ.get("OMP_NUM_THREADS")))
        time.sleep(0.05)
        with lock:
            running.discard(name)
        return 0.05

    monkeypatch.setattr(book, "execute_chapter", fake_execute)
    monkeypatch.setattr(
        book, "build_shared_models_in_child", lambda r, p: events.append(("shared", p))
    )
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(book, "reuse_inputs", lambda: {"package": "p"})
    # rerun: every chapter runs (reuse has its own test below)
    book.build_book("smoke", skip_build=True, jobs=2, rerun=True)
    names = book.available_chapters(root)
    assert events[0] == ("shared", "smoke")
    assert [n for n, _ in events[-2:]] == list(book.FINAL)
    middle = events[1:-2]
    assert sorted(n for n, _ in middle) == sorted(set(names) - set(book.FINAL))
    assert all(threads == "1" for _, threads in middle)
    assert all(threads is None for _, threads in events[-2:])
    assert peak[0] == 2
    # the chapter the last build timed runs after the untimed ones (longest first among timed)
    # (submitted last; with two workers it starts among the last two)
    assert "s3_1_over_unlearning" in [n for n, _ in middle[-2:]]
    assert json.loads(status.read_text())["status"]["jobs"] == 1

    events.clear()
    book.build_book("smoke", skip_build=True, jobs=1, rerun=True)  # one at a time: book order
    assert [n for n, _ in events] == names
    assert all(threads is None for _, threads in events)
    assert "OMP_NUM_THREADS" not in os.environ  # restored after the parallel phase


def test_a_warm_book_reuses_unchanged_chapters_and_reruns_what_changed(tmp_path, monkeypatch):
    import mu_lib.book as book
    from mu_lib.chapter_reuse import WRITTEN_ENV

    root = _book_root(tmp_path)
    monkeypatch.setattr(book, "repo_root", lambda: root)
    monkeypatch.delenv("MU_NO_CACHE", raising=False)
    inputs = {"package": "code-1"}
    monkeypatch.setattr(book, "reuse_inputs", lambda: dict(inputs))
    gen = root / "book" / "generated"
    ran, version = [], {"n": 0}

    def fake_execute(root_, name, profile, params=None, out_dir=None, env=None):
        ran.append(name)
        (gen / f"{name}.ipynb").write_text(f"executed {name}")
        if name in book.FINAL:  # the report and the status page save no tables
            return 1.5
        table = gen / "results" / f"{name}.csv"  # what save_results writes, with its listing
        table.write_text(f"{name},{version['n']}")
        with open(env[WRITTEN_ENV], "a") as f:
            f.write(f"{table}\n")
        return 1.5

    monkeypatch.setattr(book, "execute_chapter", fake_execute)
    monkeypatch.setattr(book, "build_shared_models_in_child", lambda r, p: None)
    names = book.available_chapters(root)

    def build(**kw):
        ran.clear()
        book.build_book("smoke", skip_build=True, jobs=1, **kw)
        return list(ran)

    assert build() == names  # cold: everything runs
    assert build() == ["status"]  # warm: only the page of this build's times
    status = json.loads((gen / "results" / "status.json").read_text())
    assert status["claims"]["reused"] and status["claims"]["seconds"] == 1.5
    assert not status["status"]["reused"]

    src = root / "notebooks" / "claims.md"
    src.write_text(src.read_text() + "\nOne more sentence.\n")
    version["n"] = 1  # its saved table changes, so the report that reads it runs again
    assert build() == ["claims", "reproduction_report", "status"]

    (gen / "s3_1_over_unlearning.ipynb").write_text("edited by hand")
    (gen / "results" / "appB_pra.csv").unlink()
    version["n"] = 0  # appB's table comes back as it was: the report can be reused
    assert build() == ["s3_1_over_unlearning", "appB_pra", "status"]

    inputs["package"] = "code-2"  # any file of the package (or the data) changed
    assert build() == names
    assert build(params={"seed": 1}, chapters=["s3_2_relearning"]) == ["s3_2_relearning"]
    assert build(rerun=True) == names
    assert build() == ["status"]  # what --rerun executed is recorded and reused next time
    monkeypatch.setenv("MU_NO_CACHE", "1")
    assert build() == names


def test_package_digest_sees_every_file_of_the_package(tmp_path):
    from mu_lib.chapter_reuse import package_digest

    pkg = tmp_path / "pkg"
    (pkg / "tuned").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1  # a comment\n")
    (pkg / "tuned" / "cpu.json").write_text("{}")
    before = package_digest(pkg)
    (pkg / "tuned" / "cpu.json").write_text('{"lr": 1e-4}')  # a tuned setting, not code
    assert package_digest(pkg) != before
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.pyc").write_bytes(b"bytecode")
    (pkg / "tuned" / "cpu.json").write_text("{}")
    assert package_digest(pkg) == before  # bytecode is not an input


def test_a_build_without_bytecode_says_so_and_how_to_keep_it(monkeypatch):
    import mu_lib.book as book

    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    assert book.bytecode_notice() is None
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert "unset PYTHONDONTWRITEBYTECODE" in book.bytecode_notice()
    # make's own commands never see it (each kernel would compile torch again)
    make = (ROOT / "Makefile").read_text()
    assert "unexport PYTHONDONTWRITEBYTECODE" in make


def test_book_jobs_setting_is_checked(monkeypatch):
    import mu_lib.book as book

    monkeypatch.setenv("MU_BOOK_JOBS", "two")
    with pytest.raises(MuError, match="MU_BOOK_JOBS must be a whole number >= 1, got 'two'"):
        book.default_jobs()
    monkeypatch.setenv("MU_BOOK_JOBS", "3")
    assert book.default_jobs() == 3
    from mu_lib.cli import build_parser

    assert build_parser().parse_args(["book", "-j", "1"]).jobs == 1  # mu book -j reaches it


def test_umap_leaves_torchs_thread_count_as_it_found_it(monkeypatch):
    """A chapter runs on the threads the book gives it, also after its UMAP figure.  umap's fit
    resets numba's thread count, which shares torch's OpenMP runtime (measured: one thread -> two
    after a real fit); a stand-in umap does the same here, without numba's 30 s compile."""
    import sys
    import types

    import numpy as np

    from mu_lib.analysis import fit_umap

    class UMAP:
        def __init__(self, **kw):
            pass

        def fit_transform(self, emb):
            torch.set_num_threads(2)  # what numba's reset does to torch
            return emb[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = fit_umap(np.random.default_rng(0).random((60, 8)).astype("float32"))
        assert out.shape == (60, 2) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
