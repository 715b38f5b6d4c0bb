"""Fingerprints of the code and the data that a cache entry was computed from.

The cache keys of ``store.config_key`` include both, so an edited method or another folder of
images under the same dataset name is a cache miss, never a stale hit.

* **Code**: the ``mu_lib`` modules that a root module imports, transitively (imports inside
  functions included), each parsed and hashed without its docstrings, comments or formatting.
  Editing a docstring or a comment, or reformatting, keeps the fingerprint; editing any
  statement of a module that the root imports changes it; editing a module that the root does
  not import (``book.py``, ``report.py``, ...) does not.  Computed once per process.
* **Data**: sha256 of each file a dataset reads, remembered per (path, size, mtime) in
  ``<cache dir>/fingerprints.json``, so a warm run only stats the files.

This module imports nothing else of the package, so any module may use it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "mu_lib"
PACKAGE_DIR = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------ code


def _module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Module name -> source file for every ``.py`` file of the package."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules that ``module`` imports anywhere in its source."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}  # ``from . import folders``
    found = set()
    for name in out:
        while name and name not in known:  # ``from .x import func``: the module is ``.x``
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
            parent = name.rpartition(".")[0]
            while parent:  # importing a submodule runs its package's __init__
                if parent in known:
                    found.add(parent)
                parent = parent.rpartition(".")[0]
    return found


_PARSED: dict[Path, dict[str, tuple[str, frozenset[str]]]] = {}


def _parsed(
    package_dir: Path = PACKAGE_DIR, book: Path | None = None
) -> dict[str, tuple[str, frozenset[str]]]:
    """Memoised per process (whatever ``book``): see ``_parse_package``."""
    if package_dir not in _PARSED:
        _PARSED[package_dir] = _parse_package(package_dir, book)
    return _PARSED[package_dir]


def _parse_package(package_dir: Path, book: Path | None) -> dict[str, tuple[str, frozenset[str]]]:
    """Module -> (hash of its normalised source, the package modules it imports).  Parsing the
    package takes about 0.5 s on 2 cores, so ``book`` remembers each file's result per (path,
    size, mtime) and a new process only stats the files."""
    files = _module_files(package_dir)
    known = set(files)
    memo = _load_digests(book) if book is not None else {}
    out, changed = {}, False
    for name, path in files.items():
        st = path.stat()
        stamp = {"size": st.st_size, "mtime": st.st_mtime_ns}
        seen = memo.get(str(path))
        if seen and seen.get("size") == stamp["size"] and seen.get("mtime") == stamp["mtime"]:
            out[name] = (seen["digest"], frozenset(seen["deps"]) & known)
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps = _imports(tree, name, path.name == "__init__.py", known) - {name}
        digest = hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest()
        memo[str(path)] = {**stamp, "digest": digest, "deps": sorted(deps)}
        out[name] = (digest, frozenset(deps))
        changed = True
    if changed and book is not None:
        _save_digests(book, memo)
    return out


def code_dependencies(
    root: str = PACKAGE, package_dir: Path = PACKAGE_DIR, book: Path | None = None
) -> list[str]:
    """The package modules that ``root`` runs, itself included (sorted)."""
    parsed = _parsed(package_dir, book)
    if root not in parsed:
        raise KeyError(f"no module {root!r} in {package_dir}; known: {sorted(parsed)}")
    if root == PACKAGE:
        return sorted(parsed)  # the whole package
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(parsed[name][1])
    return sorted(seen)


@lru_cache(maxsize=64)
def _code_fingerprint(root: str, package_dir: Path) -> str:
    parsed = _PARSED[package_dir]
    h = hashlib.sha256()
    for name in code_dependencies(root, package_dir):
        h.update(f"{name}:{parsed[name][0]}\n".encode())
    return h.hexdigest()[:16]


def code_fingerprint(
    root: str = PACKAGE, package_dir: Path = PACKAGE_DIR, book: Path | None = None
) -> str:
    """Hash of the normalised sources of ``root`` and every package module it imports
    (``root="mu_lib"``: all modules).  Docstrings, comments and formatting do not count."""
    _parsed(package_dir, book)
    return _code_fingerprint(root, package_dir)


# ------------------------------------------------------------------------------------ data

_DIGESTS: dict[str, dict[str, dict]] = {}  # fingerprint file -> {real path: {size, mtime, sha}}


def _load_digests(book: Path) -> dict[str, dict]:
    key = str(book)
    if key not in _DIGESTS:
        try:
            loaded = json.loads(book.read_text())
            _DIGESTS[key] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _DIGESTS[key] = {}
    return _DIGESTS[key]


def _save_digests(book: Path, digests: dict[str, dict]) -> None:
    """Best effort: a read-only cache only means the files are hashed again next time."""
    try:
        book.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=book.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(digests, f)
        os.replace(tmp, book)
    except OSError:
        pass


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digests(paths: Iterable[str | Path], book: Path | None = None) -> list[str]:
    """sha256 of each file, reusing the one remembered in ``book`` while the file's size and
    modification time are unchanged (``book`` None: hash every file)."""
    digests = _load_digests(book) if book is not None else {}
    out, changed = [], False
    for p in paths:
        real = os.path.realpath(p)
        st = os.stat(real)
        stamp = {"size": st.st_size, "mtime": st.st_mtime_ns}
        known = digests.get(real)
        if known and known.get("size") == stamp["size"] and known.get("mtime") == stamp["mtime"]:
            out.append(known["sha256"])
            continue
        sha = file_sha256(real)
        digests[real] = {**stamp, "sha256": sha}
        out.append(sha)
        changed = True
    if changed and book is not None:
        _save_digests(book, digests)
    return out


def files_fingerprint(
    files: Iterable[tuple[str, str | Path]], book: Path | None = None, extra: str = ""
) -> str:
    """Hash of (name, content) pairs: ``name`` is how the dataset refers to the file (e.g. its
    path relative to the dataset root, which carries the class), ``extra`` any other setting."""
    files = list(files)
    digests = file_digests([p for _, p in files], book)
    h = hashlib.sha256(extra.encode())
    for (name, _), sha in zip(files, digests, strict=True):
        h.update(f"{name}\0{sha}\n".encode())
    return h.hexdigest()[:16]
