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

    src = Path(__file__).resolve().parents[1] / "notebooks"
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

    def fake_execute(root_, name, profile, params=None, out_dir=None):
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
    book.build_book("smoke", skip_build=True, jobs=2)
    names = book.available_chapters(root)
    assert events[0] == ("shared", "smoke")
    assert [n for n, _ in events[-2:]] == list(book.FINAL)
    middle = events[1:-2]
    assert sorted(n for n, _ in middle) == sorted(set(names) - set(book.FINAL))
    assert all(threads == "1" for _, threads in middle)
    assert all(threads is None for _, threads in events[-2:])
    assert peak[0] == 2
    # the chapter the last build timed runs after the untimed ones (longest first among timed)
    assert middle[-1][0] == "s3_1_over_unlearning"
    assert json.loads(status.read_text())["status"]["jobs"] == 1

    events.clear()
    book.build_book("smoke", skip_build=True, jobs=1)  # one at a time: the book's order
    assert [n for n, _ in events] == names
    assert all(threads is None for _, threads in events)
    assert "OMP_NUM_THREADS" not in os.environ  # restored after the parallel phase


def test_book_jobs_setting_is_checked(monkeypatch):
    import mu_lib.book as book

    monkeypatch.setenv("MU_BOOK_JOBS", "two")
    with pytest.raises(MuError, match="MU_BOOK_JOBS must be a whole number >= 1, got 'two'"):
        book.default_jobs()
    monkeypatch.setenv("MU_BOOK_JOBS", "3")
    assert book.default_jobs() == 3
    from mu_lib.cli import build_parser

    assert build_parser().parse_args(["book", "-j", "1"]).jobs == 1  # mu book -j reaches it
