"""Per-video analyses cached by content: a video scored for several models or items, or scored again in a
later run, is decoded and analysed once.

Key: the video file's SHA-256 and :func:`analysis_key` (every setting that changes what is measured).
On disk each analysis is one ``.npz`` (arrays only, read with ``allow_pickle=False``) in the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import lfa
from lfa.bench.config import BenchConfig
from lfa.bench.records import FrameRecord, VideoAnalysis

FORMAT = 1
_SCALARS = ("frame", "t", "detected", "n_faces", "det_score", "yaw", "pitch", "roll", "clip_cos", "padded")


def analysis_key(config: BenchConfig) -> str:
    """Hash of the settings that decide what a video's analysis holds."""
    fields = {k: str(getattr(config, k)) for k in ("identities", "detector", "pose", "detect_max_side", "min_score",
                                                      "frames", "fps", "compat", "inception", "clip")}
    fields["lfa"] = lfa.__version__
    fields["format"] = str(FORMAT)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _pack(records: list[FrameRecord], prefix: str, out: dict[str, np.ndarray]) -> None:
    n = len(records)
    for name in _SCALARS:
        out[f"{prefix}{name}"] = np.array([getattr(r, name) for r in records], np.float64)
    has_box = np.array([r.box is not None for r in records], bool)
    out[f"{prefix}box"] = np.array([r.box if r.box is not None else np.full(4, np.nan) for r in records],
                                   np.float32).reshape(n, 4)
    out[f"{prefix}lm"] = np.array([r.landmarks5 if r.landmarks5 is not None else np.full((5, 2), np.nan)
                                   for r in records], np.float32).reshape(n, 5, 2)
    out[f"{prefix}has_box"] = has_box
    thumbs = [r.thumb for r in records if r.thumb is not None]
    if thumbs:
        shape = thumbs[0].shape
        out[f"{prefix}thumb"] = np.array([r.thumb if r.thumb is not None else np.zeros(shape, np.uint8)
                                          for r in records], np.uint8)
        out[f"{prefix}has_thumb"] = np.array([r.thumb is not None for r in records], bool)
    names = sorted({k for r in records for k in r.embeddings})
    for name in names:
        dim = next(len(r.embeddings[name]) for r in records if name in r.embeddings)
        out[f"{prefix}emb.{name}"] = np.array([r.embeddings.get(name, np.full(dim, np.nan)) for r in records],
                                              np.float32).reshape(n, dim)
    feats = [r.feature for r in records if r.feature is not None]
    if feats:
        dim = len(feats[0])
        out[f"{prefix}feat"] = np.array([r.feature if r.feature is not None else np.full(dim, np.nan)
                                         for r in records], np.float32).reshape(n, dim)


def _unpack(data: Any, prefix: str) -> list[FrameRecord]:
    n = len(data[f"{prefix}frame"])
    emb_keys = [k for k in data.files if k.startswith(f"{prefix}emb.")]
    out = []
    for i in range(n):
        r = FrameRecord(frame=int(data[f"{prefix}frame"][i]), t=float(data[f"{prefix}t"][i]))
        r.detected = bool(data[f"{prefix}detected"][i])
        r.n_faces = int(data[f"{prefix}n_faces"][i])
        r.padded = bool(data[f"{prefix}padded"][i])
        for name in ("det_score", "yaw", "pitch", "roll", "clip_cos"):
            setattr(r, name, float(data[f"{prefix}{name}"][i]))
        if data[f"{prefix}has_box"][i]:
            r.box = data[f"{prefix}box"][i]
            lm = data[f"{prefix}lm"][i]
            r.landmarks5 = None if np.isnan(lm).all() else lm
        if f"{prefix}thumb" in data.files and data[f"{prefix}has_thumb"][i]:
            r.thumb = data[f"{prefix}thumb"][i]
        for key in emb_keys:
            v = data[key][i]
            if not np.isnan(v).all():
                r.embeddings[key[len(prefix) + 4:]] = v
        if f"{prefix}feat" in data.files and not np.isnan(data[f"{prefix}feat"][i]).all():
            r.feature = data[f"{prefix}feat"][i]
        out.append(r)
    return out


class AnalysisCache:
    """In-memory always; on disk too when ``folder`` is given."""

    def __init__(self, config: BenchConfig, folder: Path | None = None) -> None:
        self.key = analysis_key(config)
        self.folder = Path(folder) if folder is not None else None
        self._mem: dict[str, VideoAnalysis] = {}

    def _file(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}-{self.key}.npz"

    def get(self, key: str) -> VideoAnalysis | None:
        """The analysis of the content ``key`` (the video's SHA-256, plus the prompt's hash with CLIPScore)."""
        if key in self._mem:
            return self._mem[key]
        if self.folder is None or not self._file(key).is_file():
            return None
        try:
            with np.load(self._file(key), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                modes = {m: _unpack(data, f"{m}/") for m in meta["modes"]}
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None  # a damaged entry is analysed again (and overwritten)
        found = VideoAnalysis(model="", id="", path="", info=meta["info"], modes=modes, timing={},
                              sha256=meta.get("sha256"))
        self._mem[key] = found
        return found

    def put(self, key: str, analysis: VideoAnalysis) -> None:
        """Keep a readable video's analysis (in memory; on disk with a folder)."""
        if analysis.status != "ok":
            return
        self._mem[key] = analysis
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(
            {"modes": list(analysis.modes), "sha256": analysis.sha256, "info": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                     for k, v in analysis.info.items()}}))}
        for mode, records in analysis.modes.items():
            _pack(records, f"{mode}/", arrays)
        final = self._file(key)
        tmp = final.with_name(final.stem + ".partial.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(final)


def reuse(found: VideoAnalysis, model: str, item_id: str, path: str) -> VideoAnalysis:
    """A cached analysis under another (model, item, path)."""
    return replace(found, model=model, id=item_id, path=path, timing={}, cached=True)
