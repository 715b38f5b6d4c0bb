"""Build the book: jupytext sources -> notebooks -> papermill (with the chosen profile) ->
``book/generated/`` -> ``jupyter-book build -W -n --keep-going`` (fails loudly on any cell error
or broken reference).  Run times of every chapter go to ``book/generated/results/status.json``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import MuError, chapter_reuse

# Execution order; the last two read what the chapters saved (``FINAL``: they run after the rest).
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
    "x3_beyond_pra",
    "audit",
    "api",
    "claims",
    "reproduction_report",
    "status",
]


FINAL = ("reproduction_report", "status")
# Chapters whose key includes the tables the others saved, and the one that is never reused (it
# reports this build's times).
READS_RESULTS = ("reproduction_report",)
NEVER_REUSE = ("status",)
# With no earlier build's times (a fresh clone), these start first: they are the cold build's
# longest chapters (claims: every Table 1 method on ten forget classes), so no worker idles at the
# end while one of them runs alone.
LONG_FIRST = ("claims", "s5_2_main_results", "s5_4_ablations")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
    root: Path,
    name: str,
    profile: str,
    params: dict | None = None,
    out_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> float:
    """jupytext -> papermill one chapter into ``out_dir`` (default book/generated); returns seconds.
    ``params``: scalars go to papermill as ``-p``, lists, tuples and dicts as ``-y`` (YAML); a name
    the chapter's parameters cell does not define is an error before anything runs; ``env``: extra
    environment of the kernel."""
    from .book_pages import check_parameters, finish_notebook

    src = root / "notebooks" / f"{name}.md"
    if name not in CHAPTERS or not src.exists():  # a name, never a path (../README)
        raise MuError(f"no chapter {name!r}; available: {available_chapters(root)}")
    check_parameters(src, name, [*(params or {}), "profile"])
    out_dir = out_dir or root / "book" / "generated"
    out_dir.mkdir(parents=True, exist_ok=True)
    # one folder per process and thread: test workers, parallel chapters and other builds in the
    # same checkout may convert the same chapter at once
    tmp = root / "build" / "ipynb" / f"{os.getpid()}-{threading.get_ident()}"
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
    done = subprocess.run(args, cwd=root, env={**os.environ, **(env or {})})
    raw.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        tmp.rmdir()
    if done.returncode != 0:
        raise MuError(
            f"chapter {name} failed on profile {profile} (papermill exit {done.returncode}); "
            f"the executed notebook with the failing cell is {out}"
        )
    secs = time.perf_counter() - t0
    finish_notebook(out, name, src, {"profile": profile, **(params or {})})
    return secs


def default_jobs() -> int:
    """Chapters run at once: ``$MU_BOOK_JOBS``, else one per CPU core."""
    env = os.environ.get("MU_BOOK_JOBS")
    if env:
        try:
            jobs = int(env)
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise MuError(f"MU_BOOK_JOBS must be a whole number >= 1, got {env!r}")
        return jobs
    return os.cpu_count() or 1


def build_shared_models(profile: str) -> None:
    """Train, with every core, the models most chapters share (the original and the retrained
    model of forget class 0 for the profile's book seeds), so that chapters running side by side
    load them from the cache instead of each training its own copy at once."""
    from .experiment import RunConfig, unlearned_model
    from .profiles import get_profile

    for seed in get_profile(profile).chapter_seeds():
        unlearned_model(RunConfig(method="retrain", profile=profile, seed=seed))


def build_shared_models_in_child(root: Path, profile: str) -> None:
    """``build_shared_models`` in a child process: this one keeps no torch threads or models."""
    code = f"from mu_lib.book import build_shared_models; build_shared_models({profile!r})"
    if subprocess.run([sys.executable, "-c", code], cwd=root).returncode != 0:
        raise MuError(f"training the shared models of profile {profile} failed (see above)")


def reuse_inputs() -> dict:
    """:func:`mu_lib.chapter_reuse.shared_inputs`, computed in a child process (it reads the
    datasets' fingerprints, which imports torch: this process stays light)."""
    code = "import json; from mu_lib.chapter_reuse import shared_inputs; print(json.dumps(shared_inputs()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise MuError(f"fingerprinting the package and data failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bytecode_notice() -> str | None:
    """A line for a build under ``PYTHONDONTWRITEBYTECODE`` (None otherwise): no bytecode is kept,
    so every chapter's kernel compiles torch, pandas and sklearn again (9.9 s to import them
    against 4.0 s with bytecode); ``make`` unsets it for its commands."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return None
    return (
        "[mu book] PYTHONDONTWRITEBYTECODE is set: every chapter's kernel compiles torch and "
        "pandas from source again (about 6 s each); `make book` unsets it, or run "
        "`unset PYTHONDONTWRITEBYTECODE` before `mu book`"
    )


def run_order(names: list[str], previous: dict) -> list[str]:
    """Longest chapter first (the last build's times; chapters without one first, in book order),
    so that no long chapter starts last while the other workers idle."""
    known = {n: float(previous[n]["seconds"]) for n in names if "seconds" in previous.get(n, {})}
    hint = {n: i for i, n in enumerate(LONG_FIRST)}
    return sorted(names, key=lambda n: (n in known, -known.get(n, 0.0), hint.get(n, len(hint))))


def build_book(
    profile: str,
    chapters: list[str] | None = None,
    skip_build: bool = False,
    params: dict | None = None,
    jobs: int | None = None,
    rerun: bool = False,
) -> Path:
    """Execute ``chapters`` (default: all) with ``params`` (checked against each chapter's
    parameters cell first) and build the HTML.

    With ``jobs`` > 1 (default: ``default_jobs()``) the shared models are trained first, then up
    to ``jobs`` chapters run side by side, one thread each (``OMP_NUM_THREADS=1``: two chapters on
    two cores instead of one chapter's Python, UMAP compile and small batches on both); the
    chapters of ``FINAL`` run last, after all the others.  A chapter whose inputs are unchanged
    since its last execution here is reused, not run (:mod:`mu_lib.chapter_reuse`), unless
    ``rerun`` or ``$MU_NO_CACHE``."""
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
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise MuError(f"jobs must be >= 1, got {jobs}")
    lock = threading.Lock()

    out_dir = root / "book" / "generated"
    reuse = not rerun and not os.environ.get("MU_NO_CACHE")
    shared = reuse_inputs()  # also when rerunning: what runs is recorded for the next build

    def plan(name: str) -> tuple[str | None, dict | None]:
        """(reuse key, the record of a reusable earlier execution or None)."""
        if name in NEVER_REUSE:
            return None, None
        results = out_dir / "results" if name in READS_RESULTS else None
        used = {"profile": profile, **(params or {})}
        key = chapter_reuse.chapter_key(
            root / "notebooks" / f"{name}.md", profile, used, shared, results
        )
        return key, chapter_reuse.reusable(out_dir, name, key) if reuse else None

    first = [n for n in names if n not in FINAL]
    last = [n for n in names if n in FINAL]
    plans = {n: plan(n) for n in first}  # the FINAL chapters' keys read what the others save

    def execute(name: str, n_jobs: int) -> None:
        key, record = plans[name] if name in plans else plan(name)
        if record is not None:
            print(f"[mu book] reusing {name}: its inputs are unchanged", flush=True)
            entry = {**status.get(name, {}), "seconds": record["seconds"], "reused": True}
        else:
            print(f"[mu book] executing {name} on profile {profile}", flush=True)
            env = chapter_reuse.begin(out_dir, name)
            secs = execute_chapter(root, name, profile, params, env=env)
            if key is not None:
                chapter_reuse.finish(out_dir, name, key, secs)
            entry = {
                "seconds": round(secs, 1),
                "profile": profile,
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                "jobs": n_jobs,
                "reused": False,
            }
        with lock:
            status[name] = entry
            tmp = status_path.with_suffix(".tmp")  # atomic: a kill keeps the last build's times
            tmp.write_text(json.dumps(status, indent=2))
            os.replace(tmp, status_path)

    to_run = [n for n in first if plans[n][1] is None]
    if to_run and (notice := bytecode_notice()):
        print(notice, flush=True)
    if jobs > 1 and len(to_run) > 1:
        print(f"[mu book] training the shared models of profile {profile}", flush=True)
        build_shared_models_in_child(root, profile)
        # the chapters' kernels inherit one thread each (this process's torch is not affected)
        saved = {k: os.environ.get(k) for k in THREAD_VARS}
        os.environ.update({k: "1" for k in THREAD_VARS})
        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {n: pool.submit(execute, n, jobs) for n in run_order(first, status)}
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        failed = [f.exception() for f in futures.values() if f.exception() is not None]
        if failed:
            raise MuError("; ".join(str(e) for e in failed))
    else:
        for name in first:
            execute(name, 1)
    for name in last:
        execute(name, 1)
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
