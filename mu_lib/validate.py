"""Checks of user settings (type, range, finiteness), run before any data loads or model trains.

Every error names the setting, the bad value, what is allowed and how to fix it.  Imports only
torch and the package root, so any module may use it.
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral, Real
from typing import Any

from . import MuError

SEED_MAX = 2**63 - 2  # torch takes 64-bit seeds; runs also use seed + 1


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None, fix: str = ""):
    """A whole number (bools, 1.5, NaN and strings refused; 2.0 -> 2) within [lo, hi]."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise MuError(f"{name} must be a whole number, got {value!r}{_fix(fix)}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise MuError(f"{name} must be in [{_b(lo)}, {_b(hi, 'inf')}], got {value}{_fix(fix)}")
    return value


def check_float(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    fix: str = "",
) -> float:
    """A finite real number (bools, NaN, inf, strings and lists refused) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise MuError(f"{name} must be a number, got {value!r}{_fix(fix)}")
    value = float(value)
    if not math.isfinite(value):
        raise MuError(f"{name} must be a finite number, got {value}{_fix(fix)}")
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
    if bad_lo or bad_hi:
        span = f"{'(' if lo_open else '['}{_b(lo)}, {_b(hi, 'inf')}{')' if hi_open else ']'}"
        raise MuError(f"{name} must be in {span}, got {value:g}{_fix(fix)}")
    return value


def _b(x, none: str = "-inf") -> str:
    return none if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def _fix(fix: str) -> str:
    return f"; {fix}" if fix else ""


def check_device(device: Any) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` (an existing GPU) or ``mps`` (where available)."""
    import torch

    hint = "use --device auto, cpu" + (" or cuda" if torch.cuda.is_available() else "")
    if not isinstance(device, str):
        raise MuError(f"device must be a string, got {device!r}; {hint}")
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MuError(f"device {device!r} requested but CUDA is not available; {hint}")
        index = device[5:]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise MuError(
                f"device {device!r}: this machine has GPUs 0..{torch.cuda.device_count() - 1}; "
                f"{hint}"
            )
        return device
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise MuError(f"device 'mps' requested but Apple's MPS is not available here; {hint}")
        return device
    raise MuError(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps; {hint}")


def check_optional_str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise MuError(f"{name} must be a name (a string) or None, got {value!r}")


# Ranges of hyperparameters that several methods share (a method's ``validate`` adds its own).
SHARED_RANGES: dict[str, dict[str, Any]] = {
    "lr": {"lo": 0.0, "lo_open": True},
    "momentum": {"lo": 0.0, "hi": 1.0, "hi_open": True},
    "weight_decay": {"lo": 0.0},
    "epochs": {"lo": 0},
    "batch_size": {"lo": 1},
    "retain_batch": {"lo": 1},
}


def _declared(field: dataclasses.Field) -> tuple[str, bool]:
    """(base type name, None allowed) of a dataclass field (annotations may be strings)."""
    t = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    t = str(t).replace(" ", "")
    optional = "None" in t.split("|") or t.startswith("Optional[")
    base = [p for p in t.split("|") if p != "None"]
    return (base[0] if len(base) == 1 else ""), optional


def check_fields(owner: str, obj: Any) -> None:
    """Type, finiteness and shared ranges of every int / float / bool / str field of ``obj``."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind, optional = _declared(f)
        if value is None and optional:
            continue
        name = f"{owner}: {f.name}"
        fix = f"e.g. --set {f.name}=" + {"float": "0.1", "int": "10", "bool": "true"}.get(kind, "")
        rng = SHARED_RANGES.get(f.name, {})
        if kind == "float":
            setattr(obj, f.name, check_float(name, value, fix=fix, **rng))
        elif kind == "int":
            setattr(obj, f.name, check_int(name, value, rng.get("lo"), rng.get("hi"), fix=fix))
        elif kind == "bool" and not isinstance(value, bool):
            raise MuError(f"{name} must be true or false, got {value!r} ({fix})")
        elif kind == "str" and not isinstance(value, str):
            raise MuError(f"{name} must be a string, got {value!r}")


def check_run_settings(cfg: Any) -> None:
    """Types and ranges of a ``RunConfig``'s own fields (the method's are checked when it is
    built, the dataset's classes when the split is made); all before any compute."""
    for name in ("method", "dataset", "base", "profile", "backbone"):
        check_optional_str(name, getattr(cfg, name))
    if cfg.method is None:
        raise MuError("method must be a method name, e.g. 'spotter' (see `mu methods`)")
    cfg.seed = check_int("seed", cfg.seed, 0, SEED_MAX, fix="use e.g. --seed 0")
    classes = cfg.forget_classes
    if isinstance(classes, str | bytes) or not hasattr(classes, "__iter__"):
        if isinstance(classes, Integral) and not isinstance(classes, bool):
            classes = (classes,)
        else:
            raise MuError(f"forget_classes must be a list of class indices, got {classes!r}")
    cfg.forget_classes = tuple(
        check_int("forget class", c, 0, fix="use e.g. --forget-classes 0,3") for c in classes
    )
    if cfg.pra_k is not None:
        cfg.pra_k = check_int("pra_k (PRA shots per class)", cfg.pra_k, 1, fix="e.g. --k 5")
    if cfg.eval_eps is not None:
        cfg.eval_eps = check_float(
            "eval_eps", cfg.eval_eps, 0.0, 1.0, fix="a radius in [0, 1] pixel units, e.g. 0.03"
        )
    alphas = cfg.alphas
    if isinstance(alphas, str | bytes) or not hasattr(alphas, "__iter__") or not len(alphas):
        raise MuError(f"alphas must be a non-empty list of numbers in [0, 1], got {alphas!r}")
    cfg.alphas = tuple(
        check_float("PRA alpha", a, 0.0, 1.0, fix="e.g. --alphas 1,0.8,0.6") for a in alphas
    )
    if not isinstance(cfg.overrides, dict) or not all(isinstance(k, str) for k in cfg.overrides):
        raise MuError(f"overrides must be a dict of hyperparameter names, got {cfg.overrides!r}")
    if cfg.device != "auto":
        check_device(cfg.device)


def probe_writable(folder) -> None:
    """Create ``folder`` if missing and write and remove a probe file in it (raises OSError): the
    one test of writability, for the cache and for output files, before any compute."""
    import os
    import tempfile
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
    os.close(fd)
    os.remove(tmp)


def check_output_file(path: Any, flag: str) -> None:
    """``path`` can be written (its folder is created if missing): checked before any compute."""
    import os
    from pathlib import Path

    if not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise MuError(f"{flag} needs a file path, got {path!r}")
    p = Path(path).expanduser()
    if p.is_dir():
        raise MuError(f"{flag} {path} is a folder; give a file path, e.g. {p / 'results.json'}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MuError(
                    f"{flag} {path}: {parent} is a file, not a folder; choose another path"
                )
            break
    try:
        probe_writable(p.parent)
    except OSError as err:
        raise MuError(
            f"{flag} {path}: cannot write in {p.parent} ({err.strerror or err}); choose a "
            "writable path"
        ) from None
    if p.exists() and not os.access(p, os.W_OK):
        raise MuError(f"{flag} {path} exists and is read-only; choose another path")


# ------------------------------------------------------------------ chapter (papermill) parameters

_NO_LITERAL = object()  # a default that is not a literal (an expression): any value is accepted


def _assignments(source: str) -> dict[str, Any]:
    """``name -> literal default`` of the top-level assignments of a cell's source."""
    import ast

    out: dict[str, Any] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    try:
                        out[t.id] = ast.literal_eval(node.value) if node.value else None
                    except ValueError:
                        out[t.id] = _NO_LITERAL
    return out


def _parse_literal(text: str) -> Any:
    import ast
    import json

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _NO_LITERAL


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def check_parameter(name: str, default: Any, value: Any) -> Any:
    """``value`` given for a chapter parameter whose default is ``default``, in the default's
    type: a string papermill passed for a list, number or dict is parsed, never iterated."""
    kind = type(default)
    if default is _NO_LITERAL or value is None:  # None: "the profile's choice" in chapters
        return value
    text = isinstance(value, str)
    if text and (default is None or kind in (int, float, bool, list, tuple, dict)):
        parsed = _parse_literal(value.strip())
        if parsed is _NO_LITERAL and kind is float:
            try:  # "nan", "inf": refused below as not finite
                parsed = float(value)
            except ValueError:
                pass
        if parsed is not _NO_LITERAL and not (default is None and isinstance(parsed, str)):
            value = parsed
        elif kind in (list, tuple, dict):
            example = "[0, 1, 2]" if kind is not dict else '{"key": 1}'
            raise MuError(
                f"chapter parameter {name} expects a {kind.__name__} (default {default!r}), got "
                f"the string {value!r}; pass it as a literal, e.g. -y {name} '{example}' or "
                f"-p {name} '{example}'"
            )
    if _non_finite(value):
        raise MuError(f"chapter parameter {name} must be finite, got {value!r}")
    fix = f"e.g. -p {name} {default!r}"
    if default is None or kind is str:
        if kind is str and isinstance(value, list | tuple | dict):
            raise MuError(f"chapter parameter {name} expects a single value, got {value!r}; {fix}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise MuError(f"chapter parameter {name} must be True or False, got {value!r}; {fix}")
    if kind is int:
        return check_int(f"chapter parameter {name}", value, fix=fix)
    if kind is float:
        return check_float(f"chapter parameter {name}", value, fix=fix)
    if kind in (list, tuple):
        if not isinstance(value, list | tuple):
            raise MuError(
                f"chapter parameter {name} expects a list (default {default!r}), got {value!r}; "
                f"e.g. -y {name} '{list(default) or [0]}'"
            )
        return kind(value)
    if kind is dict and not isinstance(value, dict):
        raise MuError(f"chapter parameter {name} expects a dict, got {value!r}; {fix}")
    return value


def check_chapter_parameters(namespace: dict[str, Any]) -> None:
    """Called by each chapter right after its ``parameters`` cell: the parameters papermill
    injected (its ``# Parameters`` cell) must be ones the parameters cell declares, and each is
    converted to its default's type (``-p seeds "[0, 1]"`` arrives as a string) or refused.

    The cells come from IPython's input history (``_ih``), so the check sees exactly what ran;
    outside IPython, or with nothing injected, there is nothing to check."""
    history = namespace.get("_ih") or namespace.get("In") or []
    cells = [c for c in list(history)[:-1] if isinstance(c, str)]  # the last is this cell
    injected = next(
        (i for i in range(len(cells) - 1, 0, -1) if cells[i].lstrip().startswith("# Parameters")),
        None,
    )
    if injected is None:
        return
    declared = _assignments(cells[injected - 1])
    given = _assignments(cells[injected])
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise MuError(
            f"this chapter has no parameter {', '.join(map(repr, unknown))}; its parameters are "
            f"{', '.join(declared)} (check the spelling of papermill's -p / -y names)"
        )
    for name in given:
        namespace[name] = check_parameter(name, declared[name], namespace.get(name))
