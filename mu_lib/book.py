"""Build the book: jupytext sources -> notebooks -> papermill (with the chosen profile) ->
``book/generated/`` -> ``jupyter-book build -W -n --keep-going`` (fails loudly on any cell error
or broken reference).  Run times of every chapter go to ``book/generated/results/status.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import MuError

# Execution order; the last two read what the chapters saved.
CHAPTERS: list[str] = [
    "s3_1_over_unlearning",
    "s3_2_relearning",
    "s5_2_main_results",
    "s5_3_identity",
    "s5_4_ablations",
    "appA_gaussian_ou",
    "appB_pra",
    "appD_larger_datasets",
    "appE_transformers",
    "appF_repeated_pra",
    "appG_sequential",
    "appH_forget_ratio",
    "x1_membership_recall",
    "x2_reconstruction",
    "claims",
    "reproduction_report",
    "status",
]


def repo_root() -> Path:
    here = Path.cwd()
    for d in [here, *here.parents]:
        if (d / "_toc.yml").exists() and (d / "notebooks").is_dir():
            return d
    raise MuError(
        "run `mu book` from the repository root (the folder with _toc.yml and notebooks/)"
    )


def available_chapters(root: Path) -> list[str]:
    return [c for c in CHAPTERS if (root / "notebooks" / f"{c}.md").exists()]


def execute_chapter(
    root: Path, name: str, profile: str, params: dict | None = None, out_dir: Path | None = None
) -> float:
    """jupytext -> papermill one chapter into ``out_dir`` (default book/generated); returns seconds.
    ``params``: scalars go to papermill as ``-p``, lists, tuples and dicts as ``-y`` (YAML); a name
    the chapter's parameters cell does not define is an error before anything runs."""
    from .book_pages import check_parameters, finish_notebook

    src = root / "notebooks" / f"{name}.md"
    if name not in CHAPTERS or not src.exists():  # a name, never a path (../README)
        raise MuError(f"no chapter {name!r}; available: {available_chapters(root)}")
    check_parameters(src, name, [*(params or {}), "profile"])
    out_dir = out_dir or root / "book" / "generated"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = root / "build" / "ipynb"
    tmp.mkdir(parents=True, exist_ok=True)
    raw = tmp / f"{name}.ipynb"
    bindir = Path(sys.executable).parent
    subprocess.run(
        [str(bindir / "jupytext"), "--quiet", "--to", "ipynb", "-o", str(raw), str(src)], check=True
    )
    args = [
        str(bindir / "papermill"),
        str(raw),
        str(out_dir / f"{name}.ipynb"),
        "--cwd",
        str(root),
        "-p",
        "profile",
        profile,
        "--kernel",
        "python3",
    ]
    if os.environ.get("CI") or os.environ.get("MU_QUIET"):
        args.append("--no-progress-bar")
    for k, v in (params or {}).items():
        if isinstance(v, (list, tuple, dict)):
            # papermill's -y takes a YAML mapping (JSON is YAML): one per parameter
            args += ["-y", json.dumps({k: list(v) if isinstance(v, tuple) else v})]
        else:
            args += ["-p", k, str(v)]
    t0 = time.perf_counter()
    out = out_dir / f"{name}.ipynb"
    done = subprocess.run(args, cwd=root)
    if done.returncode != 0:
        raise MuError(
            f"chapter {name} failed on profile {profile} (papermill exit {done.returncode}); "
            f"the executed notebook with the failing cell is {out}"
        )
    secs = time.perf_counter() - t0
    finish_notebook(out, name, src, {"profile": profile, **(params or {})})
    return secs


def build_book(
    profile: str,
    chapters: list[str] | None = None,
    skip_build: bool = False,
    params: dict | None = None,
) -> Path:
    """Execute ``chapters`` (default: all) with ``params`` (checked against each chapter's
    parameters cell first) and build the HTML."""
    from .book_pages import check_parameters

    root = repo_root()
    names = chapters or available_chapters(root)
    for name in names:
        src = root / "notebooks" / f"{name}.md"
        if name not in CHAPTERS or not src.exists():  # a name, never a path (../README)
            raise MuError(f"no chapter {name!r}; available: {available_chapters(root)}")
        check_parameters(src, name, list(params or {}))
    status_path = root / "book" / "generated" / "results" / "status.json"
    status_path.parent.mkdir(parents=True, exist_ok=True)
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    for name in names:
        print(f"[mu book] executing {name} on profile {profile}", flush=True)
        secs = execute_chapter(root, name, profile, params)
        status[name] = {
            "seconds": round(secs, 1),
            "profile": profile,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        status_path.write_text(json.dumps(status, indent=2))
    if skip_build:
        return root / "book" / "generated"
    from .book_pages import install_mathjax

    install_mathjax(root)
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "jupyter-book"), "build", str(root), "-W", "-n", "--keep-going"]
    print("[mu book] " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=root).returncode != 0:
        raise MuError("jupyter-book build failed (its warnings are listed above); chapters ran")
    index = root / "_build" / "html" / "index.html"
    print(f"[mu book] done: open {index}")
    return index
