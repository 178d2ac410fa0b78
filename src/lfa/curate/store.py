"""Per-input results on disk: one JSON file per finished input, written atomically, which is also its
done-marker. A run killed at any moment loses at most the inputs in flight."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from lfa.curate.pipeline import InputResult


def input_key(path: Path) -> str:
    """Identifies an input by its absolute path, size and modification time."""
    st = path.stat() if path.exists() else None
    ident = f"{path.resolve()}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}"
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


class ResultStore:
    def __init__(self, out_dir: Path, work_digest: str) -> None:
        self.dir = out_dir / "work" / work_digest
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, source: Path) -> Path:
        return self.dir / f"{input_key(source)}.json"

    def load(self, source: Path) -> InputResult | None:
        path = self.path(source)
        if not path.is_file():
            return None
        return InputResult(**json.loads(path.read_text()))

    def save(self, source: Path, result: InputResult) -> None:
        path = self.path(source)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(asdict(result)))
        os.replace(tmp, path)
