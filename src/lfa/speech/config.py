"""Settings of speech disambiguation (``lfa speech`` and the curation stage share them)."""

from __future__ import annotations

from dataclasses import dataclass

from lfa.errors import ConfigError

# unknown: the speech could not be analysed (the reason is recorded); uncertain: speech the mouth may or may not
# follow, the audio-visual evidence too weak either way
STATUSES = ("speaking", "voiceover", "uncertain", "silent", "non_speech_audio", "unknown")
ASR_MODELS = ("whisper_tiny_en", "whisper")  # registry names: the shipped tiny.en, a user-supplied CTranslate2 dir
POLICIES = ("label", "keep", "drop")  # on_voiceover, on_uncertain, on_unknown


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
    merge_gap_s: float = 1.0  # speech segments: voice activity with pauses shorter than this bridged
    # lip activity and audio-visual agreement (lfa.speech.agreement): per speech segment, two tests of the mouth
    # opening against the voice-band energy, each in units of its null's spread (the sound rotated): syllables
    # (trends over 0.4 s removed, inside the segment; none under 1 s) and level (as is, with 1 s either side).
    # Their sum is the AV score
    lip_fps: float = 25.0  # mouth-opening samples per second along the main track (syllables come 4-5 a second)
    # lag of the sound behind the mouth: first the window's, where its sound sits against its picture (a mouth
    # opens some 60 ms before it is heard: mouth_lead_s, unless the mouth follows the voice band's level clearly
    # better at another lag within mouth_lead_s +- max_offset_s, as in a badly muxed file; max_offset_s 0:
    # always mouth_lead_s), then per segment within max_lag_s of it. Narrow on purpose: a wider per-segment
    # search lines up any mouth moving at a speaking rhythm
    mouth_lead_s: float = 0.06
    max_offset_s: float = 0.3
    max_lag_s: float = 0.06
    # calibrated on renders whose mouths say the words (bench/speech_sync.py, docs/PERFORMANCE.md): voiceover where
    # either test is at most its max_voiceover_* (without a syllable score, as under a second: the level alone);
    # else speaking from an AV score of min_av_score; uncertain otherwise
    min_av_score: float = 3.3
    max_voiceover_level: float = 1.9
    max_voiceover_syllable: float = 0.2
    min_mouth_motion: float = 0.005  # std of the mouth-opening ratio below which the mouth does not move (voiceover)
    min_speaking_fraction: float = 0.5  # of the speech time, in speaking segments, for a speaking clip
    # optional SyncNet backend (user-supplied, `lfa models add syncnet FILE`): when on, it decides the clip's
    # status by LatentSync's rule, and both signals are reported
    syncnet: bool = False
    syncnet_min_confidence: float = 3.0
    syncnet_max_offset: int = 6  # video frames at 25 fps
    # curation: what happens to voice-over, uncertain and unknown clips (label: kept, the caption says so;
    # keep: kept, caption unchanged; drop: rejected as speech/<status>)
    on_voiceover: str = "label"
    on_uncertain: str = "label"
    on_unknown: str = "label"
    # caption rewrite through an OpenAI-compatible chat endpoint (optional; the template otherwise)
    rewrite_endpoint: str | None = None  # e.g. http://localhost:8000/v1
    rewrite_model: str = "Qwen/Qwen2.5-7B-Instruct"
    rewrite_api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    rewrite_timeout_s: float = 30.0
    rewrite_retries: int = 2

    def __post_init__(self) -> None:
        if self.asr_model not in ASR_MODELS:
            raise ConfigError(f"unknown speech.asr_model {self.asr_model!r}", f"use one of {', '.join(ASR_MODELS)}")
        for key in ("on_voiceover", "on_uncertain", "on_unknown"):
            if getattr(self, key) not in POLICIES:
                raise ConfigError(f"unknown speech.{key} {getattr(self, key)!r}", f"use one of {', '.join(POLICIES)}")
        if self.lip_fps <= 0 or self.max_lag_s < 0 or self.max_offset_s < 0:
            raise ConfigError("speech.lip_fps must be > 0, speech.max_lag_s and max_offset_s >= 0",
                              "e.g. lip_fps=25, max_lag_s=0.06, max_offset_s=0.3")
