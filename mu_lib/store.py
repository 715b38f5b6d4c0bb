"""Content-addressed cache of checkpoints (safetensors) and results (JSON).

Keys are a hash of the full configuration and the package version, so a changed setting never
reads a stale entry.  Writes go to a temporary file and are renamed into place (an interrupted
run leaves no half-written entry); an unreadable entry is deleted and rebuilt, never trusted, and
nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .data import cache_dir


def config_key(config: dict[str, Any]) -> str:
    """Stable hash of a JSON-able configuration plus the package version."""
    blob = json.dumps({"config": config, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


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


class Store:
    """The cache under ``root`` (default ``$MU_CACHE_DIR/store``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_dir() / "store"
        self.disabled = os.environ.get("MU_NO_CACHE", "") == "1"

    # ------------------------------------------------------------ paths
    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / f"{key}.{ext}"

    def _discard(self, *paths: Path, why: str) -> None:
        warnings.warn(
            f"cache entry {paths[0].name} is unreadable ({why}); rebuilding it", stacklevel=3
        )
        for p in paths:
            p.unlink(missing_ok=True)

    # ------------------------------------------------------------ JSON results
    def get_json(self, kind: str, key: str) -> dict | None:
        path = self._path(kind, key, "json")
        if self.disabled or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry.get("key") != key or "value" not in entry:
                raise ValueError("key mismatch")
            return entry["value"]
        except (ValueError, OSError) as err:
            self._discard(path, why=str(err))
            return None

    def put_json(self, kind: str, key: str, value: dict, config: dict | None = None) -> None:
        if self.disabled:
            return
        entry = {"key": key, "version": __version__, "config": config, "value": value}
        text = json.dumps(entry, indent=1, default=str)
        _atomic_write(self._path(kind, key, "json"), lambda tmp: Path(tmp).write_text(text))

    # ------------------------------------------------------------ tensors / checkpoints
    def get_tensors(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(kind, key, "safetensors")
        meta = self._path(kind, key, "json")
        if self.disabled or not path.exists():
            return None
        try:
            tensors = load_file(str(path))
            if self.get_json(kind, key) is None:
                raise ValueError("missing metadata")
            return tensors
        except Exception as err:  # safetensors raises several error types on corrupt files
            self._discard(path, meta, why=str(err)[:80])
            return None

    def put_tensors(
        self, kind: str, key: str, tensors: dict[str, torch.Tensor], meta: dict
    ) -> None:
        if self.disabled:
            return
        clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        _atomic_write(self._path(kind, key, "safetensors"), lambda tmp: save_file(clean, tmp))
        self.put_json(kind, key, meta, meta.get("config"))

    def cached(self, kind: str, config: dict, build: Callable[[], dict]) -> dict:
        """Return the JSON result for ``config``, building and storing it on a miss."""
        key = config_key(config)
        hit = self.get_json(kind, key)
        if hit is not None:
            return hit
        value = build()
        self.put_json(kind, key, value, config)
        return value

    # ------------------------------------------------------------ management
    def entries(self) -> list[dict]:
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
