"""``lfa faces PATH``: faces of an image or a video, as a table, JSON, or an annotated picture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lfa.face.analyzer import POSE_BACKENDS
from lfa.face.types import Face

out = Console()
POSE_CHOICES = " | ".join("fused (landmark fit + WHENet, full yaw range)" if b == "fused" else b
                         for b in POSE_BACKENDS)


def _fmt(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:+.1f}"


def _table(rows: list[tuple[str, int, Face]], title: str) -> Table:
    table = Table(title=title)
    for col in ("where", "#", "box", "score", "yaw", "pitch", "roll", "area", "sharpness", "embedding"):
        table.add_column(col, justify="right" if col not in ("where", "box", "embedding") else "left")
    for where, i, f in rows:
        box = ",".join(str(int(v)) for v in f.box)
        table.add_row(where, str(i), box, f"{f.score:.2f}", _fmt(f.yaw), _fmt(f.pitch), _fmt(f.roll),
                      f"{f.area_ratio:.3f}", f"{f.sharpness:.0f}", f.embedding_model or "–")
    return table


def faces(
    path: Path = typer.Argument(..., help="An image or a video."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    viz: Path = typer.Option(None, "--viz", help="Write an annotated picture (for a video: a contact sheet)."),
    fps: float = typer.Option(2.0, help="Frames per second analysed in a video."),
    detector: str = typer.Option("yunet", help="yunet | scrfd"),
    pose: str = typer.Option("fused", help=f"Head pose: {POSE_CHOICES}"),
    identity: str = typer.Option("dlib", help="dlib | arcface | curricularface | none"),
) -> None:
    """Find faces, with box, landmarks, yaw/pitch/roll, identity model, area ratio and sharpness."""
    from lfa.face import AnalyzerConfig, FaceAnalyzer
    from lfa.face.files import analyze_image_file, analyze_video_file
    from lfa.face.viz import annotate, contact_sheet
    from lfa.media import is_animated_gif, is_video_path, write_image

    analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, pose=pose, identity=identity))
    if is_video_path(path) or is_animated_gif(path):
        frames = list(analyze_video_file(analyzer, path, fps, keep_images=viz is not None))
        if as_json:
            print(json.dumps([{"t": round(f.t, 3), "frame": f.frame, "faces": [x.to_dict() for x in f.faces]}
                              for f in frames]))
        else:
            rows = [(f"{f.t:.2f}s/{f.frame}", i, face) for f in frames for i, face in enumerate(f.faces)]
            out.print(_table(rows, f"{path.name}: {len(frames)} frames at {fps:g} fps"))
        if viz is not None:
            write_image(viz, contact_sheet([annotate(f.image, f.faces) for f in frames if f.image is not None]))
    else:
        image, found = analyze_image_file(analyzer, path)
        if as_json:
            print(json.dumps({"faces": [f.to_dict() for f in found]}))
        else:
            out.print(_table([(path.name, i, f) for i, f in enumerate(found)], f"{path.name}: {len(found)} face(s)"))
        if viz is not None:
            write_image(viz, annotate(image, found))
    if viz is not None and not as_json:
        out.print(f"annotated picture: {viz}")
