"""Training clips from an ``lfa curate export`` folder's WebDataset shards (``shards/NNNNN.tar``).

Each sample of a shard is one clip: ``KEY.mp4`` (the clip, from its first frame at or after the manifest's
``start``), ``KEY.json`` (its manifest row) and ``KEY.track.json`` (the main track's frames, in source
time). The clips are extracted once to a folder next to the caches; times stay in source time (so a
sample of an export has the key, window and references of the same sample of the run) and
``offset`` maps them into the extracted clip (clip time = source time - offset).
"""

from __future__ import annotations

import json
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError

SUFFIXES = (".track.json", ".json", ".mp4")


@dataclass(frozen=True)
class ClipSource:
    path: str  # the video file to decode
    offset: float  # source time - time in ``path``


def is_export(folder: Path) -> bool:
    return (folder / "export.json").is_file() and (folder / "shards").is_dir()


def _split(name: str) -> tuple[str, str] | None:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return None


def first_frame_time(start: float, fps: float) -> float:
    """The time of the source's first frame at or after ``start`` (where the exported clip begins)."""
    return math.ceil(start * fps - 1e-6) / fps


def read_export(folder: Path, extract_to: Path) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]],
                                                        dict[str, ClipSource]]:
    """Manifest rows (shard order), main-track frames and clip sources of every clip in the shards."""
    shards = sorted((folder / "shards").glob("*.tar"))
    if not shards:
        raise ConfigError(f"{folder}/shards holds no .tar shard", "export the run again (`lfa curate export`)")
    rows: list[dict[str, Any]] = []
    tracks: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, ClipSource] = {}
    extract_to.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    parts = _split(member.name) if member.isfile() else None
                    if parts is None:
                        continue
                    key, suffix = parts
                    fh = tar.extractfile(member)
                    if suffix == ".json":
                        rows.append(json.loads(fh.read()))
                    elif suffix == ".track.json":
                        tracks[key] = sorted(json.loads(fh.read()), key=lambda r: r["t"])
                    else:
                        sources[key] = ClipSource(str(_extract(fh, member.size, extract_to / f"{key}.mp4")), 0.0)
        except (tarfile.TarError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{shard}: not a readable WebDataset shard ({exc})",
                              "export the run again (`lfa curate export`)") from exc
    for row in rows:
        clip = sources.get(row["clip_id"])
        if clip is None:
            raise ConfigError(f"{folder}: clip {row['clip_id']} has no .mp4 in the shards", "export the run again")
        sources[row["clip_id"]] = ClipSource(clip.path, first_frame_time(float(row["start"]), float(row["fps"])))
    return rows, tracks, sources


def _extract(fh: Any, size: int, path: Path) -> Path:
    if path.is_file() and path.stat().st_size == size:
        return path  # extracted before
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as out:
        while chunk := fh.read(1 << 20):
            out.write(chunk)
    tmp.replace(path)
    return path
