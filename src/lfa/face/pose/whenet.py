"""WHENet head pose (offline default, full yaw range) on the face box enlarged as upstream does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lfa.face.nets.whenet import (
    PR_OFFSET,
    YAW_OFFSET,
    crop_box,
    expected_angle,
    load_whenet,
    preprocess,
    to_lfa_angles,
    yaw_confidence,
)
from lfa.face.types import Detection, HeadPose


class WHENetPose:
    """``estimate`` gives lfa angles with ``source="whenet"`` and ``confidence`` = the softmax mass
    of the yaw bins within 20° of the answer (low when front and back views compete)."""

    name = "whenet"
    missing_reason = "the face box is too small to crop"

    def __init__(self, model_path: Path, *, device: str = "cpu", mirror_average: bool = True) -> None:
        self.device = torch.device(device)
        self.net = load_whenet(model_path).to(self.device)
        # Each crop and its mirror image run in one batch; yaw and roll are averaged with their signs
        # flipped, pitch as is: the network's own left/right bias cancels (alone, its roll readings of a
        # render and its mirror at 80° yaw differ by 6°; averaged, by 3.5°, the rest from the detector's
        # boxes, which are not mirror-exact). Costs a second crop per face in the same batch.
        self.mirror_average = mirror_average

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        poses = self.estimate_many(image, [detection])
        return poses[0]

    @torch.inference_mode()
    def estimate_many(self, image: np.ndarray, detections: list[Detection]) -> list[HeadPose | None]:
        h, w = image.shape[:2]
        boxes = [crop_box(d.box, w, h) for d in detections]
        keep = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x1 - x0 >= 2 and y1 - y0 >= 2]
        out: list[HeadPose | None] = [None] * len(detections)
        if not keep:
            return out
        crops = [image[boxes[i][1]:boxes[i][3], boxes[i][0]:boxes[i][2]] for i in keep]
        if self.mirror_average:
            crops += [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        yaw_l, pitch_l, roll_l = (t.cpu() for t in self.net(preprocess(crops).to(self.device)))
        yaw = expected_angle(yaw_l, YAW_OFFSET)
        pitch, roll = expected_angle(pitch_l, PR_OFFSET), expected_angle(roll_l, PR_OFFSET)
        conf = yaw_confidence(yaw_l, yaw)
        if self.mirror_average:
            n = len(keep)
            yaw, roll = (yaw[:n] - yaw[n:]) / 2, (roll[:n] - roll[n:]) / 2
            pitch, conf = (pitch[:n] + pitch[n:]) / 2, (conf[:n] + conf[n:]) / 2
        for j, i in enumerate(keep):
            angles = to_lfa_angles(float(yaw[j]), float(pitch[j]), float(roll[j]))
            out[i] = HeadPose(*angles, source="whenet", confidence=float(conf[j]))
        return out


def check_model(path: Path) -> None:
    pose = WHENetPose(path).estimate(np.zeros((64, 64, 3), np.uint8),
                                     Detection(np.array([8, 8, 56, 56], np.float32), 1.0, np.zeros((5, 2), np.float32)))
    assert pose is not None
