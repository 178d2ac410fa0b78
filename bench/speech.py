"""Cost of speech disambiguation per clip-second, next to decoding the same clip.

    .venv/bin/python bench/speech.py [--repeats 5] [--duration 4] [--size 512] [--lip-fps 12.5]

Renders three clips (speech with a mouth that says its words, the same speech with a still mouth, no speech)
and times, per clip: decoding every frame (the floor every stage pays), the audio + voice activity
part, transcription, the lip reading of the curation stage (the landmarker on the main track's box at
speech.lip_fps; the scan's frames would be reused in a run, so this is an upper bound) and the agreement.
Medians over repeats; models loaded before timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.media import iter_frames
from lfa.speech import SpeechConfig, SpeechModels
from lfa.speech.agreement import segment_evidence
from lfa.speech.audio import load_clip_audio
from lfa.speech.lips import interpolated_box, landmark_backend, read_mouth_signal, track_reader
from lfa.synth.clip import ClipSpec, HeadLibrary, render_clip


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--lip-fps", type=float, help="mouth samples per second (default: speech.lip_fps)")
    args = parser.parse_args()
    config = SpeechConfig(**({"lip_fps": args.lip_fps} if args.lip_fps else {}))
    models = SpeechModels(config)
    analyzer = FaceAnalyzer(AnalyzerConfig(pose="mediapipe", identity="none"))
    landmarker = landmark_backend(analyzer.pose)
    heads = HeadLibrary(analyzer)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("on_screen", "voice_over", "none"):
            path = Path(tmp) / f"{kind}.mp4"
            render_clip(ClipSpec("astronaut", "yaw-sweep", args.duration, 25.0, args.size, args.size, 0.3, speech=kind,
                                 speech_index=1, speech_at=0.3), path, heads)
            first = next(iter_frames(path))
            box = analyzer.analyze(first.image)[0].box
            box_at = interpolated_box(np.array([0.0, args.duration]), np.array([box, box]), max_gap_s=args.duration)
            models.vad, models.asr  # noqa: B018  (load before timing)
            decode_s, _ = timed(lambda: sum(1 for _ in iter_frames(path)), args.repeats)
            vad_s, audio_spans = timed(lambda: (lambda a: (a, models.vad.segments(a.samples)))(load_clip_audio(path)),
                                       args.repeats)
            audio, spans = audio_spans  # type: ignore[misc]
            asr_s = timed(lambda: models.asr.transcribe(audio.samples), args.repeats)[0] if spans else 0.0
            lips_s, mouth = timed(lambda: read_mouth_signal(path, 0.0, args.duration, config.lip_fps,
                                                            track_reader(landmarker, box_at, {})), args.repeats)
            av_s = timed(lambda: segment_evidence(audio.samples, 0.0, mouth, spans, config.mouth_lead_s,
                                                  config.max_lag_s, config.max_offset_s),
                         args.repeats)[0] if spans else 0.0
            rows.append((kind, decode_s, vad_s, asr_s, lips_s if spans else 0.0, av_s))
    print(f"per clip-second, ms (medians of {args.repeats}; {args.size}x{args.size}, 25 fps, {args.duration:g} s clips, "
          f"lips at {config.lip_fps:g} fps)")
    print("| clip | decode | audio + VAD | ASR | lips | AV agreement | speech total | speech / decode |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, dec, vad, asr, lips, av in rows:
        total = vad + asr + lips + av
        ms = lambda s: f"{1000 * s / args.duration:.0f}"  # noqa: E731
        print(f"| {kind} | {ms(dec)} | {ms(vad)} | {ms(asr)} | {ms(lips)} | {ms(av)} | {ms(total)} | {total / dec:.1f}x |")


if __name__ == "__main__":
    main()
