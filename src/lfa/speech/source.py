"""The sound of one source video, read once for all its clip windows: the decoded track (undecodable packets
skipped), voice activity over the whole file (so that the shots stage can cut long shots in pauses), and one
transcript per shot (each window gets the words whose middle falls inside it)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from lfa.errors import MediaError
from lfa.speech.asr import Transcript
from lfa.speech.audio import ClipAudio, load_clip_audio
from lfa.speech.config import SpeechConfig


class SourceSpeech:
    """Nothing is read until asked for: a file none of whose windows reaches the speech stage and whose
    shots need no cut costs nothing here."""

    def __init__(self, path: Path, config: SpeechConfig, models: object) -> None:
        self.path, self.config, self.models = Path(path), config, models
        self._error: str | None = None
        self._spans: list[tuple[float, float]] | None = None
        self._transcripts: dict[tuple[float, float], Transcript] = {}

    @cached_property
    def audio(self) -> ClipAudio:
        try:
            return load_clip_audio(self.path)
        except MediaError as exc:
            self._error = f"{exc.message} (fix: {exc.fix})" if exc.fix else exc.message
            return ClipAudio(np.zeros(0, np.float32), 0.0, True)

    @property
    def error(self) -> str | None:
        """Why the sound could not be analysed at all (status unknown), else None."""
        _ = self.audio
        return self._error

    @property
    def read(self) -> bool:
        """Whether the sound has been decoded (the first use decodes it)."""
        return "audio" in self.__dict__

    @property
    def warning(self) -> str | None:
        """What did not decode (skipped packets, an early stop), or None."""
        return self.audio.damage.warning() if self.audio.damage is not None else None

    def window(self, start: float, end: float) -> ClipAudio:
        return self.audio.window(start, end)

    def voice_activity(self) -> list[tuple[float, float]]:
        """silero-vad's speech over the whole file (source seconds); none without a stream or in digital
        silence. Its gaps are the pauses the shots stage cuts long shots in."""
        if self._spans is None:
            quiet = not self.audio.has_stream or self.audio.peak_dbfs < self.config.silence_dbfs
            self._spans = [] if quiet or self.error else [
                (self.audio.start + a, self.audio.start + b)
                for a, b in self.models.vad.segments(self.audio.samples, self.config.min_speech_s)]  # type: ignore[attr-defined]
        return self._spans

    def spans(self) -> list[tuple[float, float]]:
        """Speech segments: voice activity with pauses shorter than ``merge_gap_s`` bridged."""
        return merge_pauses(self.voice_activity(), self.config.merge_gap_s)

    def spans_in(self, start: float, end: float) -> list[tuple[float, float]]:
        return [(max(a, start), min(b, end)) for a, b in self.spans() if min(b, end) > max(a, start)]

    def transcript(self, shot: tuple[float, float]) -> Transcript:
        """The shot's words (source seconds), transcribed once."""
        key = (round(shot[0], 3), round(shot[1], 3))
        if key not in self._transcripts:
            audio = self.window(*shot)
            found = self.models.asr.transcribe(audio.samples, self.config.language)  # type: ignore[attr-defined]
            for w in found.words:
                w.start, w.end = w.start + audio.start, w.end + audio.start
            self._transcripts[key] = found
        return self._transcripts[key]

    def words_in(self, start: float, end: float, shot: tuple[float, float]) -> Transcript:
        """The shot's transcript cut to [start, end): the words whose middle falls inside."""
        whole = self.transcript(shot)
        words = [w for w in whole.words if start <= (w.start + w.end) / 2 < end]
        return Transcript("".join(w.text for w in words).strip(), whole.language, whole.language_probability, words)


def merge_pauses(spans: list[tuple[float, float]], gap_s: float) -> list[tuple[float, float]]:
    """``spans`` (sorted) with the gaps shorter than ``gap_s`` bridged."""
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if out and a - out[-1][1] < gap_s:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
