"""report.html: a self-contained page (inline PNGs) a person can look at after a run."""

from __future__ import annotations

import html
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from lfa.curate.records import MEASURES
from lfa.curate.speech_report import speech_section
from lfa.face.viz import contact_sheet, draw_pose_axes
from lfa.htmlreport import figure_data_uri, image_data_uri
from lfa.media import read_frames

STAGES = ("shots", "face_constraints", "identity", "speech", "duplicates")
MAIN_BOX = (0, 220, 255)  # RGB: the main face (the one measured)
OFFENDING_BOX = (255, 0, 200)  # the face that decided a rejection: another prominent face, the second person
COMPARE = {">=": "≥", "<=": "≤"}


def _funnel(n_inputs: int, failures: list, rejected: list, manifest: list) -> list[tuple[str, int]]:
    rows = [("inputs", n_inputs), ("failed inputs", len(failures))]
    total_clips = len(manifest) + len([r for r in rejected if r["stage"] != "shots"])
    rows.append(("shots too short (dropped)", len([r for r in rejected if r["stage"] == "shots"])))
    rows.append(("clips", total_clips))
    remaining = total_clips
    for stage in STAGES[1:]:
        remaining -= len([r for r in rejected if r["stage"] == stage])
        rows.append((f"after {stage}", remaining))
    rows.append(("accepted", len(manifest)))
    return rows


