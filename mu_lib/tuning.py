"""The tuning protocol: one rule that chooses every method's hyperparameters, Spotter included.

* **Grid.** Each tuned method has one grid: the learning rate over the half-decade grid
  ``LR_GRID`` (the grid DELETE was set with); Fisher Forgetting, which has no training loop, its
  noise scale ``alpha`` over ``ALPHA_GRID``.  Every other hyperparameter stays at its default.
* **Step budget.** The same for every method: the profile's unlearning epochs and batch
  (``cpu``: 10 epochs at batch 128, the authors' setting; ``smoke``: 5 at 32).
* **Development pairs.** ``DEV_PAIRS``: (seed, forget class) pairs the book never reports (not
  seed 0, not class 0); the classes were drawn once at random from 1-9.
* **Two selections from the same trials.**
  ``default``: the smallest grid value under which the method forgets (Acc_f <= 5%) on every
  development pair: forget with the least change.  If none does, the value with the lowest
  worst-pair Acc_f (flagged in the notes).
  ``pra``: of the values that forget on every pair and keep Acc_rt within 2 points of the
  original's (mean over the pairs of Acc_rt minus the original's >= -2), the one with the lowest
  mean Proto-Acc_f (cosine PRA, the book's attack); a tie goes to the smaller value.  If none
  keeps Acc_rt, the ``default`` choice (flagged).
* **Walk.** From ``WALK_START`` (the grid's smallest value where none is given) the grid is walked
  upwards and stops after the first value outside the Acc_rt budget once a ``default`` choice
  exists: a larger step only moves further from the original.  If the starting value already
  forgets on every pair, the walk then steps down until a value does not: the smallest value that
  forgets is then bracketed, not the grid's edge.

``default`` is what the methods use (``mu_lib/tuned/<profile>.json``, read by the method
registry); ``pra`` is the second view of Table 1.  ``benchmarks/tune.py`` runs it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import Diverged, MuError, tuned
from .experiment import RunConfig, pra_for, split_for, unlearned_model
from .metrics import accuracy_suite
from .profiles import get_profile
from .unlearn import get_method_class

LR_GRID = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# Where the walk starts: 1e-4 is the authors' rate for Spotter and the smallest a baseline's
# reference uses; the values below it are visited only to bracket a method that already forgets
# there (cpu: Spotter forgets at 1e-4 on every development pair).
WALK_START = {"lr": 1e-4}
ALPHA_GRID = (1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
# In the order the protocol runs them: the slowest (Fisher's Fisher matrix, SCRUB's passes over
# the retained data) last, so that an interrupted run has the others.
TUNED_METHODS = (
    "spotter",
    "random_label",
    "neggrad",
    "boundary_shrink",
    "salun",
    "l2ul",
    "delete",
    "unsc",
    "boundary_expand",
    "fisher",
    "scrub",
)
GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    m: ("alpha", ALPHA_GRID) if m == "fisher" else ("lr", LR_GRID) for m in TUNED_METHODS
}
# (seed, forget class); classes drawn once: np.random.default_rng(13).choice(range(1, 10), 3).
# On cpu one seed: each seed's original costs minutes of the protocol's half-hour budget.
DEV_PAIRS = {"smoke": ((1, 7), (2, 8), (1, 9)), "cpu": ((1, 7), (1, 8), (1, 9))}


def dev_pairs(profile: str) -> tuple[tuple[int, int], ...]:
    """The development (seed, forget class) pairs of ``profile`` (smoke's for unlisted ones)."""
    return DEV_PAIRS.get(get_profile(profile).name, DEV_PAIRS["smoke"])


FORGET_MAX = 5.0  # Acc_f (%) at most this on every pair: the method forgets
RETAIN_DROP_MAX = 2.0  # Acc_rt at most this many points below the original's (the ``pra`` view)

TRIAL_FIELDS = (
    "profile",
    "method",
    "param",
    "value",
    "seed",
    "forget_class",
    "acc_f",
    "acc_r",
    "acc_rt",
    "proto_acc_f",
    "acc_r_star",
    "diverged",
    "secs",
    "commit",
)
SELECTION_FIELDS = (
    "method",
    "param",
    "value",
    "pairs",
    "acc_f_max",
    "acc_rt_drop_worst",
    "acc_rt_drop_mean",
    "proto_acc_f_mean",
    "forgets",
    "within_budget",
    "default",
    "pra",
)


def data_dir() -> Path:
    """Where the chosen settings and their tables live (package data)."""
    return Path(tuned.__file__).parent


def step_budget(method: str, profile: str) -> dict[str, Any]:
    """The overrides that give ``method`` the profile's epochs and batch ({} for one-shot methods,
    whose only allowed epochs is 0)."""
    cls = get_method_class(method)
    default_epochs = {f.name: f.default for f in dataclasses.fields(cls.Hparams)}["epochs"]
    if default_epochs == 0:
        return {}
    p = get_profile(profile)
    return {"epochs": p.unlearn_epochs, "batch_size": p.unlearn_batch}


def trial_config(
    profile: str,
    method: str,
    param: str | None,
    value: float | None,
    seed: int,
    forget_class: int,
    device: str = "auto",
) -> RunConfig:
    over = {} if method == "original" else {**step_budget(method, profile), param: value}
    return RunConfig(
        method=method,
        profile=profile,
        seed=seed,
        forget_classes=(forget_class,),
        overrides=over,
        device=device,
    )


def light_metrics(cfg: RunConfig) -> dict[str, Any]:
    """What the protocol reads (accuracies, cosine PRA), without OU@eps: the unlearned model goes
    through the cache, the evaluation is a few seconds on ``cpu``."""
    model, _, _, _ = unlearned_model(cfg)
    p = cfg.prof
    split = split_for(cfg)
    attack = pra_for(cfg, model)
    m = accuracy_suite(model, split, p.eval_batch, pra=attack)
    shots = split.shot_indices(p.pra_shots, cfg.seed)
    sweep = attack.sweep(shots, "cos", cfg.alphas)
    diverged = not all(bool(torch.isfinite(q).all()) for q in model.state_dict().values())
    return {
        "acc_f": m["acc_f"],
        "acc_r": m["acc_r"],
        "acc_rt": m["acc_rt"],
        "proto_acc_f": sweep.chosen_proto_acc_f,
        "acc_r_star": sweep.chosen_acc_r_star,
        "diverged": diverged,
    }


def measured_or_diverged(cfg: RunConfig) -> dict[str, Any]:
    """``light_metrics``, or a row that says the run diverged (NaN metrics)."""
    try:
        return light_metrics(cfg)
    except Diverged:
        nan = float("nan")
        keys = ("acc_f", "acc_r", "acc_rt", "proto_acc_f", "acc_r_star")
        return {**dict.fromkeys(keys, nan), "diverged": True}


# --------------------------------------------------------------------------- trials CSV


def _key(method: str, value: Any, seed: Any, forget_class: Any) -> tuple:
    v = "" if value in ("", None) else f"{float(value):.6g}"
    return (method, v, int(seed), int(forget_class))


def read_trials(path: Path) -> list[dict[str, Any]]:
    """Trials already written (numbers parsed); [] when the file does not exist yet."""
    if not Path(path).is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k in ("acc_f", "acc_r", "acc_rt", "proto_acc_f", "acc_r_star", "secs"):
                r[k] = float(r[k])
            r["value"] = float(r["value"]) if r["value"] else None
            r["seed"], r["forget_class"] = int(r["seed"]), int(r["forget_class"])
            r["diverged"] = r["diverged"] == "True"
            rows.append(r)
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    path = Path(path)
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TRIAL_FIELDS)
        if new:
            w.writeheader()
        out = dict(row)
        for k in ("acc_f", "acc_r", "acc_rt", "proto_acc_f", "acc_r_star"):
            out[k] = f"{row[k]:.4f}"
        out["secs"] = f"{row['secs']:.1f}"
        out["value"] = "" if row["value"] is None else f"{row['value']:.6g}"
        w.writerow(out)


