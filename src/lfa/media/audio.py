"""Sound-track extraction: first audio stream → mono float32 at a chosen rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import av
import numpy as np

from lfa.errors import MediaError
from lfa.media.image import PathLike
from lfa.media.probe import open_media

log = logging.getLogger(__name__)
GAP_TOLERANCE_S = 0.01  # a decoded frame this much later than the samples so far: silence fills the gap


@dataclass
class AudioTrack:
    samples: np.ndarray  # float32 mono, (n,), in [-1, 1]; sample 0 is the stream's start
    skipped: list[float] = field(default_factory=list)  # stream times (s) of packets that did not decode
    stopped: str | None = None  # why decoding stopped before the end (a broken demuxer), else None

    def warning(self) -> str | None:
        """One line on what did not decode, or None when everything did."""
        parts = []
        if self.skipped:
            times = ", ".join(f"{t:.2f}" for t in self.skipped[:5]) + (" …" if len(self.skipped) > 5 else "")
            parts.append(f"{len(self.skipped)} undecodable audio packet{'s' * (len(self.skipped) > 1)} skipped "
                         f"(at {times} s; silence in their place)")
        if self.stopped:
            parts.append(f"audio decoding stopped early: {self.stopped}")
        return "; ".join(parts) or None


def decode_audio(path: PathLike, sample_rate: int = 16000) -> AudioTrack:
    """The first audio stream, resampled and averaged to mono, packet by packet: a packet that does not
    decode is skipped (silence of its length in its place, its time recorded) and decoding goes on;
    a demuxer that breaks part-way keeps what decoded before. MediaError only when nothing decoded."""
    container = open_media(path)
    with container:
        if not container.streams.audio:
            raise MediaError(
                f"no audio stream: {path}",
                "pass a file with a sound track, or give the audio separately",
            )
        stream = container.streams.audio[0]
        base = stream.time_base
        start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
        # AAC pads its last frame; the container's duration says where the sound really ends.
        n_max = (
            int(round(float(stream.duration * base) * sample_rate))
            if stream.duration and base
            else None
        )
        # Keep the channel layout through resampling and average channels here: FFmpeg's own
        # down-mix adds channels at -3 dB, which can leave [-1, 1] for correlated stereo.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        count = 0  # samples in chunks
        skipped: list[float] = []
        stopped = None
        tolerance = int(GAP_TOLERANCE_S * sample_rate)

        def add(frames: list[av.AudioFrame]) -> None:
            nonlocal count
            for f in frames:
                x = f.to_ndarray().mean(axis=0)
                chunks.append(x)
                count += len(x)

        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.dts is None:
                    continue  # the demuxer's flush packet
                try:
                    decoded = packet.decode()
                except (av.FFmpegError, ValueError):
                    t = float(packet.pts * base) - start if packet.pts is not None and base else count / sample_rate
                    skipped.append(round(max(t, 0.0), 3))
                    continue
                for frame in decoded:
                    if frame.pts is not None and frame.time_base:  # place it at its time: gaps become silence
                        at = int(round((float(frame.pts * frame.time_base) - start) * sample_rate))
                        if at - count > tolerance:
                            chunks.append(np.zeros(at - count, np.float32))
                            count = at
                    add(resampler.resample(frame))
        except (av.FFmpegError, EOFError) as e:
            stopped = str(e)
        add(resampler.resample(None))
    if not chunks or not any(len(c) for c in chunks):
        if skipped or stopped:
            why = f"none of its {len(skipped)} audio packets decodes" if skipped else f"audio decoding failed: {stopped}"
            raise MediaError(f"{why}: {path}",
                             "re-encode the sound track with ffmpeg, e.g. ffmpeg -i IN -c:v copy -c:a aac OUT") from None
        return AudioTrack(np.zeros(0, dtype=np.float32))
    track = AudioTrack(np.concatenate(chunks).astype(np.float32, copy=False)[:n_max], skipped, stopped)
    return track


def extract_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream, resampled and averaged to mono: float32, (n,), in [-1, 1].

    Like video decoding, damage is survived: undecodable packets are skipped and a stream that breaks
    part-way returns what decoded before the break (with a logged warning); MediaError only when
    nothing decoded. :func:`decode_audio` also returns what was skipped.
    """
    track = decode_audio(path, sample_rate)
    if track.warning():
        log.warning("%s: %s", path, track.warning())
    return track.samples


def check_audio_file(path: PathLike) -> None:
    """Registry check: the file decodes to non-empty audio."""
    if extract_audio(path).size == 0:
        raise MediaError(f"no audio samples in {path}", "re-fetch the file with `lfa models fetch`")
