"""``lfa identity calibrate | compare``: impostor models and pose-aware identity scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from lfa.cli.faces import POSE_CHOICES

app = typer.Typer(help="Pose-aware identity scores and their impostor calibration.", no_args_is_help=True)
out = Console()


def _analyzer(identity: str, pose: str):
    from lfa.face import AnalyzerConfig, FaceAnalyzer

    return FaceAnalyzer(AnalyzerConfig(pose=pose, identity=identity))


@app.command("calibrate")
def calibrate_cmd(
    folder: Path = typer.Argument(..., help="A folder with one subfolder of photos (or videos) per person."),
    model_out: Path = typer.Option(..., "--out", metavar="FILE", help="Where to write the impostor model (JSON)."),
    identity: str = typer.Option("dlib", help="dlib | arcface | curricularface"),
    pose: str = typer.Option("fused", help=f"Head pose, buckets the faces by yaw: {POSE_CHOICES}"),
    fps: float = typer.Option(2.0, help="Frames per second sampled from videos."),
) -> None:
    """Fit an impostor model (different people's similarity per yaw-bucket pair) on your own faces."""
    from lfa.face.identity.folder import calibrate_folder

    model, people = calibrate_folder(_analyzer(identity, pose), folder, fps=fps,
                                     on_person=lambda name: out.print(f"analysing {name}…"))
    model.save(model_out)
    table = Table(title=f"people in {folder}")
    for col in ("person", "files", "faces", "with pose", "skipped"):
        table.add_column(col, justify="left" if col in ("person", "skipped") else "right")
    for name, p in people.items():
        posed = int((~np.isnan(p.faces.yaw)).sum())
        table.add_row(name, str(p.files), str(p.faces.n_faces), str(posed), str(len(p.skipped)))
    out.print(table)
    for name, p in people.items():
        for line in p.skipped:
            out.print(f"skipped {name}/{line}", markup=False, highlight=False)
    out.print(model.describe())
    out.print(f"wrote {model_out}")


@app.command("compare")
def compare_cmd(
    a: Path = typer.Argument(..., help="A photo, video or folder of one person."),
    b: Path = typer.Argument(..., help="A photo, video or folder to compare with."),
    impostors: Path = typer.Option(None, help="Impostor model from `lfa identity calibrate` (default: shipped)."),
    far: float = typer.Option(0.01, help="False-accept rate of the decision: 0.1, 0.05, 0.01 or 0.001."),
    identity: str = typer.Option("dlib", help="dlib | arcface | curricularface"),
    pose: str = typer.Option("fused", help=f"Head pose, buckets the faces by yaw: {POSE_CHOICES}"),
    fps: float = typer.Option(2.0, help="Frames per second sampled from videos."),
) -> None:
    """Are A and B the same person? The pose-aware score, its decision and what it rests on."""
    from lfa.face.identity.folder import faces_of_path
    from lfa.face.identity.impostors import default_impostor_model, load_impostor_model
    from lfa.face.identity.score import IdentityScorer

    model = load_impostor_model(impostors) if impostors else default_impostor_model(identity)
    analyzer = _analyzer(identity, pose)
    fa, fb = faces_of_path(analyzer, a, fps=fps).faces, faces_of_path(analyzer, b, fps=fps).faces
    s = IdentityScorer(model, far=far).compare(fa, fb)
    table = Table(title=f"{a.name} vs {b.name}")
    for col in ("same", "z", "thr", "cos", "kind", "pairs", "imp. pairs", "source"):
        table.add_column(col, justify="right")
    fmt = lambda v: "–" if math.isnan(v) else f"{v:.2f}"  # noqa: E731
    table.add_row("yes" if s.accept else "no", fmt(s.z), fmt(s.threshold), fmt(s.cosine), s.kind, str(s.n_pairs),
                  str(s.n_impostor_pairs), s.impostor_source)
    out.print(table)
    out.print(f"FAR {far:g}; {model.describe()}")
