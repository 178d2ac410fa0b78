"""The benchmark spec (JSONL) and the folders of generated videos it is scored against.

One JSON object per line::

    {"id": "clip_0001", "reference": "refs/clip_0001.png", "prompt": "A woman turns ...",
     "labels": {"cluster_id": "c17", "yaw_bucket": "45_60"}}

``reference`` is an image path or a list of image paths (several views of the face); relative
paths resolve against the spec's folder. ``reference_box`` (optional) says which face of each reference
image is the person: ``[x0, y0, x1, y1]`` in the image's pixels, or a list with one box (or null) per
reference; ``lfa bench make-spec`` writes it from the curated track, and ``lfa generate --spec`` and
``lfa bench`` take the face overlapping it best (:mod:`lfa.face.choose`; without it: the largest face).
``eval_references`` (optional; ``make-spec`` writes them) are more views of the item's person used only
for scoring, never handed to a generator (``lfa generate --spec`` reads ``reference`` only), with
``eval_reference_box`` like ``reference_box``. ``labels`` is optional and free-form (kept in the outputs).
Any other key is an error naming the line. A model's videos are ``{DIR}/{id}.mp4`` (or ``.webm``, ``.gif``
... where a generator writes those: :func:`video_path`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
VIDEO_SUFFIX = ".mp4"
Box = tuple[float, float, float, float]
KEYS = ("id", "reference", "reference_box", "eval_references", "eval_reference_box", "prompt", "labels")


@dataclass(frozen=True)
class SpecItem:
    id: str
    references: tuple[Path, ...]
    prompt: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    boxes: tuple[Box | None, ...] = ()  # per reference: the person's face box, or () for none at all
    # views of the person for scoring only: never handed to a generator
    eval_references: tuple[Path, ...] = ()
    eval_boxes: tuple[Box | None, ...] = ()

    def box(self, index: int) -> Box | None:
        """The person's face box in reference ``index`` (None: take the largest face)."""
        return self.boxes[index] if index < len(self.boxes) else None

    def eval_box(self, index: int) -> Box | None:
        """The person's face box in evaluation view ``index`` (None: take the largest face)."""
        return self.eval_boxes[index] if index < len(self.eval_boxes) else None

    def to_json(self, base: Path | None = None) -> dict[str, Any]:
        refs = [_relative(p, base) for p in self.references]
        out: dict[str, Any] = {"id": self.id, "reference": refs[0] if len(refs) == 1 else refs, "prompt": self.prompt}
        if any(b is not None for b in self.boxes):
            out["reference_box"] = _boxes_json(self.boxes, len(refs))
        if self.eval_references:
            views = [_relative(p, base) for p in self.eval_references]
            out["eval_references"] = views
            if any(b is not None for b in self.eval_boxes):
                out["eval_reference_box"] = _boxes_json(self.eval_boxes, len(views), single=False)
        if self.labels:
            out["labels"] = self.labels
        return out


def _boxes_json(boxes: tuple[Box | None, ...], n: int, single: bool = True) -> Any:
    out = [None if b is None else [round(float(v), 1) for v in b] for b in boxes]
    return out[0] if single and n == 1 else out


