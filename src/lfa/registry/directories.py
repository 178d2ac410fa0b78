"""Model directories referenced in place (a Wan base is tens of GB: never copied).

``lfa models add NAME DIR`` records ``{"path", "sha256", "kind", "files"}`` in
``$LFA_HOME/models/<NAME>/directory.json``. The directory hash is the SHA-256 of every file's relative
path and SHA-256, computed once; each file's hash is cached by (size, mtime), so checking an
unchanged directory again costs one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lfa.errors import ConfigError, ModelLoadError, ModelMissingError
from lfa.registry.store import ModelStore, sha256_file

DIRECTORY_META = "directory.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class DirectoryModel:
    name: str
    path: Path
    sha256: str
    kind: str


def directory_kind(path: Path) -> str:
    """``diffusers:<pipeline class>`` for a diffusers folder, ``transformers:<model type>``, else ``directory``."""
    index = path / "model_index.json"
    if index.is_file():
        return "diffusers:" + str(json.loads(index.read_text()).get("_class_name", "?"))
    config = path / "config.json"
    if config.is_file():
        return "transformers:" + str(json.loads(config.read_text()).get("model_type", "?"))
    return "directory"


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def tree_hash(path: Path, cache: dict[str, list] | None = None,
              on_file: Callable[[Path], None] | None = None) -> tuple[str, dict[str, list]]:
    """(directory SHA-256, {relative path: [size, mtime_ns, sha256]}); files whose (size, mtime) match
    ``cache`` are not read again."""
    cache = cache or {}
    digest = hashlib.sha256()
    stamps: dict[str, list] = {}
    for file in _files(path):
        rel = file.relative_to(path).as_posix()
        stat = file.stat()
        old = cache.get(rel)
        if old and old[:2] == [stat.st_size, stat.st_mtime_ns]:
            file_sha = old[2]
        else:
            if on_file:
                on_file(file)
            file_sha = sha256_file(file)
        stamps[rel] = [stat.st_size, stat.st_mtime_ns, file_sha]
        digest.update(f"{rel}\0{file_sha}\n".encode())
    return digest.hexdigest(), stamps


def add_directory(store: ModelStore, name: str, path: Path,
                  on_file: Callable[[Path], None] | None = None) -> DirectoryModel:
    """Register ``path`` under ``name`` in place (absolute path kept, nothing copied) and hash it."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"model name {name!r} is not usable", "use letters, digits, '.', '_' and '-'")
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise ModelMissingError(f"no such directory: {path}", "pass the model folder")
    if not _files(path):
        raise ModelLoadError(f"{path} holds no files", "pass the folder that holds the model's files")
    sha, stamps = tree_hash(path, on_file=on_file)
    meta = {"path": str(path), "sha256": sha, "kind": directory_kind(path), "files": stamps,
            "added_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    folder = store.model_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / DIRECTORY_META, meta)
    return DirectoryModel(name, path, sha, meta["kind"])


def directory_hash(path: Path, store: ModelStore | None = None) -> str:
    """The hash of a model directory. A registered directory (``lfa models add``) re-reads only files whose
    size or mtime changed since (and records the new stamps); any other directory is hashed in full."""
    store = store or ModelStore()
    path = Path(path).expanduser().resolve()
    for meta_path in sorted(store.models_dir.glob(f"*/{DIRECTORY_META}")):
        meta = json.loads(meta_path.read_text())
        if meta.get("path") == str(path):
            sha, stamps = tree_hash(path, meta.get("files"))
            if stamps != meta.get("files"):
                meta.update(sha256=sha, files=stamps)
                try:
                    _write(meta_path, meta)
                except OSError:  # a read-only cache still works; the next call reads the changed files again
                    pass
            return sha
    return tree_hash(path)[0]


def resolve_directory(store: ModelStore, name_or_path: str | os.PathLike[str]) -> Path:
    """A registered directory's path by name, or the path itself when it is a folder."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    meta_path = store.model_dir(str(name_or_path)) / DIRECTORY_META
    if meta_path.is_file():
        return Path(json.loads(meta_path.read_text())["path"])
    raise ModelMissingError(f"{name_or_path}: neither a folder nor a registered model directory",
                            "pass a folder, or register it with `lfa models add NAME DIR`")


def list_directories(store: ModelStore) -> list[DirectoryModel]:
    out = []
    for meta_path in sorted(store.models_dir.glob(f"*/{DIRECTORY_META}")):
        meta = json.loads(meta_path.read_text())
        out.append(DirectoryModel(meta_path.parent.name, Path(meta["path"]), meta["sha256"], meta["kind"]))
    return out


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
