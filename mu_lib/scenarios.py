"""Harder unlearning regimes: sequential deletion requests (Appendix G, Table 9) and forgetting a
large share of the classes at once (Appendix H, Table 10).

**Sequential** (:func:`sequential`): round r forgets one more class, c_r.  It starts from round
r-1's unlearned model, which plays the role of the original (the teacher of Spotter / DELETE)
with *every class forgotten so far* masked, and it is given only the new class's training data
(``forget_data="round"``; ``"all"`` hands it the data of every class forgotten so far).  Round 1
is exactly the single-class run of :func:`mu_lib.experiment.run`, so its model is shared with the
other chapters.  Per round we report

* ``acc_f``: accuracy on the training data of all classes forgotten so far (a class forgotten in
  an early round must stay forgotten), ``acc_f_new`` on the round's class alone; ``acc_ft`` the
  same on test data (all forgotten classes);
* ``acc_r`` / ``acc_rt``: accuracy on the classes not forgotten yet;
* ``ou``: OU@eps of the round, measured against the model that served before the request (the
  round's teacher), on PGD neighbours of the round's class computed against that teacher, with
  all forgotten-so-far classes masked; ``ou_original``: the same divergence against the first,
  never-unlearned model on the neighbours of every class forgotten so far (the accumulated
  collateral damage);
* ``proto_acc_f`` / ``acc_r_star``: PRA with k shots of *each* forgotten class, restoring all of
  them at once, alpha chosen as in section 5.1.

**Forget ratio** (:func:`forget_ratio`): 10/30/50% of the classes forgotten in one go, through
:func:`mu_lib.experiment.run`; the class sets are nested prefixes of one fixed class order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import MuError, __version__
from .attacks.pra import PRA
from .data import get_dataset_info
from .experiment import (
    RunConfig,
    method_for,
    neighbours,
    new_model,
    original_model,
    resolve,
    run,
    split_for,
    store,
    unlearned_model,
)
from .infer import predict_logits
from .metrics import accuracy_suite, ou_from_logits, percent_correct
from .perturb import pgd_linf
from .store import config_key
from .unlearn import make_context
from .util import progress, resolve_device, to_device

FORGET_DATA = ("round", "all")
PAPER_FRACTIONS: tuple[float, ...] = (0.1, 0.3, 0.5)
PAPER_ROUNDS = 10


def num_classes_of(cfg: RunConfig) -> int:
    return get_dataset_info(cfg.dataset or cfg.prof.dataset).num_classes


def class_order(num_classes: int, first: int = 0, order_seed: int = 0) -> tuple[int, ...]:
    """``first``, then the other classes in a random order fixed by ``order_seed`` (not by the run
    seed: every seed forgets the same classes, so seeds differ only in training randomness)."""
    if not 0 <= first < num_classes:
        raise MuError(f"first class {first} out of range; use 0..{num_classes - 1}")
    rest = [c for c in range(num_classes) if c != first]
    perm = np.random.default_rng(order_seed).permutation(len(rest))
    return (first, *(rest[i] for i in perm))


def pick_classes(num_classes: int, n: int, first: int = 0, order_seed: int = 0) -> tuple[int, ...]:
    """The first ``n`` classes of :func:`class_order`, sorted (nested: more classes extend
    fewer)."""
    if not 1 <= n <= num_classes - 1:
        raise MuError(
            f"cannot forget {n} of {num_classes} classes; choose 1..{num_classes - 1} "
            "(at least one class must remain)"
        )
    return tuple(sorted(class_order(num_classes, first, order_seed)[:n]))


def fraction_classes(
    num_classes: int, fraction: float, first: int = 0, order_seed: int = 0
) -> tuple[int, ...]:
    """The first round(fraction * num_classes) classes of :func:`class_order` (at least one, at
    most all but one), sorted."""
    if not 0.0 < fraction < 1.0:
        raise MuError(f"forget fraction must be in (0, 1), got {fraction}; e.g. 0.1, 0.3, 0.5")
    n = min(max(1, round(fraction * num_classes)), num_classes - 1)
    return pick_classes(num_classes, n, first, order_seed)


def non_default_overrides(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the hyperparameters that differ from ``method``'s dataclass defaults.

    A chapter that states the paper's defaults explicitly (lambda1=0.7, lambda2=1) then builds
    the same :class:`RunConfig` as every other chapter, and shares its cached results.
    """
    import dataclasses

    from .unlearn import get_method_class

    fields = {f.name: f for f in dataclasses.fields(get_method_class(method).Hparams)}
    bad = sorted(set(values) - set(fields))
    if bad:
        raise MuError(f"{method} has no hyperparameter(s) {bad}; valid ones: {sorted(fields)}")
    return {k: v for k, v in values.items() if fields[k].default != v}


def paper_rounds(num_classes: int) -> int:
    """Table 9's 10 rounds, or fewer when the dataset has fewer than 11 classes."""
    return min(PAPER_ROUNDS, num_classes - 1)


