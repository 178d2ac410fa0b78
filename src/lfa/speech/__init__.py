"""Speech disambiguation (CoFE): does the person on screen speak, and what do they say?

Audio (PyAV, 16 kHz mono, undecodable packets skipped) → voice activity (silero-vad) → transcript
(faster-whisper) → lip activity (mouth opening from perception's landmarks) → audio-visual agreement
(lfa.speech.agreement) → a status per segment and per clip (speaking, voiceover, uncertain, silent,
non_speech_audio; unknown when the sound does not decode) → an enriched caption."""

from lfa.speech.analyze import SpeechModels, SpeechResult, analyze_speech
from lfa.speech.config import STATUSES, SpeechConfig
from lfa.speech.video import speech_of_video

__all__ = ["STATUSES", "SpeechConfig", "SpeechModels", "SpeechResult", "analyze_speech", "speech_of_video"]
