"""``lfa synth render | corpus | eval-pose``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lfa.cli.progress import item_progress
from lfa.errors import ConfigError
from lfa.synth.trajectory import NAMED as TRAJECTORIES

app = typer.Typer(help="Labelled synthetic face videos with ground-truth head pose.", no_args_is_help=True)
out = Console()


@app.command("render")
def render_cmd(
    photo: list[Path] = typer.Option(..., "--photo", metavar="FILE", help="Face photo (or astronaut / grace_hopper); "
                                     "a second --photo is the second face, or the switch target with --switch-at."),
    trajectory: str = typer.Option("yaw-sweep", help=f"{' | '.join(TRAJECTORIES)}, or a .json file of "
                                   "keyframes."),
    video: Path = typer.Option(..., "--out", metavar="FILE",
                               help="Output .mp4 (the sidecar is written beside it as .json)."),
    duration: float = typer.Option(4.0, help="Length of the clip in seconds."),
    fps: float = typer.Option(25.0, help="Frames per second."),
    size: str = typer.Option("512x512", help="WIDTHxHEIGHT"),
    face_size: float = typer.Option(0.3, help="Face width as a fraction of the frame width."),
    second_size: float = typer.Option(1.0, help="Second face width relative to the main face."),
    switch_at: float = typer.Option(None, help="Switch identity to the second photo at this time (s)."),
    speech: str = typer.Option("none", help="none | on_screen (the mouth says the words heard) | voice_over (still "
                               "mouth) | dubbed (the mouth says other words) | mouth_only (moving mouth, silent "
                               "track) | tone | noise; --speech-audio alone means on_screen"),
    speech_audio: Path = typer.Option(None, "--speech-audio", metavar="FILE",
                                      help="Speak this recording (any file with a sound track; a .txt beside it "
                                      "is its text for the sidecar) instead of a shipped sentence: the mouth "
                                      "says its words (visemes of faster-whisper's word-timed transcript)."),
    mouth_audio: Path = typer.Option(None, "--mouth-audio", metavar="FILE",
                                     help="--speech dubbed: the recording whose words the mouth says."),
    speech_at: float = typer.Option(0.4, help="The speech starts at this time (s)."),
    audio: bool = typer.Option(True, help="Write an audio stream (--no-audio: the file has none)."),
    audio_shift: float = typer.Option(0.0, help="Delay the sound against the picture by this many seconds."),
    scene_cut_at: float = typer.Option(None, help="Hard cut at this time (s)."),
    blur: float = typer.Option(0.0, help="Gaussian blur of every frame: sigma in pixels (0: none)."),
    noise: float = typer.Option(0.0, help="Gaussian noise on every frame: sigma in grey levels (0: none)."),
    jpeg_quality: int = typer.Option(None, help="Per-frame JPEG quality (compression artefacts)."),
    background: str = typer.Option("photo", help="photo (a face-free natural image) | field (colour field)"),
    shading: bool = typer.Option(True, help="A seeded directional + ambient light (else a fixed soft light)."),
    seed: int = typer.Option(0, help="Seed of the background, lighting, noise and sound."),
) -> None:
    """Render one labelled clip and its sidecar."""
    from lfa.synth import ClipSpec, SecondFace, render_clip

    if len(photo) > 2:
        raise ConfigError("at most two --photo", "give the main photo and optionally a second one")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"bad --size {size!r}", "write it as WIDTHxHEIGHT, e.g. 512x512") from None
    for given in (speech_audio, mouth_audio):
        if given is not None and not given.is_file():
            raise ConfigError(f"no such recording: {given}", "pass a sound file (wav, mp3, m4a, or a video with sound)")
    if speech_audio is not None and speech == "none":
        speech = "on_screen"
    second = str(photo[1]) if len(photo) == 2 else None
    spec = ClipSpec(str(photo[0]), trajectory, duration, fps, width, height, face_size,
                    second_face=SecondFace(second, second_size) if second and switch_at is None else None,
                    switch_photo=second if switch_at is not None else None, switch_at=switch_at, speech=speech,
                    speech_audio=str(speech_audio) if speech_audio else None,
                    mouth_audio=str(mouth_audio) if mouth_audio else None, speech_at=speech_at,
                    audio_stream=audio, audio_shift_s=audio_shift,
                    scene_cut_at=scene_cut_at, blur=blur, noise=noise, jpeg_quality=jpeg_quality,
                    background=background, shading=shading, seed=seed)
    sidecar = render_clip(spec, video)
    out.print(f"wrote {video} ({sidecar['n_frames']} frames) and {video.with_suffix('.json')}")


@app.command("corpus")
def corpus_cmd(directory: Path = typer.Option(Path("out/corpus"), "--out", metavar="DIR", help="Output folder."),
               force: bool = typer.Option(False, help="Re-render clips that already exist.")) -> None:
    """Render the standard labelled corpus (resumable: finished clips are kept)."""
    from lfa.synth import STANDARD_CORPUS, build_corpus

    with item_progress(out, len(STANDARD_CORPUS), "rendering") as on_clip:
        clips = build_corpus(directory, skip_existing=not force, on_clip=on_clip)
    table = Table(title=f"corpus in {directory}")
    for col in ("clip", "decision", "reason", "speech", "purpose"):
        table.add_column(col)
    for name, spec in STANDARD_CORPUS.items():
        e = spec.expected
        table.add_row(name, e["decision"], e["reason"] or "", e["speech"], spec.purpose)
    out.print(table)
    out.print(f"{len(clips)} clips (NAME.mp4 + NAME.json) in {directory}")


@app.command("eval-pose")
def eval_pose_cmd(
    photo: list[Path] = typer.Option(None, "--photo", help="Photos to render (default: the sample photos)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON per backend and |yaw| bucket."),
    plot_path: Path = typer.Option(Path("out/eval-pose.png"), "--plot", help="Where to write the plot."),
    frames: int = typer.Option(100, help="Frames per sweep."),
    sweep: list[str] = typer.Option(None, "--sweep", help="Sweeps to render (default: yaw-sweep, profile-sweep, "
                                    "pitch-sweep, roll-sweep)."),
) -> None:
    """Pose accuracy of every pose backend, side by side, against rendered ground truth."""
    from lfa.synth.eval_pose import SHARES_RENDER_GEOMETRY, SWEEPS, evaluate_pose, plot

    unknown = [s for s in sweep or [] if s not in SWEEPS]
    if unknown:
        raise ConfigError(f"unknown sweep {unknown[0]!r}", f"use one of: {', '.join(SWEEPS)}")
    summary, raw = evaluate_pose([str(p) for p in photo] if photo else None, frames=frames,
                                 sweeps=tuple(sweep) if sweep else tuple(SWEEPS),
                                 on_progress=lambda name: None if as_json else out.print(f"rendering {name}…"))
    plot(summary, raw, plot_path)
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    fmt = lambda v: "–" if math.isnan(v) else f"{v:.1f}"  # noqa: E731
    table = Table(title="pose error vs ground truth (°, relative to frontal frames)")
    for col in ("backend", "|yaw|", "yaw", "pitch", "roll", "detected", "posed", "n"):
        table.add_column(col, justify="right")
    for name, buckets in summary.items():
        for bucket, m in buckets.items():
            if bucket != "frontal":
                table.add_row(name, bucket, fmt(m["mae_yaw"]), fmt(m["mae_pitch"]), fmt(m["mae_roll"]),
                              f"{m['detection_rate']:.0%}", f"{m['pose_rate']:.0%}", str(m["frames"]))
    out.print(table)
    for name, buckets in summary.items():
        shares = "shares the renderer's geometry" if SHARES_RENDER_GEOMETRY[name] else "independent of the renderer"
        out.print(f"{name}: |yaw| at true frontal {fmt(buckets['frontal']['frontal_offset'])}°; {shares}")
    out.print(f"plot: {plot_path}")
