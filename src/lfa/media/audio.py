"""Sound-track extraction: first audio stream → mono float32 at a chosen rate."""

from __future__ import annotations

import logging

import av
import numpy as np

from lfa.errors import MediaError
from lfa.media.image import PathLike
from lfa.media.probe import corrupt, open_media

log = logging.getLogger(__name__)


def extract_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream, resampled and averaged to mono: float32, (n,), in [-1, 1].

    Like video decoding, a stream that breaks part-way returns what decoded before the
    break (with a logged warning); MediaError only when nothing decoded.
    """
    container = open_media(path)
    with container:
        if not container.streams.audio:
            raise MediaError(
                f"no audio stream: {path}",
                "pass a file with a sound track, or give the audio separately",
            )
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # AAC pads its last frame; the container's duration says where the sound really ends.
        n_max = (
            int(round(float(stream.duration * stream.time_base) * sample_rate))
            if stream.duration and stream.time_base
            else None
        )
        # Keep the channel layout through resampling and average channels here: FFmpeg's own
        # down-mix adds channels at -3 dB, which can leave [-1, 1] for correlated stereo.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))
        except (av.FFmpegError, EOFError) as e:
            if not chunks:
                raise corrupt(path, f"no audio could be decoded: {e}") from None
            log.warning("%s: audio decoding stopped early: %s", path, e)
        chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)[:n_max]


def check_audio_file(path: PathLike) -> None:
    """Registry check: the file decodes to non-empty audio."""
    if extract_audio(path).size == 0:
        raise MediaError(f"no audio samples in {path}", "re-fetch the file with `lfa models fetch`")
