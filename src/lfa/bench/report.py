"""report.html: one self-contained page (inline CSS, plots and frames as base64 PNG/JPEG, no script)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from lfa.bench import metrics as M
from lfa.bench.config import short
from lfa.bench.headline import FLAGS
from lfa.bench.records import FrameRecord, similarities
from lfa.bench.result import BenchResult, Reference
from lfa.face.types import Face
from lfa.face.viz import annotate, contact_sheet
from lfa.htmlreport import figure_data_uri, image_data_uri
from lfa.media import iter_frames, read_image

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;
padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.9em}table{border-collapse:collapse;font-size:.85em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
tr.best td{background:#eefbea}td.win{background:#eefbea;font-weight:600}img{max-width:100%}.fig{display:inline-block;vertical-align:top;margin:4px}
dt{font-weight:600;margin-top:8px}dd{margin-left:16px}.bad{color:#b00}.small{font-size:.8em;color:#666}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.35em;border-radius:2px;vertical-align:baseline}
.frames{display:flex;gap:8px;align-items:flex-start}.frames figure{margin:0;min-width:0}.frames figure.ref{flex:0 0 14%}
.frames figure.gen{flex:1}.frames figcaption{font-size:.8em;color:#666}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        return "–" if math.isnan(float(v)) else f"{float(v):.{digits}f}"
    return html.escape(str(v))


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """One colour per model, in the order the models were given (``--videos``), the same in every chart
    and beside the model's name in the tables."""
    from matplotlib.colors import TABLEAU_COLORS

    cycle = list(TABLEAU_COLORS.values())
    return {m: cycle[i % len(cycle)] for i, m in enumerate(models)}


def _swatch(colour: str) -> str:
    return f"<span class=swatch style='background:{colour}' title='{colour}'></span>"


def _curve_figure(result: BenchResult, kind: str, edges: tuple[float, ...], xlabel: str, title: str,
                  colours: dict[str, str]) -> Any:
    """FaceSim per bucket of ``kind``, one line per model; buckets evenly spaced (their labels never
    crowd, whatever the bucket widths), "no pose" last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.3, 3.4))
    labels = M.bucket_labels(edges)
    xs = list(range(len(labels)))
    with_nopose = kind != "pitch"
    for model, curves in result.curves.items():
        colour = colours[model]
        stats = curves[kind]
        ys = [stats[lab].mean for lab in labels]
        ns = [stats[lab].count for lab in labels]
        ax.plot(xs, ys, marker="o", label=model, color=colour)
        for x, y, n in zip(xs, ys, ns):
            if not math.isnan(y):
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7,
                            color=colour)
        nopose = stats.get(M.NO_POSE)
        if nopose is not None and nopose.count and with_nopose:
            ax.plot([len(labels)], [nopose.mean], marker="x", color=colour, linestyle="none")
    ax.set_xticks(xs + ([len(labels)] if with_nopose else []))
    ax.set_xticklabels([lab.replace("_", "–") + "°" for lab in labels] + (["no pose"] if with_nopose else []),
                       fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"FaceSim ({short(result.config.primary or 'dlib')})")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _bars_figure(result: BenchResult, colours: dict[str, str]) -> Any:
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
        axes[0].bar(xs, np.nan_to_num(means), width, label=model, color=colours[model])
        agg = result.aggregates[model]
        axes[1].bar(xs, [agg.get(f"yaw_share_{lab}", 0) or 0 for lab in labels], width, label=model,
                    color=colours[model])
    for ax, title in zip(axes, ("FaceSim per |yaw| bucket", "pose coverage: share of frames per |yaw| bucket")):
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels([lab.replace("_", "–") + "°" for lab in labels], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return fig


def _leaderboard(result: BenchResult) -> str:
    """leaderboard.json as a table: rank, headline with its interval, flags, then the strict and lenient
    FaceSim of every identity model, coverage and the peers' numbers."""
    cfg = result.config
    ids = list(cfg.identities or ())
    cols: list[tuple[str, str]] = [("videos", "videos (ok/missing/error)"), ("coverage", "angle coverage")]
    for n in ids:
        cols += [(f"facesim_{short(n)}_strict", f"FaceSim-{short(n)} strict"),
                 (f"facesim_{short(n)}", f"FaceSim-{short(n)} lenient")]
    cols += [("detection_rate", "detection"), ("pose_rate", "pose"), ("yaw_range", "yaw range (°)"),
             ("copy_paste", "copy-paste frames")]
    if cfg.inception:
        cols.append(("face_fid", "Face FID"))
    if cfg.clip:
        cols.append(("clipscore", "CLIPScore"))
    extra = sorted({k for agg in result.aggregates.values() for k in agg
                    if any(k.startswith(f"{m}_") for m in cfg.compat) and not k.endswith("frames_scored")})
    cols += [(k, k) for k in extra]
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in cols)
    colours = model_colours(result.models)
    body = []
    for entry in result.leaderboard:
        model = entry["model"]
        agg = result.aggregates[model]
        cells = []
        for key, _ in cols:
            if key == "videos":
                cells.append(f"<td>{agg['n_ok']}/{agg['n_missing']}/{agg['n_error']}</td>")
            elif key == "yaw_range":
                cells.append(f"<td>{_fmt(agg.get(key), 1)}</td>")
            elif key.startswith("face_fid") or key.endswith(("_fid", "clipscore")):
                cells.append(f"<td>{_fmt(agg.get(key), 2)}</td>")
            else:
                cells.append(f"<td>{_fmt(agg.get(key))}</td>")
        flags = entry["flags"]
        cls = ' class="best"' if entry["rank"] == 1 and len(result.leaderboard) > 1 and not flags else ""
        mark = "".join(f" <span class=bad>[{html.escape(f)}]</span>" for f in flags)
        lo, hi = entry["ci95"]
        body.append(f"<tr{cls}><td>{entry['rank']}</td><td class=l>{_swatch(colours[model])}{html.escape(model)}"
                    f"{mark}</td><td><b>{_fmt(entry['score'])}</b></td><td>{_fmt(lo)}–{_fmt(hi)}</td>"
                    f"{''.join(cells)}</tr>")
    cal = result.summary.get("headline", {})
    note = (f"<p class=small>Ranked by the large-angle identity score: per item, the mean over the target |yaw| "
            f"buckets of the share of frames verified as the reference's person ({html.escape(str(cal.get('identity_model')))}, "
            f"pose-aware calibrated score at false-accept rate {cal.get('far')}; impostors: "
            f"{html.escape(str(cal.get('impostors')))}); a frame without a face or pose fails, an unreached bucket "
            "scores 0, a missing video scores 0. 95% interval: bootstrap over items. Flagged models are ranked "
            "and marked (a flag needs half of the model's videos). Strict FaceSim counts a frame without a face "
            "as 0; lenient averages the frames with a face.</p>")
    return (f"<table><tr><th>rank</th><th class=l>model</th><th>score</th><th>95% CI</th>{head}</tr>"
            f"{''.join(body)}</table>{note}")


