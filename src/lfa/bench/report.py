"""report.html: one self-contained page (inline CSS, plots and frames as base64 PNG/JPEG, no script)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from lfa.bench import metrics as M
from lfa.bench.config import short
from lfa.face.types import Face
from lfa.face.viz import annotate, contact_sheet
from lfa.htmlreport import figure_data_uri, image_data_uri
from lfa.media import iter_frames

if TYPE_CHECKING:
    from lfa.bench.runner import BenchResult

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;
padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.9em}table{border-collapse:collapse;font-size:.85em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
tr.best td{background:#eefbea}img{max-width:100%}.fig{display:inline-block;vertical-align:top;margin:4px}
dt{font-weight:600;margin-top:8px}dd{margin-left:16px}.bad{color:#b00}.small{font-size:.8em;color:#666}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        return "–" if math.isnan(float(v)) else f"{float(v):.{digits}f}"
    return html.escape(str(v))


def _centres(edges: tuple[float, ...]) -> list[float]:
    return [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:])]


def _curve_plot(result: BenchResult, kind: str, edges: tuple[float, ...], xlabel: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.3, 3.4))
    labels = M.bucket_labels(edges)
    xs = _centres(edges)
    for model, curves in result.curves.items():
        stats = curves[kind]
        ys = [stats[lab].mean for lab in labels]
        ns = [stats[lab].count for lab in labels]
        line, = ax.plot(xs, ys, marker="o", label=model)
        for x, y, n in zip(xs, ys, ns):
            if not math.isnan(y):
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7,
                            color=line.get_color())
        nopose = stats.get(M.NO_POSE)
        if nopose is not None and nopose.count and kind != "pitch":
            ax.plot([edges[-1] + 8], [nopose.mean], marker="x", color=line.get_color(), linestyle="none")
    ax.set_xticks(xs + ([edges[-1] + 8] if kind != "pitch" else []))
    ax.set_xticklabels([lab.replace("_", "–") for lab in labels] + (["no pose"] if kind != "pitch" else []),
                       fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"FaceSim ({short(result.config.primary or 'dlib')})")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_data_uri(fig, dpi=100)


def _bars(result: BenchResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = M.bucket_labels(result.config.yaw_edges)
    models = list(result.curves)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.8 / max(len(models), 1)
    for k, model in enumerate(models):
        stats = result.curves[model]["yaw"]
        means = [stats[lab].mean for lab in labels]
        xs = np.arange(len(labels)) + (k - (len(models) - 1) / 2) * width
        axes[0].bar(xs, np.nan_to_num(means), width, label=model)
        agg = result.aggregates[model]
        axes[1].bar(xs, [agg.get(f"yaw_share_{lab}", 0) or 0 for lab in labels], width, label=model)
    for ax, title in zip(axes, ("FaceSim per |yaw| bucket", "pose coverage: share of frames per |yaw| bucket")):
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels([lab.replace("_", "–") + "°" for lab in labels], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return figure_data_uri(fig, dpi=100)


def _leaderboard(result: BenchResult) -> str:
    cfg = result.config
    ids = list(cfg.identities or ())
    primary_key = f"facesim_{short(cfg.primary or ids[0])}"
    cols: list[tuple[str, str]] = [("videos", "videos (ok/missing/error)"), ("detection_rate", "detection rate")]
    cols += [(f"facesim_{short(n)}", f"FaceSim-{short(n).capitalize()}") for n in ids]
    cols += [("facesim_worst_bucket", "worst bucket"), ("yaw_range", "yaw range (°)"),
             ("abs_yaw_p95", "|yaw| p95 (°)"), ("id_spread", "ID spread"), ("copy_paste", "copy-paste"),
             ("copy_paste_excess", "copy-paste excess")]
    cols += [(f"fd_{short(n)}", f"FD-{short(n)}") for n in ids]
    if cfg.inception:
        cols.append(("face_fid", "Face FID"))
    if cfg.clip:
        cols.append(("clipscore", "CLIPScore"))
    extra = sorted({k for agg in result.aggregates.values() for k in agg
                    if any(k.startswith(f"{m}_") for m in cfg.compat) and not k.endswith("frames_scored")})
    cols += [(k, k) for k in extra]
    def incomplete(model: str) -> bool:
        agg = result.aggregates[model]
        return bool(agg["n_missing"] or agg["n_error"])

    def rank(model: str) -> tuple[bool, bool, float]:  # complete models first, then by primary FaceSim
        v = result.aggregates[model].get(primary_key)
        return (incomplete(model), _isnan(v), 0.0 if _isnan(v) else -float(v))

    order = sorted(result.aggregates, key=rank)
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in cols)
    body = []
    for i, model in enumerate(order):
        agg = result.aggregates[model]
        cells = []
        for key, _ in cols:
            if key == "videos":
                cells.append(f"<td>{agg['n_ok']}/{agg['n_missing']}/{agg['n_error']}</td>")
            elif key == "facesim_worst_bucket":
                cells.append(f"<td>{_fmt(agg.get(key))} <span class=small>{html.escape(agg.get('worst_bucket') or '')}"
                             "</span></td>")
            elif key in ("yaw_range", "abs_yaw_p95"):
                cells.append(f"<td>{_fmt(agg.get(key), 1)}</td>")
            elif key.startswith(("fd_", "face_fid")) or key.endswith(("_fid", "clipscore")):
                cells.append(f"<td>{_fmt(agg.get(key), 2)}</td>")
            else:
                cells.append(f"<td>{_fmt(agg.get(key))}</td>")
        cls = ' class="best"' if i == 0 and len(order) > 1 and not incomplete(model) else ""
        mark = " <span class=bad>(incomplete)</span>" if incomplete(model) else ""
        body.append(f"<tr{cls}><td class=l>{html.escape(model)}{mark}</td>{''.join(cells)}</tr>")
    note = (f"<p class=small>Ranked by {html.escape(primary_key)} over each model's readable videos; models with "
            "missing or unreadable videos are ranked after the complete ones. Buckets, FD and coverage pool "
            "frames; the other columns are means over videos.</p>")
    return f"<table><tr><th class=l>model</th>{head}</tr>{''.join(body)}</table>{note}"


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _bucket_table(result: BenchResult) -> str:
    labels = M.bucket_labels(result.config.yaw_edges) + [M.NO_POSE]
    head = "".join(f"<th>{'no pose' if lab == M.NO_POSE else lab.replace('_', '–') + '°'}</th>" for lab in labels)
    rows = []
    for model, curves in result.curves.items():
        cells = "".join(f"<td>{_fmt(curves['yaw'][lab].mean)} <span class=small>n={curves['yaw'][lab].count}</span>"
                        "</td>" for lab in labels)
        rows.append(f"<tr><td class=l>{html.escape(model)}</td>{cells}</tr>")
    return f"<table><tr><th class=l>model \\ |yaw|</th>{head}</tr>{''.join(rows)}</table>"


def _worst(result: BenchResult, model: str) -> str:
    from lfa.bench.runner import similarities

    cfg = result.config
    key = f"facesim_{short(cfg.primary or 'dlib')}"
    rows = [r for r in result.rows if r["model"] == model]
    rows.sort(key=lambda r: (r["status"] == "ok", not _isnan(r.get(key)), r.get(key) if not _isnan(r.get(key))
                             else 0.0))
    parts = []
    analyses = {(a.model, a.id): a for a in result.analyses}
    for r in rows[: cfg.worst_videos]:
        a = analyses[(model, r["id"])]
        desc = (f"<b>{html.escape(r['id'])}</b> — {key} {_fmt(r.get(key))}, detection "
                f"{_fmt(r.get('detection_rate'), 2)}, yaw {_fmt(r.get('yaw_min'), 0)}…{_fmt(r.get('yaw_max'), 0)}°, "
                f"copy-paste {_fmt(r.get('copy_paste'), 2)}")
        if r["status"] != "ok":
            parts.append(f"<p>{desc} <span class=bad>{html.escape(r['status'])}: {html.escape(r['error'])}</span></p>")
            continue
        frames = a.modes.get("lfa", [])
        ref = result.references[a.id]
        sims = similarities(frames, ref.embeddings[cfg.primary], cfg.primary) if frames else np.zeros(0)
        pick = np.unique(np.linspace(0, len(frames) - 1, min(6, len(frames))).round().astype(int)) if frames else []
        wanted = {frames[i].frame: i for i in pick}
        tiles = []
        try:
            for f in iter_frames(a.path, indices=sorted(wanted)):
                i = wanted.get(f.index)
                if i is None:
                    continue
                rec = frames[i]
                image = f.image
                if rec.detected and rec.box is not None and rec.landmarks5 is not None:
                    face = Face(box=rec.box, score=rec.det_score, landmarks5=rec.landmarks5, area_ratio=0.0,
                                sharpness=0.0, yaw=rec.yaw, pitch=rec.pitch, roll=rec.roll)
                    image = annotate(image, [face])
                text = f"t={rec.t:.2f}s sim={sims[i]:.2f}" if rec.detected else f"t={rec.t:.2f}s no face"
                image = np.ascontiguousarray(image)
                cv2.putText(image, text, (6, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX,
                            0.5 * max(1.0, image.shape[0] / 480), (255, 255, 0), 2, cv2.LINE_AA)
                tiles.append(image)
        except Exception as exc:  # the report must not fail on a video that decoded once already
            parts.append(f"<p>{desc} <span class=bad>frames unavailable: {html.escape(str(exc))}</span></p>")
            continue
        sheet = contact_sheet(tiles, columns=min(6, max(len(tiles), 1)), width=200)
        parts.append(f"<p>{desc}</p><img src='{image_data_uri(sheet)}' alt='frames of {html.escape(r['id'])}'>")
    return "".join(parts)


DEFINITIONS = """
<dl>
<dt>FaceSim-&lt;model&gt;</dt><dd>Mean cosine similarity between the reference embedding (normalised mean of the
reference images' faces) and the largest face of each sampled frame that has a face. <code>_strict</code>: frames
without a face score 0.</dd>
<dt>detection rate</dt><dd>Share of sampled frames in which a face was found. Frames without a face are counted
here, never dropped silently.</dd>
<dt>|yaw| / pitch buckets</dt><dd>FaceSim of the primary identity model over the frames whose estimated |yaw|
(|pitch|) falls in the bucket; pooled over all of a model's frames in the leaderboard. "no pose": the face was found
but the pose estimator lost it (mostly beyond 60° yaw with MediaPipe). Worst bucket: lowest bucket with at least
the minimum number of frames.</dd>
<dt>yaw range</dt><dd>max − min of the estimated yaw over a video's frames: the pose coverage actually produced.</dd>
<dt>ID spread</dt><dd>Standard deviation over a video's frames of the cosine between each face and the video's
own identity centroid (temporal identity stability; 0 = perfectly stable).</dd>
<dt>copy-paste index</dt><dd>Σ s⁺·k(d) / Σ s⁺ over frames with a face, with s⁺ = max(similarity, 0), d the angle
between the frame's facing direction and the reference's, and k(d) = max(0, 1 − d/45°) (a face with unknown pose
counts as far, k = 0). 1 = all the similarity is earned at the reference pose (a frozen head, or an identity that
only holds near the reference pose). Excess = index − mean k(d): how much higher the index is than if similarity
did not depend on pose.</dd>
<dt>FD-&lt;model&gt;</dt><dd>Fréchet distance between Gaussians fitted to all generated faces' identity embeddings
of a model and all reference faces' embeddings (FID's formula on identity features, so not called FID).
Face FID: the same on the user-supplied Inception network's features of 224 px aligned face crops.</dd>
<dt>CLIPScore</dt><dd>Mean over sampled frames of 100 · max(0, cos(CLIP image, CLIP prompt)).</dd>
<dt>consisid_* / opens2v_*</dt><dd>The peers' own scoring, quirk by quirk (docs/BENCH.md).</dd>
</dl>
"""


def write_report(result: BenchResult, path: Path) -> Path:
    cfg = result.config
    summ = result.summary
    idents = ", ".join(f"{n} ({short(n)})" for n in cfg.identities or ())
    sampling = html.escape("; ".join(f"{mode}: " + ", ".join(f"{k} {v}" for k, v in s.items())
                                     for mode, s in summ["frame_sampling"].items()))
    figs = [
        _curve_plot(result, "yaw", cfg.yaw_edges, "|yaw| of the generated head (°)", "FaceSim vs |yaw|"),
        _curve_plot(result, "pitch", cfg.pitch_edges, "|pitch| (°)", "FaceSim vs |pitch|"),
        _curve_plot(result, "pose_dist", (0, 15, 30, 45, 60, 180), "pose distance from the reference (°)",
                    "FaceSim vs distance from the reference pose (copy-paste curve)"),
    ]
    worst = "".join(f"<h3>{html.escape(m)}</h3>{_worst(result, m)}" for m in result.models)
    assumed = summ.get("references_pose_assumed_frontal") or []
    note = (f"<p class=small>References without a pose (assumed frontal): {html.escape(', '.join(assumed))}</p>"
            if assumed else "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lfa bench — {html.escape(Path(summ['spec']['path']).name)}</title>
<style>{CSS}</style></head><body>
<h1>Large-angle identity benchmark</h1>
<p class=meta>spec {html.escape(summ['spec']['path'])} ({summ['spec']['n_items']} items) · {summ['created_utc']} ·
lfa {html.escape(summ['lfa_version'])} · identity models: {html.escape(idents)} ·
primary: {html.escape(str(cfg.primary))}
· detector {html.escape(cfg.detector)} · pose {html.escape(cfg.pose)} · sampling {sampling}
· {summ['timing']['videos']} videos in {summ['timing']['wall_s']:.0f} s</p>
{note}
<h2>Leaderboard</h2>
{_leaderboard(result)}
<h2>Identity vs head pose</h2>
{''.join(f'<div class=fig><img src="{src}" alt="plot"></div>' for src in figs)}
<h2>Per-bucket FaceSim and pose coverage</h2>
<img src="{_bars(result)}" alt="per-bucket bars">
{_bucket_table(result)}
<h2>Worst videos</h2>
<p class=small>Lowest {short(cfg.primary or 'dlib')} FaceSim per model (videos without a face first);
frames annotated with
box, landmarks, head-pose axes and per-frame similarity.</p>
{worst}
<h2>Definitions</h2>
{DEFINITIONS}
</body></html>
"""
    path.write_text(page)
    return path
