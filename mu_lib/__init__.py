"""mu_lib: class-level machine unlearning, its blind spots (over-unlearning, prototypical
relearning) and the Spotter remedy, as a small GPU-ready library."""

__version__ = "0.2.0"


class MuError(ValueError):
    """A user-facing error: the message names the bad value, the allowed values and the fix."""


class Diverged(MuError):
    """A run whose loss or weights became NaN/inf: nothing of it was stored.  Callers that record
    a diverged run as a result (a table row, a failed attack) catch this type, not a message."""


def __getattr__(name: str):
    # ``mu_lib.unlearn`` is the package of methods; the one-call API is ``mu_lib.unlearn_model``
    # (imported lazily: ``import mu_lib`` stays free of torch for the CLI's start-up).
    if name == "unlearn_model":
        from .api import unlearn

        return unlearn
    raise AttributeError(f"module 'mu_lib' has no attribute {name!r}")
