"""Training samples over a curation run: windows of 4n+1 frames, a bucket, cross-pose reference faces.

A sample is metadata only (no pixels): which frames of which source, at which size, and which main-track
frames give its reference faces. :mod:`lfa.train.cache` turns samples into tensors once.

- windows: ``num_frames`` frames at ``fps`` inside each accepted clip, one every ``window_stride`` frames;
- bucket: the (height, width) of ``buckets`` nearest to the clip's aspect ratio (resize + centre crop);
- references: ``reference_views`` main-track frames, each from a yaw bucket (``yaw_bucket`` degrees)
  that neither the window's frames nor an earlier reference occupy when the clip has one (frames outside
  the window first), the most frontal of a bucket first; ``pose_gap`` records the yaw difference between
  the first reference and the window's mean yaw.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lfa.errors import ConfigError
from lfa.train.config import TrainConfig

BOX_TOLERANCE = 0.5  # seconds between a window frame and the tracked frame whose box it takes


@dataclass(frozen=True)
class ReferenceFrame:
    t: float
    landmarks5: tuple[float, ...]
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Sample:
    clip_id: str
    source: str
    start: float  # time of the window's first frame in the source (s)
    fps: float
    num_frames: int
    bucket: tuple[int, int]  # (height, width)
    caption: str
    cluster_id: int
    window_yaw: float
    references: tuple[ReferenceFrame, ...]
    pose_gap: float  # |yaw of the first reference - mean yaw of the window|, degrees
    boxes: tuple[tuple[float, ...] | None, ...] = ()  # per window frame, source pixels (x0, y0, x1, y1)
    offset: float = 0.0  # source time - time in ``source`` (an exported clip starts at its clip's start)

    @property
    def key(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.clip_id)
        return f"{safe}__t{int(round(self.start * 1000)):08d}__{self.bucket[0]}x{self.bucket[1]}"

    @property
    def times(self) -> list[float]:
        """The window's frame times in the source video."""
        return [self.start + i / self.fps for i in range(self.num_frames)]

    def file_times(self, times: list[float]) -> list[float]:
        """Source times as times in the file ``source`` names."""
        return [t - self.offset for t in times]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_run(data: str | Path) -> Path:
    """The curation run behind ``data``: a run folder, or a WebDataset export whose ``export.json`` names it."""
    folder = Path(data).expanduser()
    if (folder / "manifest.parquet").is_file():
        return folder
    export = folder / "export.json"
    if export.is_file():
        run = Path(json.loads(export.read_text())["run"])
        if (run / "manifest.parquet").is_file():
            return run
        raise ConfigError(f"{folder} is an export of {run}, which is gone", "pass the curation run folder")
    raise ConfigError(f"{folder}: no manifest.parquet", "pass a curation run folder (`lfa curate INPUTS --out DIR`)")


def read_clips(data: str | Path, extract_to: Path | None = None) -> tuple[str, list[dict[str, Any]],
                                                                        dict[str, list[dict[str, Any]]],
                                                                        dict[str, Any]]:
    """(where, manifest rows, main-track frames, clip sources) of a run, or of an export's shards
    (extracted to ``extract_to``, default ``EXPORT/.clips``)."""
    from lfa.curate.export import main_track_frames
    from lfa.train.shards import ClipSource, is_export, read_export

    folder = Path(data).expanduser()
    if is_export(folder) and not (folder / "manifest.parquet").is_file():
        rows, tracks, sources = read_export(folder, extract_to or folder / ".clips")
        return str(folder), rows, tracks, sources
    run = resolve_run(folder)
    rows = pq.read_table(run / "manifest.parquet").to_pylist()
    return str(run), rows, main_track_frames(run), {r["clip_id"]: ClipSource(r["source"], 0.0) for r in rows}


def window_boxes(track: list[dict[str, Any]], times: list[float]) -> tuple[tuple[float, ...] | None, ...]:
    """The main track's box nearest in time to each of ``times`` (none farther than ``BOX_TOLERANCE``)."""
    boxes = []
    for t in times:
        near = min(track, key=lambda r: abs(r["t"] - t))
        ok = abs(near["t"] - t) <= BOX_TOLERANCE and near.get("box") is not None
        boxes.append(tuple(float(v) for v in near["box"]) if ok else None)
    return tuple(boxes)


