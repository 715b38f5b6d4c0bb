"""Content-addressed cache of checkpoints (safetensors) and results (JSON).

Keys hash the full configuration, the package version and a fingerprint of the code that
computes the entry (``fingerprint.code_fingerprint``; callers add the data's fingerprint to
their configuration), so neither a changed setting nor edited code nor other data ever reads a
stale entry.  Writes go to a temporary file and are renamed into place (an interrupted run leaves
no half-written entry).  Every entry records checksums: a result its value's sha256, a
checkpoint its file's sha256 and each tensor's dtype and shape.  On load an entry that does not
verify (edited, truncated, swapped with another entry, non-finite, of the wrong type or shape)
is deleted with a one-line warning and rebuilt, never trusted; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import Diverged, MuError, __version__
from .data import cache_dir
from .fingerprint import PACKAGE, code_fingerprint, file_sha256
from .validate import probe_writable

TensorSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]


def fingerprint_book(name: str) -> Path:
    """Where the file and source digests are remembered between processes."""
    return cache_dir() / "fingerprints" / f"{name}.json"


def code_version(code: str = PACKAGE) -> str:
    """The fingerprint of module ``code`` and what it imports (``mu_lib``: the whole package)."""
    return code_fingerprint(code, book=fingerprint_book("code"))


def config_key(config: dict[str, Any], code: str = PACKAGE) -> str:
    """Stable hash of a JSON-able configuration, the package version and the fingerprint of the
    code that computes it (module ``code`` and every module it imports)."""
    blob = json.dumps(
        {"config": config, "version": __version__, "code": code_version(code)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def finite_json(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """``value`` with every NaN/inf float replaced by None, and the paths of those replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "value"]
    if isinstance(value, dict):
        out, bad = {}, []
        for k, v in value.items():
            out[k], b = finite_json(v, f"{path}.{k}" if path else str(k))
            bad += b
        return out, bad
    if isinstance(value, list | tuple):
        out_l, bad = [], []
        for i, v in enumerate(value):
            o, b = finite_json(v, f"{path}[{i}]")
            out_l.append(o)
            bad += b
        return out_l, bad
    return value, []


def canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples -> lists, odd types -> str)."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def value_checksum(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} in the file")


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class BadEntry(ValueError):
    """An entry that does not verify (the reason is the message)."""


