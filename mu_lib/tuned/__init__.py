"""What the tuning protocol chose, per profile (``mu_lib.tuning`` writes these files;
``python benchmarks/tune.py --profile cpu`` re-runs it).

``<profile>.json`` holds the choice of each view (``default``: forget with the least change, the
methods' defaults; ``pra``: tuned against PRA), ``<profile>_trials.csv`` every trial and
``<profile>_selection.csv`` the table the choice was read from.  It imports only ``MuError``, so
that the method registry can read it without an import cycle.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from .. import MuError

VIEWS = ("default", "pra")


@cache
def selection(profile: str) -> dict[str, Any]:
    """The stored choice for ``profile`` ({} when the protocol was never run for it)."""
    f = resources.files(__name__) / f"{profile}.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def chosen(profile: str, method: str, view: str = "default") -> dict[str, Any]:
    """Hyperparameters the protocol chose for ``method`` on ``profile`` ({} if not tuned there)."""
    if view not in VIEWS:
        raise MuError(f"unknown tuning view {view!r}; choose one of {VIEWS}")
    return dict(selection(profile).get(view, {}).get(method, {}))
