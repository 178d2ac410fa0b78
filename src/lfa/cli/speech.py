"""``lfa speech VIDEO``: does the person on screen speak, and what do they say?"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lfa.errors import MediaError

out = Console()
err = Console(stderr=True)


def speech(
    video: Path = typer.Argument(..., help="A video file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                     help="speech.KEY=VALUE (repeatable), e.g. min_av_score=4."),
    caption: str = typer.Option(None, help="A caption to enrich (default: a caption-less sentence)."),
) -> None:
    """Speech status (speaking, voiceover, uncertain, silent, non_speech_audio, unknown), segments, transcript
    and caption. Audio packets that do not decode are skipped, with a warning on stderr."""
    from lfa.curate.config import CurateConfig
    from lfa.speech import speech_of_video

    if not video.is_file():
        raise MediaError(f"no such file: {video}", "pass the path of a video file")
    settings = CurateConfig.load(None, [item if item.startswith("speech.") else f"speech.{item}"
                                        for item in config or []]).speech
    result = speech_of_video(video, settings, base_caption=caption)
    keys = ("status", "segments", "language", "transcript", "caption") + (("syncnet",) if result.sync else ()) + (
        ("reason",) if result.reason else ())
    data = {k: v for k, v in result.to_dict().items() if k in keys}
    for warning in result.warnings:
        err.print(f"warning: {video.name}: {warning}", soft_wrap=True)
    if as_json:
        print(json.dumps(data))
        return
    table = Table(title=f"{video.name}: {result.status}")
    numbers = ("start", "end", "av", "level", "syll", "lag s")
    for col in ("start", "end", "status", "av", "level", "syll", "lag s", "text"):
        table.add_column(col, justify="right" if col in numbers else "left", overflow="fold")
    for s in data["segments"]:
        scores = ["–" if s[key] is None else f"{s[key]:.2f}" for key in ("av_score", "level_score", "syllable_score")]
        table.add_row(f"{s['start']:.2f}", f"{s['end']:.2f}", s["status"], *scores, f"{s['lag_s']:+.2f}", s["text"])
    out.print(table)
    if result.reason:
        out.print(f"reason: {result.reason}", soft_wrap=True)
    out.print(f"language: {result.language or '–'}")
    if result.sync is not None:
        out.print(f"SyncNet: offset {result.sync.offset_frames:+d} frames, confidence {result.sync.confidence:.2f}")
    out.print(f"caption: {result.caption}", soft_wrap=True)
    if result.caption_failure:
        out.print(f"caption rewrite failed, template kept: {result.caption_failure}", soft_wrap=True)