def _paired(result: BenchResult) -> str:
    if not result.pairs:
        return "<p class=small>One model: nothing to compare.</p>"
    rows = []
    for p in result.pairs:
        cls = "" if p.ci95[0] > 0 else " class=bad"
        rows.append(f"<tr><td class=l>{html.escape(p.a)}</td><td class=l>{html.escape(p.b)}</td><td>{p.n_items}</td>"
                    f"<td>{_fmt(p.win_rate, 2)}</td><td{cls}>{_fmt(p.mean_diff)}</td>"
                    f"<td>{_fmt(p.ci95[0])}–{_fmt(p.ci95[1])}</td><td>{_fmt(p.p_not_better, 3)}</td></tr>")
    return ("<table><tr><th class=l>model A</th><th class=l>model B</th><th>items</th><th>A wins</th>"
            "<th>mean(A − B)</th><th>95% CI (paired bootstrap)</th><th>P(A not better)</th></tr>"
            f"{''.join(rows)}</table><p class=small>Per item, A's score minus B's; an interval that excludes 0 "
            "(not red) says A is better on these items beyond resampling noise.</p>")


def _coverage(result: BenchResult) -> str:
    """Per target bucket and model: frames, no-face and no-pose frames (failures), reached share, verified."""
    labels = M.bucket_labels(result.config.yaw_edges)
    head = "".join(f"<th>{lab.replace('_', '–')}°</th>" for lab in labels)
    rows = []
    for entry in result.leaderboard:
        agg = result.aggregates[entry["model"]]
        cells = "".join(
            f"<td>{_fmt(agg.get(f'verified_yaw_{lab}'), 2)} <span class=small>n={agg.get(f'frames_yaw_{lab}', 0)} "
            f"no-face={agg.get(f'no_face_yaw_{lab}', 0)} no-pose={agg.get(f'no_pose_yaw_{lab}', 0)} "
            f"reached={_fmt(agg.get(f'reached_yaw_{lab}'), 2)} matched={_fmt(agg.get(f'matched_yaw_{lab}'), 2)}"
            f"{' <b>cross-pose</b>' if lab in entry.get('cross_pose', []) else ''}</span></td>" for lab in labels)
        rows.append(f"<tr><td class=l>{html.escape(entry['model'])}</td>{cells}</tr>")
    views = result.summary.get("views", {})
    cover = "".join(f"<td>{' · '.join(f'{side} {n}' for side, n in views['buckets'][lab].items() if n)}</td>"
                    for lab in labels) if views.get("buckets") else ""
    rows.append(f"<tr><td class=l>items whose views pose-match the bucket</td>{cover}</tr>" if cover else "")
    return (f"<table><tr><th class=l>verified share · model \\ |yaw|</th>{head}</tr>{''.join(rows)}</table>"
            "<p class=small>Frames without a pose (or face) are placed at the yaw interpolated between their posed "
            "neighbours in time. reached: share of the model's videos whose posed frames reach the bucket. matched: "
            "share of its posed frames compared with a view (reference or eval_references) within "
            f"{views.get('max_dyaw', 15):g}° of their yaw; <b>cross-pose</b>: under half, so its verification rests "
            f"on cross-pose pairs. Items with eval_references: {views.get('items_with_eval_references', 0)}.</p>")


