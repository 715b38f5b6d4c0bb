"""Unlearning methods: one registry (``METHODS``), one shared loop (``run_unlearning``)."""

from . import (  # noqa: F401  (register the methods)
    boundary,
    fisher,
    head_mask,
    l2ul,
    neggrad,
    random_label,
    salun,
    scrub,
    simple,
    spotter,
    unsc,
)
from .base import (
    METHODS,
    Batch,
    Context,
    HParams,
    Method,
    build_method,
    get_method_class,
    make_context,
    register,
    run_unlearning,
)

__all__ = [
    "METHODS",
    "Batch",
    "Context",
    "HParams",
    "Method",
    "build_method",
    "get_method_class",
    "make_context",
    "register",
    "run_unlearning",
]
