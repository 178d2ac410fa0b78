"""``run_bench``: spec + folders of generated videos -> scores.csv, frames.parquet, summary.json, report.html."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lfa
from lfa.bench import compat as compat_mod
from lfa.bench import metrics as M
from lfa.bench.cache import AnalysisCache, reuse
from lfa.bench.config import IDENTITY_MODELS, BenchConfig, short
from lfa.bench.copypaste import CopyPasteEvidence, copy_paste_evidence
from lfa.bench.extract import Extractor
from lfa.bench.headline import (FLAGS, MATCHED_SHARE, SIDES, VideoHeadline, bootstrap_ci, covered_ranges, target_of,
                                video_headline, view_coverage)
from lfa.bench.leaderboard import FLAG_SHARE, comparisons, metric_keys
from lfa.bench.leaderboard import build as build_leaderboard
from lfa.bench.leaderboard import write as write_leaderboard
from lfa.bench.metrics import bucket_labels
from lfa.bench.records import FrameRecord, VideoAnalysis, similarities
from lfa.bench.report import write_report
from lfa.bench.result import REFERENCE_MODEL, BenchResult, Reference
from lfa.bench.spec import SpecItem, load_spec, video_path
from lfa.errors import ConfigError
from lfa.face.embedding import l2_normalize
from lfa.face.identity.impostors import SHIPPED_BACKENDS, encoder_name, impostor_model_for, load_impostor_model
from lfa.face.identity.score import MAX_DYAW, POSE_MATCHED, FaceSet, FrameScores, IdentityScorer
from lfa.media import read_image
from lfa.registry.store import sha256_file

MIN_PEOPLE = 3  # people among the references needed to fit impostors on them

Progress = Callable[[str, int, int], None]  # (message, done, total)


# -- references -------------------------------------------------------------------------------------
def analyze_references(extractor: Extractor, items: Sequence[SpecItem]) -> dict[str, Reference]:
    """Measure every reference image and evaluation view (the face at the item's box, else the largest);
    an item whose references, or one of whose evaluation views, show no such face stops the run
    (ConfigError listing them)."""
    refs: dict[str, Reference] = {}
    bad: list[str] = []
    # items often share reference images: measure each (file, box) once
    seen: dict[tuple[Path, tuple[float, ...] | None], FrameRecord] = {}
    seen_compat: dict[Path, FrameRecord] = {}

    def measure(path: Path, box: Any, j: int) -> FrameRecord:
        if (path, box) not in seen:
            seen[(path, box)] = extractor.analyze_image(read_image(path), frame=j, box=box)
        return seen[(path, box)]

    for item in items:
        records = [measure(path, item.box(j), j) for j, path in enumerate(item.references)]
        views = [measure(path, item.eval_box(j), j) for j, path in enumerate(item.eval_references)]
        if not any(r.detected for r in records):
            at_box = " at its reference_box" if any(item.boxes) else ""
            bad.append(f"{item.id} ({', '.join(p.name for p in item.references)}{at_box})")
            continue
        faceless = [p.name for p, r in zip(item.eval_references, views) if not r.detected]
        if faceless:
            bad.append(f"{item.id} (eval_references {', '.join(faceless)})")
            continue
        ref = Reference(item, records, views, identity_key=str(item.labels.get("cluster_id", item.id)))
        found = ref.views
        for name in extractor.encoders:
            ref.embeddings[name] = l2_normalize(np.mean([l2_normalize(r.embeddings[name]) for r in found], axis=0))
            ref.faces[name] = face_set(found, name)
        ref.poses = [(r.yaw, r.pitch) for r in records if r.has_pose]
        if not ref.poses:
            ref.poses, ref.pose_assumed = [(0.0, 0.0)], True
        if extractor.config.compat:
            first = item.references[0]
            if first not in seen_compat:
                seen_compat[first] = compat_mod.process_image(extractor, compat_mod.read_reference(first))
            ref.compat = seen_compat[first]
        refs[item.id] = ref
    if bad:
        raise ConfigError(f"no face found in the reference image(s) of {len(bad)} item(s): {'; '.join(bad[:10])}"
                          + (" …" if len(bad) > 10 else ""),
                          "replace those images with ones showing the face (or fix their reference_box / "
                          "eval_reference_box), or drop the items (or those eval_references)")
    return refs


def face_set(frames: Sequence[FrameRecord], name: str) -> FaceSet:
    """Frames as a :class:`FaceSet` of identity model ``name`` (a frame without a face: a NaN row)."""
    dim = next((len(f.embeddings[name]) for f in frames if name in f.embeddings), 1)
    emb = np.array([f.embeddings[name] if f.detected and name in f.embeddings else np.full(dim, np.nan)
                    for f in frames], np.float32).reshape(len(frames), dim)
    return FaceSet(emb, np.array([f.yaw for f in frames], np.float64), np.array([f.pitch for f in frames]),
                   backend=encoder_name(IDENTITY_MODELS[name][0]))


# -- the identity score of the headline ----------------------------------------------------------------------
@dataclass
class Calibration:
    identity: str  # identity model of the headline
    scorer: IdentityScorer
    how: str  # where the impostors come from

    def describe(self) -> dict[str, Any]:
        return {"identity_model": self.identity, "far": self.scorer.far, "impostors": self.how,
                "impostor_model": self.scorer.model.describe(), "max_dyaw": self.scorer.max_dyaw}


def calibrate(config: BenchConfig, references: dict[str, Reference]) -> Calibration:
    """The pose-aware identity scorer of the headline (lfa.face.identity.score): impostors from
    ``config.impostors`` (a model from ``lfa identity calibrate``), else from the spec's references when
    they hold three people or more (falling back on the shipped model bucket by bucket), else lfa's
    shipped model. Its identity model is the primary one when it can be calibrated, else dlib."""
    assert config.identities is not None and config.primary is not None
    if config.impostors is not None:
        model = load_impostor_model(config.impostors)
        names = [n for n in config.identities if encoder_name(IDENTITY_MODELS[n][0]) == model.backend]
        if not names:
            raise ConfigError(f"the impostor model {config.impostors} is for {model.backend!r}, which this run "
                              "does not score", f"add --identity for it, or calibrate one for {config.primary}")
        return Calibration(names[0], IdentityScorer(model, far=config.far), f"file {config.impostors}")
    people: dict[str, list[FrameRecord]] = defaultdict(list)
    for ref in references.values():
        people[ref.identity_key] += ref.views
    for name in dict.fromkeys([config.primary, "dlib"]):
        if name not in config.identities:
            continue
        backend = encoder_name(IDENTITY_MODELS[name][0])
        if backend not in SHIPPED_BACKENDS and len(people) < MIN_PEOPLE:
            continue
        sets = {k: face_set(v, name) for k, v in people.items()}
        model = impostor_model_for(sets, backend=backend, min_identities=MIN_PEOPLE,
                                   provenance={"data": "the benchmark spec's reference faces",
                                               "identities": len(sets)})
        how = (f"the spec's references ({len(sets)} people), shipped model where they lack a yaw pair"
               if len(sets) >= MIN_PEOPLE else "lfa's shipped impostor model (the spec has fewer than "
               f"{MIN_PEOPLE} people)")
        return Calibration(name, IdentityScorer(model, far=config.far), how)
    raise ConfigError(f"cannot calibrate {config.primary} identity scores: the spec has {len(people)} people "
                      f"(< {MIN_PEOPLE}) and lfa ships no {config.primary} impostor model",
                      "pass --impostors FILE from `lfa identity calibrate FOLDER --identity "
                      f"{config.primary}`, or add --identity dlib")


def score_video(analysis: VideoAnalysis, ref: Reference, cal: Calibration, config: BenchConfig
                ) -> tuple[VideoHeadline, FrameScores | None, CopyPasteEvidence]:
    """The headline, the per-frame identity scores and the copy-paste evidence of one video."""
    target = target_of(ref.item.labels, config.yaw_edges, f"spec item {ref.item.id}")
    frames = analysis.modes.get("lfa", []) if analysis.status == "ok" else []
    if not frames:
        empty = np.zeros(0)
        return (video_headline(empty.astype(bool), empty.astype(bool), empty, empty, empty, target, config.yaw_edges),
                None, copy_paste_evidence([], empty, [], ref.thumbs))
    scores = cal.scorer.score_frames(face_set(frames, cal.identity), ref.faces[cal.identity],
                                     reference_identity=ref.identity_key)
    yaw = np.array([f.yaw for f in frames], np.float64)
    pitch = np.array([f.pitch for f in frames], np.float64)
    head = video_headline(scores.accept, np.array([f.detected for f in frames]), yaw, pitch,
                          np.array([f.t for f in frames], np.float64), target, config.yaw_edges,
                          matched=scores.kind == POSE_MATCHED)
    evidence = copy_paste_evidence([f.thumb if f.detected else None for f in frames],
                                   M.pose_distance(yaw, pitch, ref.poses), [f.frame for f in frames], ref.thumbs)
    if evidence.flagged:
        head.flags.insert(0, "copy_paste")
    return head, scores, evidence


# -- per-video metrics --------------------------------------------------------------------------------
def video_row(analysis: VideoAnalysis, ref: Reference, config: BenchConfig, head: VideoHeadline,
              scores: FrameScores | None, evidence: CopyPasteEvidence, logit_scale: float | None = None
              ) -> dict[str, Any]:
    """One row of scores.csv."""
    assert config.identities is not None and config.primary is not None
    row: dict[str, Any] = {"model": analysis.model, "id": analysis.id, "status": analysis.status}
    frames = analysis.modes.get("lfa", [])
    n = len(frames)
    detected = np.array([f.detected for f in frames], bool)
    posed = np.array([f.has_pose for f in frames], bool)
    row["score"] = head.score
    row["coverage"] = head.coverage
    row["flags"] = " ".join(head.flags)
    row["target_yaw_lo"], row["target_yaw_hi"] = head.target.lo, head.target.hi
    for lab in bucket_labels(config.yaw_edges):
        row[f"verified_yaw_{lab}"] = head.rate(lab)
    for lab in bucket_labels(config.yaw_edges):
        row[f"matched_yaw_{lab}"] = head.matched[lab] / head.posed(lab) if head.posed(lab) else math.nan
    row["cross_pose"] = " ".join(head.cross_pose)
    row["verified_rate"] = float((scores.accept & posed).mean()) if scores is not None and n else math.nan
    row["id_z"] = M.nanmean(scores.z[posed]) if scores is not None and posed.any() else math.nan
    row["n_frames"], row["n_detected"], row["n_pose"] = n, int(detected.sum()), int(posed.sum())
    row["detection_rate"] = M.detection_rate(detected)
    row["pose_rate"] = M.detection_rate(posed)
    sims = {name: similarities(frames, ref.embeddings[name], name) for name in config.identities}
    for name in config.identities:
        row[f"facesim_{short(name)}"] = M.facesim(sims[name])
        row[f"facesim_{short(name)}_strict"] = M.facesim_strict(sims[name])
    s = sims[config.primary]
    yaw = np.array([f.yaw for f in frames], np.float64)
    pitch = np.array([f.pitch for f in frames], np.float64)
    yaw_stats = M.bucket_means(s, yaw, config.yaw_edges)
    pitch_stats = M.bucket_means(s, pitch, config.pitch_edges)
    for label, st in yaw_stats.items():
        row[f"facesim_yaw_{label}"] = st.mean
    for label, st in yaw_stats.items():
        row[f"n_yaw_{label}"] = st.count
    for label, st in pitch_stats.items():
        if label != M.NO_POSE:
            row[f"facesim_pitch_{label}"] = st.mean
    label, worst = M.worst_bucket(yaw_stats, min_count=1)
    row["worst_bucket"] = f"yaw_{label}" if label else ""
    row["facesim_worst_bucket"] = worst
    posed_yaw, posed_pitch = yaw[posed], pitch[posed]
    row["yaw_min"] = float(posed_yaw.min()) if posed_yaw.size else math.nan
    row["yaw_max"] = float(posed_yaw.max()) if posed_yaw.size else math.nan
    row["yaw_range"] = row["yaw_max"] - row["yaw_min"]
    row["abs_yaw_max"] = float(np.abs(posed_yaw).max()) if posed_yaw.size else math.nan
    row["pitch_min"] = float(posed_pitch.min()) if posed_pitch.size else math.nan
    row["pitch_max"] = float(posed_pitch.max()) if posed_pitch.size else math.nan
    primary_emb = [f.embeddings[config.primary] for f in frames if f.detected]
    row["id_spread"], row["id_self_sim"] = M.identity_spread(np.array(primary_emb)) if primary_emb else (math.nan,) * 2
    dist = M.pose_distance(yaw, pitch, ref.poses)
    row["copy_paste"] = evidence.share
    row["copy_paste_ncc"] = evidence.ncc_median
    row["pose_dist_mean"] = M.nanmean(dist[detected]) if detected.any() else math.nan
    if config.clip:
        from lfa.bench.clipscore import clipscore

        row["clipscore"] = clipscore(np.array([f.clip_cos for f in frames], np.float64))
    for mode in config.compat:
        scores_c = compat_mod.scores(mode, ref.compat, analysis.modes.get(mode, []),
                                     analysis.modes.get(f"{mode}_clip"), logit_scale, config.identities)
        if analysis.status != "ok":  # the peers' scripts have no score for a video they cannot read
            scores_c = {k: math.nan for k in scores_c}
        row.update(scores_c)
    row["error"] = analysis.error
    return row


def frame_rows(analysis: VideoAnalysis, ref: Reference, identities: Sequence[str],
               scores: FrameScores | None = None) -> list[dict[str, Any]]:
    """Rows of frames.parquet for one video: every mode, every sampled frame."""
    rows = []
    for mode, frames in analysis.modes.items():
        if mode == "lfa":
            refs = ref.embeddings
            dist = M.pose_distance(np.array([f.yaw for f in frames]), np.array([f.pitch for f in frames]), ref.poses)
        else:
            refs = ref.compat.embeddings if ref.compat is not None and ref.compat.detected else {}
            dist = np.full(len(frames), np.nan)
        for i, (f, d) in enumerate(zip(frames, dist)):
            row = _frame_dict(analysis.model, analysis.id, mode, f, identities, refs, float(d))
            if mode == "lfa" and scores is not None:
                row["id_z"], row["id_threshold"] = float(scores.z[i]), float(scores.threshold[i])
                row["verified"] = bool(scores.accept[i] and f.has_pose)
                row["pose_matched"] = bool(scores.kind[i] == POSE_MATCHED)
            rows.append(row)
    return rows


def _frame_dict(model: str, item_id: str, mode: str, f: FrameRecord, identities: Sequence[str],
                refs: dict[str, np.ndarray], dist: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": model, "id": item_id, "mode": mode, "frame": f.frame, "t": float(f.t), "detected": f.detected,
        "n_faces": f.n_faces, "padded": f.padded, "det_score": float(f.det_score),
        "box": None if f.box is None else [float(v) for v in f.box],
        "yaw": float(f.yaw), "pitch": float(f.pitch), "roll": float(f.roll), "pose_dist": dist,
        "clip_cos": float(f.clip_cos),
    }
    for name in identities:
        emb = f.embeddings.get(name)
        ref = refs.get(name)
        row[f"sim_{short(name)}"] = (float(np.dot(l2_normalize(emb), l2_normalize(ref)))
                                     if emb is not None and ref is not None else math.nan)
    for name in identities:
        emb = f.embeddings.get(name)
        row[f"emb_{short(name)}"] = None if emb is None else [float(v) for v in emb]
    if f.feature is not None:
        row["feat"] = [float(v) for v in f.feature]
    return row


def reference_frame_rows(ref: Reference, identities: Sequence[str]) -> list[dict[str, Any]]:
    rows = [_frame_dict(REFERENCE_MODEL, ref.item.id, mode, r, identities, ref.embeddings, math.nan)
            for mode, records in (("reference", ref.records), ("eval_reference", ref.eval_records)) for r in records]
    if ref.compat is not None:
        rows.append(_frame_dict(REFERENCE_MODEL, ref.item.id, "reference_compat", ref.compat, identities,
                                ref.compat.embeddings, math.nan))
    return rows


# -- aggregation ------------------------------------------------------------------------------------------
MEAN_COLUMNS_SKIP = {"model", "id", "status", "error", "worst_bucket", "n_frames", "n_detected", "n_pose", "flags",
                     "copy_paste_evidence", "cross_pose",
                     "score", "coverage", "target_yaw_lo", "target_yaw_hi"}


def aggregate(model: str, rows: list[dict[str, Any]], analyses: list[VideoAnalysis],
              references: dict[str, Reference], config: BenchConfig, heads: dict[str, VideoHeadline]
              ) -> tuple[dict[str, Any], dict[str, dict[str, M.BucketStat]]]:
    """A model's entry: the headline over items (a missing or unreadable video scores 0), its bootstrap
    interval, flag shares, pooled per-bucket coverage, and the per-video means of the other columns."""
    assert config.identities is not None and config.primary is not None
    agg: dict[str, Any] = {"n_videos": len(rows)}
    per_item = np.array([heads[r["id"]].score if r["status"] == "ok" else 0.0 for r in rows], np.float64)
    agg["score"] = float(per_item.mean()) if per_item.size else math.nan
    agg["ci95_lo"], agg["ci95_hi"] = bootstrap_ci(per_item, seed=config.seed)
    for status in ("ok", "missing", "error"):
        agg[f"n_{status}"] = sum(r["status"] == status for r in rows)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    ok_heads = [heads[r["id"]] for r in ok_rows]
    agg["coverage"] = M.nanmean([h.coverage for h in ok_heads])
    for flag in FLAGS:
        agg[f"share_{flag}"] = float(np.mean([flag in h.flags for h in ok_heads])) if ok_heads else math.nan
    cross: list[str] = []
    for lab in bucket_labels(config.yaw_edges):
        hs = [h for h in ok_heads if lab in h.frames]
        n = sum(h.frames[lab] for h in hs)
        agg[f"verified_yaw_{lab}"] = (sum(h.verified[lab] for h in hs if h.reached[lab]) / n) if n else math.nan
        agg[f"frames_yaw_{lab}"] = n
        agg[f"no_face_yaw_{lab}"] = sum(h.no_face[lab] for h in hs)
        agg[f"no_pose_yaw_{lab}"] = sum(h.no_pose[lab] for h in hs)
        agg[f"reached_yaw_{lab}"] = float(np.mean([h.reached[lab] for h in hs])) if hs else math.nan
        posed = sum(h.posed(lab) for h in hs)
        agg[f"matched_yaw_{lab}"] = sum(h.matched[lab] for h in hs) / posed if posed else math.nan
        if posed and agg[f"matched_yaw_{lab}"] < MATCHED_SHARE:
            cross.append(lab)
    agg["cross_pose"] = " ".join(cross)  # buckets scored mostly without a pose-matched view
    agg["n_no_face"] = sum(r["n_detected"] == 0 for r in ok_rows)
    agg["n_frames"] = sum(r["n_frames"] for r in ok_rows)
    agg["n_detected"] = sum(r["n_detected"] for r in ok_rows)
    agg["n_pose"] = sum(r["n_pose"] for r in ok_rows)
    pooled_cols = {k for k in (ok_rows[0] if ok_rows else {}) if k.startswith(("facesim_yaw_", "facesim_pitch_",
                                                                              "n_yaw_", "verified_yaw_",
                                                                              "matched_yaw_"))}
    pooled_cols |= {"facesim_worst_bucket"}
    for key in (ok_rows[0] if ok_rows else {}):
        if key in MEAN_COLUMNS_SKIP or key in pooled_cols:
            continue
        agg[key] = M.nanmean([r[key] for r in ok_rows])
    # pooled over frames
    s_all, yaw_all, pitch_all, dist_all = [], [], [], []
    gen_feat: list[np.ndarray] = []
    for a in analyses:
        if a.status != "ok":
            continue
        ref = references[a.id]
        frames = a.modes.get("lfa", [])
        s_all.append(similarities(frames, ref.embeddings[config.primary], config.primary))
        yaw = np.array([f.yaw for f in frames], np.float64)
        pitch = np.array([f.pitch for f in frames], np.float64)
        yaw_all.append(yaw)
        pitch_all.append(pitch)
        dist_all.append(M.pose_distance(yaw, pitch, ref.poses))
        gen_feat += [f.feature for f in frames if f.detected and f.feature is not None]
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))  # noqa: E731
    s, yaw, pitch, dist = cat(s_all), cat(yaw_all), cat(pitch_all), cat(dist_all)
    curves = {"yaw": M.bucket_means(s, yaw, config.yaw_edges), "pitch": M.bucket_means(s, pitch, config.pitch_edges),
              "pose_dist": M.similarity_vs_distance(s, dist)}
    for label, st in curves["yaw"].items():
        agg[f"facesim_yaw_{label}"] = st.mean
        agg[f"n_yaw_{label}"] = st.count
    for label, st in curves["pitch"].items():
        if label != M.NO_POSE:
            agg[f"facesim_pitch_{label}"] = st.mean
    label, worst = M.worst_bucket(curves["yaw"], min_count=config.min_bucket_frames)
    agg["worst_bucket"] = f"yaw_{label}" if label else ""
    agg["facesim_worst_bucket"] = worst
    posed = ~np.isnan(yaw)
    total_posed = int(posed.sum())
    idx = M.bucket_of(yaw, config.yaw_edges)
    for b, lab in enumerate(M.bucket_labels(config.yaw_edges)):
        agg[f"yaw_share_{lab}"] = float((idx == b).sum() / total_posed) if total_posed else math.nan
    agg["abs_yaw_p95"] = float(np.percentile(np.abs(yaw[posed]), 95)) if total_posed else math.nan
    if config.inception:  # Face FID: image statistics of all generated faces vs all reference faces
        unique = {id(r): r for ref in references.values() for r in ref.records}
        ref_feat = [r.feature for r in unique.values() if r.detected and r.feature is not None]
        agg["face_fid"] = M.frechet_distance(np.array(gen_feat), np.array(ref_feat))
    return agg, curves


# -- running ------------------------------------------------------------------------------------------------
_WORKER: Extractor | None = None


def _init_worker(config: BenchConfig) -> None:
    global _WORKER
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    _WORKER = Extractor(config, threads=1)


def _work(task: tuple[str, str, str, str]) -> VideoAnalysis:
    model, item_id, path, prompt = task
    assert _WORKER is not None
    return _WORKER.analyze_video(Path(path), prompt=prompt, model=model, item_id=item_id)


def analyze_videos(extractor: Extractor, tasks: list[tuple[str, str, str, str]], workers: int,
                   on_progress: Progress | None = None, cache: AnalysisCache | None = None) -> list[VideoAnalysis]:
    """Analyse every (model, id, path, prompt) task, in ``workers`` processes when > 1. Videos of the same
    content (SHA-256; and prompt, when CLIPScore is on) are analysed once, and not at all when ``cache``
    holds them from an earlier run."""
    say = on_progress or (lambda msg, done, total: None)
    cache = cache or AnalysisCache(extractor.config)
    with_prompt = bool(extractor.config.clip)
    keys: list[str | None] = []
    for _, _, path, prompt in tasks:
        sha = sha256_file(Path(path)) if Path(path).is_file() else None
        keys.append(None if sha is None else (f"{sha}.{hashlib.sha256(prompt.encode()).hexdigest()[:12]}"
                                              if with_prompt else sha))
    results: dict[int, VideoAnalysis] = {}
    todo: dict[str, int] = {}  # content key -> first task index
    for k, key in enumerate(keys):
        found = cache.get(key) if key is not None else None
        if found is not None:
            model, item_id, path, _ = tasks[k]
            results[k] = reuse(found, model, item_id, path)
        elif key is None or key not in todo:
            todo[key if key is not None else f"missing:{k}"] = k
    run = [tasks[k] for k in todo.values()]
    done = len(results)
    say("cached", done, len(tasks))
    fresh: list[VideoAnalysis] = []
    if workers <= 1 or len(run) <= 1:
        for model, item_id, path, prompt in run:
            fresh.append(extractor.analyze_video(Path(path), prompt=prompt, model=model, item_id=item_id))
            done += 1
            say(f"{model}/{item_id}", done, len(tasks))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # MediaPipe and ONNX Runtime threads do not survive fork
        with ProcessPoolExecutor(max_workers=min(workers, len(run)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(extractor.config,)) as pool:
            futures = [pool.submit(_work, task) for task in run]
            for fut in as_completed(futures):
                result = fut.result()
                done += 1
                say(f"{result.model}/{result.id}", done, len(tasks))
            fresh = [f.result() for f in futures]
    by_key: dict[str, VideoAnalysis] = {}
    for k, result in zip(todo.values(), fresh):
        results[k] = result
        key = keys[k]
        if key is not None:
            by_key[key] = result
            cache.put(key, result)
    for k, key in enumerate(keys):
        if k not in results:
            model, item_id, path, _ = tasks[k]
            assert key is not None
            results[k] = reuse(by_key[key], model, item_id, path)
    return [results[k] for k in range(len(tasks))]


def run_bench(spec: str | Path, videos: dict[str, Path], out_dir: str | Path | None = None,
              config: BenchConfig | None = None, *, on_progress: Progress | None = None,
              report: bool = True) -> BenchResult:
    """Score every model's videos against the spec; write the outputs to ``out_dir`` when given."""
    started = time.time()
    t0 = time.perf_counter()
    config = config or BenchConfig()
    store = config.store()
    config = config.resolve(store)
    items = load_spec(spec)
    say = on_progress or (lambda msg, done, total: None)
    extractor = Extractor(config, store)
    say("references", 0, len(items))
    references = analyze_references(extractor, items)
    for item in items:  # bad targets stop the run before any video is read
        target_of(item.labels, config.yaw_edges, f"spec item {item.id}")
    cal = calibrate(config, references)
    tasks = [(model, item.id, str(video_path(folder, item)), item.prompt)
             for model, folder in videos.items() for item in items]
    cache = AnalysisCache(config, config.cache_dir)
    analyses = analyze_videos(extractor, tasks, config.workers, on_progress, cache)
    logit_scale = extractor.clip.logit_scale if extractor.clip is not None else None
    heads, rows, frames = {}, [], []
    frames += [fr for ref in references.values() for fr in reference_frame_rows(ref, config.identities or ())]
    thresholds, impostor_pairs = [], []
    for a in analyses:
        ref = references[a.id]
        head, scores, evidence = score_video(a, ref, cal, config)
        heads[(a.model, a.id)] = head
        row = video_row(a, ref, config, head, scores, evidence, logit_scale)
        row["copy_paste_evidence"] = json.dumps(_jsonable(evidence.to_dict()))
        rows.append(row)
        frames += frame_rows(a, ref, config.identities or (), scores)
        if scores is not None and len(scores):
            scored = scores.n_pairs > 0
            thresholds += list(scores.threshold[scored])
            impostor_pairs += list(scores.n_impostor_pairs[scored])
    aggregates, curves = {}, {}
    for model in videos:
        mine = [r for r in rows if r["model"] == model]
        agg, curve = aggregate(model, mine, [a for a in analyses if a.model == model], references, config,
                               {i: h for (m, i), h in heads.items() if m == model})
        agg["identity_far"] = cal.scorer.far
        agg["identity_threshold_z"] = float(np.median(thresholds)) if thresholds else math.nan
        agg["identity_impostor_pairs"] = int(min(impostor_pairs)) if impostor_pairs else 0
        aggregates[model], curves[model] = agg, curve
    keys = metric_keys(aggregates, config.identities or (), config.compat, bucket_labels(config.yaw_edges))
    board = build_leaderboard(aggregates, keys, f"facesim_{short(cal.identity)}_strict")
    per_item = {m: {r["id"]: (r["score"] if r["status"] == "ok" else 0.0) for r in rows if r["model"] == m}
                for m in videos}
    pairs = comparisons(per_item, [e["model"] for e in board], seed=config.seed)
    elapsed = time.perf_counter() - t0
    summary = build_summary(spec, videos, config, store, extractor, analyses, references, aggregates,
                            started, elapsed)
    summary["headline"] = {**cal.describe(), "definition": "docs/BENCH.md, 'The headline'",
                           "flag_share": FLAG_SHARE, "targets": {
                               "from_labels": sum("target_yaw" in it.labels for it in items), "items": len(items)}}
    summary["paired"] = [p.to_dict() for p in pairs]
    summary["views"] = views_summary(references, config)
    summary["cache"] = {"key": cache.key, "folder": str(config.cache_dir) if config.cache_dir else None,
                        "videos_reused": sum(a.cached for a in analyses)}
    result = BenchResult(config, items, dict(videos), references, analyses, rows, frames, aggregates, curves,
                         summary, heads, board, pairs)
    if out_dir is not None:
        write_outputs(result, Path(out_dir), report=report)
    return result


# -- summary and files ---------------------------------------------------------------------------------------
def views_summary(references: dict[str, Reference], config: BenchConfig) -> dict[str, Any]:
    """Which yaw ranges each item's views (reference and eval_references) cover, and over the items: per
    |yaw| bucket, how many items can pose-match a frame there on both sides, one side or neither."""
    per_item = {}
    for item_id, ref in references.items():
        per_item[item_id] = {"references": len(ref.records), "eval_references": len(ref.eval_records),
                             "view_yaws": [round(y, 1) for y in ref.view_yaws],
                             "covers": covered_ranges(ref.view_yaws),
                             "buckets": view_coverage(ref.view_yaws, config.yaw_edges)}
    overall = {lab: {side: sum(v["buckets"][lab] == side for v in per_item.values()) for side in SIDES}
               for lab in bucket_labels(config.yaw_edges)}
    return {"definition": "docs/BENCH.md, 'Evaluation views'", "max_dyaw": MAX_DYAW,
            "items_with_eval_references": sum(v["eval_references"] > 0 for v in per_item.values()),
            "buckets": overall, "items": per_item}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def build_summary(spec: str | Path, videos: dict[str, Path], config: BenchConfig, store: Any, extractor: Extractor,
                  analyses: list[VideoAnalysis], references: dict[str, Reference],
                  aggregates: dict[str, dict[str, Any]], started: float, elapsed: float) -> dict[str, Any]:
    def model_file(name: str) -> dict[str, Any]:
        path = store.path(name)
        return {"file": str(path), "sha256": sha256_file(path)}

    stage: dict[str, float] = defaultdict(float)
    for a in analyses:
        for k, v in a.timing.items():
            stage[k] += v
    n_frames = sum(len(a.modes.get("lfa", [])) for a in analyses)
    perception = {"detector": {"name": config.detector, **model_file("yunet" if config.detector == "yunet" else
                                                                     "scrfd")},
                  "detect_max_side": config.detect_max_side, "min_score": config.min_score}
    pose_files = {"fused": ("face_landmarker", "whenet"), "mediapipe": ("face_landmarker",), "whenet": ("whenet",),
                  "sixdrepnet": ("sixdrepnet",), "none": ()}[config.pose]
    perception["pose"] = {"name": config.pose, "files": {n: model_file(n) for n in pose_files}}
    sampling = {"lfa": config.sampling()}
    for mode in config.compat:
        spec_mode = compat_mod.MODES[mode]
        sampling[mode] = {"rule": "np.linspace(0, n_frames - 1, k, dtype=int)", "frames": spec_mode.frames}
        if spec_mode.clipscore:
            sampling[f"{mode}_clipscore"] = {"rule": "int(i * n_frames / 16), i < 16", "frames": 16}
    versions = {"lfa": lfa.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for dist in ("numpy", "opencv-python-headless", "av", "dlib-bin", "mediapipe", "onnxruntime", "torch",
                 "pyarrow", "matplotlib", "transformers", "open_clip_torch"):
        versions[dist] = _version(dist)
    return {
        "lfa_version": lfa.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "spec": {"path": str(Path(spec).resolve()), "sha256": sha256_file(Path(spec)), "n_items": len(references)},
        "models": {
            name: {"dir": str(Path(folder).resolve()),
                   "videos": {a.id: a.sha256 for a in analyses if a.model == name},
                   "aggregate": _jsonable(aggregates[name])}
            for name, folder in videos.items()
        },
        "identity_models": {name: {"registry_name": IDENTITY_MODELS[name][0], "column": short(name),
                                   **model_file(IDENTITY_MODELS[name][0])} for name in config.identities or ()},
        "primary_identity": config.primary,
        "perception": perception,
        "feature_network": ({"name": "inception (user-supplied ONNX)", "file": str(extractor.features.path),
                             "sha256": extractor.features.sha256()} if extractor.features is not None else None),
        "clip": ({"source": extractor.clip.source, "kind": extractor.clip.kind,
                  "files": {str(p): sha256_file(Path(p)) for p in extractor.clip.files}}
                 if extractor.clip is not None else None),
        "frame_sampling": sampling,
        "seed": config.seed,
        "config": _jsonable(config.to_dict()),
        "references_pose_assumed_frontal": sorted(i for i, r in references.items() if r.pose_assumed),
        "versions": versions,
        "timing": {"wall_s": round(elapsed, 3), "videos": len(analyses), "frames": n_frames,
                   "workers": config.workers, "cpu_count": os.cpu_count(),
                   "stage_cpu_s": {k: round(v, 3) for k, v in sorted(stage.items())}},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of the rows, in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


def write_scores_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = _columns(rows)
    if "error" in columns:  # keep the free-text column last
        columns.remove("error")
        columns.append("error")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in columns])


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(float(v)) else f"{float(v):.6g}"
    return v


def write_frames_parquet(path: Path, frames: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = _columns(frames)
    data: dict[str, list[Any]] = {c: [row.get(c) for row in frames] for c in columns}
    fields = []
    for c in columns:
        if c.startswith("emb_") or c == "feat":
            fields.append(pa.field(c, pa.list_(pa.float32())))
        elif c == "box":
            fields.append(pa.field(c, pa.list_(pa.float32())))
        elif c in ("model", "id", "mode"):
            fields.append(pa.field(c, pa.string()))
        elif c in ("detected", "padded", "verified", "pose_matched"):
            fields.append(pa.field(c, pa.bool_()))
        elif c in ("frame", "n_faces"):
            fields.append(pa.field(c, pa.int32()))
        else:
            fields.append(pa.field(c, pa.float64()))
    table = pa.table(data, schema=pa.schema(fields))
    pq.write_table(table, path)


def write_outputs(result: BenchResult, out_dir: Path, *, report: bool = True) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"scores": out_dir / "scores.csv", "frames": out_dir / "frames.parquet",
             "summary": out_dir / "summary.json", "leaderboard": out_dir / "leaderboard.csv"}
    write_scores_csv(paths["scores"], result.rows)
    write_frames_parquet(paths["frames"], result.frames)
    ranked = [e["model"] for e in result.leaderboard]
    write_scores_csv(paths["leaderboard"], [{"model": m, "rank": k + 1, "flags": " ".join(
        result.leaderboard[k]["flags"]), **result.aggregates[m]} for k, m in enumerate(ranked)])
    paths["summary"].write_text(json.dumps(_jsonable(result.summary), indent=1))
    views = result.summary.get("views", {})
    paths["leaderboard_json"] = write_leaderboard(out_dir / "leaderboard.json", result.leaderboard, {
        "items_with_eval_references": views.get("items_with_eval_references"), "buckets": views.get("buckets")})
    if report:
        paths["report"] = write_report(result, out_dir / "report.html")
    result.out_dir = out_dir
    return paths