def forget_ratio(
    cfg: RunConfig,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    order_seed: int = 0,
) -> list[dict[str, Any]]:
    """Table 10: one cached :func:`~mu_lib.experiment.run` per fraction of classes forgotten.

    The first class is ``cfg.forget_classes[0]`` (so 10% of a 10-class dataset is the default
    single-class run that other chapters share).  Returns one row per fraction with the metrics.
    """
    k = num_classes_of(cfg)
    rows = []
    for f in progress(list(fractions), desc="forget ratio"):
        classes = fraction_classes(k, f, cfg.forget_classes[0], order_seed)
        res = run(cfg.replace(forget_classes=classes))
        rows.append(
            {
                "fraction": float(f),
                "setting": f"{round(100 * f)}%",
                "n_forget": len(classes),
                "forget_classes": list(classes),
                "seed": cfg.seed,
                **res.metrics,
                "cached": res.cached,
            }
        )
    return rows


# ------------------------------------------------------------------ sequential


def check_order(order: Sequence[int], num_classes: int) -> tuple[int, ...]:
    order = tuple(int(c) for c in order)
    bad = [c for c in order if not 0 <= c < num_classes]
    if bad or len(set(order)) != len(order):
        raise MuError(
            f"class order {list(order)} must list distinct classes in 0..{num_classes - 1}"
        )
    return order


def check_rounds(rounds: int | None, num_classes: int, order_len: int) -> int:
    """``None`` means as many rounds as the data allows: all classes but one."""
    most = min(num_classes - 1, order_len)
    if rounds is None:
        return most
    if not 1 <= rounds <= most:
        raise MuError(
            f"rounds={rounds} is impossible: with {num_classes} classes (order of {order_len}) "
            f"choose 1 <= rounds <= {most} (at least one class must remain)"
        )
    return int(rounds)


