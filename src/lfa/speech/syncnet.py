"""Optional audio-visual sync backend: a user-supplied SyncNet (Chung & Zisserman 2016; the released
``syncnet_v2.model`` of joonson/syncnet_python, ``lfa models add syncnet FILE``). Face crops at 25 fps
(224x224, BGR, 0-255, five-frame windows) and MFCCs of the 16 kHz audio (100 Hz, 20-step windows)
are embedded; the mean distance over a ±15-frame shift gives the AV offset and the confidence
(median minus minimum distance). The field's filter (LatentSync) keeps clips with confidence ≥ 3 and
|offset| ≤ 6 frames: that is this backend's rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lfa.errors import ModelLoadError

FPS = 25.0
CROP = 224
VSHIFT = 15


def _network():  # built on demand: torch loads only when the backend is used
    import torch.nn as nn

    def conv2(cin, cout, k, pad=(1, 1), pool=None):
        layers = [nn.Conv2d(cin, cout, k, padding=pad), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + ([nn.MaxPool2d(*pool)] if pool else [])

    def conv3(cin, cout, k, stride=(1, 1, 1), pad=(0, 1, 1), pool=None):
        layers = [nn.Conv3d(cin, cout, k, stride=stride, padding=pad), nn.BatchNorm3d(cout), nn.ReLU()]
        return layers + ([nn.MaxPool3d(*pool)] if pool else [])

    def head():
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))

    class SyncNet(nn.Module):
        """The released model's layout (parameter names match its state dict)."""

        def __init__(self) -> None:
            super().__init__()
            self.netcnnaud = nn.Sequential(
                *conv2(1, 64, 3, pool=((1, 1), (1, 1))), *conv2(64, 192, 3, pool=((3, 3), (1, 2))),
                *conv2(192, 384, 3), *conv2(384, 256, 3), *conv2(256, 256, 3, pool=((3, 3), (2, 2))),
                *conv2(256, 512, (5, 4), pad=(0, 0)))
            self.netfcaud = head()
            self.netfclip = head()
            self.netcnnlip = nn.Sequential(
                *conv3(3, 96, (5, 7, 7), (1, 2, 2), 0, pool=((1, 3, 3), (1, 2, 2))),
                *conv3(96, 256, (1, 5, 5), (1, 2, 2), pool=((1, 3, 3), (1, 2, 2), (0, 1, 1))),
                *conv3(256, 256, (1, 3, 3)), *conv3(256, 256, (1, 3, 3)),
                *conv3(256, 256, (1, 3, 3), pool=((1, 3, 3), (1, 2, 2))),
                *conv3(256, 512, (1, 6, 6), pad=0))

        def forward_audio(self, x):  # (N, 1, 13, 20) MFCC windows
            return self.netfcaud(self.netcnnaud(x).flatten(1))

        def forward_lips(self, x):  # (N, 3, 5, 224, 224) BGR crops, 0-255
            return self.netfclip(self.netcnnlip(x).flatten(1))

    return SyncNet()


def load_syncnet(path: Path):
    """The network with the weights of ``path`` (safetensors, or a PyTorch state dict read with
    ``weights_only=True``: a file of pickled objects is refused)."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{path} does not load as SyncNet weights: {type(exc).__name__}: {exc}",
                             "pass syncnet_v2.model from joonson/syncnet_python (a state dict)") from None
    net = _network()
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} holds a {type(state).__name__}, not a state dict", "pass syncnet_v2.model")
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"{path} is not a SyncNet state dict ({len(missing)} missing, {len(unexpected)} "
                             f"unexpected keys, e.g. {(list(missing) + list(unexpected))[0]})",
                             "pass syncnet_v2.model from joonson/syncnet_python")
    return net.eval()


def check_model(path: Path) -> None:
    load_syncnet(path)


@dataclass
class SyncScore:
    offset_frames: int  # SyncNet's AV offset in video frames (its sign convention)
    confidence: float
    min_dist: float


def syncnet_follows(score: SyncScore | None, min_confidence: float = 3.0, max_offset: int = 6) -> bool:
    """LatentSync's filter: the visible mouth is in sync with the speech."""
    return score is not None and score.confidence >= min_confidence and abs(score.offset_frames) <= max_offset


def face_crop(image: np.ndarray, box: np.ndarray, context: float = 0.4) -> np.ndarray:
    """The pipeline's crop around a face box (more room below the eyes for the mouth), 224x224 BGR."""
    x0, y0, x1, y1 = (float(v) for v in box)
    half = max(x1 - x0, y1 - y0) / 2
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    pad = int(half * (1 + 2 * context)) + 1
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    top, left = int(my - half) + pad, int(mx - half * (1 + context)) + pad
    crop = padded[top: int(my + half * (1 + 2 * context)) + pad, left: int(mx + half * (1 + context)) + pad]
    return cv2.cvtColor(cv2.resize(crop, (CROP, CROP)), cv2.COLOR_RGB2BGR)


def read_crops(path: Path, start: float, end: float, box_for, max_side: int | None = None) -> np.ndarray:
    """Face crops at 25 fps over [start, end); ``box_for(frame)`` gives the face box (None: the last one)."""
    from lfa.media import iter_frames
    from lfa.media.sampling import sample_times

    crops, box = [], None
    for frame in iter_frames(path, times=sample_times(end, fps=FPS, start=start), max_side=max_side):
        found = box_for(frame)
        box = found if found is not None else box
        crops.append(face_crop(frame.image, box) if box is not None else np.full((CROP, CROP, 3), 110, np.uint8))
    return np.stack(crops) if crops else np.zeros((0, CROP, CROP, 3), np.uint8)


def sync_score(net, crops: np.ndarray, audio: np.ndarray, batch: int = 16) -> SyncScore | None:
    """Offset and confidence from (T, 224, 224, 3) BGR crops at 25 fps and the matching 16 kHz audio."""
    import python_speech_features
    import torch

    mfcc = python_speech_features.mfcc(np.asarray(audio, np.float64) * 32768.0, 16000).T  # the int16 scale it saw
    frames = min(len(crops), len(audio) // 640)
    last = frames - 5
    if last < 1:
        return None
    video = torch.from_numpy(np.ascontiguousarray(crops[:frames].transpose(3, 0, 1, 2))).float()[None]
    cc = torch.from_numpy(mfcc).float()[None, None]
    lips, sound = [], []
    with torch.inference_mode():
        for i in range(0, last, batch):
            idx = range(i, min(last, i + batch))
            lips.append(net.forward_lips(torch.cat([video[:, :, v: v + 5] for v in idx])))
            sound.append(net.forward_audio(torch.cat([cc[:, :, :, v * 4: v * 4 + 20] for v in idx])))
        lip, aud = torch.cat(lips), torch.cat(sound)
        padded = torch.nn.functional.pad(aud, (0, 0, VSHIFT, VSHIFT))
        dists = torch.stack([torch.nn.functional.pairwise_distance(lip[[i]].repeat(2 * VSHIFT + 1, 1),
                                                                   padded[i: i + 2 * VSHIFT + 1])
                             for i in range(len(lip))], 1)
        mean = dists.mean(1)
        low, at = torch.min(mean, 0)
    return SyncScore(int(VSHIFT - at), float(torch.median(mean) - low), float(low))
