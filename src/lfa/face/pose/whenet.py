"""WHENet head pose (offline default, full yaw range) on the face box enlarged as upstream does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lfa.face.nets.whenet_io import (
    INPUT_SIZE,
    ONNX_GRAPH,
    PR_OFFSET,
    WHENetOnnx,
    YAW_OFFSET,
    crop_box,
    expected_angle,
    preprocess,
    to_lfa_angles,
    yaw_confidence,
)
from lfa.face.types import Detection, HeadPose


class WHENetPose:
    """``estimate`` gives lfa angles with ``source="whenet"`` and ``confidence`` = the softmax mass
    of the yaw bins within 20° of the answer (low when front and back views compete).

    **De-rotation at large yaw.** WHENet reads an in-plane rotation of a profile badly: its training
    data (300W-LP, CMU Panoptic) has few rolled profiles, and a render at 75° yaw turned by 15° in the
    image plane reads as ~30° roll, ~30° pitch and ~10° less yaw. Upright profiles it reads well. So
    where the first reading says ``|yaw| >= derotate_min_yaw`` with some roll, the crop is turned back
    by the roll found and read again; the roll is the rotation at which WHENet reads the head as upright
    (a secant step on its roll response, then corrections while they move it by more than
    ``derotate_tolerance``), and yaw and pitch come from that upright reading. On renders of held-out
    photos at 65–85° this keeps roll within ~3° of a ±8–15° image rotation (bench/whenet_derotation.py);
    it costs 2–4 more readings on those faces only.
    """

    name = "whenet"
    missing_reason = "the face box is too small to crop"

    def __init__(self, model_path: Path, *, device: str = "cpu", mirror_average: bool = True,
                 runtime: str = "auto", derotate_min_yaw: float | None = 45.0,
                 derotate_tolerance: float = 1.0, derotate_max_reads: int = 3,
                 derotate_mirror: bool = True) -> None:
        if runtime == "auto":  # ONNX Runtime is the faster one on CPU (and needs no torch); PyTorch on an accelerator
            runtime = "onnx" if device.split(":")[0] == "cpu" else "torch"
        self.net = WHENetOnnx(prepare_graph(model_path)) if runtime == "onnx" else _torch_runner(model_path, device)
        # Each crop and its mirror image run in one batch; yaw and roll are averaged with their signs
        # flipped, pitch as is: the network's own left/right bias cancels (alone, its roll readings of a
        # render and its mirror at 80° yaw differ by 6°; averaged, by 3.5°, the rest from the detector's
        # boxes, which are not mirror-exact). Costs a second crop per face in the same batch.
        self.mirror_average = mirror_average
        self.derotate_min_yaw = derotate_min_yaw  # None: never de-rotate
        self.derotate_tolerance = derotate_tolerance
        self.derotate_max_reads = derotate_max_reads
        self.derotate_mirror = derotate_mirror  # the de-rotation's re-reads average with their mirror too

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        poses = self.estimate_many(image, [detection])
        return poses[0]

    def estimate_many(self, image: np.ndarray, detections: list[Detection]) -> list[HeadPose | None]:
        h, w = image.shape[:2]
        boxes = [crop_box(d.box, w, h) for d in detections]
        keep = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x1 - x0 >= 2 and y1 - y0 >= 2]
        out: list[HeadPose | None] = [None] * len(detections)
        if not keep:
            return out
        readings = self._read([image[boxes[i][1]:boxes[i][3], boxes[i][0]:boxes[i][2]] for i in keep])
        for j, i in enumerate(keep):
            angles, conf = readings[j]
            if self.derotate_min_yaw is not None and abs(angles[0]) >= self.derotate_min_yaw:
                angles, conf = self._derotated(image, boxes[i], angles, conf)
            out[i] = HeadPose(*angles, source="whenet", confidence=conf)
        return out

    def _read(self, crops: list[np.ndarray], mirror: bool | None = None) -> list[tuple[tuple[float, float, float], float]]:
        """lfa (yaw, pitch, roll) and confidence of each crop (mirror-averaged unless ``mirror`` is False)."""
        mirror = self.mirror_average if mirror is None else mirror and self.mirror_average
        if mirror:
            crops = crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        yaw_l, pitch_l, roll_l = self.net(preprocess(crops))
        yaw = expected_angle(yaw_l, YAW_OFFSET)
        pitch, roll = expected_angle(pitch_l, PR_OFFSET), expected_angle(roll_l, PR_OFFSET)
        conf = yaw_confidence(yaw_l, yaw)
        if mirror:
            n = len(crops) // 2
            yaw, roll = (yaw[:n] - yaw[n:]) / 2, (roll[:n] - roll[n:]) / 2
            pitch, conf = (pitch[:n] + pitch[n:]) / 2, (conf[:n] + conf[n:]) / 2
        return [(to_lfa_angles(float(yaw[j]), float(pitch[j]), float(roll[j])), float(conf[j]))
                for j in range(len(yaw))]

    def _derotated(self, image: np.ndarray, box: tuple[int, int, int, int], angles: tuple[float, float, float],
                   conf: float) -> tuple[tuple[float, float, float], float]:
        first = angles[2]
        if abs(first) < 2 * self.derotate_tolerance:
            return angles, conf
        plain = angles, conf
        (angles, conf), = self._read([rotated_crop(image, box, first)], self.derotate_mirror)
        gain = (first - angles[2]) / first  # WHENet's roll per degree of rotation (~2 at profiles)
        if not 0.5 <= gain <= 4.0:  # not a roll response to invert: keep the plain reading
            return plain
        roll = first / gain
        for _ in range(self.derotate_max_reads - 1):
            (angles, conf), = self._read([rotated_crop(image, box, roll)], self.derotate_mirror)
            step = angles[2] / gain
            roll += step
            if abs(step) < self.derotate_tolerance:
                break
        return (angles[0], angles[1], roll), conf


def prepare_graph(weights: str | os.PathLike[str]) -> Path:
    """WHENet's ONNX graph for ``weights``, cached next to them; exported with PyTorch when missing (``lfa
    models fetch`` runs this, so curation's workers never import torch)."""
    from lfa.face.onnx_session import cached_graph

    def export(src: Path, dst: Path) -> None:
        from lfa.face.nets.whenet import export_onnx

        export_onnx(src, dst)

    return cached_graph(weights, ONNX_GRAPH, export)


