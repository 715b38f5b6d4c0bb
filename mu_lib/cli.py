"""The ``mu`` command: ``run``, ``methods``, ``sweep``, ``book``, ``cache``, ``audit``."""

from __future__ import annotations

import argparse
import sys

from . import MuError, __version__


def parse_sets(items: list[str] | None) -> dict:
    """``--set key=value`` pairs into a dict (values parsed as JSON where possible)."""
    from .unlearn.base import parse_value

    out = {}
    for item in items or []:
        if "=" not in item:
            raise MuError(f"--set expects key=value, got {item!r} (e.g. --set lambda2=0.1)")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out


def parse_classes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip() != "")
    except ValueError as err:
        raise MuError(f"--forget-classes expects comma-separated integers, got {text!r}") from err


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="dataset (default: the profile's)")
    p.add_argument("--method", default="spotter", help="unlearning method (see `mu methods`)")
    p.add_argument("--base", default=None, help="plug this method's loss into Spotter as L_u")
    p.add_argument(
        "--profile", default=None, help="smoke | cpu | paper (default: MU_PROFILE, CI, cpu)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forget-classes", default="0", help="comma-separated, e.g. 3,7")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="method hyperparameter override"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--k", type=int, default=None, help="PRA shots per forget class")
    p.add_argument(
        "--pra-form", default="cos", choices=["cos", "l2"], help="prototype form (paper: cos)"
    )
    p.add_argument(
        "--alphas", default=None, help="PRA alpha grid, comma-separated values in [0, 1]"
    )


def config_from_args(args) -> object:
    from .experiment import RunConfig
    from .profiles import get_profile

    get_profile(args.profile)  # validate early
    kw = dict(
        method=args.method,
        dataset=args.dataset,
        base=args.base,
        profile=args.profile,
        seed=args.seed,
        forget_classes=parse_classes(args.forget_classes),
        overrides=parse_sets(args.set),
        device=args.device,
        pra_k=args.k,
        pra_form=args.pra_form,
    )
    if args.alphas:
        try:
            kw["alphas"] = tuple(float(a) for a in args.alphas.split(","))
        except ValueError as err:
            raise MuError(
                f"--alphas expects comma-separated numbers in [0, 1], got {args.alphas!r}"
            ) from err
    return RunConfig(**kw)


def cmd_run(args) -> int:
    from .experiment import run
    from .metrics import HEADLINE_METRICS

    cfg = config_from_args(args)
    res = run(cfg)
    if args.json:
        print(res.to_json())
    else:
        m = res.metrics
        print(
            f"{cfg.method}{' + ' + cfg.base if cfg.base else ''} on {res.config['dataset']} "
            f"(profile {res.config['profile']}, seed {cfg.seed}, forget {list(cfg.forget_classes)})"
        )
        for k in HEADLINE_METRICS:
            v = m[k]
            print(f"  {k:12s} {v:.4f}" if k.startswith("ou") else f"  {k:12s} {v:.2f}")
    return 0


def cmd_methods(args) -> int:
    from .unlearn import METHODS

    for name, cls in sorted(METHODS.items()):
        tag = "retain" if cls.uses_retain else "forget-only"
        print(f"{name:16s} [{tag:11s}] {cls.summary}")
    return 0


def chapter_params(p_items: list | None, y_items: list | None) -> dict:
    """``-p key value`` and ``-y key yaml`` pairs as papermill reads them: ``-p`` values stay
    strings for papermill to type, except a list or mapping (``-p seeds "[0, 1, 2]"``), which is
    read as YAML like ``-y``."""
    import yaml

    out: dict = {}
    for key, text in p_items or []:
        out[key] = yaml.safe_load(text) if text.lstrip()[:1] in ("[", "{") else text
    for key, text in y_items or []:
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise MuError(
                f"-y {key} expects YAML, e.g. -y {key} '[0, 1, 2]'; got {text!r}"
            ) from err
    return out


def cmd_book(args) -> int:
    from .book import build_book
    from .profiles import get_profile

    params = chapter_params(args.p, args.y)
    if "profile" in params:
        if args.profile and args.profile != params["profile"]:
            raise MuError(f"--profile {args.profile} and -p profile {params['profile']} disagree")
        args.profile = str(params.pop("profile"))
    if params and not args.chapter:
        raise MuError("-p/-y apply to one chapter's parameters: name it with --chapter NAME")
    prof = get_profile(args.profile).name
    build_book(
        prof,
        chapters=args.chapter or None,
        skip_build=args.no_build,
        params=params,
        jobs=args.jobs,
        rerun=args.rerun,
    )
    return 0


