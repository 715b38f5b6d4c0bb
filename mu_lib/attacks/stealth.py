"""The attacker's stealth rule, shared by every relearning attack in the book.

An attack that wrecks the model's utility would be noticed, so the paper keeps only attack
strengths whose retained accuracy stays within ``tolerance`` points of the unattacked model's
(section 5.1: Acc*_r >= Acc_r - 1).  PRA applies it to its interpolation factor alpha, fine-tuning
relearning to its learning rate, so the two attacks are compared on the same budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import MuError


def strongest_stealthy(
    forget_acc: Sequence[float],
    retain_acc: Sequence[float],
    baseline_retain_acc: float,
    tolerance: float = 1.0,
) -> int:
    """Index of the strongest attack that keeps retained accuracy within ``tolerance`` points.

    The candidates are ordered from the mildest to the strongest setting.  Among those within
    budget the one with the highest forget accuracy wins (a tie goes to the stronger setting); if
    none is within budget, the mildest (index 0) is reported.
    """
    if len(forget_acc) != len(retain_acc) or not forget_acc:
        raise MuError("strongest_stealthy needs one retained accuracy per attack, and at least one")
    if tolerance < 0:
        raise MuError(f"tolerance must be >= 0 points, got {tolerance}")
    ok = [i for i, r in enumerate(retain_acc) if r >= baseline_retain_acc - tolerance]
    if not ok:
        return 0
    return max(ok, key=lambda i: (forget_acc[i], i))