def _torch_runner(model_path: Path, device: str) -> Callable[[np.ndarray], tuple[np.ndarray, ...]]:
    """The PyTorch WHENet as a numpy-in, numpy-out function (the runtime for accelerators)."""
    import torch

    from lfa.face.nets.whenet import load_whenet

    net, dev = load_whenet(model_path).to(device), torch.device(device)

    @torch.inference_mode()
    def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
        batch = torch.from_numpy(x).to(dev).contiguous(memory_format=torch.channels_last)
        return tuple(t.float().cpu().numpy() for t in net(batch))

    return run


def rotated_crop(image: np.ndarray, box: tuple[int, int, int, int], degrees: float) -> np.ndarray:
    """The ``box`` crop at network size of ``image`` turned clockwise by ``degrees`` about the box centre
    (which undoes an lfa roll of ``degrees``); pixels beyond the frame repeat its edge."""
    x0, y0, x1, y1 = box
    turn = np.vstack([cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), -degrees, 1.0), [0, 0, 1]])
    to_crop = np.array([[INPUT_SIZE / (x1 - x0), 0, -x0 * INPUT_SIZE / (x1 - x0)],
                        [0, INPUT_SIZE / (y1 - y0), -y0 * INPUT_SIZE / (y1 - y0)], [0, 0, 1]])
    return cv2.warpAffine(image, (to_crop @ turn)[:2], (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def check_model(path: Path) -> None:
    """Loads and runs the model once (`lfa models verify`); on CPU it runs the ONNX graph that fetch exported."""
    pose = WHENetPose(path).estimate(np.zeros((64, 64, 3), np.uint8),
                                     Detection(np.array([8, 8, 56, 56], np.float32), 1.0, np.zeros((5, 2), np.float32)))
    assert pose is not None