class Store:
    """The cache under ``root`` (default ``$MU_CACHE_DIR/store``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else cache_dir() / "store"
        self.disabled = os.environ.get("MU_NO_CACHE", "") == "1"
        # The one in-process memo (models, splits, neighbours, shared unlearning state), keyed like
        # the entries: it lives and dies with this store, so pointing MU_CACHE_DIR elsewhere (or
        # ``memo.clear()``, "a new process") never serves what another cache produced.
        self.memo: dict[str, Any] = {}

    # ------------------------------------------------------------ paths
    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / f"{key}.{ext}"

    def _discard(self, *paths: Path, why: str) -> None:
        why = " ".join(str(why).split())[:120]
        warnings.warn(
            f"cache entry {paths[0].parent.name}/{paths[0].name} is invalid ({why}); "
            "discarded, rebuilding it",
            stacklevel=3,
        )
        for p in paths:
            p.unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Raise a clear error now if entries could not be written (before any compute)."""
        if self.disabled:
            return
        fix = "set MU_CACHE_DIR to a writable folder (or MU_NO_CACHE=1 to run without a cache)"
        for parent in [self.root, *self.root.parents]:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise MuError(f"the cache path {parent} is not a folder; {fix}")
                break
        try:
            probe_writable(self.root)
        except OSError as err:
            raise MuError(
                f"the cache folder {self.root} is not writable ({err.strerror or err}); {fix}"
            ) from None

    # ------------------------------------------------------------ JSON results
    def _read_entry(self, path: Path, key: str) -> dict:
        try:
            entry = json.loads(path.read_text(), parse_constant=_reject_constant)
        except UnicodeDecodeError as err:
            raise BadEntry("not UTF-8 text") from err
        if not isinstance(entry, dict):
            raise BadEntry(f"a JSON {type(entry).__name__}, not an object")
        if entry.get("key") != key:
            raise BadEntry("its key does not match its file name")
        if "checksum" not in entry or "value" not in entry:
            raise BadEntry("no checksum or value: written by an older version")
        if value_checksum(entry["value"]) != entry["checksum"]:
            raise BadEntry("its value does not match its checksum")
        return entry

    def get_json(self, kind: str, key: str, expect: type = dict) -> Any:
        """The stored value of ``key`` (of type ``expect``), or None (missing or invalid)."""
        path = self._path(kind, key, "json")
        if self.disabled or not path.exists():
            return None
        try:
            value = self._read_entry(path, key)["value"]
            if not isinstance(value, expect):
                raise BadEntry(f"value is a {type(value).__name__}, not a {expect.__name__}")
            return value
        except (BadEntry, ValueError, OSError) as err:
            self._discard(path, self._path(kind, key, "safetensors"), why=str(err))
            return None

    def put_json(self, kind: str, key: str, value: Any, config: dict | None = None) -> None:
        if self.disabled:
            return
        value, bad = finite_json(canonical_loose(value))
        entry = {
            "key": key,
            "version": __version__,
            "config": finite_json(canonical_loose(config))[0],
            "value": value,
            "checksum": value_checksum(value),
        }
        if bad:
            entry["nonfinite_set_to_null"] = bad
        text = json.dumps(entry, indent=1, allow_nan=False)
        _atomic_write(self._path(kind, key, "json"), lambda tmp: Path(tmp).write_text(text))

    # ------------------------------------------------------------ tensors / checkpoints
    def _verify_tensors(
        self, path: Path, key: str, meta: dict, expect: TensorSpec | None
    ) -> dict[str, torch.Tensor]:
        recorded = meta.get("tensors")
        if not isinstance(recorded, dict) or "sha256" not in meta:
            raise BadEntry("no tensor checksums: written by an older version")
        if file_sha256(path) != meta["sha256"]:
            raise BadEntry("the checkpoint file does not match its checksum")
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                raise BadEntry("the checkpoint belongs to another entry")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if set(tensors) != set(recorded):
            raise BadEntry(f"tensors {sorted(set(recorded) ^ set(tensors))[:3]} missing or extra")
        for name, t in tensors.items():
            dtype, shape = recorded[name]
            if str(t.dtype) != dtype or list(t.shape) != shape:
                raise BadEntry(f"{name} is {t.dtype} {list(t.shape)}, recorded {dtype} {shape}")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise BadEntry(f"{name} has non-finite values")
        if expect is not None:
            missing = sorted(set(expect) - set(tensors))
            extra = sorted(set(tensors) - set(expect))
            if missing or extra:
                raise BadEntry(f"does not fit the model (missing {missing[:3]}, extra {extra[:3]})")
            for name, (shape, dtype) in expect.items():
                t = tensors[name]
                if tuple(t.shape) != tuple(shape) or t.dtype != dtype:
                    raise BadEntry(
                        f"{name} is {t.dtype} {list(t.shape)}; the model needs {dtype} "
                        f"{list(shape)}"
                    )
        return tensors

    def get_tensors(
        self, kind: str, key: str, expect: TensorSpec | None = None
    ) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``key``, verified against their checksums and, if given,
        against ``expect`` (name -> (shape, dtype) of the model they must fit), or None."""
        path = self._path(kind, key, "safetensors")
        meta_path = self._path(kind, key, "json")
        if self.disabled or not path.exists():
            return None
        meta = self.get_json(kind, key)
        if meta is None:
            path.unlink(missing_ok=True)  # a checkpoint without its record is never trusted
            return None
        try:
            return self._verify_tensors(path, key, meta, expect)
        except Exception as err:  # safetensors raises several error types on corrupt files
            self._discard(path, meta_path, why=str(err))
            return None

    def put_tensors(
        self, kind: str, key: str, tensors: dict[str, torch.Tensor], meta: dict
    ) -> None:
        if self.disabled:
            return
        clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        for name, t in clean.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise Diverged(
                    f"refusing to store {kind}/{key}: tensor {name} has non-finite values "
                    "(the run diverged; lower the learning rate)"
                )
        path = self._path(kind, key, "safetensors")
        shas: list[str] = []

        def write(tmp: str) -> None:
            save_file(clean, tmp, metadata={"key": key})
            shas.append(file_sha256(tmp))

        _atomic_write(path, write)
        record = {
            **meta,
            "tensors": {k: [str(t.dtype), list(t.shape)] for k, t in clean.items()},
            "sha256": shas[0],
        }
        self.put_json(kind, key, record, meta.get("config"))

    def cached(
        self, kind: str, config: dict, build: Callable[[], dict], code: str = PACKAGE
    ) -> dict:
        """Return the JSON result for ``config``, building and storing it on a miss."""
        key = config_key(config, code)
        hit = self.get_json(kind, key)
        if hit is not None:
            return hit
        self.check_writable()
        value = build()
        self.put_json(kind, key, value, config)
        return canonical(finite_json(canonical_loose(value))[0])

    # ------------------------------------------------------------ management
    def _check_root(self) -> None:
        for p in (self.root, self.root.parent):  # the store and $MU_CACHE_DIR
            if p.is_symlink():
                raise MuError(
                    f"the cache path {p} is a symbolic link (to {os.path.realpath(p)}); refusing "
                    "to list or delete through it: set MU_CACHE_DIR to the real folder"
                )
        for p in [self.root, *self.root.parents]:
            if p.exists():
                if not p.is_dir():
                    raise MuError(
                        f"the cache path {p} is a file, not a folder; set MU_CACHE_DIR to a folder"
                    )
                return

    def entries(self) -> list[dict]:
        self._check_root()
        out = []
        if not self.root.exists():
            return out
        for p in sorted(self.root.glob("*/*")):
            if p.name.startswith(".tmp-"):
                continue
            out.append({"kind": p.parent.name, "file": p.name, "bytes": p.stat().st_size})
        return out

    def clear(self) -> int:
        n = len(self.entries())
        if self.root.exists():
            shutil.rmtree(self.root)
        return n


def canonical_loose(value: Any) -> Any:
    """``canonical`` that keeps NaN/inf (so that ``finite_json`` can find and replace them)."""
    return json.loads(json.dumps(value, default=str))
