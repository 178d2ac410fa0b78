"""Settings of speech disambiguation (``lfa speech`` and the curation stage share them)."""

from __future__ import annotations

from dataclasses import dataclass

from lfa.errors import ConfigError

STATUSES = ("speaking", "voiceover", "silent", "non_speech_audio")
ASR_MODELS = ("whisper_tiny_en", "whisper")  # registry names: the shipped tiny.en, a user-supplied CTranslate2 dir
VOICEOVER_ACTIONS = ("label", "keep", "drop")


@dataclass
class SpeechConfig:
    enabled: bool = True
    # audio: a track whose peak stays below silence_dbfs is digital silence; sound above noise_dbfs (RMS)
    # with no speech in it is non-speech audio (music, noise, a tone)
    silence_dbfs: float = -60.0
    noise_dbfs: float = -45.0
    # voice activity (silero-vad)
    vad_threshold: float = 0.5
    min_speech_s: float = 0.25  # less speech than this in a clip counts as none
    # transcription (faster-whisper)
    asr_model: str = "whisper_tiny_en"
    language: str | None = None  # None: detected
    beam_size: int = 1
    # lip activity and audio-visual agreement
    lip_fps: float = 12.5  # mouth-opening samples per second along the main track
    max_lag_s: float = 0.3  # lag search of speech envelope vs mouth, both directions
    # correlation at the best lag from which a segment is the visible person speaking; set on lfa's renders
    # (mouth following the speech 0.81-0.89, a still mouth under speech 0.36-0.42), not yet on real video
    min_av_score: float = 0.6
    min_mouth_motion: float = 0.02  # std of the mouth-opening ratio below which the mouth is still
    min_speaking_fraction: float = 0.5  # of the speech time, in speaking segments, for a speaking clip
    # optional SyncNet backend (user-supplied, `lfa models add syncnet FILE`): when on, it decides the clip's
    # status by LatentSync's rule, and both signals are reported
    syncnet: bool = False
    syncnet_min_confidence: float = 3.0
    syncnet_max_offset: int = 6  # video frames at 25 fps
    # curation: what happens to voice-over clips (label: keep, caption says so; keep: keep, caption
    # unchanged; drop: rejected)
    on_voiceover: str = "label"
    # caption rewrite through an OpenAI-compatible chat endpoint (optional; the template otherwise)
    rewrite_endpoint: str | None = None  # e.g. http://localhost:8000/v1
    rewrite_model: str = "Qwen/Qwen2.5-7B-Instruct"
    rewrite_api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    rewrite_timeout_s: float = 30.0
    rewrite_retries: int = 2

    def __post_init__(self) -> None:
        if self.asr_model not in ASR_MODELS:
            raise ConfigError(f"unknown speech.asr_model {self.asr_model!r}", f"use one of {', '.join(ASR_MODELS)}")
        if self.on_voiceover not in VOICEOVER_ACTIONS:
            raise ConfigError(f"unknown speech.on_voiceover {self.on_voiceover!r}",
                              f"use one of {', '.join(VOICEOVER_ACTIONS)}")
        if self.lip_fps <= 0 or self.max_lag_s < 0:
            raise ConfigError("speech.lip_fps must be > 0 and speech.max_lag_s >= 0", "e.g. lip_fps=12.5, max_lag_s=0.3")
