"""Speech for synthetic clips: espeak-ng when installed, else recordings a registry package ships."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lfa.media import extract_audio
from lfa.registry import ModelStore

SAMPLE_RATE = 16000
RECORDINGS = ("counting.wav", "quick_brown_fox.wav", "hello_world.wav")
TEXTS = ("One two three four five six seven eight nine ten.",
         "The quick brown fox jumps over the lazy dog.", "Hello world.")


def speech_source() -> str:
    return "espeak-ng" if shutil.which("espeak-ng") else "pytest-audioeval recordings"


def speech_recording(path: str | Path | None, index: int, store: ModelStore | None = None) -> np.ndarray:
    """Mono float32 speech at 16 kHz, peak 0.6: the recording at ``path`` (any file with a sound track),
    else the shipped sentence ``index`` picks."""
    if path is None:
        return speech_clip(index, store)
    return _normalised(extract_audio(path, SAMPLE_RATE))


def recording_text(path: str | Path | None, index: int) -> str | None:
    """The known text of a recording: the shipped sentence's, or a ``.txt`` beside ``path``."""
    if path is None:
        return TEXTS[index % len(TEXTS)]
    text = Path(path).with_suffix(".txt")
    return text.read_text().strip() if text.is_file() else None


def speech_clip(index: int, store: ModelStore | None = None) -> np.ndarray:
    """Mono float32 speech at 16 kHz; ``index`` picks the sentence."""
    k = index % len(TEXTS)
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "speech.wav"
            subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(wav), TEXTS[k]], check=True,
                           capture_output=True)
            audio = extract_audio(wav, SAMPLE_RATE)
    else:
        audio = extract_audio((store or ModelStore()).path("speech_en", RECORDINGS[k]), SAMPLE_RATE)
    return _normalised(audio)


def _normalised(audio: np.ndarray) -> np.ndarray:
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return (0.6 * audio / (peak or 1.0)).astype(np.float32)


def active_intervals(audio: np.ndarray, offset_s: float, *, frame_s: float = 0.02, threshold: float = 0.02,
                     min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """Where ``audio`` (placed at ``offset_s``) is not silent: RMS over 20 ms frames above a threshold,
    gaps shorter than ``min_gap_s`` bridged (pauses between words are still speech)."""
    hop = int(frame_s * SAMPLE_RATE)
    n = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = rms > threshold
    intervals: list[list[float]] = []
    for i in np.nonzero(active)[0]:
        start, end = offset_s + i * frame_s, offset_s + (i + 1) * frame_s
        if intervals and start - intervals[-1][1] <= min_gap_s:
            intervals[-1][1] = end
        else:
            intervals.append([start, end])
    return [(round(a, 3), round(b, 3)) for a, b in intervals]


def non_speech(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """Sound that is not speech, ``n`` samples: a steady 440 Hz ``tone`` or smoothed ``noise``."""
    t = np.arange(n) / SAMPLE_RATE
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    white = np.random.default_rng(seed).normal(0, 1, n)
    pink = np.convolve(white, np.ones(8) / 8, mode="same")  # low-passed: hiss and rumble, no voice structure
    return (0.3 * pink / np.abs(pink).max()).astype(np.float32)