def cmd_cache(args) -> int:
    from .store import Store

    s = Store()
    if args.action == "ls":
        entries = s.entries()
        for e in entries:
            print(f"{e['kind']:8s} {e['bytes']:>10d}  {e['file']}")
        print(f"{len(entries)} entries under {s.root}")
    elif args.action == "clear":
        print(f"removed {s.clear()} entries from {s.root}")
    return 0


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def cmd_sweep(args) -> int:
    """``mu sweep``: build the grid, run it, print a summary and optionally write JSON."""
    import json
    import time
    from pathlib import Path

    from .experiment import result_key, store
    from .store import finite_json
    from .sweep import grid, pending, summary_table, sweep
    from .validate import check_output_file

    if args.json_out:
        check_output_file(args.json_out, "--json-out")  # before any run, not after
    try:
        seeds = [int(s) for s in _csv(args.seeds)] if args.seeds else None
    except ValueError as err:
        raise MuError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from err
    bases = _csv(args.bases)
    if bases:
        bases = [None if b.lower() == "none" else b for b in bases]
    configs = grid(
        methods=_csv(args.methods) or [],
        seeds=seeds,
        datasets=_csv(args.datasets),
        bases=bases,
        overrides=[parse_sets(args.set)],
        profile=args.profile,
        forget_classes=parse_classes(args.forget_classes),
        device=args.device,
    )
    todo = len(pending(configs))
    print(
        f"[mu sweep] {len(configs)} runs, {len(configs) - todo} cached, {todo} to run "
        f"({args.executor})",
        flush=True,
    )
    t0 = time.perf_counter()
    results = sweep(
        configs,
        args.executor,
        threads=args.threads,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        address=args.address,
    )
    print(summary_table(results))
    print(f"[mu sweep] done in {time.perf_counter() - t0:.1f}s; results in {store().root}")
    if args.json_out:
        records = [
            {
                "key": result_key(c),
                "config": r.config,
                "metrics": r.metrics,
                "timings": r.timings,
                "cached": r.cached,
            }
            for c, r in zip(configs, results, strict=True)
        ]
        path = Path(args.json_out).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = finite_json(json.loads(json.dumps(records, default=str)))[0]
        path.write_text(json.dumps(clean, indent=1, allow_nan=False))
    return 0


def add_sweep_parser(sub) -> None:
    """Add ``mu sweep`` (without importing torch: ``mu --help`` stays fast)."""
    p = sub.add_parser(
        "sweep",
        help="run a grid of configurations (local or Ray) into the result cache",
        description="Run methods x seeds x datasets (x bases) into the result cache; runs "
        "already cached are skipped, so an interrupted sweep resumes where it stopped.",
    )
    p.add_argument("--methods", default="spotter", help="comma-separated, e.g. delete,spotter")
    p.add_argument("--seeds", default=None, help="comma-separated (default: the profile's seeds)")
    p.add_argument("--datasets", default=None, help="comma-separated (default: the profile's)")
    p.add_argument(
        "--bases", default=None, help="comma-separated bases for spotter; 'none' for plain spotter"
    )
    p.add_argument("--profile", default=None, help="smoke | cpu | paper")
    # sweep.sweep checks the executor against sweep.EXECUTORS (importing it here costs torch).
    p.add_argument("--executor", default="local", help="local | ray")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="hyperparameter override, applied to the methods that have it",
    )
    p.add_argument("--forget-classes", default="0", help="comma-separated, e.g. 3,7")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run")
    p.add_argument(
        "--gpus-per-task",
        type=float,
        default=None,
        help="Ray: GPUs per run (default 1 with CUDA, else 0; fractions share a GPU)",
    )
    p.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs per run")
    p.add_argument("--address", default=None, help="Ray: address of a running cluster")
    p.add_argument("--json-out", default=None, metavar="PATH", help="write all results as JSON")
    p.set_defaults(fn=cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mu", description="Class-level unlearning, its blind spots and Spotter"
    )
    ap.add_argument("--version", action="version", version=f"mu_lib {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="run one configuration and print its metrics")
    add_run_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("methods", help="list the unlearning methods")
    p.set_defaults(fn=cmd_methods)

    p = sub.add_parser("book", help="execute the chapters and build the HTML book")
    p.add_argument("--profile", default=None)
    p.add_argument("--chapter", action="append", help="only these chapters (repeatable)")
    p.add_argument("--no-build", action="store_true", help="execute notebooks only")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="execute every chapter, also those whose inputs are unchanged since their last run",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="chapters run side by side, one thread each (default: $MU_BOOK_JOBS or the cores)",
    )
    p.add_argument(
        "-p",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="chapter parameter, as papermill's -p (e.g. -p seed 3); repeatable",
    )
    p.add_argument(
        "-y",
        nargs=2,
        action="append",
        metavar=("KEY", "YAML"),
        help="chapter parameter as YAML, as papermill's -y (e.g. -y seeds '[0, 1, 2]')",
    )
    p.set_defaults(fn=cmd_book)

    p = sub.add_parser("cache", help="inspect or clear the result cache")
    p.add_argument("action", choices=["ls", "clear"])
    p.set_defaults(fn=cmd_cache)

    from .audit_cli import add_audit_parser

    add_audit_parser(sub)

    add_sweep_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except MuError as err:
        print(f"mu: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
