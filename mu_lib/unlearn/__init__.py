"""Unlearning methods: one registry (``METHODS``), one shared loop (``run_unlearning``)."""

from . import simple, spotter  # noqa: F401  (register the methods)
from .base import (
    METHODS,
    Batch,
    Context,
    HParams,
    Method,
    build_method,
    get_method_class,
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
    "register",
    "run_unlearning",
]