# --------------------------------------------------------------------------- the walk


def _point_summary(
    rows: list[dict[str, Any]], originals: dict[tuple[int, int], float]
) -> dict[str, Any]:
    """One grid value over the development pairs: does it forget, does it keep Acc_rt."""
    drops = [
        -math.inf if r["diverged"] else r["acc_rt"] - originals[(r["seed"], r["forget_class"])]
        for r in rows
    ]
    any_diverged = any(r["diverged"] for r in rows)
    acc_f = [math.inf if r["diverged"] else r["acc_f"] for r in rows]
    proto = [r["proto_acc_f"] for r in rows]
    mean_drop = sum(drops) / len(drops)
    return {
        "pairs": len(rows),
        "acc_f_max": max(acc_f),
        "acc_rt_drop_worst": min(drops),
        "acc_rt_drop_mean": mean_drop,
        "proto_acc_f_mean": sum(proto) / len(proto),
        "forgets": all(a <= FORGET_MAX for a in acc_f),
        "within_budget": not any_diverged and mean_drop >= -RETAIN_DROP_MAX,
    }


def next_value(
    param: str, values: Sequence[float], done: dict[float, dict[str, Any]]
) -> float | None:
    """The next grid value the walk measures, given the summaries ``done`` of the values measured
    so far; None when the walk is complete.  One function for the run and for the check that a
    run finished, so the two cannot disagree."""
    values = sorted(values)
    start = WALK_START.get(param, values[0])
    start = start if start in values else values[0]
    i0 = values.index(start)
    found_default = False
    for v in values[i0:]:
        if v not in done:
            return v
        found_default = found_default or done[v]["forgets"]
        if found_default and not done[v]["within_budget"]:
            break  # larger steps only move further from the original
    if done[start]["forgets"]:
        for v in reversed(values[:i0]):  # bracket the smallest value that forgets
            if v not in done:
                return v
            if not done[v]["forgets"]:
                break
    return None


