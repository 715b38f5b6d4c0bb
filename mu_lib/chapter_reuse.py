"""Reuse of executed chapters: a warm ``mu book`` re-executes only the chapters whose inputs changed.

A chapter's key hashes everything its numbers can depend on: the chapter's source, the profile and
parameters, every file of the package (its code, the paper's shipped tables, the tuned settings),
the fingerprint of every dataset the library can read, the Python and torch versions and the
device, and, for the chapters that read what the others saved (``book.READS_RESULTS``), those
saved tables.  A chapter is reused only when its key is unchanged and its executed notebook and the
result files it wrote are on disk byte for byte as it left them (each checked by sha256);
otherwise it runs.  ``MU_NO_CACHE`` or ``mu book --rerun`` runs every chapter (and records it,
so that the next build can reuse it).

The record of each chapter lives beside the executed notebooks in ``book/generated/.reuse/``;
what a chapter wrote is listed by :func:`mu_lib.report.save_results` in ``$MU_WRITTEN``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from .fingerprint import PACKAGE_DIR, file_sha256

WRITTEN_ENV = "MU_WRITTEN"  # the file where save_results lists what a running chapter wrote


def package_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over every file of the package (code and shipped data), by relative path."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(package_dir)).encode() + b"\0")
            h.update(file_sha256(path).encode())
    return h.hexdigest()


def data_digest() -> dict[str, str]:
    """Fingerprint of every registered dataset ("absent" where its files are not on this machine)."""
    from .data import DATASETS, data_fingerprint

    out = {}
    for name in sorted(DATASETS):
        try:
            out[name] = data_fingerprint(name)
        except Exception as err:  # noqa: BLE001 - a dataset this machine lacks is part of the key
            out[name] = f"absent: {type(err).__name__}"
    return out


def environment() -> dict[str, str]:
    from .util import resolve_device

    return {
        "python": sys.version,
        "torch": metadata.version("torch"),
        "device": resolve_device("auto"),
    }


def results_digest(results: Path, skip: tuple[str, ...] = ("status.json",)) -> dict[str, str]:
    """sha256 of each saved table in ``results`` (the inputs of the report chapters)."""
    return {
        p.name: file_sha256(p)
        for p in sorted(results.glob("*"))
        if p.is_file() and p.suffix in (".csv", ".json") and p.name not in skip
    }


def chapter_key(
    source: Path, profile: str, params: dict, shared: dict, results: Path | None = None
) -> str:
    """The key of one chapter's execution; ``shared``: :func:`shared_inputs` (computed once)."""
    blob = {
        "source": file_sha256(source),
        "profile": profile,
        "params": params,
        **shared,
        "results": results_digest(results) if results is not None else None,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def shared_inputs() -> dict:
    """What every chapter's key shares: package, data and environment."""
    return {"package": package_digest(), "data": data_digest(), "env": environment()}


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / ".reuse" / f"{name}.json"


def written_path(out_dir: Path, name: str) -> Path:
    return out_dir / ".reuse" / f"{name}.written"


def reusable(out_dir: Path, name: str, key: str) -> dict | None:
    """The record of ``name``'s last execution if it had ``key`` and its files are intact."""
    try:
        rec = json.loads(record_path(out_dir, name).read_text())
    except (OSError, ValueError):
        return None
    if rec.get("key") != key:
        return None
    files = {out_dir / f"{name}.ipynb": rec.get("notebook")}
    files.update({Path(p): sha for p, sha in rec.get("written", {}).items()})
    for path, sha in files.items():
        if not path.is_file() or file_sha256(path) != sha:
            return None
    return rec


def begin(out_dir: Path, name: str) -> dict[str, str]:
    """Forget ``name``'s record before it runs (an interrupted run is never reused); returns the
    environment that makes ``save_results`` list what the chapter writes."""
    (out_dir / ".reuse").mkdir(parents=True, exist_ok=True)
    record_path(out_dir, name).unlink(missing_ok=True)
    written = written_path(out_dir, name)
    written.unlink(missing_ok=True)
    return {WRITTEN_ENV: str(written.resolve())}


def finish(out_dir: Path, name: str, key: str, seconds: float) -> None:
    """Record a successful execution: its key, time, notebook and written files with sha256."""
    written = written_path(out_dir, name)
    paths = sorted(set(written.read_text().split("\n")) - {""}) if written.exists() else []
    rec = {
        "key": key,
        "seconds": round(seconds, 1),
        "notebook": file_sha256(out_dir / f"{name}.ipynb"),
        "written": {p: file_sha256(Path(p)) for p in paths if Path(p).is_file()},
    }
    tmp = record_path(out_dir, name).with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2))
    os.replace(tmp, record_path(out_dir, name))


def note_written(*paths: Path) -> None:
    """Called by the functions that save a chapter's files: list them for :func:`finish`."""
    target = os.environ.get(WRITTEN_ENV)
    if target:
        with open(target, "a") as f:
            f.write("".join(f"{Path(p).resolve()}\n" for p in paths))
