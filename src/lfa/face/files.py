"""Run the analyzer over a file: an image, or a video sampled at a fixed rate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.face.analyzer import FaceAnalyzer
from lfa.face.types import Face
from lfa.media import iter_frames, read_image


@dataclass
class FrameFaces:
    frame: int
    t: float
    faces: list[Face]
    image: np.ndarray | None = None


def analyze_image_file(analyzer: FaceAnalyzer, path: Path) -> tuple[np.ndarray, list[Face]]:
    image = read_image(path)
    return image, analyzer.analyze(image)


def analyze_video_file(analyzer: FaceAnalyzer, path: Path, fps: float = 2.0, *,
                       keep_images: bool = False) -> Iterator[FrameFaces]:
    """Faces of the frames sampled at ``fps`` (see :func:`lfa.media.iter_frames` for the rule)."""
    for frame in iter_frames(path, fps=fps):
        yield FrameFaces(frame.index, frame.t, analyzer.analyze(frame.image),
                         frame.image if keep_images else None)