def run_protocol(
    profile: str,
    trials_csv: Path,
    methods: Sequence[str] = TUNED_METHODS,
    pairs: Sequence[tuple[int, int]] | None = None,
    grids: dict[str, tuple[str, tuple[float, ...]]] | None = None,
    commit: str = "",
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every trial the protocol needs that ``trials_csv`` does not hold yet, appending each
    row as it completes (so an interrupted run resumes); returns all rows of ``profile``."""
    prof = get_profile(profile)
    pairs = dev_pairs(prof.name) if pairs is None else pairs
    grids = {**GRIDS, **(grids or {})}
    for m in methods:
        if m not in grids:
            raise MuError(f"no tuning grid for method {m!r}; tuned methods: {sorted(grids)}")
    if not pairs:
        raise MuError("the protocol needs at least one (seed, forget class) development pair")
    for seed, _ in pairs:
        if seed == 0:
            raise MuError("seed 0 is the book's; development pairs must use other seeds")
    done = {
        _key(r["method"], r["value"], r["seed"], r["forget_class"]): r
        for r in read_trials(trials_csv)
        if r["profile"] == prof.name
    }

    def measure(method: str, param: str | None, value: float | None, seed: int, c: int) -> dict:
        key = _key(method, value, seed, c)
        if key not in done:
            t0 = time.perf_counter()
            cfg = trial_config(prof.name, method, param, value, seed, c, device)
            row = {
                "profile": prof.name,
                "method": method,
                "param": param or "",
                "value": value,
                "seed": seed,
                "forget_class": c,
                **measured_or_diverged(cfg),
                "commit": commit,
            }
            row["secs"] = time.perf_counter() - t0
            _append(trials_csv, row)
            done[key] = row
            log(
                f"{method} {param or ''}={value if value is not None else '-'} seed {seed} "
                f"class {c}: Acc_f {row['acc_f']:.1f} Acc_rt {row['acc_rt']:.1f} "
                f"Proto {row['proto_acc_f']:.1f} ({row['secs']:.0f} s)"
            )
        return done[key]

    originals = {(s, c): measure("original", None, None, s, c)["acc_rt"] for s, c in pairs}
    for method in methods:
        param, values = grids[method]
        points: dict[float, dict[str, Any]] = {}
        while (v := next_value(param, values, points)) is not None:
            rows = [measure(method, param, v, s, c) for s, c in pairs]
            points[v] = _point_summary(rows, originals)
    return [r for r in done.values()]


# --------------------------------------------------------------------------- selection


def selection_table(
    trials: Sequence[dict[str, Any]], pairs: Sequence[tuple[int, int]]
) -> list[dict[str, Any]]:
    """One row per (method, grid value) with every development pair measured, marking the two
    choices (``default``, ``pra``)."""
    want = {(int(s), int(c)) for s, c in pairs}
    originals = {
        (r["seed"], r["forget_class"]): r["acc_rt"] for r in trials if r["method"] == "original"
    }
    if not want <= set(originals):  # an interrupted run: no grid value is complete yet
        return []
    by_point: dict[tuple[str, str, float], list] = {}
    for r in trials:
        if r["method"] != "original" and (r["seed"], r["forget_class"]) in want:
            by_point.setdefault((r["method"], r["param"], r["value"]), []).append(r)
    table = []
    for (method, param, value), rows in by_point.items():
        if len(rows) == len(want):
            table.append(
                {
                    "method": method,
                    "param": param,
                    "value": value,
                    **_point_summary(rows, originals),
                }
            )
    table.sort(key=lambda t: (t["method"], t["value"]))
    choice = choose(table)
    for t in table:
        for view in ("default", "pra"):
            pick = choice[view].get(t["method"], {})
            t[view] = pick.get(t["param"]) == t["value"]
    return table


def walk_finished(table: Sequence[dict[str, Any]], method: str) -> bool:
    """Whether the trials hold the whole walk of ``method`` (an interrupted run may not)."""
    param, values = GRIDS.get(method, ("", ()))
    done = {t["value"]: t for t in table if t["method"] == method}
    return bool(values) and next_value(param, values, done) is None


def choose(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Apply the two rules to a selection table: {"default": {method: {param: value}}, "pra":
    ..., "notes": {method: why a rule fell back}}.  A method whose walk is not finished (an
    interrupted run) gets no choice, and a note."""
    out: dict[str, Any] = {"default": {}, "pra": {}, "notes": {}}
    methods = sorted({t["method"] for t in table})
    for m in methods:
        if m in GRIDS and not walk_finished(table, m):
            out["notes"][m] = "the walk over the grid did not finish: no choice"
            continue
        rows = sorted((t for t in table if t["method"] == m), key=lambda t: t["value"])
        param = rows[0]["param"]
        forgets = [t for t in rows if t["forgets"]]
        if forgets:
            default = forgets[0]
        else:
            default = min(rows, key=lambda t: (t["acc_f_max"], t["value"]))
            out["notes"][m] = (
                f"no grid value brings Acc_f to {FORGET_MAX:g}% on every pair: the lowest worst-pair"
                f" Acc_f ({default['acc_f_max']:.1f}%)"
            )
        ok = [t for t in forgets if t["within_budget"]]
        pra = min(ok, key=lambda t: (t["proto_acc_f_mean"], t["value"])) if ok else default
        if not ok:
            note = out["notes"].get(m, "")
            out["notes"][m] = (note + "; " if note else "") + (
                f"no value that forgets keeps the mean Acc_rt within {RETAIN_DROP_MAX:g} points of "
                "the original's: the tuned-against-PRA view uses the default choice"
            )
        out["default"][m] = {param: default["value"]}
        out["pra"][m] = {param: pra["value"]}
    return out


def write_selection(
    profile: str,
    trials: Sequence[dict[str, Any]],
    out_dir: Path | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    commit: str = "",
) -> dict[str, Any]:
    """Write ``<profile>_selection.csv``, ``<profile>_choice.csv`` (the two choices, for the book)
    and ``<profile>.json`` (the choices the methods read)."""
    prof = get_profile(profile)
    pairs = dev_pairs(prof.name) if pairs is None else pairs
    out_dir = Path(out_dir) if out_dir is not None else data_dir()
    ran_on = sorted({r["commit"] for r in trials if r["profile"] == prof.name and r["commit"]})
    commit = " ".join(ran_on) or commit  # the commits the trials ran on
    table = selection_table([r for r in trials if r["profile"] == prof.name], pairs)
    with open(out_dir / f"{prof.name}_selection.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SELECTION_FIELDS)
        w.writeheader()
        if not table:
            w.writerow({"method": "(no grid value has run on every pair yet)"})
        for t in table:
            w.writerow(
                {
                    **{k: t[k] for k in SELECTION_FIELDS},
                    "value": f"{t['value']:.6g}",
                    **{
                        k: f"{t[k]:.2f}"
                        for k in (
                            "acc_f_max",
                            "acc_rt_drop_worst",
                            "acc_rt_drop_mean",
                            "proto_acc_f_mean",
                        )
                    },
                }
            )
    choice = choose(table)
    for m in TUNED_METHODS:
        if m not in choice["default"] and m not in choice["notes"]:
            choice["notes"][m] = "no trial has run yet: no choice"
    with open(out_dir / f"{prof.name}_choice.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "param", "default protocol", "tuned against PRA", "note"])
        for m in sorted(set(choice["default"]) | set(choice["notes"])):
            if m not in choice["default"]:
                w.writerow([m, GRIDS.get(m, ("",))[0], "", "", choice["notes"][m]])
                continue
            ((param, v_default),) = choice["default"][m].items()
            w.writerow(
                [m, param, f"{v_default:.0e}", f"{choice['pra'][m][param]:.0e}",
                 choice["notes"].get(m, "")]
            )  # fmt: skip
        pairs_text = ", ".join(f"seed {s} class {c}" for s, c in pairs)
        budget = f"{prof.unlearn_epochs} epochs at batch {prof.unlearn_batch}"
        w.writerow(["(all)", "", "", "", f"pairs: {pairs_text}; {budget}; commit {commit}"])
    doc = {
        "profile": prof.name,
        "commit": commit,
        "dev_pairs": [list(p) for p in pairs],
        "step_budget": {"epochs": prof.unlearn_epochs, "batch_size": prof.unlearn_batch},
        "forget_max": FORGET_MAX,
        "retain_drop_max": RETAIN_DROP_MAX,
        **choice,
    }
    (out_dir / f"{prof.name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tuned.selection.cache_clear()
    return doc
