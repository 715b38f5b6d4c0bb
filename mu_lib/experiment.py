"""One way in: ``run(RunConfig) -> Result``.  Original model, unlearning, evaluation and attacks,
all through the content-addressed cache, so chapters that share a model share its training."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import Diverged, MuError, __version__
from .attacks.pra import DEFAULT_ALPHAS, FORMS, PRA, check_alpha
from .backbones import build_model
from .data import ForgetSplit, data_fingerprint, get_dataset_info, make_split
from .infer import predict_logits
from .metrics import accuracy_suite, feature_dispersion, ou_from_logits
from .perturb import (
    check_neighbours,
    gaussian,
    gaussian_normalised,
    input_normalisation,
    pgd_linf,
    pgd_runner_up_normalised,
)
from .profiles import Profile, get_profile
from .store import Store, config_key, finite_json
from .train import train_classifier
from .unlearn import Method, build_method, make_context
from .util import resolve_device, seed_everything, to_device
from .validate import check_run_settings

# Cache keys hash the code of this module and of every package module it imports.
CODE = "mu_lib.experiment"


def entry_key(conf: dict[str, Any]) -> str:
    """The cache key of a model or result of this module (configuration + code fingerprint)."""
    return config_key(conf, CODE)


@dataclass
class RunConfig:
    """Everything that defines one run (the CLI's flags map one to one onto these fields)."""

    method: str = "spotter"
    dataset: str | None = None  # None: the profile's dataset
    base: str | None = None
    profile: str | None = None  # None: MU_PROFILE / CI / cpu
    seed: int = 0
    forget_classes: tuple[int, ...] = (0,)
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    backbone: str | None = None  # None: the profile's backbone
    pra_k: int | None = None  # None: the profile's pra_shots
    pra_form: str = "cos"  # the paper derives prototype weights with cosine similarity (Sec. 5.1)
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    eval_eps: float | None = None  # None: the profile's pgd_eps
    # Evaluation neighbours: "paper" (the paper's text) or "authors" (the authors' notebook), see
    # mu_lib/perturb.py; only the OU@eps columns depend on it.
    neighbours: str = "paper"

    def __post_init__(self):
        check_run_settings(self)
        self.forget_classes = tuple(int(c) for c in self.forget_classes)
        self.alphas = tuple(check_alpha(a) for a in self.alphas)
        if self.pra_form not in FORMS:
            raise MuError(f"unknown PRA form {self.pra_form!r}; choose one of {FORMS}")
        check_neighbours(self.neighbours)

    @property
    def prof(self) -> Profile:
        return get_profile(self.profile)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class Result:
    config: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> str:
        """Strict JSON: a non-finite number is written as null and named in ``nonfinite``."""
        out, bad = finite_json(
            json.loads(
                json.dumps(
                    {
                        "config": self.config,
                        "metrics": self.metrics,
                        "timings": self.timings,
                        "details": self.details,
                        "cached": self.cached,
                    },
                    default=str,
                )
            )
        )
        if bad:
            out["nonfinite"] = bad
        return json.dumps(out, indent=2, allow_nan=False)


_STORE: Store | None = None


def store() -> Store:
    """The store of ``$MU_CACHE_DIR`` (a new one, with an empty memo, when that or
    ``$MU_NO_CACHE`` changes: a store made while caching was off must not stay off)."""
    global _STORE
    now = Store()
    if _STORE is None or (_STORE.root, _STORE.disabled) != (now.root, now.disabled):
        _STORE = now
    return _STORE


@dataclass(frozen=True)
class Resolved:
    """One run's configuration, resolved once and passed down: the profile's defaults filled in,
    the method built, and the cache configurations (and key) of its original model, its unlearned
    model and its result.  Before, each of those was recomputed where it was needed and the method
    was built four times per run."""

    cfg: RunConfig
    method: Method
    original: dict[str, Any]  # the original model's cache configuration
    unlearned: dict[str, Any]  # the unlearned model's
    conf: dict[str, Any]  # the result's configuration (``Result.config``)
    key: str  # the result's cache key

    @property
    def prof(self) -> Profile:
        return self.cfg.prof

    @property
    def device(self) -> str:
        return self.original["device"]


def resolve(cfg: RunConfig) -> Resolved:
    """Resolve ``cfg`` (checks the method and its hyperparameters; trains nothing)."""
    p = cfg.prof
    method = method_for(cfg)
    original = original_config(cfg)
    unlearned = {
        "what": "unlearned",
        "original": original,
        "forget_classes": list(cfg.forget_classes),
        "method": method.describe(),
        "profile": p.name,
    }
    conf = dataclasses.asdict(cfg)
    conf.update(
        profile=p.name,
        dataset=original["dataset"],
        backbone=original["backbone"],
        device=original["device"],
        pra_k=cfg.pra_k or p.pra_shots,
        eval_eps=p.pgd_eps if cfg.eval_eps is None else cfg.eval_eps,
        forget_classes=list(cfg.forget_classes),
        alphas=list(cfg.alphas),
    )
    conf["hparams"] = unlearned["method"] if cfg.method != "original" else {}
    conf["version"] = __version__
    conf["eval"] = {k: getattr(p, k) for k in ("pgd_eps", "pgd_step", "pgd_steps", "gaussian_std")}
    # the resolved hyperparameters, not the raw overrides: one run asked for as ``lambda2=1``,
    # ``lambda2=1.0`` or not at all (the default) is one entry
    keyed = {k: v for k, v in conf.items() if k != "overrides"}
    key = entry_key({"what": "result", **keyed, "unlearned": unlearned})
    return Resolved(cfg, method, original, unlearned, conf, key)


# ------------------------------------------------------------------------ pieces


def split_for(cfg: RunConfig) -> ForgetSplit:
    p = cfg.prof
    dataset = cfg.dataset or p.dataset
    key = (
        f"split:{dataset}:{data_fingerprint(dataset)}:{cfg.forget_classes}:"
        f"{p.train_per_class}:{p.test_per_class}"
    )
    memo = store().memo
    if key not in memo:
        memo[key] = make_split(dataset, cfg.forget_classes, p.train_per_class, p.test_per_class)
    return memo[key]


def original_config(cfg: RunConfig) -> dict[str, Any]:
    p = cfg.prof
    return {
        "what": "original",
        "dataset": cfg.dataset or p.dataset,
        "data": data_fingerprint(cfg.dataset or p.dataset),
        "backbone": cfg.backbone or p.backbone,
        "train": {
            "train_epochs": p.epochs_for(cfg.backbone),
            **{
                k: getattr(p, k)
                for k in (
                    "train_lr",
                    "train_batch",
                    "train_augment",
                    "train_schedule",
                    "train_warmup",
                    "train_nesterov",
                    "train_per_class",
                    "test_per_class",
                )
            },
        },
        "seed": cfg.seed,
        "device": resolve_device(cfg.device),
    }


def new_model(cfg: RunConfig) -> nn.Module:
    dataset = cfg.dataset or cfg.prof.dataset
    info = get_dataset_info(dataset)
    return build_model(
        cfg.backbone or cfg.prof.backbone, info.num_classes, info.channels, info.size
    )


def _load_or_build(kind: str, conf: dict, cfg: RunConfig, build) -> tuple[nn.Module, float, bool]:
    """A model from the cache, or built with ``build(model)`` and stored; returns (model, secs, hit).

    ``secs`` is what building the model took when it was built, also on a cache hit (stored with
    the model), so that a table of unlearning times does not report the time of loading a file.
    """
    device = resolve_device(cfg.device)
    key = entry_key(conf)
    memo = store().memo
    if key in memo:
        model, secs = memo[key]
        return model, secs, True
    model = new_model(cfg)
    fits = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    tensors = store().get_tensors(kind, key, expect=fits)
    t0 = time.perf_counter()
    hit = tensors is not None
    if hit:
        model.load_state_dict(tensors)
        model = to_device(model, device)
        secs = float((store().get_json(kind, key) or {}).get("secs", 0.0))
    else:
        seed_everything(cfg.seed)
        model = new_model(cfg)  # re-create under the seed: initialisation is part of the run
        model = to_device(model, device)
        store().check_writable()  # before the compute, not after it
        build(model)
        secs = time.perf_counter() - t0
        check_finite_model(model, kind, conf)
        store().put_tensors(kind, key, model.state_dict(), {"config": conf, "secs": secs})
    model.eval()
    memo[key] = (model, secs)
    return model, secs, hit


def check_finite_model(model: nn.Module, kind: str, conf: dict[str, Any]) -> None:
    """A model with NaN/inf weights is a diverged run: an error, never a cache entry."""
    state = model.state_dict()
    bad = [n for n, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
    if bad:
        what = "unlearned" if conf.get("what") == "unlearned" else "original"
        fix = "--set lr=<smaller>" if what == "unlearned" else "the profile's train_lr"
        raise Diverged(
            f"the {what} model has non-finite weights ({bad[0]}, ...): the run diverged and "
            f"nothing was stored; lower the learning rate ({fix}) or the loss weights"
        )


def original_model(cfg: RunConfig | Resolved) -> tuple[nn.Module, float, bool]:
    """The trained original model for (dataset, backbone, profile schedule, seed), cached."""
    conf = cfg.original if isinstance(cfg, Resolved) else original_config(cfg)
    cfg = cfg.cfg if isinstance(cfg, Resolved) else cfg
    p = cfg.prof
    split = split_for(cfg)

    def build(model):
        train_classifier(
            model,
            split.x_train,
            split.y_train,
            epochs=p.epochs_for(cfg.backbone),
            lr=p.train_lr,
            batch_size=p.train_batch,
            seed=cfg.seed,
            device=conf["device"],
            augment=p.train_augment,
            schedule=p.train_schedule,
            warmup=p.train_warmup,
            nesterov=p.train_nesterov,
            desc="original",
        )

    return _load_or_build("models", conf, cfg, build)


def method_for(cfg: RunConfig) -> Method:
    """A new instance of ``cfg``'s method (a run builds its own once, in :func:`resolve`)."""
    p = cfg.prof
    return build_method(cfg.method, p.name, cfg.overrides, p.unlearn_epochs, base=cfg.base)


def _resolved(cfg: RunConfig | Resolved) -> Resolved:
    return cfg if isinstance(cfg, Resolved) else resolve(cfg)


def unlearn_config(cfg: RunConfig) -> dict[str, Any]:
    """The unlearned model's cache configuration (see :class:`Resolved`)."""
    return resolve(cfg).unlearned


def unlearn_from(
    cfg: RunConfig | Resolved, original: nn.Module, model: nn.Module, method: Method | None = None
) -> dict[str, int]:
    """Load ``original``'s weights into ``model`` and unlearn with ``cfg``'s method (or ``method``,
    e.g. one whose ``after_epoch`` records a trajectory); returns the data counts.  Not cached."""
    r = _resolved(cfg)
    cfg = r.cfg
    method = method or r.method
    split = split_for(cfg)
    # in place, and in the cache's layout: channels-last changes the floats of the result
    to_device(model, r.device)
    model.load_state_dict(original.state_dict())
    ctx = make_context(
        method,
        original,
        model,
        split.forget_train,
        split.retain_train,
        num_classes=split.num_classes,
        forget_classes=split.forget_classes,
        seed=cfg.seed,
        device=r.device,
        profile=cfg.prof,
        backbone=cfg.backbone,
        # the original's config already names its seed and device
        shared=store().memo.setdefault(
            f"shared:{entry_key(r.original)}:{split.forget_classes}", {}
        ),
    )
    out = method.unlearn(ctx)
    if out is not model:
        model.load_state_dict(out.state_dict())
    return dict(ctx.counts)


def unlearned_model(cfg: RunConfig | Resolved) -> tuple[nn.Module, float, bool, dict]:
    """The unlearned model of ``cfg`` (cached); returns (model, secs, cache hit, data counts)."""
    r = _resolved(cfg)
    original, _, _ = original_model(r)
    if r.cfg.method == "original":
        return original, 0.0, True, {}
    counts: dict[str, int] = {}

    def build(model):
        counts.update(unlearn_from(r, original, model))

    model, secs, hit = _load_or_build("models", r.unlearned, r.cfg, build)
    return model, secs, hit, counts


def neighbours(
    cfg: RunConfig, kind: str = "pgd", eps: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation neighbours of D_f and the original's logits on them (memoised per process)."""
    p = cfg.prof
    eps = p.pgd_eps if eps is None else eps
    key = f"nb:{entry_key(original_config(cfg))}:{cfg.forget_classes}:{kind}:{eps}"
    key += f":{cfg.neighbours}"
    memo = store().memo
    if key not in memo:
        original, _, _ = original_model(cfg)
        xf, yf = split_for(cfg).forget_train
        if kind not in ("pgd", "gauss"):
            raise MuError(f"unknown neighbour kind {kind!r}; choose 'pgd' or 'gauss'")
        if cfg.neighbours == "authors" and kind == "pgd":
            xp = pgd_runner_up_normalised(
                original,
                xf,
                eps=eps,
                step=p.pgd_step,
                steps=p.pgd_steps,
                seed=cfg.seed,
                device=resolve_device(cfg.device),
            )
        elif cfg.neighbours == "authors":
            mean, std = input_normalisation(original)
            xp = gaussian_normalised(xf, mean, std, noise_std=AUTHORS_GAUSS_STD, seed=cfg.seed)
        elif kind == "pgd":
            xp = pgd_linf(
                original,
                xf,
                yf,
                eps=eps,
                step=p.pgd_step,
                steps=p.pgd_steps,
                seed=cfg.seed,
                device=resolve_device(cfg.device),
            )
        else:
            xp = gaussian(xf, std=p.gaussian_std, seed=cfg.seed)
        memo[key] = (xp, predict_logits(original, xp, p.eval_batch))
    return memo[key]


AUTHORS_GAUSS_STD = 0.01  # the authors' notebook: std 0.01 on normalised tensors


def ou(
    cfg: RunConfig,
    model: nn.Module,
    kind: str = "pgd",
    eps: float | None = None,
    divergence: str = "js",
) -> float:
    xp, orig_logits = neighbours(cfg, kind, eps)
    return ou_from_logits(
        orig_logits, predict_logits(model, xp, cfg.prof.eval_batch), cfg.forget_classes, divergence
    )


def pra_for(cfg: RunConfig, model: nn.Module) -> PRA:
    split = split_for(cfg)
    return PRA(
        model, split.forget_train, split.retain_train, split.forget_classes, cfg.prof.eval_batch
    )


def evaluate(
    cfg: RunConfig, model: nn.Module
) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """Table 1's metrics for ``model``: accuracies, OU@eps (PGD and Gaussian, JS), PRA."""
    p = cfg.prof
    split = split_for(cfg)
    t = {}
    t0 = time.perf_counter()
    attack = pra_for(cfg, model)  # its embedding pass also gives Acc_f and Acc_r
    metrics: dict[str, Any] = accuracy_suite(model, split, p.eval_batch, pra=attack)
    t["eval_acc"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics["ou_pgd"] = ou(cfg, model, "pgd", cfg.eval_eps)
    metrics["ou_pgd_kl"] = ou(cfg, model, "pgd", cfg.eval_eps, "kl")
    metrics["ou_gauss"] = ou(cfg, model, "gauss")
    t["eval_ou"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = cfg.pra_k or p.pra_shots
    shots = split.shot_indices(k, cfg.seed)
    sweeps = {form: attack.sweep(shots, form, cfg.alphas).to_dict() for form in FORMS}
    main = sweeps[cfg.pra_form]
    metrics.update(
        proto_acc_f=main["chosen_proto_acc_f"],
        acc_r_star=main["chosen_acc_r_star"],
        alpha=main["alpha"],
        pra_k=k,
        pra_form=cfg.pra_form,
    )
    metrics["dispersion_f"] = feature_dispersion(attack.ef, attack.yf, split.forget_classes)
    t["eval_pra"] = time.perf_counter() - t0
    return metrics, t, {"pra": sweeps}


def resolved_config(cfg: RunConfig) -> dict[str, Any]:
    """The result's configuration (see :class:`Resolved`)."""
    return resolve(cfg).conf


def validate(cfg: RunConfig) -> Resolved:
    """Check everything that can be checked before any training (dataset, classes, method,
    hyperparameters, PRA shots); returns the resolved configuration."""
    r = resolve(cfg)
    split_for(cfg).shot_indices(r.conf["pra_k"], cfg.seed)
    return r


def result_key(cfg: RunConfig) -> str:
    """Cache key of ``run(cfg)``'s result (see :class:`Resolved`)."""
    return resolve(cfg).key


def run(cfg: RunConfig | None = None, **kw) -> Result:
    """Run (or load from the cache) one configuration and return its metrics."""
    cfg = cfg.replace(**kw) if cfg is not None else RunConfig(**kw)
    r = validate(cfg)
    hit = store().get_json("results", r.key)
    if hit is not None and all(k in hit for k in ("metrics", "timings")):
        return Result(  # this call's config: it may spell the overrides differently
            r.conf, hit["metrics"], hit["timings"], hit.get("details", {}), cached=True
        )
    store().check_writable()  # an unwritable cache fails now, not after the compute
    timings: dict[str, float] = {}
    _, timings["original"], orig_hit = original_model(r)
    model, timings["unlearn"], _, counts = unlearned_model(r)
    metrics, t_eval, details = evaluate(cfg, model)
    timings.update(t_eval)
    details["data_counts"] = counts
    details["original_cached"] = orig_hit
    res = Result(r.conf, metrics, timings, details)
    store().put_json(
        "results",
        r.key,
        {"config": r.conf, "metrics": metrics, "timings": timings, "details": details},
        r.conf,
    )
    return res


def run_many(configs: Sequence[RunConfig], desc: str = "runs") -> list[Result]:
    """Run configurations one after another with a progress bar (cached ones cost nothing)."""
    from .util import progress

    return [run(c) for c in progress(configs, desc=desc, total=len(configs))]
