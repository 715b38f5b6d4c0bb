"""The method interface, the method registry and the one shared unlearning loop.

A method is a loss on a batch of forget data (plus retained data if it declares it uses it) and
a few optional hooks: ``prepare`` (precompute neighbours, masks, relabels), ``after_backward``
(edit gradients: saliency masks, null-space projections), ``after_epoch`` (look between epochs)
and ``finish`` (one-shot edits: noise, pruning a shadow class).  ``run_unlearning`` drives every
method through ``train.fit``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .. import MuError, tuned
from ..data import batches
from ..train import fit, make_optimizer
from ..util import seed_everything
from ..validate import check_fields


@dataclass
class HParams:
    """Optimisation settings shared by all methods (each method documents its own defaults).

    epochs: unlearning epochs over D_f (None: the profile's ``unlearn_epochs``).
    lr, momentum, weight_decay, optimizer: the optimiser (SGD unless said otherwise).
    batch_size: forget examples per step (None: the profile's ``unlearn_batch``); retained-data
        methods draw ``retain_batch`` (None: the same) retained examples per step alongside.
    bn_mode: ``eval`` freezes BatchNorm (Spotter, UNSC reference code), ``train`` updates it (the
        DELETE harness's methods).  It moves OU@eps a lot; the book reports both.
    """

    epochs: int | None = None
    lr: float = 1e-4
    batch_size: int | None = None
    retain_batch: int | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    bn_mode: str = "eval"

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 0:
            raise MuError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise MuError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1 or self.retain_batch < 1:
            raise MuError("batch_size and retain_batch must be >= 1")
        if self.bn_mode not in ("train", "eval"):
            raise MuError(f"bn_mode must be 'train' or 'eval', got {self.bn_mode!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise MuError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The settings of the optimisation (not of the loss): a plugged-in Spotter takes them from its base.
OPTIMISATION_FIELDS = (
    "epochs",
    "lr",
    "batch_size",
    "retain_batch",
    "momentum",
    "weight_decay",
    "optimizer",
    "bn_mode",
)


@dataclass
class Batch:
    """One step's data: forget examples (with their indices into D_f) and optional retained ones."""

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    xr: torch.Tensor | None = None
    yr: torch.Tensor | None = None


@dataclass
class Context:
    """Everything a method may touch while unlearning.  ``retain`` is None for forget-only methods:
    the loop never hands them retained data."""

    original: nn.Module
    model: nn.Module
    forget: tuple[torch.Tensor, torch.Tensor]
    retain: tuple[torch.Tensor, torch.Tensor] | None
    num_classes: int
    forget_classes: tuple[int, ...]
    seed: int
    device: str
    profile: Any
    generator: torch.Generator
    backbone: str | None = None  # None: the profile's (retraining reads its epochs from it)
    state: dict[str, Any] = field(default_factory=dict)
    # Outlives the run: values that depend only on the original model, D_f and the seed (e.g.
    # Spotter's training neighbours), shared by every run on them within one process.
    shared: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {"forget_batches": 0, "retain_batches": 0}
    )

    @property
    def retain_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c not in self.forget_classes]


def make_context(
    method: Method,
    original: nn.Module,
    model: nn.Module,
    forget: tuple[torch.Tensor, torch.Tensor],
    retain: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    num_classes: int,
    forget_classes: tuple[int, ...],
    seed: int,
    device: str,
    profile: Any,
    generator_seed: int | None = None,
    backbone: str | None = None,
    shared: dict[str, Any] | None = None,
) -> Context:
    """The one way the library builds a :class:`Context`: a frozen eval copy of ``original`` as the
    teacher, the data on ``device``, retained data only for a method that uses it, and the run's
    generator (``seed + 1`` unless ``generator_seed`` is given)."""
    frozen = copy.deepcopy(original).eval()
    for q in frozen.parameters():
        q.requires_grad_(False)
    keep = retain if method.needs_retain else None
    return Context(
        original=frozen,
        model=model,
        forget=(forget[0].to(device), forget[1].to(device)),
        retain=None if keep is None else (keep[0].to(device), keep[1].to(device)),
        num_classes=num_classes,
        forget_classes=tuple(forget_classes),
        seed=seed,
        device=device,
        profile=profile,
        generator=seed_everything(seed + 1 if generator_seed is None else generator_seed),
        backbone=backbone,
        shared={} if shared is None else shared,
    )


class Method:
    """Base class of every unlearning method (see module docstring)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    uses_retain: ClassVar[bool] = False
    Hparams: ClassVar[type[HParams]] = HParams
    # Per-profile defaults that differ from the dataclass defaults, each with its reason.
    profile_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, hp: HParams):
        self.hp = hp

    # ---------------------------------------------------------------- hooks
    def prepare(self, ctx: Context) -> None:
        """Precompute what the loss needs (default: nothing)."""

    def loss(self, ctx: Context, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} defines no loss")

    def after_backward(self, ctx: Context) -> None:
        """Edit gradients before the optimiser step (default: nothing)."""

    def after_epoch(self, ctx: Context, epoch: int) -> None:
        """Called after each unlearning epoch (default: nothing; monitoring scripts override it)."""

    def finish(self, ctx: Context) -> None:
        """One-shot edit after the loop (default: nothing)."""

    def trainable_parameters(self, ctx: Context):
        return ctx.model.parameters()

    def batches(self, ctx: Context, epoch: int) -> Iterator[Batch]:
        """One epoch's steps (default: shuffled forget batches, each with a retained batch if the
        method uses retained data; SCRUB alternates whole passes instead)."""
        return forget_retain_batches(self, ctx, epoch)

    @property
    def needs_retain(self) -> bool:
        return self.uses_retain

    # ---------------------------------------------------------------- driver
    def unlearn(self, ctx: Context) -> nn.Module:
        return run_unlearning(self, ctx)

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "hparams": self.hp.to_dict()}


def forget_retain_batches(method: Method, ctx: Context, epoch: int) -> Iterator[Batch]:
    """Shuffled forget batches; each with a random retained batch if the method uses retained data."""
    xf, yf = ctx.forget
    hp = method.hp
    for idx in batches(len(yf), hp.batch_size, shuffle=True, generator=ctx.generator):
        idx_d = idx.to(xf.device)
        b = Batch(idx=idx_d, x=xf[idx_d], y=yf[idx_d])
        ctx.counts["forget_batches"] += 1
        if method.needs_retain:
            if ctx.retain is None:
                raise MuError(f"{method.name} uses retained data but none was provided")
            xr, yr = ctx.retain
            ridx = torch.randint(len(yr), (hp.retain_batch,), generator=ctx.generator).to(xr.device)
            b.xr, b.yr = xr[ridx], yr[ridx]
            ctx.counts["retain_batches"] += 1
        yield b


def run_unlearning(method: Method, ctx: Context) -> nn.Module:
    """The shared loop: prepare, ``fit`` the method's loss over forget(+retain) batches, finish."""
    method.prepare(ctx)
    hp = method.hp
    epochs = hp.epochs or 0
    if epochs > 0:
        opt = make_optimizer(
            [p for p in method.trainable_parameters(ctx) if p.requires_grad],
            hp.lr,
            hp.momentum,
            hp.weight_decay,
            hp.optimizer,
        )
        fit(
            ctx.model,
            lambda epoch: method.batches(ctx, epoch),
            lambda batch: method.loss(ctx, batch),
            opt,
            epochs,
            device=ctx.device,
            bn_mode=hp.bn_mode,
            after_backward=lambda: method.after_backward(ctx),
            after_epoch=lambda epoch: method.after_epoch(ctx, epoch),
            desc=f"unlearn:{method.name}",
        )
    method.finish(ctx)
    ctx.model.eval()
    return ctx.model


