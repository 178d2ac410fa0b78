"""Per-input results on disk: one JSON file per finished input, written atomically, which is also its
done-marker. A run killed at any moment loses at most the inputs in flight."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields, is_dataclass
from pathlib import Path

from lfa.curate.pipeline import InputResult


def input_key(path: Path, st: os.stat_result | None = None) -> str:
    """Identifies an input by its absolute path, size and modification time (taken once, when the run
    lists its inputs: a file changed later keeps the key its result was saved under). ``st``: the path's
    stat where the caller has it."""
    try:
        st = st or path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size = mtime = -1
    ident = f"{path.absolute()}|{size}|{mtime}"
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


def result_json(result: InputResult) -> str:
    """``json.dumps(dataclasses.asdict(result))``, the same text without asdict's deep copy of every row
    (the rows are plain lists, dicts and numbers; a dataclass met anywhere becomes a dict as asdict makes it)."""
    return json.dumps(result, default=_fields_of)


def _fields_of(obj: object) -> dict:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class ResultStore:
    def __init__(self, out_dir: Path, work_digest: str) -> None:
        self.dir = out_dir / "work" / work_digest
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> InputResult | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return InputResult(**json.loads(path.read_text()))
        except (ValueError, TypeError):  # a result from an older lfa: redo the input
            return None

    def save(self, key: str, result: InputResult) -> None:
        path = self.path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
        tmp.write_text(result_json(result))
        os.replace(tmp, path)