def _relative(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def load_spec(path: str | Path, *, check_files: bool = True) -> list[SpecItem]:
    """Read and validate a spec; every problem is reported with its line number."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"benchmark spec not found: {path}",
                          "pass a JSONL file (one {\"id\", \"reference\", \"prompt\"} per line), "
                          "e.g. one written by `lfa bench make-spec`")
    base = path.resolve().parent
    items: list[SpecItem] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON ({exc.msg})", "write one JSON object per line") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected a JSON object", "write one JSON object per line")
        unknown = [k for k in row if k not in KEYS]
        if unknown:
            near = difflib.get_close_matches(unknown[0], KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint}",
                              f"the keys are {', '.join(KEYS)}; put free-form fields under \"labels\"")
        missing = [k for k in ("id", "reference") if k not in row]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}",
                              "every line needs \"id\" and \"reference\" (\"prompt\" and \"labels\" are optional)")
        item_id = str(row["id"])
        if not ID_PATTERN.match(item_id):
            raise ConfigError(f"{where}: id {item_id!r} is not usable as a file name",
                              "use letters, digits, '.', '_' and '-' only (videos are named {id}.mp4)")
        if item_id in seen:
            raise ConfigError(f"{where}: duplicate id {item_id!r}", "give every item its own id")
        seen.add(item_id)
        resolved = _images(row["reference"], "reference", base, where, check_files)
        views = _images(row.get("eval_references") or [], "eval_references", base, where, check_files)
        labels = row.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError(f"{where}: \"labels\" must be an object", "e.g. \"labels\": {\"yaw_bucket\": \"45_60\"}")
        boxes = _boxes(row.get("reference_box"), len(resolved), where)
        eval_boxes = _boxes(row.get("eval_reference_box"), len(views), where, "eval_reference_box")
        items.append(SpecItem(item_id, resolved, str(row.get("prompt") or ""), labels, boxes, views, eval_boxes))
    if not items:
        raise ConfigError(f"benchmark spec {path} has no items", "add one JSON object per line")
    return items


def _images(value: Any, key: str, base: Path, where: str, check_files: bool) -> tuple[Path, ...]:
    """``reference`` (an image path or a non-empty list of them) or ``eval_references`` (a path or a list),
    resolved against the spec's folder."""
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or (key == "reference" and not paths) or not all(isinstance(r, str) for r in paths):
        raise ConfigError(f"{where}: \"{key}\" must be an image path or a "
                          f"{'non-empty ' if key == 'reference' else ''}list of paths",
                          f"e.g. \"{key}\": \"refs/a.png\" or [\"refs/a.png\", \"refs/a_side.png\"]")
    resolved = tuple((base / r).resolve() if not Path(r).is_absolute() else Path(r) for r in paths)
    if check_files:
        absent = [str(r) for r in resolved if not r.is_file()]
        if absent:
            raise ConfigError(f"{where}: {key} image not found: {', '.join(absent)}",
                              "paths are relative to the spec's folder; fix the path or add the image")
    return resolved


def _boxes(value: Any, n_refs: int, where: str, key: str = "reference_box") -> tuple[Box | None, ...]:
    """``reference_box``: one box for a single reference, or one box (or null) per reference (likewise
    ``eval_reference_box`` for ``eval_references``)."""
    if value is None:
        return ()
    images = "reference" if key == "reference_box" else "eval_references"
    fix = (f"write \"{key}\": [x0, y0, x1, y1] (pixels of the image), or a list with one box "
           f"or null per image of \"{images}\"")
    listed = isinstance(value, list) and value and (value[0] is None or isinstance(value[0], list))
    boxes = value if listed else [value]
    if len(boxes) != n_refs:
        raise ConfigError(f"{where}: {len(boxes)} {key}(es) for {n_refs} {images} image(s)", fix)
    out: list[Box | None] = []
    for box in boxes:
        if box is None:
            out.append(None)
            continue
        ok = (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
              and all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1])
        if not ok:
            raise ConfigError(f"{where}: bad {key} {box!r}", fix)
        out.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
    return tuple(out)


def write_spec(path: str | Path, items: Iterable[SpecItem]) -> Path:
    """Write items as JSONL, reference paths relative to the spec's folder when they lie under it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    text = "".join(json.dumps(item.to_json(base), ensure_ascii=False) + "\n" for item in items)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def parse_model_dirs(values: Sequence[str]) -> dict[str, Path]:
    """``["NAME=DIR", ...]`` -> ``{NAME: DIR}`` (a bare ``DIR`` is named after the folder)."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = Path(value).name, value
        name = name.strip()
        if not name or not ID_PATTERN.match(name):
            raise ConfigError(f"bad --videos {value!r}: model name {name!r}",
                              "write --videos NAME=DIR with a name of letters, digits, '.', '_' or '-'")
        if name in out:
            raise ConfigError(f"model {name!r} given twice", "give each --videos its own NAME")
        folder_path = Path(folder).expanduser()
        if not folder_path.is_dir():
            raise ConfigError(f"--videos {value!r}: {folder_path} is not a folder",
                              "pass the folder holding that model's {id}.mp4 videos")
        out[name] = folder_path
    if not out:
        raise ConfigError("no generated videos given", "add --videos NAME=DIR (repeat it to compare models)")
    return out


# other containers generators write, in the order they are looked for when ``{id}.mp4`` is absent
OTHER_VIDEO_SUFFIXES = (".webm", ".mov", ".mkv", ".gif", ".avi", ".m4v")


def video_path(folder: Path, item: SpecItem) -> Path:
    """``{folder}/{id}.mp4``; where it is absent, the item's video in another container a generator may
    write (``.webm``, ``.gif``, ... :data:`OTHER_VIDEO_SUFFIXES`); the ``.mp4`` name when there is none."""
    default = Path(folder) / f"{item.id}{VIDEO_SUFFIX}"
    if default.exists():
        return default
    return next((p for p in (default.with_suffix(x) for x in OTHER_VIDEO_SUFFIXES) if p.exists()), default)
