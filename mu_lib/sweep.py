"""Sweeps: many ``RunConfig``s through the same content-addressed cache, locally or on Ray.

Every run stores its result under the key that ``experiment.run`` uses, so a chapter rendered
after a sweep reads the sweep's results, and a sweep started again after an interruption only
runs what is missing (``pending``).  ``executor="local"`` runs one after another in this
process; ``executor="ray"`` runs one Ray task per configuration (one GPU each when CUDA is
available), after first training each original model that several runs share exactly once.

CPU results depend on torch's thread count (it changes the order of floating-point sums): Ray
tasks use ``cpus_per_task`` threads; pass ``threads`` to pin the count for both executors.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import MuError
from .experiment import (
    Result,
    RunConfig,
    entry_key,
    original_config,
    resolve,
    result_key,
    store,
)
from .util import progress, resolve_device

EXECUTORS = ("local", "ray")
RAY_HINT = "pip install 'unlearning-blindspots[ray]'"
# Environment forwarded to Ray workers: where the cache and data live, quietness, profile default.
ENV_PREFIXES = ("MU_",)
ENV_NAMES = ("CI",)


# ---------------------------------------------------------------------------- grid


def _split_overrides(method: str, base: str | None, over: dict[str, Any]) -> dict[str, Any]:
    """The part of ``over`` that applies to ``method`` (+ ``base``): a sweep over several methods
    may set a hyperparameter that only some of them have."""
    from dataclasses import fields

    from .unlearn import get_method_class

    own = {f.name for f in fields(get_method_class(method).Hparams)}
    base_fields = {f.name for f in fields(get_method_class(base).Hparams)} if base else set()
    out = {}
    for k, v in over.items():
        if k.startswith("base."):
            if k[5:] in base_fields:
                out[k] = v
        elif k in own:
            out[k] = v
    return out


def grid(
    methods: Sequence[str] = ("spotter",),
    seeds: Sequence[int] | None = None,
    datasets: Sequence[str | None] | None = None,
    bases: Sequence[str | None] | None = None,
    overrides: Sequence[dict[str, Any]] | None = None,
    profile: str | None = None,
    forget_classes: Sequence[int] = (0,),
    **common: Any,
) -> list[RunConfig]:
    """The cartesian product of the given axes as ``RunConfig``s.

    ``seeds`` None: the profile's seeds; ``datasets`` None: the profile's dataset; ``bases``
    applies to methods that accept a base (Spotter) and is ignored for the others; each dict in
    ``overrides`` is one point of the hyperparameter axis, and a key goes only to the methods
    that have it (a key that no method has is an error).  ``common`` goes to every config
    (e.g. ``device``, ``pra_k``).  Order: dataset, seed, method, base, overrides.
    """
    from dataclasses import fields

    from .profiles import get_profile
    from .unlearn import get_method_class

    prof = get_profile(profile)
    if not methods:
        raise MuError("grid needs at least one method (e.g. methods=['delete', 'spotter'])")
    classes = {m: get_method_class(m) for m in methods}
    bases = list(bases) if bases else [None]
    for b in bases:
        if b is not None:
            get_method_class(b)
    overrides = [dict(o) for o in overrides] if overrides else [{}]
    known: set[str] = set()
    for cls in classes.values():
        known |= {f.name for f in fields(cls.Hparams)}
    known |= {"base." + f.name for b in bases if b for f in fields(get_method_class(b).Hparams)}
    for o in overrides:
        unknown = sorted(set(o) - known)
        if unknown:
            raise MuError(
                f"no method in {list(methods)} has hyperparameter(s) {unknown}; "
                f"valid ones: {sorted(known)}"
            )
    seeds = list(prof.seeds) if seeds is None else [int(s) for s in seeds]
    datasets = list(datasets) if datasets else [None]
    out: list[RunConfig] = []
    for ds, seed, m, b, o in itertools.product(datasets, seeds, methods, bases, overrides):
        if b is not None and not getattr(classes[m], "accepts_base", False):
            continue
        cfg = RunConfig(
            method=m,
            dataset=ds,
            base=b,
            profile=prof.name,
            seed=seed,
            forget_classes=tuple(forget_classes),
            overrides=_split_overrides(m, b, o),
            **common,
        )
        out.append(cfg)
    # Overrides that do not apply to a method produce duplicates; keep the first of each.
    seen: set[str] = set()
    unique = []
    for cfg in out:
        k = result_key(cfg)
        if k not in seen:
            seen.add(k)
            unique.append(cfg)
    return unique


# ---------------------------------------------------------------------------- cache


def cached_result(cfg: RunConfig) -> Result | None:
    """The stored result of ``cfg``, or None if it has not been run (with this cache dir)."""
    r = resolve(cfg)
    hit = store().get_json("results", r.key)
    if hit is None:
        return None
    return Result(  # this call's config: the stored one may spell the overrides differently
        r.conf, hit["metrics"], hit["timings"], hit.get("details", {}), cached=True
    )


def pending(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """The configurations (deduplicated, in order) whose results are not in the cache yet."""
    out, seen = [], set()
    for cfg in configs:
        k = result_key(cfg)
        if k in seen:
            continue
        seen.add(k)
        if store().get_json("results", k) is None:
            out.append(cfg)
    return out


def _pin(cfg: RunConfig, device: str | None = None) -> RunConfig:
    """Resolve profile and device now, so every process computes the same key."""
    return cfg.replace(profile=cfg.prof.name, device=device or resolve_device(cfg.device))


# ---------------------------------------------------------------------------- executors


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
    from .data import cache_dir

    env["MU_CACHE_DIR"] = str(Path(cache_dir()).resolve())  # the same store as this process
    env["MU_QUIET"] = "1"  # parallel progress bars are noise
    return env


def _prepare_worker(env: dict[str, str], threads: int | None) -> None:
    os.environ.update(env)
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _task_original(cfg: RunConfig, env: dict[str, str], threads: int | None) -> str:
    """Ray task: train (or load) the original model of ``cfg`` so that its runs share it."""
    _prepare_worker(env, threads)
    from .experiment import original_model

    original_model(cfg)
    return entry_key(original_config(cfg))


def _task_run(cfg: RunConfig, env: dict[str, str], threads: int | None, *deps: Any) -> Result:
    """Ray task: one ``experiment.run`` (``deps`` only order it after its original model)."""
    _prepare_worker(env, threads)
    from .experiment import run

    return run(cfg)


def _label(cfg: RunConfig) -> str:
    base = f"+{cfg.base}" if cfg.base else ""
    over = ",".join(f"{k}={v}" for k, v in sorted(cfg.overrides.items()))
    return f"{cfg.method}{base}[{over}] seed {cfg.seed} on {cfg.dataset or cfg.prof.dataset}"


def _run_local(todo: list[RunConfig], threads: int | None, desc: str) -> list[Result]:
    from .experiment import run

    if threads:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
    try:
        return [run(c) for c in progress(todo, desc=desc, total=len(todo))]
    finally:
        if threads:
            torch.set_num_threads(before)


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise MuError(
            f"the ray executor needs Ray, which is not installed: {RAY_HINT} "
            "(or use executor='local' / --executor local)"
        ) from err
    return ray


def _run_ray(
    todo: list[RunConfig],
    threads: int | None,
    desc: str,
    gpus_per_task: float,
    cpus_per_task: float,
    address: str | None,
) -> list[Result]:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        have = ray.cluster_resources().get("GPU", 0)
        if gpus_per_task > 0 and have == 0:
            raise MuError(
                f"gpus_per_task={gpus_per_task} but the Ray cluster has no GPU; "
                "pass gpus_per_task=0 (--gpus-per-task 0) to run on CPU"
            )
        threads = threads or max(1, int(cpus_per_task))
        env = _worker_env()
        opts = {"num_cpus": cpus_per_task, "num_gpus": gpus_per_task, "max_retries": 0}
        original_task = ray.remote(_task_original).options(**opts)
        run_task = ray.remote(_task_run).options(**opts)

        # Train each original model shared by several pending runs once, before those runs.
        groups: dict[str, list[RunConfig]] = {}
        for c in todo:
            groups.setdefault(entry_key(original_config(c)), []).append(c)
        deps: dict[str, Any] = {}
        for okey, members in groups.items():
            if len(members) > 1 and store().get_json("models", okey) is None:
                deps[okey] = original_task.remote(members[0], env, threads)
        refs = []
        for c in todo:
            okey = entry_key(original_config(c))
            extra = (deps[okey],) if okey in deps else ()
            refs.append(run_task.remote(c, env, threads, *extra))
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[Result | None] = [None] * len(refs)
        left = list(refs)
        try:
            for _ in progress(range(len(refs)), desc=desc, total=len(refs)):
                done, left = ray.wait(left, num_returns=1)
                i = index[done[0]]
                try:
                    out[i] = ray.get(done[0])
                except Exception as err:
                    raise MuError(f"sweep run {_label(todo[i])} failed: {err}") from err
        except BaseException:
            for ref in left:  # finished runs are already in the cache; drop the rest
                ray.cancel(ref)
            raise
        return out  # type: ignore[return-value]
    finally:
        if started:
            ray.shutdown()


def sweep(
    configs: Sequence[RunConfig],
    executor: str = "local",
    *,
    threads: int | None = None,
    gpus_per_task: float | None = None,
    cpus_per_task: float = 1,
    address: str | None = None,
    desc: str = "sweep",
) -> list[Result]:
    """Run every configuration not yet in the cache and return all results in input order.

    ``executor``: ``local`` (sequential, this process) or ``ray`` (one task per run; uses a
    running Ray instance, else connects to ``address`` or starts a local one and stops it after;
    on a multi-machine cluster the workers must see this process's ``MU_CACHE_DIR`` path, e.g. on
    a shared filesystem, for a later sweep or chapter to find their results).
    ``gpus_per_task``: None means 1 when CUDA is available, else 0 (fractions share a GPU).
    ``threads``: torch CPU threads per run (default: unchanged locally, ``cpus_per_task`` on Ray).
    Results that were already cached come back with ``cached=True``.
    """
    if executor not in EXECUTORS:
        raise MuError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    configs = list(configs)
    if executor == "ray":
        _import_ray()  # fail before any work when Ray is missing
        if gpus_per_task is None:
            import torch

            gpus_per_task = 1.0 if torch.cuda.is_available() else 0.0
        if gpus_per_task < 0 or cpus_per_task <= 0:
            raise MuError(
                "need gpus_per_task >= 0 and cpus_per_task > 0, "
                f"got {gpus_per_task} and {cpus_per_task}"
            )
        # A task without a GPU must not resolve 'auto' to CUDA here and to CPU in the worker
        # (Ray hides the GPUs from it): pin the device the workers will really use.
        device = None if gpus_per_task > 0 else "cpu"
        configs = [_pin(c, device if c.device == "auto" else None) for c in configs]
    if not configs:
        return []
    keys = [result_key(c) for c in configs]
    todo = pending(configs)
    from .experiment import validate

    for c in todo:  # dataset, classes, shots: fail before launching anything
        validate(c)
    if todo:
        store().check_writable()  # and an unwritable cache, before any worker trains
        if executor == "local":
            fresh = _run_local(todo, threads, desc)
        else:
            fresh = _run_ray(todo, threads, desc, gpus_per_task, cpus_per_task, address)
        new = {result_key(c): r for c, r in zip(todo, fresh, strict=True)}
    else:
        new = {}
    results = []
    for cfg, k in zip(configs, keys, strict=True):
        if k in new:
            results.append(new[k])
            continue
        hit = cached_result(cfg)
        if hit is None:
            raise MuError(
                f"result of {_label(cfg)} is missing from the cache at {store().root} "
                "(was MU_NO_CACHE=1 set, or the cache cleared during the sweep?)"
            )
        results.append(hit)
    return results


# ---------------------------------------------------------------------------- CLI

SUMMARY_COLS = ("acc_f", "acc_r", "acc_ft", "acc_rt", "ou_pgd", "proto_acc_f", "alpha")


def summary_table(results: Sequence[Result]) -> str:
    """A plain-text table of the main metrics, one line per run."""
    head = ["method", "base", "dataset", "seed", *SUMMARY_COLS, "cached"]
    rows = []
    for r in results:
        c, m = r.config, r.metrics
        vals = [f"{m[k]:.4f}" if k.startswith("ou") else f"{m[k]:.2f}" for k in SUMMARY_COLS]
        over = ",".join(f"{k}={v}" for k, v in sorted(c.get("overrides", {}).items()))
        name = c["method"] + (f"[{over}]" if over else "")
        rows.append(
            [
                name,
                c.get("base") or "-",
                c["dataset"],
                str(c["seed"]),
                *vals,
                "yes" if r.cached else "no",
            ]
        )
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