DIMENSIONS: list[tuple[str, str, bool]] = [  # (aggregate key, label, higher is better)
    ("score", "large-angle identity (headline)", True),
    ("coverage", "angle coverage", True),
    ("verified_yaw_0_15", "verified 0–15°", True),
    ("verified_yaw_15_30", "verified 15–30°", True),
    ("verified_yaw_30_45", "verified 30–45°", True),
    ("verified_yaw_45_60", "verified 45–60°", True),
    ("verified_yaw_60_90", "verified 60–90°", True),
    ("detection_rate", "detection rate", True),
    ("pose_rate", "pose rate", True),
    ("id_spread", "identity spread (lower better)", False),
    ("copy_paste", "copy-paste frames (lower better)", False),
    ("clipscore", "CLIPScore", True),
]


def dimensions(result: BenchResult) -> list[tuple[str, str, bool]]:
    return [d for d in DIMENSIONS if any(not _isnan(a.get(d[0])) for a in result.aggregates.values())]


def _dimension_table(result: BenchResult) -> str:
    models = [e["model"] for e in result.leaderboard]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for key, label, higher in dimensions(result):
        values = [result.aggregates[m].get(key) for m in models]
        valid = [v for v in values if not _isnan(v)]
        best = (max(valid) if higher else min(valid)) if valid else None
        cells = "".join(f"<td{' class=win' if v == best and not _isnan(v) else ''}>{_fmt(v)}</td>" for v in values)
        rows.append(f"<tr><td class=l>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><tr><th class=l>dimension</th>{head}</tr>{''.join(rows)}</table>"


def _dimension_figure(result: BenchResult, colours: dict[str, str]) -> Any:
    """Each dimension's value per model, scaled so that 1 is the best model on it: where each model wins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = dimensions(result)
    models = [e["model"] for e in result.leaderboard]
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / max(len(models), 1)
    for k, model in enumerate(models):
        ys = []
        for key, _, higher in dims:
            vals = np.array([result.aggregates[m].get(key) for m in models], dtype=np.float64)
            v = float(result.aggregates[model].get(key) if not _isnan(result.aggregates[model].get(key)) else np.nan)
            top = np.nanmax(vals) if higher else np.nanmin(vals)
            ys.append(0.0 if math.isnan(v) else (v / top if higher and top > 0 else (top / v if v > 0 else 1.0)))
        xs = np.arange(len(dims)) + (k - (len(models) - 1) / 2) * width
        ax.bar(xs, ys, width, label=model, color=colours[model])
    ax.set_xticks(np.arange(len(dims)))
    ax.set_xticklabels([label for _, label, _ in dims], fontsize=7, rotation=25, ha="right")
    ax.set_ylabel("relative to the best model (1 = wins)")
    ax.set_ylim(0, 1.08)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def charts(result: BenchResult) -> dict[str, Any]:
    """Every chart of the report (matplotlib figures), each model in its :func:`model_colours` colour."""
    cfg = result.config
    colours = model_colours(result.models)
    return {
        "dimensions": _dimension_figure(result, colours),
        "yaw": _curve_figure(result, "yaw", cfg.yaw_edges, "|yaw| of the generated head", "FaceSim vs |yaw|",
                             colours),
        "pitch": _curve_figure(result, "pitch", cfg.pitch_edges, "|pitch|", "FaceSim vs |pitch|", colours),
        "pose_dist": _curve_figure(result, "pose_dist", (0, 15, 30, 45, 60, 180), "pose distance from the reference",
                                   "FaceSim vs distance from the reference pose", colours),
        "bars": _bars_figure(result, colours),
    }


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


def _annotated(image: np.ndarray, rec: FrameRecord) -> np.ndarray:
    """``image`` with the face of ``rec`` drawn (box, landmarks, head-pose axes), if it has one."""
    if not rec.detected or rec.box is None or rec.landmarks5 is None:
        return image
    face = Face(box=rec.box, score=rec.det_score, landmarks5=rec.landmarks5, area_ratio=0.0, sharpness=0.0,
                yaw=rec.yaw, pitch=rec.pitch, roll=rec.roll)
    return annotate(image, [face])


def _reference_uri(ref: Reference, cache: dict[str, str]) -> str:
    """The item's (first) reference photo, its person's face drawn, as an inline JPEG (one per item)."""
    if ref.item.id not in cache:
        image = _annotated(read_image(ref.item.references[0]), ref.records[0])
        cache[ref.item.id] = image_data_uri(contact_sheet([image], columns=1, width=200))
    return cache[ref.item.id]


def _worst(result: BenchResult, model: str, references: dict[str, str]) -> str:
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
                image = _annotated(f.image, rec)
                text = f"t={rec.t:.2f}s sim={sims[i]:.2f}" if rec.detected else f"t={rec.t:.2f}s no face"
                image = np.ascontiguousarray(image)
                cv2.putText(image, text, (6, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX,
                            0.5 * max(1.0, image.shape[0] / 480), (255, 255, 0), 2, cv2.LINE_AA)
                tiles.append(image)
        except Exception as exc:  # the report must not fail on a video that decoded once already
            parts.append(f"<p>{desc} <span class=bad>frames unavailable: {html.escape(str(exc))}</span></p>")
            continue
        sheet = contact_sheet(tiles, columns=min(6, max(len(tiles), 1)), width=200)
        name = html.escape(r["id"])
        parts.append(f"<p>{desc}</p><div class=frames><figure class=ref><img src='{_reference_uri(ref, references)}' "
                     f"alt='reference photo of {name}'><figcaption>reference (the face compared with)</figcaption>"
                     f"</figure><figure class=gen><img src='{image_data_uri(sheet)}' alt='frames of {name}'>"
                     f"<figcaption>generated frames</figcaption></figure></div>")
    return "".join(parts)


DEFINITIONS = """
<dl>
<dt>score (headline)</dt><dd>Per item: the target |yaw| buckets (from the spec's <code>labels.target_yaw</code>,
else all of them); in each, the share of frames whose face is verified as the reference's person by lfa's
pose-aware calibrated identity score at the stated false-accept rate; a frame without a face or without a pose
fails; a bucket no posed frame reached scores 0; the item's score is the mean over its target buckets. A model's
score is the mean over items (a missing video scores 0), with a bootstrap 95% interval over items.</dd>
<dt>flags</dt><dd><code>copy_paste</code>: at least half the frames are near-duplicates of the aligned reference
crop (pixel NCC ≥ 0.95 and pose within 10°). <code>no_motion</code>: yaw and pitch each vary by less than 10°.
<code>angle_not_reached</code>: the head stops more than 15° short of the target on a side the target asks for.
A model carries a flag when half of its videos do.</dd>
<dt>FaceSim-&lt;model&gt;</dt><dd>Mean cosine similarity between the reference embedding (normalised mean of the
reference images' faces) and the largest face of each sampled frame that has a face (lenient). Strict: frames
without a face score 0. Raw cosines are pose-confounded: they are not the headline.</dd>
<dt>detection / pose rate</dt><dd>Share of sampled frames in which a face (a face with a pose) was found.</dd>
<dt>|yaw| / pitch buckets</dt><dd>FaceSim of the primary identity model over the frames whose estimated |yaw|
(|pitch|) falls in the bucket; "no pose": the face was found but the pose estimator gave none.</dd>
<dt>yaw range</dt><dd>max − min of the estimated yaw over a video's frames: the pose coverage actually produced.</dd>
<dt>ID spread</dt><dd>Standard deviation over a video's frames of the cosine between each face and the video's
own identity centroid (temporal identity stability; 0 = perfectly stable).</dd>
<dt>copy-paste frames</dt><dd>Share of a video's sampled frames that are near-duplicates of the reference crop.</dd>
<dt>Face FID</dt><dd>Fréchet distance of the user-supplied Inception network's features of 224 px aligned face
crops, all generated faces of a model against all reference faces (image statistics, not identity).</dd>
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
    colours = model_colours(result.models)
    uris = {name: figure_data_uri(fig, dpi=100) for name, fig in charts(result).items()}
    refs: dict[str, str] = {}
    worst = "".join(f"<h3>{_swatch(colours[m])}{html.escape(m)}</h3>{_worst(result, m, refs)}" for m in result.models)
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
<h2>Paired comparisons</h2>
{_paired(result)}
<h2>Where each model wins</h2>
{_dimension_table(result)}
<img src="{uris['dimensions']}" alt="per-dimension bars">
<h2>Angle coverage per |yaw| bucket</h2>
{_coverage(result)}
<h2>Identity vs head pose</h2>
{''.join(f'<div class=fig><img src="{uris[k]}" alt="{k} plot"></div>' for k in ("yaw", "pitch", "pose_dist"))}
<h2>Per-bucket FaceSim and pose coverage</h2>
<img src="{uris['bars']}" alt="per-bucket bars">
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
