"""Per-frame measurements of references and generated videos: the only part of the benchmark that
runs models. Everything after it (metrics, compat aggregation, outputs) is arithmetic on its records.

In every frame the face scored is the **largest** detection (by box area), as ConsisID and OpenS2V
do; in a reference image with a ``reference_box`` in the spec, the face overlapping that box best
(:mod:`lfa.face.choose`, the rule ``lfa generate --spec`` follows too). ``n_faces`` keeps the count.
Detection, pose and identity come from lfa's perception stack (:mod:`lfa.face`): the analyzer's
detector and pose estimator, and one encoder per identity model built by
:func:`lfa.face.analyzer.build_identity`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lfa.bench import compat as compat_mod
from lfa.bench.config import BenchConfig
from lfa.bench.copypaste import thumbnail
from lfa.bench.features import OnnxFeatureExtractor, face_crop_224
from lfa.bench.records import FrameRecord, VideoAnalysis
from lfa.bench.spec import OTHER_VIDEO_SUFFIXES
from lfa.errors import LfaError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.align import align_face
from lfa.face.analyzer import build_identity
from lfa.face.choose import choose_face
from lfa.face.identity import IdentityEncoder
from lfa.media import iter_frames, probe, sample_times
from lfa.registry import ModelStore
from lfa.registry.store import sha256_file


class Extractor:
    """Loads the models of a run once; measures images and videos.

    >>> ex = Extractor(BenchConfig().resolve())
    >>> ref = ex.analyze_image(read_image("ref.png"))
    >>> video = ex.analyze_video(Path("gen/clip.mp4"), prompt="...", model="mine", item_id="clip")
    """

    def __init__(self, config: BenchConfig, store: ModelStore | None = None, *, threads: int | None = None) -> None:
        store = store or config.store()
        config = config.resolve(store) if config.primary is None or config.identities is None else config
        self.config = config
        self.analyzer = FaceAnalyzer(AnalyzerConfig(detector=config.detector, pose=config.pose, identity="none",
                                                    min_score=config.min_score,
                                                    detect_max_side=config.detect_max_side), store=store)
        self.detector = self.analyzer.detector
        assert config.identities is not None
        self.encoders: dict[str, IdentityEncoder] = {}
        for name in config.identities:
            encoder = build_identity(AnalyzerConfig(identity=name), store)
            assert encoder is not None
            self.encoders[name] = encoder
        self.features = OnnxFeatureExtractor(config.inception, threads=threads) if config.inception else None
        self.clip = None
        if config.clip:
            from lfa.bench.clipscore import ClipScorer

            self.clip = ClipScorer(config.clip)

    # -- one image ---------------------------------------------------------------------------------
    def _measure(self, image: np.ndarray, frame: int, t: float, timing: dict[str, float],
                 box: Sequence[float] | None = None) -> tuple[FrameRecord, dict[str, np.ndarray]]:
        """Detection, pose and the copy-paste thumbnail of the person's face (the one at ``box``, else the
        largest); the aligned crops each identity model (and the feature network, key ``""``) will embed,
        for batching."""
        t0 = time.perf_counter()
        detections = self.detector.detect(image)
        det = choose_face(detections, box)
        timing["detect"] += time.perf_counter() - t0
        record = FrameRecord(frame=frame, t=t, n_faces=len(detections))
        if det is None:
            return record, {}
        record.detected, record.box, record.det_score = True, det.box, det.score
        record.landmarks5 = det.landmarks5
        if self.analyzer.pose is not None:
            t0 = time.perf_counter()
            pose = self.analyzer.pose.estimate(image, det)
            timing["pose"] += time.perf_counter() - t0
            if pose is not None:
                record.yaw, record.pitch, record.roll = pose.yaw, pose.pitch, pose.roll
        t0 = time.perf_counter()
        record.thumb = thumbnail(image, det.landmarks5)
        crops = {name: align_face(image, det.landmarks5, enc.template) for name, enc in self.encoders.items()}
        if self.features is not None:
            crops[""] = face_crop_224(image, det.landmarks5)
        timing["align"] += time.perf_counter() - t0
        return record, crops

    def _embed(self, records: list[FrameRecord], crops: list[dict[str, np.ndarray]],
               timing: dict[str, float]) -> None:
        """Every identity embedding (and feature) of ``records``, one batch per model."""
        for key in [*self.encoders, ""] if self.features is not None else list(self.encoders):
            which = [i for i, c in enumerate(crops) if key in c]
            if not which:
                continue
            batch = np.stack([crops[i][key] for i in which])
            t0 = time.perf_counter()
            if key == "":
                assert self.features is not None
                out = self.features(batch)
                for i, v in zip(which, out):
                    records[i].feature = v
                timing["features"] += time.perf_counter() - t0
            else:
                out = self.encoders[key].embed_aligned(batch)
                for i, v in zip(which, out):
                    records[i].embeddings[key] = v
                timing[f"embed_{key}"] += time.perf_counter() - t0

    def analyze_image(self, image: np.ndarray, *, frame: int = 0, t: float = 0.0,
                      timing: dict[str, float] | None = None, box: Sequence[float] | None = None) -> FrameRecord:
        """The person's face of an RGB image (the one at ``box``, else the largest) with pose, every identity
        embedding and the crop feature; not ``detected`` when no face is (at ``box``)."""
        timing = timing if timing is not None else defaultdict(float)
        record, crops = self._measure(image, frame, t, timing, box)
        self._embed([record], [crops], timing)
        return record

    # -- one video ---------------------------------------------------------------------------------
    def sample(self, path: Path, duration: float) -> Iterator[tuple[int, float, np.ndarray]]:
        """(frame index, time, RGB image) of the frames the run samples (lfa's one sampling rule)."""
        cfg = self.config
        if cfg.frames is None and cfg.fps is None:
            frames = iter_frames(path)
        elif cfg.frames is not None:
            frames = iter_frames(path, times=sample_times(duration, n=cfg.frames))
        else:
            frames = iter_frames(path, times=sample_times(duration, fps=cfg.fps))
        for f in frames:
            yield f.index, f.t, f.image

    def analyze_video(self, path: Path, *, prompt: str = "", model: str = "", item_id: str = "") -> VideoAnalysis:
        """Measure a generated video in the ``lfa`` mode and every compat mode of the config.

        A missing file gives ``status="missing"``, an unreadable one ``status="error"`` with the
        reason: never an exception, so one bad video does not stop a run.
        """
        result = VideoAnalysis(model=model, id=item_id, path=str(path))
        if not Path(path).is_file():
            result.status, result.error = "missing", f"no video {path} (nor {', '.join(OTHER_VIDEO_SUFFIXES)})"
            return result
        timing: dict[str, float] = defaultdict(float)
        start = time.perf_counter()
        try:
            result.sha256 = sha256_file(Path(path))
            info = probe(path)
            result.info = {"fps": info.fps, "n_frames": info.n_frames, "width": info.width,
                           "height": info.height, "duration_s": info.duration_s}
            records, crops = [], []
            t0 = time.perf_counter()
            for index, t, image in self.sample(Path(path), info.duration_s):
                timing["decode"] += time.perf_counter() - t0
                record, crop = self._measure(image, index, t, timing)
                records.append(record)
                crops.append(crop)
                if self.clip is not None:
                    t1 = time.perf_counter()
                    records[-1].clip_cos = float(self.clip.cosines([image], prompt)[0])
                    timing["clip"] += time.perf_counter() - t1
                t0 = time.perf_counter()
            self._embed(records, crops, timing)
            result.modes["lfa"] = records
            cache: dict[int, FrameRecord] = {}
            for mode in self.config.compat:
                result.modes.update(compat_mod.analyze(self, mode, Path(path), info.n_frames, prompt, timing, cache))
        except LfaError as exc:
            result.status, result.error = "error", exc.message
            result.modes = {}
        timing["total"] = time.perf_counter() - start
        result.timing = dict(timing)
        return result