class Sequential:
    """Sequential unlearning of ``cfg``'s method, one class per round (see module docstring).

    Models of each round are cached as checkpoints and per-round metrics as JSON, keyed by the
    original model's configuration, the method's hyperparameters and the classes so far.
    """

    def __init__(
        self,
        cfg: RunConfig,
        order: Sequence[int] | None = None,
        order_seed: int = 0,
        forget_data: str = "round",
    ):
        if forget_data not in FORGET_DATA:
            raise MuError(f"forget_data must be one of {FORGET_DATA}, got {forget_data!r}")
        if cfg.method in ("original", "retrain"):
            raise MuError(
                f"sequential unlearning needs an approximate method, not {cfg.method!r} "
                "(retraining from scratch has no rounds to chain)"
            )
        self.cfg = cfg
        self.resolved = resolve(cfg)  # the original's configuration and the method, once
        self.num_classes = num_classes_of(cfg)
        first = cfg.forget_classes[0]
        self.order = check_order(
            order if order is not None else class_order(self.num_classes, first, order_seed),
            self.num_classes,
        )
        self.forget_data = forget_data
        self.device = resolve_device(cfg.device)
        self._models: dict[int, nn.Module] = {}

    # ---------------------------------------------------------------- keys
    def round_cfg(self, r: int) -> RunConfig:
        return self.cfg.replace(forget_classes=self.order[:r])

    def model_config(self, r: int) -> dict[str, Any]:
        return {
            "what": "sequential",
            "original": self.resolved.original,
            "method": self.resolved.unlearned["method"],
            "order": list(self.order[:r]),
            "forget_data": self.forget_data,
            "profile": self.cfg.prof.name,
        }

    def result_config(self, r: int) -> dict[str, Any]:
        p = self.cfg.prof
        return {
            **self.model_config(r),
            "what": "sequential_result",
            "eval": {k: getattr(p, k) for k in ("pgd_eps", "pgd_step", "pgd_steps", "eval_batch")},
            "eval_eps": self.cfg.eval_eps,
            "pra": [self.cfg.pra_k or p.pra_shots, self.cfg.pra_form, list(self.cfg.alphas)],
            "seed": self.cfg.seed,
            "version": __version__,
            "schema": 1,  # bump when the metrics of a row change
        }

    # ---------------------------------------------------------------- models
    def model(self, r: int) -> tuple[nn.Module, float]:
        """Round r's unlearned model (r = 0: the original) and the seconds it took (0 if cached)."""
        if r in self._models:
            return self._models[r], 0.0
        if r == 0:
            m, _, _ = original_model(self.cfg)
            secs = 0.0
        elif r == 1:  # identical to the single-class run: share its cache entry
            m, secs, hit, _ = unlearned_model(self.round_cfg(1))
            secs = 0.0 if hit else secs
        else:
            m, secs = self._chained(r)
        self._models[r] = m
        return m, secs

    def _chained(self, r: int) -> tuple[nn.Module, float]:
        key = config_key(self.model_config(r))
        model = new_model(self.cfg)
        tensors = store().get_tensors("models", key)
        if tensors is not None:
            model.load_state_dict(tensors)
            return to_device(model, self.device).eval(), 0.0
        teacher, _ = self.model(r - 1)
        t0 = time.perf_counter()
        model.load_state_dict(teacher.state_dict())
        model = to_device(model, self.device)
        split = split_for(self.round_cfg(r))
        xf, yf = split.forget_train
        if self.forget_data == "round":
            keep = yf == self.order[r - 1]
            xf, yf = xf[keep], yf[keep]
        method = method_for(self.cfg)  # a new instance per round: no state carries over
        ctx = make_context(
            method,
            teacher,
            model,
            (xf, yf),
            split.retain_train,
            num_classes=split.num_classes,
            forget_classes=split.forget_classes,
            seed=self.cfg.seed,
            device=self.device,
            profile=self.cfg.prof,
            generator_seed=self.cfg.seed + 1 + 1000 * (r - 1),
            backbone=self.cfg.backbone,
        )
        out = method.unlearn(ctx)
        if out is not model:
            model.load_state_dict(out.state_dict())
        model.eval()
        secs = time.perf_counter() - t0
        store().put_tensors(
            "models", key, model.state_dict(), {"config": self.model_config(r), "secs": secs}
        )
        return model, secs

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, r: int) -> dict[str, Any]:
        """Per-round metrics (module docstring); cached as JSON."""
        key = config_key(self.result_config(r))
        hit = store().get_json("results", key)
        if hit is not None:
            return {**hit, "cached": True}
        model, secs = self.model(r)
        teacher, _ = self.model(r - 1)
        t0 = time.perf_counter()
        row = self._metrics(r, model, teacher)
        row.update(secs_unlearn=secs, secs_eval=time.perf_counter() - t0)
        store().put_json("results", key, row, self.result_config(r))
        return {**row, "cached": False}

    def _metrics(self, r: int, model: nn.Module, teacher: nn.Module) -> dict[str, Any]:
        cfg, p = self.round_cfg(r), self.cfg.prof
        split = split_for(cfg)
        c = self.order[r - 1]
        fc = split.forget_classes
        row: dict[str, Any] = {
            "round": r,
            "forget_class": c,
            "forgotten": list(self.order[:r]),
            "seed": self.cfg.seed,
        }
        attack = PRA(model, split.forget_train, split.retain_train, fc, p.eval_batch)
        row.update(accuracy_suite(model, split, p.eval_batch, pra=attack))
        xf, yf = split.forget_train
        mine = yf == c
        row["acc_f_new"] = percent_correct(attack.zf[mine], yf[mine])
        eps = p.pgd_eps if self.cfg.eval_eps is None else self.cfg.eval_eps
        # OU of this round: against the teacher, on neighbours of the round's class
        xp = pgd_linf(
            teacher,
            xf[mine],
            yf[mine],
            eps=eps,
            step=p.pgd_step,
            steps=p.pgd_steps,
            seed=self.cfg.seed,
            device=self.device,
        )
        t_logits = predict_logits(teacher, xp, p.eval_batch)
        row["ou"] = ou_from_logits(t_logits, predict_logits(model, xp, p.eval_batch), fc)
        # accumulated: against the original, on neighbours of every class forgotten so far
        parts = [neighbours(self.cfg.replace(forget_classes=(k,)), "pgd", eps) for k in fc]
        xs = torch.cat([a for a, _ in parts])
        o_logits = torch.cat([b for _, b in parts])
        row["ou_original"] = ou_from_logits(o_logits, predict_logits(model, xs, p.eval_batch), fc)
        k = cfg.pra_k or p.pra_shots
        res = attack.sweep(split.shot_indices(k, cfg.seed), cfg.pra_form, cfg.alphas)
        row.update(proto_acc_f=res.chosen_proto_acc_f, acc_r_star=res.chosen_acc_r_star)
        row.update(alpha=res.alpha, pra_k=k)
        return row

    def run(self, rounds: int | None = None) -> list[dict[str, Any]]:
        """Rows for rounds 1..``rounds`` (None: all classes but one)."""
        n = check_rounds(rounds, self.num_classes, len(self.order))
        return [self.evaluate(r) for r in progress(range(1, n + 1), desc="rounds", total=n)]


def sequential(
    cfg: RunConfig,
    rounds: int | None = None,
    order: Sequence[int] | None = None,
    order_seed: int = 0,
    forget_data: str = "round",
) -> list[dict[str, Any]]:
    """Table 9: sequential unlearning of ``cfg.method`` (one class per round); one row per round.

    ``order`` None: ``cfg.forget_classes[0]`` first, then the rest in the order fixed by
    ``order_seed``.  ``rounds`` None: as many as the data allows (num_classes - 1).
    """
    return Sequential(cfg, order, order_seed, forget_data).run(rounds)
