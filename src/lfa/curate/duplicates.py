"""Byte-identical inputs, found when the tables are merged: file sizes first, content hashes only where
sizes are equal. Hashes are kept in ``cache/content_hashes.json`` by input key (path, size, modification
time), so merging again reads no unchanged file twice."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from lfa.curate.store import input_key

CHUNK = 1 << 20


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def identical_groups(paths: list[str], cache_dir: Path) -> list[list[str]]:
    """Groups of two or more ``paths`` holding the same bytes, each group in the order of ``paths`` (its
    first is the copy kept by ``dedup``). Empty files, missing paths and what is not a regular file are left
    out: they are failure rows anyway."""
    by_size: dict[int, list[str]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            by_size.setdefault(st.st_size, []).append(path)
    candidates = [group for group in by_size.values() if len(group) > 1]
    if not candidates:
        return []
    cache_file = cache_dir / "content_hashes.json"
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    by_hash: dict[str, list[str]] = {}
    for group in candidates:
        for path in group:
            key = input_key(Path(path))
            if key not in cache:
                try:
                    cache[key] = _sha256(path)
                except OSError:  # gone or unreadable since it was listed: not a duplicate of anything
                    continue
            by_hash.setdefault(cache[key], []).append(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, cache_file)
    order = {path: i for i, path in enumerate(paths)}
    groups = [sorted(g, key=order.__getitem__) for g in by_hash.values() if len(g) > 1]
    return sorted(groups, key=lambda g: order[g[0]])