def nearest_bucket(width: int, height: int, buckets: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    ratio = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[1] / b[0]) - ratio), -b[0] * b[1]))


def _yaw_bucket(yaw: float, size: float) -> int:
    return int(math.floor((yaw + size / 2) / size))  # frontal (|yaw| < size/2) is bucket 0


def pick_references(rows: list[dict[str, Any]], window: tuple[float, float], window_yaw: float, count: int,
                    size: float) -> list[dict[str, Any]]:
    """Main-track frames for ``count`` cross-pose references (see the module docstring)."""
    usable = [r for r in rows if r["landmarks5"] and r["yaw"] is not None and not math.isnan(r["yaw"])]
    used = {_yaw_bucket(window_yaw, size)}
    chosen: list[dict[str, Any]] = []

    def rank(r: dict[str, Any]) -> tuple:
        inside = window[0] <= r["t"] <= window[1]
        return (_yaw_bucket(r["yaw"], size) in used, inside, abs(r["yaw"]), r["t"])

    while len(chosen) < count and len(chosen) < len(usable):
        best = min((r for r in usable if r not in chosen), key=rank)
        chosen.append(best)
        used.add(_yaw_bucket(best["yaw"], size))
    return chosen


def last_frame_fits(t: float, end: float, source_fps: float) -> bool:
    """Whether a window frame at source time ``t`` lies inside a clip ending at ``end`` (exclusive).

    A time maps to the first source frame at or after it (:func:`lfa.media.sampling.indices_for_times`),
    so the frame read for ``t`` must itself start before ``end``: a clip that ends where its video ends
    has no frame at ``end``."""
    if source_fps <= 0:
        return t < end - 1e-6
    from lfa.media.sampling import indices_for_times

    index = int(indices_for_times([t], source_fps)[0])
    return index / source_fps < end - 1e-6


def build_samples(data: str | Path, config: TrainConfig, *, extract_to: Path | None = None) -> list[Sample]:
    """Every training sample of the run (or export), in a stable order; a one-line error when there is none."""
    run, rows, tracks, sources = read_clips(data, extract_to)
    if not rows:
        raise ConfigError(f"{run} lists no accepted clip", "curate more (or looser) inputs")
    span = (config.num_frames - 1) / config.fps
    stride = (config.window_stride or config.num_frames) / config.fps
    samples: list[Sample] = []
    for row in rows:
        track = tracks.get(row["clip_id"], [])
        if not track:
            continue
        bucket = nearest_bucket(int(row["width"]), int(row["height"]), config.bucket_list)
        start = float(row["start"])
        while last_frame_fits(start + span, float(row["end"]), float(row.get("fps") or 0.0)):
            inside = [r for r in track if start <= r["t"] <= start + span] or \
                [min(track, key=lambda r: abs(r["t"] - start - span / 2))]
            yaws = [r["yaw"] for r in inside if r["yaw"] is not None and not math.isnan(r["yaw"])]
            window_yaw = sum(yaws) / len(yaws) if yaws else 0.0
            refs = pick_references(track, (start, start + span), window_yaw, config.reference_views, config.yaw_bucket)
            if refs:
                source = sources[row["clip_id"]]
                times = [round(start, 6) + i / config.fps for i in range(config.num_frames)]
                samples.append(Sample(
                    row["clip_id"], source.path, round(start, 6), config.fps, config.num_frames, bucket,
                    row.get("caption") or "", int(row.get("cluster_id") or 0), window_yaw,
                    tuple(ReferenceFrame(r["t"], tuple(r["landmarks5"]), r["yaw"], r["pitch"] or 0.0, r["roll"] or 0.0)
                          for r in refs),
                    abs(refs[0]["yaw"] - window_yaw), window_boxes(track, times), source.offset))
            start += stride
    if not samples:
        raise ConfigError(f"{run}: no clip is long enough for {config.num_frames} frames at {config.fps:g} fps "
                          "with a face on its main track", "lower num_frames or fps, or curate longer clips")
    return samples