def _plots(frames: list[dict], manifest: list[dict]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accepted = {m["clip_id"] for m in manifest}
    plots = {}
    for angle, edges in (("yaw", np.arange(-90, 91, 10)), ("pitch", np.arange(-60, 61, 10))):
        fig, ax = plt.subplots(figsize=(5, 3))
        all_v = [f[angle] for f in frames if f[angle] is not None]
        acc_v = [f[angle] for f in frames if f[angle] is not None and f["clip_id"] in accepted]
        ax.hist(all_v, bins=edges, alpha=0.5, label="all sampled faces")
        ax.hist(acc_v, bins=edges, alpha=0.7, label="accepted clips")
        ax.set(xlabel=f"{angle} (°)", ylabel="faces", title=f"{angle} distribution")
        ax.legend(fontsize=8)
        plots[angle] = figure_data_uri(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    ratios = [f["area_ratio"] for f in frames]
    bins = np.linspace(0, max(ratios + [0.01]), 31)
    ax.hist(ratios, bins=bins, alpha=0.5, label="all sampled faces")
    ax.hist([m["face_ratio_median"] for m in manifest], bins=bins, alpha=0.8, label="accepted clips (median)")
    ax.set(xlabel="face area / frame area", ylabel="count", title="face-area ratio")
    ax.legend(fontsize=8)
    plots["face_ratio"] = figure_data_uri(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    sizes = np.bincount([m["cluster_id"] for m in manifest]) if manifest else np.zeros(0, int)
    ax.bar(range(len(sizes)), sizes)
    ax.set_xticks(range(len(sizes)))  # bar k is cluster_id k, as in manifest.parquet
    ax.set(xlabel="cluster_id", ylabel="clips", title=f"{len(sizes)} identity clusters")
    plots["clusters"] = figure_data_uri(fig)
    return plots


def _contact_sheet(manifest: list[dict], max_clips: int = 24) -> str | None:
    tiles = []
    for clip in manifest[:max_clips]:
        refs = [r for r in clip["references"] if r["role"] in ("yaw_min", "frontal", "yaw_max")]
        refs.sort(key=lambda r: r["yaw"])
        frames = {round(f.t, 3): f.image for f in read_frames(clip["source"], times=[r["t"] for r in refs])}
        for ref in refs:
            if not frames:
                break
            image = min(frames.items(), key=lambda kv: abs(kv[0] - ref["t"]))[1].copy()
            x0, y0, x1, y1 = (int(v) for v in ref["box"])
            cv2.rectangle(image, (x0, y0), (x1, y1), MAIN_BOX, 2)
            draw_pose_axes(image, ((x0 + x1) / 2, (y0 + y1) / 2), ref["yaw"], ref["pitch"], ref["roll"],
                           0.6 * (x1 - x0))
            label = f"{clip['clip_id'][:28]} yaw {ref['yaw']:+.0f} pitch {ref['pitch']:+.0f}"
            cv2.putText(image, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            tiles.append(image)
    return image_data_uri(contact_sheet(tiles, columns=3, width=300)) if tiles else None


def _strip(row: dict, faces: list[dict], decode_max_side: int, n: int = 4) -> str | None:
    """``n`` frames of a rejected clip side by side: sampled frames where the clip has them, with the main
    face boxed in MAIN_BOX and the faces that decided the rejection (``row["offending"]``) in OFFENDING_BOX."""
    start, end = row["start"], row["end"]
    offending = row.get("offending") or []
    sampled = sorted({f["t"] for f in faces})
    if sampled:
        times = [sampled[int(k)] for k in np.linspace(0, len(sampled) - 1, min(n, len(sampled)))]
        bad = sorted({o["t"] for o in offending})
        if bad and not set(times) & set(bad):  # show at least one of the faces that decided it
            times[-1] = bad[len(bad) // 2]
    elif end > start:
        times = [start + (k + 0.5) * (end - start) / n for k in range(n)]
    else:
        return None
    try:
        frames = read_frames(row["source"], times=times, max_side=decode_max_side)  # frames.parquet's coordinates
    except Exception:  # the source may be gone or broken: the report still gets written
        return None
    tiles = []
    for frame in frames:
        image = frame.image.copy()
        thickness = max(2, round(3 * image.shape[1] / 240))  # about 3 px once the tile is 240 px wide
        boxes = [(f["box"], MAIN_BOX) for f in faces if f["track"] == row.get("main_track")
                 and abs(f["t"] - frame.t) < 1e-3]
        boxes += [(o["box"], OFFENDING_BOX) for o in offending if abs(o["t"] - frame.t) < 1e-3]
        for box, colour in boxes:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
        tiles.append(image)
    return image_data_uri(contact_sheet(tiles, columns=n, width=240)) if tiles else None


def _measured(row: dict) -> tuple[str, str, str]:
    """(what the value measures, the value, the rule it must meet to pass) of a rejected row."""
    words, compare = MEASURES.get(row.get("measure") or "", (row.get("measure") or "value", ""))
    value = "—" if row["value"] is None else f"{row['value']:.3g}"
    rule = f"must be {COMPARE[compare]} {row['threshold']:.3g}" if compare and row["threshold"] is not None else ""
    return words, value, rule


def _rejected_rows(rejected: list[dict], frames: list[dict], decode_max_side: int, max_rows: int = 60) -> list[str]:
    esc = html.escape
    main, bad = (f"<span style='color:rgb{c}'>&#9632;</span>" for c in (MAIN_BOX, OFFENDING_BOX))
    parts = [f"<h2>Rejected clips</h2><p>Each rejected clip: what was measured, its value and the rule it had to "
             f"meet, and sampled frames of the clip with {main} the main face (the one measured) and {bad} the face "
             "that decided the rejection (another prominent face; after an identity switch, the second person)."
             "</p><table><tr><th>clip</th><th>s</th><th>stage / reason</th><th>measured</th><th>value</th>"
             "<th>to pass</th><th>frames</th></tr>"]
    by_clip: dict[str, list[dict]] = {}
    for f in frames:
        by_clip.setdefault(f["clip_id"], []).append(f)
    for r in rejected[:max_rows]:
        strip = _strip(r, by_clip.get(r["clip_id"], []) if r["clip_id"] else [], decode_max_side)
        img = f"<img alt='frames of {esc(r['clip_id'])}' src='{strip}' width='480'>" if strip else ""
        words, value, rule = _measured(r)
        parts.append(f"<tr><td>{esc(r['clip_id'] or Path(r['source']).name)}</td><td>{r['start']:.1f}–"
                     f"{r['end']:.1f}</td><td>{esc(r['stage'])} / {esc(r['reason'])}</td><td>{esc(words)}</td>"
                     f"<td>{value}</td><td>{esc(rule)}</td><td>{img}</td></tr>")
    if len(rejected) > max_rows:
        parts.append(f"<tr><td colspan='7'>… and {len(rejected) - max_rows} more in rejected.parquet</td></tr>")
    parts.append("</table>")
    return parts


def _duplicates_note(copies: int, dedup: bool) -> str:
    if not copies:
        return ""
    kept = ("only the first copy's clips are kept (dedup=true)" if dedup else "their clips share the first copy's "
            "identity cluster, so a split by cluster_id keeps them on one side; --set dedup=true keeps the first only")
    return (f"<p><b>{copies} input(s) are byte-identical copies of another input</b> (see Warnings, stage "
            f"duplicate): {html.escape(kept)}.</p>")


def write_report(out_dir: Path) -> Path:
    def table(name: str) -> list[dict]:
        return pq.read_table(out_dir / f"{name}.parquet").to_pylist()

    manifest, frames, rejected, failures = (table(n) for n in ("manifest", "frames", "rejected", "failures"))
    warnings = table("warnings") if (out_dir / "warnings.parquet").is_file() else []
    config = json.loads((out_dir / "config.json").read_text())
    copies = [w for w in warnings if w["stage"] == "duplicate"]
    n_inputs = len({f["source"] for f in frames} | {r["source"] for r in rejected} | {m["source"] for m in manifest}
                   | {f["input"] for f in failures})
    funnel = _funnel(n_inputs, failures, rejected, manifest)
    plots = _plots(frames, manifest)
    sheet = _contact_sheet(manifest)
    esc = html.escape
    reasons: dict[tuple[str, str], int] = {}
    for r in rejected:
        reasons[(r["stage"], r["reason"])] = reasons.get((r["stage"], r["reason"]), 0) + 1
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lfa curation report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
        ".bar{background:#4a7fd4;height:12px}img{max-width:100%}.grid{display:flex;flex-wrap:wrap;gap:1em}</style>",
        "</head><body><h1>lfa curation report</h1>",
        f"<p>{esc(str(out_dir))} — {len(manifest)} accepted clips from {n_inputs} inputs.</p>",
        _duplicates_note(len(copies), bool(config.get("dedup"))),
        "<h2>Funnel</h2><table><tr><th>step</th><th>count</th><th></th></tr>",
    ]
    top = max([c for _, c in funnel] + [1])
    for name, count in funnel:
        parts.append(f"<tr><td>{esc(name)}</td><td>{count}</td><td><div class='bar' "
                     f"style='width:{int(300 * count / top)}px'></div></td></tr>")
    parts.append("</table><h2>Rejections</h2><table><tr><th>stage</th><th>reason</th><th>clips</th></tr>")
    for (stage, reason), n in sorted(reasons.items()):
        parts.append(f"<tr><td>{esc(stage)}</td><td>{esc(reason)}</td><td>{n}</td></tr>")
    parts.append("</table>")
    if rejected:
        parts += _rejected_rows(rejected, frames, config["tracking"]["decode_max_side"])
    if warnings:
        parts.append("<h2>Warnings</h2><p>What the run noticed but did not reject (warnings.parquet).</p><table>"
                     "<tr><th>source</th><th>clip</th><th>stage</th><th>message</th></tr>")
        parts += [f"<tr><td>{esc(Path(w['source']).name)}</td><td>{esc(w['clip_id'])}</td><td>{esc(w['stage'])}"
                  f"</td><td>{esc(w['message'])}</td></tr>" for w in warnings]
        parts.append("</table>")
    if failures:
        parts.append("<h2>Failed inputs</h2><table><tr><th>input</th><th>error</th><th>fix</th></tr>")
        parts += [f"<tr><td>{esc(f['input'])}</td><td>{esc(f['error'])}</td><td>{esc(f['fix'])}</td></tr>"
                  for f in failures]
        parts.append("</table>")
    parts += speech_section(manifest)
    parts.append("<h2>Distributions</h2><div class='grid'>")
    parts += [f"<img alt='{k}' src='{v}'>" for k, v in plots.items()]
    parts.append("</div>")
    if sheet:
        parts.append(f"<h2>Accepted clips</h2><p>Per clip: the most-left, frontal and most-right reference frames "
                     f"with the estimated head pose.</p><img alt='contact sheet' src='{sheet}'>")
    parts.append("<h2>Accepted clips table</h2><table><tr><th>clip</th><th>s</th><th>yaw range</th>"
                 "<th>pitch range</th><th>face ratio</th><th>cluster</th><th>caption</th></tr>")
    for m in manifest:
        parts.append(f"<tr><td>{esc(m['clip_id'])}</td><td>{m['start']:.1f}–{m['end']:.1f}</td>"
                     f"<td>{m['yaw_range']:.0f}°</td><td>{m['pitch_range']:.0f}°</td>"
                     f"<td>{m['face_ratio_median']:.3f}</td><td>{m['cluster_id']}</td>"
                     f"<td>{esc(m['caption'] or '')}</td></tr>")
    parts.append(f"</table><h2>Config</h2><pre>{esc(json.dumps(config, indent=2))}</pre></body></html>")
    path = out_dir / "report.html"
    tmp = path.with_name("report.html.partial")
    tmp.write_text("".join(parts))
    tmp.replace(path)
    return path
