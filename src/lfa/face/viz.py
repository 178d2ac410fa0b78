"""Annotated pictures: boxes, landmarks and head-pose axes drawn on the image."""

from __future__ import annotations

import math

import cv2
import numpy as np

from lfa.face.angles import rotation_from_angles
from lfa.face.types import Face

AXIS_COLOURS = ((230, 40, 40), (40, 200, 40), (40, 90, 255))  # x red (subject's left), y green (up), z blue (forward)


def draw_pose_axes(image: np.ndarray, origin: tuple[float, float], yaw: float, pitch: float, roll: float,
                   length: float, thickness: int = 2) -> None:
    """Draw the head's axes in place; x points to the subject's left, y up, z out of the face."""
    rot = rotation_from_angles(yaw, pitch, roll)
    ox, oy = origin
    for axis, colour in enumerate(AXIS_COLOURS):
        dx, dy = rot[0, axis] * length, -rot[1, axis] * length  # camera y is up, image y is down
        cv2.arrowedLine(image, (int(ox), int(oy)), (int(ox + dx), int(oy + dy)), colour, thickness, cv2.LINE_AA,
                        tipLength=0.15)


def annotate(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Copy of ``image`` (RGB) with every face drawn on it."""
    out = np.ascontiguousarray(image.copy())
    scale = max(1.0, max(out.shape[:2]) / 512)
    thick = max(1, int(round(2 * scale)))
    for i, face in enumerate(faces):
        x0, y0, x1, y1 = (int(v) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 210, 0), thick, cv2.LINE_AA)
        if face.landmarks is not None:
            for x, y in face.landmarks[:, :2]:
                cv2.circle(out, (int(x), int(y)), max(1, thick // 2), (170, 255, 255), -1)
        for x, y in face.landmarks5:
            cv2.circle(out, (int(x), int(y)), thick + 1, (255, 60, 200), -1, cv2.LINE_AA)
        if not math.isnan(face.yaw):
            nose = face.landmarks5[2]
            draw_pose_axes(out, (nose[0], nose[1]), face.yaw, face.pitch, face.roll, 0.6 * (x1 - x0), thick)
            label = f"#{i} yaw {face.yaw:+.0f} pitch {face.pitch:+.0f} roll {face.roll:+.0f}"
        else:
            label = f"#{i} score {face.score:.2f}"
        cv2.putText(out, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (0, 0, 0),
                    thick + 2, cv2.LINE_AA)
        cv2.putText(out, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (255, 255, 255),
                    thick, cv2.LINE_AA)
    return out


def contact_sheet(images: list[np.ndarray], columns: int = 4, width: int = 320) -> np.ndarray:
    """Tile frames (resized to ``width``) into one picture."""
    if not images:
        return np.full((64, width, 3), 255, np.uint8)
    tiles = [cv2.resize(im, (width, round(im.shape[0] * width / im.shape[1])), interpolation=cv2.INTER_AREA)
             for im in images]
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
