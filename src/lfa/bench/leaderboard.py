"""``leaderboard.json`` (schema ``lfa-bench-leaderboard/1``) and the paired model comparisons.

Ranking: by the headline ``score`` (mean over items of the large-angle identity score, docs/BENCH.md),
higher first; ties by the strict FaceSim of the headline's identity model. Flagged models are ranked like
the others and carry their ``flags``: a model gets a flag when at least ``FLAG_SHARE`` of its readable
videos carry it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lfa.bench.config import short
from lfa.bench.headline import FLAGS, Paired, paired

SCHEMA = "lfa-bench-leaderboard/1"
FLAG_SHARE = 0.5


def model_flags(agg: dict[str, Any]) -> list[str]:
    flags = [f for f in FLAGS if (agg.get(f"share_{f}") or 0.0) >= FLAG_SHARE]
    if agg.get("n_missing") or agg.get("n_error"):
        flags.append("incomplete")
    return flags


def metric_keys(aggregates: dict[str, dict[str, Any]], identities: tuple[str, ...], compat: tuple[str, ...],
                buckets: list[str]) -> list[str]:
    """The numbers of a leaderboard entry's ``metrics``, in order (each defined in docs/BENCH.md)."""
    keys = ["n_videos", "n_ok", "n_missing", "n_error", "coverage"]
    keys += [f"verified_yaw_{b}" for b in buckets] + [f"reached_yaw_{b}" for b in buckets]
    keys += [f"matched_yaw_{b}" for b in buckets]
    keys += [f"frames_yaw_{b}" for b in buckets] + [f"no_face_yaw_{b}" for b in buckets]
    keys += [f"no_pose_yaw_{b}" for b in buckets]
    keys += ["verified_rate", "id_z", "detection_rate", "pose_rate"]
    for name in identities:
        keys += [f"facesim_{short(name)}", f"facesim_{short(name)}_strict"]
    keys += ["yaw_range", "abs_yaw_p95", "id_spread", "copy_paste", "copy_paste_ncc"]
    keys += [f"share_{f}" for f in FLAGS]
    keys += ["identity_far", "identity_threshold_z", "identity_impostor_pairs"]
    optional = ["clipscore", "face_fid"]
    optional += sorted({k for agg in aggregates.values() for k in agg
                        if any(k.startswith(f"{m}_") for m in compat) and not k.endswith("frames_scored")})
    keys += [k for k in optional if any(k in agg for agg in aggregates.values())]
    return keys


def _num(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else round(float(v), 6)
    return v


def build(aggregates: dict[str, dict[str, Any]], keys: list[str], tie_key: str) -> list[dict[str, Any]]:
    """Entries of ``leaderboard.json``'s ``models``, ranked."""
    def order(model: str) -> tuple[float, float]:
        agg = aggregates[model]
        score, tie = agg.get("score"), agg.get(tie_key)
        return (-(score if score is not None and not math.isnan(score) else -1.0),
                -(tie if tie is not None and not math.isnan(tie) else -1.0))

    out = []
    for rank, model in enumerate(sorted(aggregates, key=order), 1):
        agg = aggregates[model]
        out.append({"model": model, "rank": rank, "score": _num(agg["score"]),
                    "ci95": [_num(agg["ci95_lo"]), _num(agg["ci95_hi"])], "flags": model_flags(agg),
                    "cross_pose": str(agg.get("cross_pose") or "").split(),
                    "metrics": {k: _num(agg.get(k, math.nan)) for k in keys}})
    return out


def comparisons(per_item: dict[str, dict[str, float]], ranked: list[str], seed: int = 0) -> list[Paired]:
    """Every pair of models (higher-ranked first) on the items both were scored on."""
    out = []
    for i, a in enumerate(ranked):
        for b in ranked[i + 1:]:
            items = sorted(set(per_item[a]) & set(per_item[b]))
            out.append(paired(a, b, np.array([per_item[a][k] for k in items]),
                              np.array([per_item[b][k] for k in items]), seed=seed))
    return out


def write(path: Path, entries: list[dict[str, Any]], views: dict[str, Any] | None = None) -> Path:
    """``views``: over the items, per |yaw| bucket, how many items' views can pose-match a frame there (both
    sides, one side, neither): ``summary.json``'s ``views.buckets``."""
    data: dict[str, Any] = {"schema": SCHEMA, "models": entries}
    if views is not None:
        data["views"] = views
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
