"""The reproduction report's table of definition switches: for each place where this library
once differed from the paper or a method's reference code, the definition it follows now beside
the other one (kept as a named option), measured on the book's (seed, forget class).

Each row runs both settings through the cache (Table 1's runs are reused), so every number is
this build's.  Fixes that left no option behind (DELETE's per-sample mask, SCRUB's alternating
passes, per-module mode restore) are covered by tests instead: with one forget class DELETE's two
masks coincide, and the other two have no second setting to run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from ..backbones import build_model, fresh_model
from ..experiment import RunConfig, run

METRICS = {
    "acc_f": "Acc_f",
    "acc_rt": "Acc_rt",
    "ou_pgd": "OU@ε",
    "proto_acc_f": "Proto-Acc_f",
}


@dataclass(frozen=True)
class Switch:
    """One definition: the method, what is switched, and the two settings (as RunConfig fields
    and method overrides)."""

    item: str
    method: str
    now: str
    other: str
    now_cfg: dict[str, Any] = field(default_factory=dict)
    other_cfg: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("acc_f", "acc_rt", "ou_pgd", "proto_acc_f")


SWITCHES = (
    Switch("PRA prototype (Appendix F)", "neggrad", "cosine (paper, every chapter)",
           "L2 on the raw mean (eq. 6 as printed)",
           {"pra_form": "cos"}, {"pra_form": "l2_raw"}, ("proto_acc_f", "acc_r_star")),
    Switch("PRA prototype, L2 form", "neggrad", "L2 on the unit-normalised mean (authors' code)",
           "L2 on the raw mean (eq. 6 as printed)",
           {"pra_form": "l2"}, {"pra_form": "l2_raw"}, ("proto_acc_f", "acc_r_star")),
    Switch("Boundary Expand", "boundary_expand", "head and shadow row only (paper's reading)",
           "whole widened network (Boundary Unlearning code)",
           {}, {"overrides": {"train_body": True}}),
    Switch("Fisher Forgetting", "fisher", "noise only (reference Fisher)",
           "noise and the forget rows reset",
           {}, {"overrides": {"reset_forget_rows": True}}),
    Switch("Evaluation neighbours", "spotter", "paper's text (PGD on the original's loss)",
           "authors' notebook generators",
           {"neighbours": "paper"}, {"neighbours": "authors"}, ("ou_pgd", "ou_gauss")),
    Switch("Evaluation neighbours", "boundary_shrink", "paper's text (PGD on the original's loss)",
           "authors' notebook generators",
           {"neighbours": "paper"}, {"neighbours": "authors"}, ("ou_pgd", "ou_gauss")),
)  # fmt: skip


def _config(profile: str, seed: int, forget: int, method: str, extra: dict, device: str):
    """The method at its profile defaults (the tuning protocol's choice, which the method registry
    applies), with the switch's fields and overrides."""
    extra = dict(extra)
    return RunConfig(method=method, profile=profile, seed=seed, forget_classes=(forget,),
                     overrides=extra.pop("overrides", {}), device=device, **extra)  # fmt: skip


def switch_effects(
    profile: str, seed: int = 0, forget_class: int = 0, device: str = "auto"
) -> pd.DataFrame:
    """One row per (switch, metric): the value under today's definition and under the other."""
    out = []
    for s in SWITCHES:
        now = run(_config(profile, seed, forget_class, s.method, s.now_cfg, device)).metrics
        other = run(_config(profile, seed, forget_class, s.method, s.other_cfg, device)).metrics
        for m in s.metrics:
            out.append(
                {
                    "definition": s.item,
                    "method": s.method,
                    "metric": METRICS.get(m, m),
                    "now": s.now,
                    "value now": now.get(m),
                    "other (option)": s.other,
                    "value other": other.get(m),
                }
            )
    return pd.DataFrame(out)


def legend() -> pd.DataFrame:
    """What "now" and "option" mean for each switch (kept apart so the values table fits the page)."""
    rows = {(s.item, s.now, s.other) for s in SWITCHES}
    order = [s.item for s in SWITCHES]
    rows = sorted(rows, key=lambda r: order.index(r[0]))
    return pd.DataFrame(rows, columns=["definition", "now", "option"])


def shown(effects: pd.DataFrame) -> pd.DataFrame:
    """The values of ``switch_effects``, one line per (definition, method, metric)."""
    return effects[["definition", "method", "metric", "value now", "value other"]].rename(
        columns={"value other": "value with the option"}
    )


def shared_at_start(backbone: str, num_classes: int = 10, channels: int = 3, size: int = 32):
    """(tensors the old retrain start shared with the original, tensors now shared, total): the
    old rule called ``reset_parameters`` on a copy of the original; the new one rebuilds the
    model from the registry.  The "original" is a built model moved off its initialisation."""
    original = build_model(backbone, num_classes, channels, size)
    with torch.no_grad():
        for p in original.parameters():
            p.add_(1.0)  # stands in for training: no tensor keeps its initial value
    old = copy.deepcopy(original)
    for mod in old.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    new = fresh_model(original, seed=1)
    ref = dict(original.named_parameters())

    def shared(model) -> int:
        return sum(torch.equal(p, ref[n]) for n, p in model.named_parameters())

    return shared(old), shared(new), len(ref)


def retrain_start_table(backbones: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for b in backbones:
        old, new, total = shared_at_start(b)
        rows.append(
            {
                "backbone": b,
                "parameter tensors": total,
                "shared with the original (reset_parameters on a copy, before)": old,
                "shared with the original (rebuilt from the registry, now)": new,
            }
        )
    return pd.DataFrame(rows)
