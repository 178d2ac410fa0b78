"""Training-ready layout: WebDataset shards (``shards/NNNNN.tar``) and ``index.jsonl``.

Each clip is one sample keyed by its clip id: ``KEY.mp4`` (the clip, trimmed and re-encoded, with its
audio), ``KEY.json`` (its manifest row), ``KEY.track.json`` (the main track's sampled frames: time and
frame index in the source, box, 5 landmarks, yaw/pitch/roll, in source pixels) and ``KEY.ref_ROLE.jpg``
(a face crop per reference frame).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq

from lfa.errors import ConfigError, MediaError
from lfa.face.quality import face_crop
from lfa.media import extract_audio, probe, read_frames, write_video


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _clip_bytes(row: dict[str, Any]) -> bytes:
    frames = read_frames(row["source"], start=row["start"], end=row["end"])
    audio = None
    if probe(row["source"]).has_audio:
        try:
            full = extract_audio(row["source"])
            audio = full[int(row["start"] * 16000): int(row["end"] * 16000)]
        except MediaError:
            audio = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, [f.image for f in frames], row["fps"], audio=audio)
        return path.read_bytes()


def _reference_crops(row: dict[str, Any]) -> dict[str, bytes]:
    refs = row["references"] or []
    frames = {f.t: f.image for f in read_frames(row["source"], times=sorted({r["t"] for r in refs}))}
    crops = {}
    for ref in refs:
        image = min(frames.items(), key=lambda kv: abs(kv[0] - ref["t"]))[1] if frames else None
        if image is None:
            continue
        crop, _ = face_crop(image, np.array(ref["box"]), 1.8)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if ok:
            crops[ref["role"]] = jpg.tobytes()
    return crops


TRACK_FIELDS = ("frame", "t", "box", "landmarks5", "yaw", "pitch", "roll", "pose_source", "score")


def main_track_frames(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per accepted clip, its main track's rows of frames.parquet (time order)."""
    main = {r["clip_id"]: r["main_track"] for r in pq.read_table(run_dir / "manifest.parquet",
                                                                  columns=["clip_id", "main_track"]).to_pylist()}
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in main}
    for row in pq.read_table(run_dir / "frames.parquet").to_pylist():
        if main.get(row["clip_id"]) == row["track"]:
            out[row["clip_id"]].append({k: row[k] for k in TRACK_FIELDS})
    for rows in out.values():
        rows.sort(key=lambda r: r["t"])
    return out


def export_webdataset(run_dir: Path, out_dir: Path, *, shard_size: int = 100) -> Path:
    manifest = run_dir / "manifest.parquet"
    if not manifest.is_file():
        raise ConfigError(f"no manifest.parquet in {run_dir}", "run `lfa curate INPUTS --out DIR` first")
    rows = pq.read_table(manifest).to_pylist()
    tracks = main_track_frames(run_dir)
    (out_dir / "shards").mkdir(parents=True, exist_ok=True)
    index_lines = []
    for start in range(0, len(rows), shard_size):
        shard = out_dir / "shards" / f"{start // shard_size:05d}.tar"
        tmp = shard.with_name(shard.name + ".partial")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for row in rows[start: start + shard_size]:
                key = row["clip_id"]
                _add(tar, f"{key}.mp4", _clip_bytes(row))
                _add(tar, f"{key}.json", json.dumps(row).encode())
                _add(tar, f"{key}.track.json", json.dumps(tracks.get(key, [])).encode())
                for role, jpg in _reference_crops(row).items():
                    _add(tar, f"{key}.ref_{role}.jpg", jpg)
                index_lines.append(json.dumps({
                    "clip_id": key, "shard": str(shard.relative_to(out_dir)), "source": row["source"],
                    "start": row["start"], "end": row["end"], "cluster_id": row["cluster_id"],
                    "caption": row["caption"], "yaw_range": row["yaw_range"], "pitch_range": row["pitch_range"],
                    "speech_status": row.get("speech_status"), "transcript": row.get("transcript")}))
        os.replace(tmp, shard)
    index = out_dir / "index.jsonl"
    index.write_text("".join(line + "\n" for line in index_lines))
    (out_dir / "export.json").write_text(json.dumps({"run": str(run_dir.resolve()), "clips": len(rows),
                                                     "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    return index
