"""The run's tables (Parquet, fixed schemas) and their atomic writing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_F, _S, _I, _L = pa.float64(), pa.string(), pa.int64(), pa.list_(pa.float64())
REFERENCE = pa.struct([("role", _S), ("t", _F), ("frame", _I), ("box", _L), ("yaw", _F), ("pitch", _F),
                       ("roll", _F), ("sharpness", _F)])
SEGMENT = pa.struct([("start", _F), ("end", _F), ("status", _S), ("av_score", _F), ("level_score", _F),
                     ("syllable_score", _F), ("lag_s", _F), ("text", _S)])
MANIFEST = pa.schema(
    [("clip_id", _S), ("source", _S), ("start", _F), ("end", _F), ("duration", _F), ("fps", _F), ("width", _I),
     ("height", _I), ("sampled_frames", _I), ("main_track", _I)]
    + [(f"{a}_{s}", _F) for a in ("yaw", "pitch", "roll") for s in ("min", "max", "mean")]
    + [("yaw_range", _F), ("pitch_range", _F), ("roll_range", _F), ("euler_sum", _F), ("yaw_hist", pa.list_(_I)),
       ("face_ratio_median", _F), ("face_ratio_min", _F), ("face_ratio_max", _F), ("face_px_median", _F),
       ("identity_model", _S), ("identity_centroid", _L), ("identity_embeddings", pa.list_(_L)),
       ("identity_yaws", _L), ("identity_min_similarity", _F), ("identity_split_z", _F), ("cluster_id", _I),
       ("references", pa.list_(REFERENCE)), ("caption", _S), ("caption_source", _S),
       ("speech_status", _S), ("speech_av_score", _F), ("speech_lag_s", _F), ("speech_segments", pa.list_(SEGMENT)),
       ("transcript", _S), ("language", _S), ("speech_curve_t", _L), ("speech_mouth", _L), ("speech_envelope", _L),
       ("speech_sync_offset", _I), ("speech_sync_conf", _F)])
FRAMES = pa.schema([("source", _S), ("clip_id", _S), ("frame", _I), ("t", _F), ("track", _I), ("box", _L),
                    ("landmarks5", _L), ("score", _F), ("yaw", _F), ("pitch", _F), ("roll", _F), ("pose_source", _S),
                    ("sharpness", _F), ("area_ratio", _F)])
# measure: what value is (lfa.curate.records.MEASURES); offending: the faces that decided it (another prominent
# face, the second person of an identity switch), in the coordinates of frames.parquet's boxes
REJECTED = pa.schema([("source", _S), ("clip_id", _S), ("start", _F), ("end", _F), ("stage", _S),
                      ("reason", _S), ("value", _F), ("threshold", _F), ("measure", _S), ("main_track", _I),
                      ("offending", pa.list_(pa.struct([("t", _F), ("box", _L)])))])
FAILURES = pa.schema([("input", _S), ("error", _S), ("fix", _S)])
CLUSTERS = pa.schema([("cluster_id", _I), ("clips", _I), ("tightness_z", _F), ("nearest_cluster", _I),
                      ("nearest_z", _F)])
WARNINGS = pa.schema([("source", _S), ("clip_id", _S), ("stage", _S), ("message", _S)])


def write_table(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """Write ``rows`` as Parquet with ``schema``, atomically (a reader never sees half a file)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
