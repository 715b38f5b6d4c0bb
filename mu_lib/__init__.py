"""mu_lib: class-level machine unlearning, its blind spots (over-unlearning, prototypical
relearning) and the Spotter remedy, as a small GPU-ready library."""

__version__ = "0.1.0"


class MuError(ValueError):
    """A user-facing error: the message names the bad value, the allowed values and the fix."""
