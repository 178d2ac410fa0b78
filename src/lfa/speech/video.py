"""``lfa speech VIDEO``: speech disambiguation of a whole video, the largest face taken as the speaker."""

from __future__ import annotations

from pathlib import Path

from lfa.media import probe
from lfa.registry import ModelStore
from lfa.speech.analyze import SpeechModels, SpeechResult, analyze_window
from lfa.speech.caption import rewrite_caption
from lfa.speech.config import SpeechConfig
from lfa.speech.lips import MouthSignal, largest_face_reader, read_mouth_signal
from lfa.speech.source import SourceSpeech


def speech_of_video(path: Path, config: SpeechConfig | None = None, *, store: ModelStore | None = None,
                    models: SpeechModels | None = None, base_caption: str | None = None,
                    cache_dir: Path | None = None) -> SpeechResult:
    """Status, segments, transcript and caption of ``path`` (one window, one shot); the caption goes through
    the configured rewrite endpoint when there is one (the template stays if it fails). Audio packets that
    do not decode are skipped and named in ``warnings``; a track none of whose packets decodes is
    ``unknown``, with the ``reason``. Without ``config``, the settings ``models`` were built with."""
    config = config or (models.config if models is not None else SpeechConfig())
    store = store or ModelStore()
    models = models or SpeechModels(config, store)
    duration = probe(path).duration_s

    def mouth() -> MouthSignal:
        from lfa.face import AnalyzerConfig, FaceAnalyzer

        analyzer = FaceAnalyzer(AnalyzerConfig(pose="mediapipe", identity="none"), store=store)
        return read_mouth_signal(path, 0.0, duration, config.lip_fps, largest_face_reader(analyzer))

    def crops():  # noqa: ANN202
        from lfa.face.analyzer import build_detector
        from lfa.face import AnalyzerConfig
        from lfa.speech.syncnet import read_crops

        detector = build_detector(AnalyzerConfig(), store)

        def largest(frame):  # noqa: ANN001, ANN202
            found = detector.detect(frame.image)
            return max(found, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))).box if found else None

        return read_crops(path, 0.0, duration, largest)

    source = SourceSpeech(path, config, models)
    result = analyze_window(source, 0.0, duration, mouth, config, base_caption, crops=crops)
    if source.warning:
        result.warnings.append(source.warning)
    result.caption, result.caption_failure = rewrite_caption(result.caption, config, cache_dir)
    return result
