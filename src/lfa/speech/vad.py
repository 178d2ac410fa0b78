"""Voice activity with silero-vad's ONNX model (the file the registry provisions from the silero-vad wheel),
run by the package's own wrapper and segmenter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lfa.registry import ModelStore
from lfa.speech.audio import SAMPLE_RATE


class SileroVad:
    def __init__(self, model_path: Path, threshold: float = 0.5) -> None:
        from silero_vad.utils_vad import OnnxWrapper

        self.model = OnnxWrapper(str(model_path), force_onnx_cpu=True)
        self.threshold = threshold

    @classmethod
    def from_store(cls, store: ModelStore | None = None, threshold: float = 0.5) -> SileroVad:
        return cls((store or ModelStore()).path("silero_vad"), threshold)

    def segments(self, audio: np.ndarray, min_speech_s: float = 0.25) -> list[tuple[float, float]]:
        """Speech intervals (seconds from the start of ``audio``)."""
        if audio.size < SAMPLE_RATE // 10:
            return []
        import torch
        from silero_vad import get_speech_timestamps

        self.model.reset_states()
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), self.model,
                                       threshold=self.threshold, sampling_rate=SAMPLE_RATE,
                                       min_speech_duration_ms=int(min_speech_s * 1000), return_seconds=False)
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def check_model(path: Path) -> None:
    """Registry check: the ONNX model loads and scores one window."""
    vad = SileroVad(path)
    vad.segments(np.zeros(SAMPLE_RATE, np.float32))
