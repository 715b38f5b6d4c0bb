"""Head masking: set the forget classes' rows of the classifier head to zero, nothing else.

It is the one-shot step the Fisher Forgetting reference code adds to its noise (mean 0 on the
forget rows).  On its own row so that the book can tell what it does from what the noise does:
it empties the forget classes without touching the features, so PRA restores them at once.
"""

from __future__ import annotations

import torch

from .base import Context, Method, register


@register
class HeadMask(Method):
    """Zero the forget-class rows (weight and bias) of the head (forget class ids only)."""

    name = "head_mask"
    summary = "zero the forget classes' rows of the classifier head (no training, no data)"
    source = "the forget-row step of Golatkar et al.'s Fisher Forgetting code, on its own"

    def unlearn(self, ctx: Context):
        rows = list(ctx.forget_classes)
        with torch.no_grad():
            ctx.model.head.weight[rows] = 0.0
            if ctx.model.head.bias is not None:
                ctx.model.head.bias[rows] = 0.0
        ctx.model.eval()
        return ctx.model