# -------------------------------------------------------------------- registry

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError("a registered method needs a name")
    METHODS[cls.name] = cls
    return cls


def get_method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise MuError(
            f"unknown method {name!r}; choose one of {sorted(METHODS)} (see `mu methods`)"
        )
    return METHODS[name]


def parse_value(text: str) -> Any:
    """``--set`` values: JSON where it parses (numbers, true/false, null, lists), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _coerce(method: str, name: str, declared: Any, value: Any) -> Any:
    """``"3e-4"`` -> 3e-4 and ``1`` -> 1.0 for a float field, ``"10"`` -> 10 for an int field, so
    one setting spelled two ways is one configuration (and one cache entry)."""
    if isinstance(declared, str):  # postponed annotations: "float", "int | None", ...
        declared = declared.replace("| None", "").strip()
    kind = {"float": float, "int": int}.get(declared, declared)
    if kind not in (float, int) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) or (kind is float and isinstance(value, int)):
        try:
            return kind(float(value)) if kind is float else int(value)
        except ValueError:
            raise MuError(
                f"{method}: {name} must be a number, got {value!r} "
                f"(e.g. --set {name}={'0.1' if kind is float else '10'})"
            ) from None
    return value


def make_hparams(
    cls: type[Method],
    profile_name: str,
    overrides: dict[str, Any],
    default_epochs: int,
    profile_defaults: dict[str, dict[str, Any]] | None = None,
) -> HParams:
    """Dataclass defaults, then the method's profile defaults (``profile_defaults`` if given, else
    the class's and then what the tuning protocol chose, ``mu_lib/tuned/<profile>.json``), then
    the user's overrides."""
    fields = {f.name: f for f in dataclasses.fields(cls.Hparams)}
    table = cls.profile_defaults if profile_defaults is None else profile_defaults
    values: dict[str, Any] = dict(table.get(profile_name, {}))
    if profile_defaults is None:
        values.update(tuned.chosen(profile_name, cls.name))
    for k, v in overrides.items():
        if k not in fields:
            raise MuError(f"{cls.name} has no hyperparameter {k!r}; valid ones: {sorted(fields)}")
        values[k] = v
    try:
        hp = cls.Hparams(**values)
    except TypeError as err:
        raise MuError(f"bad hyperparameters for {cls.name}: {err}") from err
    if hp.epochs is None:
        hp.epochs = default_epochs
    from ..profiles import PROFILES

    default_batch = PROFILES[profile_name].unlearn_batch if profile_name in PROFILES else 128
    if hp.batch_size is None:
        hp.batch_size = default_batch
    if hp.retain_batch is None:
        hp.retain_batch = hp.batch_size
    for name, f in fields.items():  # coerce strings/ints to the declared numeric type
        setattr(hp, name, _coerce(cls.name, name, f.type, getattr(hp, name)))
    check_fields(cls.name, hp)  # types, finiteness, shared ranges: before the method's own checks
    hp.validate()
    return hp


