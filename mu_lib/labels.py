"""Display labels: one place that says how a method, a configuration and a dataset are named on
the book's pages and in the saved result files (the paper's names, real dataset names).

Registry keys (``boundary_shrink``) and the paper's table keys (``Spotter (lambda2=1)``) stay the
join keys of the code; these functions only turn them into what a reader sees.
"""

from __future__ import annotations

import re

from .paper import PAPER_NAMES

# Registry name -> the name on a page: the paper's, and ours for methods the paper does not have.
METHOD_NAMES = {**PAPER_NAMES, "scrub": "SCRUB", "head_mask": "Head masking"}

# Our dataset name -> how it is written.
DATASET_NAMES = {
    "digits": "digits (8×8)",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "tinyimagenet": "Tiny-ImageNet",
}

PAPER_DATASETS = ("CIFAR-10", "CIFAR-100")

# "spotter (λ2=1)", "Spotter (lambda2=1)", "spotter (l2=0.1)", "Spotter (λ2 = 1)" ...
_SPOTTER = re.compile(
    r"^\s*spotter\s*\(\s*(?:λ2|lambda2|l2)\s*=\s*([0-9.eE+-]+)\s*\)(.*)$", re.I | re.S
)
# "salun + spotter", "SalUn + Spotter"
_PLUGGED = re.compile(r"^\s*(.+?)\s*\+\s*spotter\s*$", re.I)

_BY_LOWER = {v.lower(): v for v in METHOD_NAMES.values()}


def _number(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def method_label(method: str, base: str | None = None, lambda2: float | None = None) -> str:
    """How a method is named on a page: ``Boundary Shrink``, ``Spotter (λ2 = 1)``,
    ``SalUn + Spotter``.  ``method`` may be a registry key, the paper's name or an earlier label
    (``spotter (λ2=1)``, ``Spotter (lambda2=1)``); anything unknown is returned unchanged."""
    if base is not None:
        return f"{method_label(base)} + Spotter"
    text = str(method)
    m = _SPOTTER.match(text)
    if m:  # a suffix such as " (authors' settings)" is kept
        return f"Spotter (λ2 = {_number(m.group(1))})" + m.group(2).rstrip()
    m = _PLUGGED.match(text)
    if m and m.group(1).lower() != "spotter":
        return f"{method_label(m.group(1))} + Spotter"
    if text in METHOD_NAMES:
        name = METHOD_NAMES[text]
    else:
        name = _BY_LOWER.get(text.strip().lower(), text)
    if name == "Spotter" and lambda2 is not None:
        return f"Spotter (λ2 = {lambda2:g})"
    return name


def config_label(cfg) -> str:
    """The label of one run configuration (an ``experiment.RunConfig`` or its dict)."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    overrides = get("overrides") or {}
    lam = overrides.get("lambda2") if get("method") == "spotter" else None
    return method_label(get("method"), base=get("base"), lambda2=lam)


def dataset_label(name: str) -> str:
    """``fashion-mnist`` -> ``Fashion-MNIST``; unknown names unchanged."""
    return DATASET_NAMES.get(str(name), str(name))


def real_dataset(paper_dataset: str, profile) -> str:
    """Our dataset that stands in for the paper's ``CIFAR-10`` / ``CIFAR-100`` column under
    ``profile`` (a ``Profile`` or its name), as a display name."""
    from .profiles import get_profile

    p = get_profile(profile)
    if paper_dataset == "CIFAR-100":
        return dataset_label(p.dataset_many)
    if paper_dataset == "CIFAR-10":
        return dataset_label(p.dataset)
    return dataset_label(paper_dataset)


def stand_ins(profile) -> dict[str, str]:
    """``{paper dataset: our dataset}`` of a profile, display names."""
    return {d: real_dataset(d, profile) for d in PAPER_DATASETS}


METHOD_COLUMNS = ("method", "model", "label", "paper_row", "baseline")
DATASET_COLUMNS = ("dataset", "group", "paper_dataset")
STANDS_IN = "stands in for"


def _numeric(col) -> bool:
    from pandas.api.types import is_numeric_dtype

    return is_numeric_dtype(col)


def relabel_frame(df, profile=None):
    """A copy of a result table with readable method names, and, where a column holds the paper's
    dataset names (``CIFAR-10``), the real dataset in ``dataset`` and the paper's in a separate
    ``stands in for`` column (needs ``profile``; with the ``paper`` profile they are the same)."""
    out = df.copy()
    for c in METHOD_COLUMNS:
        if c in out.columns and not _numeric(out[c]):
            out[c] = [method_label(v) if isinstance(v, str) else v for v in out[c]]
    if profile is None or STANDS_IN in out.columns:
        return out
    for c in DATASET_COLUMNS:
        if c not in out.columns or _numeric(out[c]):
            continue
        values = [v for v in out[c].dropna().unique() if isinstance(v, str)]
        if not values or not all(v in PAPER_DATASETS for v in values):
            continue
        at = list(out.columns).index(c)
        paper_col = out.pop(c)
        if "dataset" in out.columns:  # the real dataset is already there: keep it, name it
            out["dataset"] = [dataset_label(v) for v in out["dataset"]]
            out.insert(at, STANDS_IN, paper_col)
        else:
            real = [real_dataset(v, profile) if isinstance(v, str) else v for v in paper_col]
            out.insert(at, "dataset", real)
            out.insert(at + 1, STANDS_IN, paper_col)
        break
    return out
