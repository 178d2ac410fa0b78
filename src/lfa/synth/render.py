"""A small CPU rasteriser for textured head meshes: back-face culling, painter's order, one
affine map per triangle, and a single ``cv2.remap`` per head."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lfa.face.angles import rotation_from_angles
from lfa.synth.mesh import FACE_VERTICES, HeadModel, signed_areas

MOUTH_COLOUR = (52, 22, 24)
SUBPIXEL_BITS = 4


@dataclass
class HeadPlacement:
    """Where a head is drawn: lfa angles (degrees), centre of the pivot in pixels, and scale
    (rendered pixels per photo pixel)."""

    head: HeadModel
    yaw: float
    pitch: float
    roll: float
    centre: tuple[float, float]
    scale: float
    mouth_open: float = 0.0


@dataclass
class RenderedHead:
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the face mesh
    landmarks: np.ndarray  # (468, 2) projected face-mesh vertices


def project(p: HeadPlacement) -> tuple[np.ndarray, np.ndarray]:
    """Image (x, y) and depth (toward the viewer) of every vertex."""
    v = p.head.posed(p.mouth_open) @ rotation_from_angles(p.yaw, p.pitch, p.roll).T
    xy = np.column_stack([p.centre[0] + p.scale * v[:, 0], p.centre[1] - p.scale * v[:, 1]])
    return xy.astype(np.float32), v[:, 2]


def _triangle_affines(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the 2x3 affine from destination pixels to texture pixels; and which are usable."""
    d = np.concatenate([dst, np.ones((*dst.shape[:2], 1), np.float64)], axis=2).transpose(0, 2, 1)  # (T,3,3)
    ok = np.abs(np.linalg.det(d)) > 1e-6
    affines = np.zeros((len(dst), 2, 3))
    affines[ok] = src.transpose(0, 2, 1)[ok] @ np.linalg.inv(d[ok])
    return affines, ok


def render(background: np.ndarray, placements: list[HeadPlacement]) -> tuple[np.ndarray, list[RenderedHead]]:
    """Draw heads far-to-near (by pivot depth order of the list: later heads are drawn on top)."""
    out = background.copy()
    h, w = out.shape[:2]
    results = []
    for p in placements:
        xy, depth = project(p)
        tris = p.head.triangles
        t_xy = xy[tris]
        area = signed_areas(t_xy)  # image y points down: triangles facing the camera are < 0
        visible = np.nonzero(area < 0)[0]
        visible = visible[np.argsort(depth[tris[visible]].mean(1), kind="stable")]
        affines, ok = _triangle_affines(t_xy[visible].astype(np.float64), p.head.uv[tris[visible]].astype(np.float64))
        visible, affines = visible[ok], affines[ok]
        ids = np.zeros((h, w), np.uint16)
        fixed = np.round(t_xy * (1 << SUBPIXEL_BITS)).astype(np.int32)
        for k, t in enumerate(visible):
            cv2.fillConvexPoly(ids, fixed[t], k + 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        ys, xs = np.nonzero(ids)
        a = affines[ids[ys, xs].astype(np.int64) - 1]
        map_x = np.full((h, w), -1.0, np.float32)
        map_y = np.full((h, w), -1.0, np.float32)
        map_x[ys, xs] = a[:, 0, 0] * xs + a[:, 0, 1] * ys + a[:, 0, 2]
        map_y[ys, xs] = a[:, 1, 0] * xs + a[:, 1, 1] * ys + a[:, 1, 2]
        warped = cv2.remap(p.head.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[ys, xs] = warped[ys, xs]
        if p.mouth_open > 0.02:  # an open jaw stretches the triangles across the lips: paint the mouth dark
            mouth = np.round(xy[p.head.mouth_loop] * (1 << SUBPIXEL_BITS)).astype(np.int32)
            cv2.fillPoly(out, [mouth], MOUTH_COLOUR, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
        face_xy = xy[:FACE_VERTICES]
        box = np.array([*face_xy.min(0), *face_xy.max(0)], np.float32)
        results.append(RenderedHead(box, face_xy))
    return out, results