def build_method(
    name: str,
    profile_name: str = "cpu",
    overrides: dict[str, Any] | None = None,
    default_epochs: int = 10,
    base: str | None = None,
) -> Method:
    """Instantiate a registered method; ``base`` plugs another method's loss into Spotter.

    Overrides prefixed ``base.`` go to the base method (e.g. ``base.lr=0.01``).
    """
    overrides = dict(overrides or {})
    base_over = {k[5:]: overrides.pop(k) for k in list(overrides) if k.startswith("base.")}
    cls = get_method_class(name)
    if base is not None:
        if not getattr(cls, "accepts_base", False):
            raise MuError(
                f"--base only applies to spotter (got method {name!r} with base {base!r})"
            )
        base_method = build_method(base, profile_name, base_over, default_epochs)
        if getattr(base_method, "accepts_base", False):
            raise MuError("the base of spotter must be another method, not spotter itself")
        # plugged in, Spotter changes only the loss: every optimisation setting is the base's,
        # unless set for Spotter itself (then the book shows the base with it too)
        hp = make_hparams(cls, profile_name, overrides, default_epochs, {})
        for name in OPTIMISATION_FIELDS:
            if name not in overrides:
                setattr(hp, name, getattr(base_method.hp, name))
        hp.validate()
        return cls(hp, base=base_method)  # type: ignore[call-arg]
    if base_over:
        raise MuError("base.* overrides need --base")
    return cls(make_hparams(cls, profile_name, overrides, default_epochs))
