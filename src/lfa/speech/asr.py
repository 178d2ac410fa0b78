"""Transcription with faster-whisper (CTranslate2): words with timestamps and the detected language.
The model is a registry directory: the shipped tiny.en (``whisper_tiny_en``) or a user-supplied
CTranslate2 conversion such as large-v3 (``lfa models add whisper DIR``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfa.errors import ModelLoadError
from lfa.registry import ModelStore


@dataclass
class Word:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str | None
    language_probability: float
    words: list[Word] = field(default_factory=list)

    def split(self, spans: list[tuple[float, float]]) -> list[str]:
        """The words of each span: a word goes to the span it overlaps most, else the nearest one
        (Whisper's word times and the VAD's spans disagree by a few hundred milliseconds)."""
        texts: list[list[str]] = [[] for _ in spans]
        for w in self.words if spans else []:
            def fit(span: tuple[float, float]) -> tuple[float, float]:
                a, b = span
                return (min(b, w.end) - max(a, w.start), -abs((a + b) / 2 - (w.start + w.end) / 2))
            texts[max(range(len(spans)), key=lambda k: fit(spans[k]))].append(w.text)
        return ["".join(t).strip() for t in texts]


class WhisperAsr:
    def __init__(self, model_dir: Path, *, threads: int = 2, beam_size: int = 1) -> None:
        from faster_whisper import WhisperModel

        try:
            self.model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        except Exception as exc:  # CTranslate2's own errors: one line naming the directory
            raise ModelLoadError(f"{model_dir} does not load as a CTranslate2 Whisper model: {exc}",
                                 "pass a faster-whisper model directory (model.bin, config.json, tokenizer.json)") from exc
        self.beam_size = beam_size

    @classmethod
    def from_store(cls, name: str = "whisper_tiny_en", store: ModelStore | None = None, **kwargs) -> WhisperAsr:
        return cls((store or ModelStore()).path(name).parent, **kwargs)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        segments, info = self.model.transcribe(np.ascontiguousarray(audio, np.float32), language=language,
                                               beam_size=self.beam_size, word_timestamps=True,
                                               condition_on_previous_text=False, vad_filter=False)
        words = [Word(float(w.start), float(w.end), w.word) for s in segments for w in (s.words or [])]
        return Transcript("".join(w.text for w in words).strip(), info.language,
                          float(info.language_probability), words)


def check_model(path: Path) -> None:
    """Registry check: the directory holding ``path`` (model.bin) loads as a Whisper model."""
    WhisperAsr(Path(path).parent)
