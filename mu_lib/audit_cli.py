"""``mu audit``'s arguments and command (kept apart from ``audit.py`` so that ``mu --help`` does
not import torch)."""

from __future__ import annotations

import argparse
import json

from . import MuError


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise MuError(f"{flag} expects comma-separated numbers, got {text!r}") from err


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise MuError(f"{flag} expects comma-separated integers, got {text!r}") from err


def add_audit_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "audit",
        help="blind-spot checks of an unlearned classifier against its original",
        description="Measure over-unlearning and relearning attacks (PRA, fine-tuning, k-NN, "
        "linear probe) of an unlearned model, with the original's values beside it.",
    )
    p.add_argument(
        "--arch",
        required=True,
        help="a registry backbone (e.g. cnn_small), a torchvision model (e.g. resnet18) or a "
        "timm model; prefix registry:, torchvision: or timm: when a name is in several",
    )
    p.add_argument(
        "--original", required=True, help="checkpoint: .safetensors or .pt/.pth state dict"
    )
    p.add_argument("--unlearned", required=True, help="checkpoint of the unlearned model")
    p.add_argument(
        "--data", required=True, help="image folder (one sub-folder per class) or dataset"
    )
    p.add_argument("--forget-classes", required=True, help="comma-separated class indices, e.g. 3")
    p.add_argument("--num-classes", type=int, default=None, help="classes of the head (checked)")
    p.add_argument("--report", default=None, help="folder for audit.json, report.md and figures")
    p.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
    p.add_argument("--mean", default=None, help="input normalisation mean, e.g. 0.5,0.5,0.5")
    p.add_argument("--std", default=None, help="input normalisation std, e.g. 0.25,0.25,0.25")
    p.add_argument("--head-layer", default=None, help="name of the final nn.Linear if ambiguous")
    p.add_argument("--k", default="5,20,100", help="shots per class for PRA, k-NN and the probe")
    p.add_argument("--max-per-class", type=int, default=None, help="cap images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-relearn", action="store_true", help="skip fine-tuning relearning")
    p.add_argument("--mra", action="store_true", help="also run the Membership Recall Attack")
    p.add_argument("--json", action="store_true", help="print the JSON record, not the summary")
    p.set_defaults(fn=cmd_audit)
    return p


def cmd_audit(args) -> int:
    from .audit import AuditSettings, audit_files

    settings = AuditSettings(
        ks=_ints(args.k, "--k"),
        seed=args.seed,
        relearn=not args.no_relearn,
        mra=args.mra,
        device=args.device,
    )
    res = audit_files(
        args.arch,
        args.original,
        args.unlearned,
        args.data,
        _ints(args.forget_classes, "--forget-classes"),
        num_classes=args.num_classes,
        report=args.report,
        size=args.size,
        mean=_floats(args.mean, "--mean"),
        std=_floats(args.std, "--std"),
        layer=args.head_layer,
        max_per_class=args.max_per_class,
        settings=settings,
    )
    if args.json:
        print(json.dumps(res.record, indent=2, default=float))
    else:
        where = f" -> {args.report}" if args.report else ""
        print(f"mu audit: {res.summary}{where}")
    return 0
