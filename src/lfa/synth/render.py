"""A small CPU rasteriser for textured head meshes: back-face culling, painter's order, one affine
map per triangle interpolating every vertex attribute (photo and mirrored photo positions, generic
head texture position, their weights, shading), and bilinear texture lookups on the covered pixels.
Shading is Gouraud: ambient plus one directional light on the vertex normals."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lfa.face.angles import rotation_from_angles
from lfa.synth.mesh import FACE_VERTICES, HeadModel, signed_areas

MOUTH_COLOUR = (52, 22, 24)
SUBPIXEL_BITS = 4
REMAP_ROW = 1024


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
    mouth_round: float = 0.0  # lip rounding (> 0) or spreading (< 0), in [-1, 1]


@dataclass
class RenderedHead:
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the face mesh
    landmarks: np.ndarray  # (468, 2) projected face-mesh vertices


def project(p: HeadPlacement) -> tuple[np.ndarray, np.ndarray]:
    """Image (x, y) and depth (toward the viewer) of every vertex."""
    v = p.head.posed(p.mouth_open, p.mouth_round) @ rotation_from_angles(p.yaw, p.pitch, p.roll).T
    xy = np.column_stack([p.centre[0] + p.scale * v[:, 0], p.centre[1] - p.scale * v[:, 1]])
    return xy.astype(np.float32), v[:, 2]


@dataclass(frozen=True)
class Lighting:
    """One directional light and ambient light, fixed in camera space (x right, y up, z to viewer):
    a vertex is shaded by ``ambient + diffuse * max(0, normal . direction)``."""

    direction: tuple[float, float, float] = (0.0, 0.34, 0.94)
    ambient: float = 0.7
    diffuse: float = 0.4

    @classmethod
    def random(cls, seed: int) -> Lighting:
        """A plausible light for one clip: from the front half-space, up to 55° to the side and 45°
        above, never a dark half face (ambient 0.65-0.85: stronger side light made the identity model
        read one corpus clip as two people)."""
        rng = np.random.default_rng([seed, 16])
        azimuth, elevation = np.deg2rad(rng.uniform(-55, 55)), np.deg2rad(rng.uniform(0, 45))
        ambient = float(rng.uniform(0.65, 0.85))
        d = (np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation))
        return cls(tuple(float(x) for x in d), ambient, 1.1 - ambient)

    def shade(self, normals: np.ndarray) -> np.ndarray:
        return self.ambient + self.diffuse * np.maximum(normals @ np.asarray(self.direction, np.float32), 0.0)


def _triangle_affines(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the (K, 3) affine from destination pixels to K vertex attributes (texture
    positions, weights...) interpolated linearly; and which triangles are usable."""
    d = np.concatenate([dst, np.ones((*dst.shape[:2], 1), np.float64)], axis=2).transpose(0, 2, 1)  # (T,3,3)
    ok = np.abs(np.linalg.det(d)) > 1e-6
    affines = np.zeros((len(dst), src.shape[2], 3))
    affines[ok] = src.transpose(0, 2, 1)[ok] @ np.linalg.inv(d[ok])
    return affines, ok


def render(background: np.ndarray, placements: list[HeadPlacement], lighting: Lighting | None = None
           ) -> tuple[np.ndarray, list[RenderedHead]]:
    """Draw heads far-to-near (by pivot depth order of the list: later heads are drawn on top)."""
    lighting = lighting or Lighting()
    out = background.copy()
    h, w = out.shape[:2]
    results = []
    for p in placements:
        head = p.head
        rotation = rotation_from_angles(p.yaw, p.pitch, p.roll)
        xy, depth = project(p)
        tris = head.triangles
        t_xy = xy[tris]
        area = signed_areas(t_xy)  # image y points down: triangles facing the camera are < 0
        visible = np.nonzero(area < 0)[0]
        order = depth[tris[visible]].mean(1) + head.depth_bias[visible]
        visible = visible[np.argsort(order, kind="stable")]
        shade = lighting.shade(head.normals @ rotation.T.astype(np.float32)) * head.occlusion
        attributes = np.column_stack([head.atlas_uv, shade, head.uv, head.uv_mirror, head.photo_weight,
                                      head.mirror_weight]).astype(np.float64)
        affines, ok = _triangle_affines(t_xy[visible].astype(np.float64), attributes[tris[visible]])
        visible = visible[ok]
        coeffs = np.ascontiguousarray(affines[ok].astype(np.float32).transpose(2, 1, 0))  # (3, K, T)
        textured = head.photo_weight[tris[visible]].max(1) > 0
        x0, y0 = (max(int(np.floor(c)), 0) for c in xy.min(0))
        x1, y1 = min(int(np.ceil(xy[:, 0].max())) + 2, w), min(int(np.ceil(xy[:, 1].max())) + 2, h)
        if x1 > x0 and y1 > y0 and len(visible):
            ids = np.zeros((y1 - y0, x1 - x0), np.uint16)
            fixed = np.round((t_xy - np.array([x0, y0], np.float32)) * (1 << SUBPIXEL_BITS)).astype(np.int32)
            for k, t in enumerate(visible):
                cv2.fillConvexPoly(ids, fixed[t], k + 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
            ys, xs = np.nonzero(ids)
            ys, xs = ys + y0, xs + x0
            tri = ids[ys - y0, xs - x0].astype(np.intp) - 1
            pixel = _shade_pixels(head, coeffs, textured, tri, xs.astype(np.float32), ys.astype(np.float32))
            out[ys, xs] = pixel
        if p.mouth_open > 0.02:  # an open jaw stretches the triangles across the lips: paint the mouth dark
            mouth = np.round(xy[head.mouth_loop] * (1 << SUBPIXEL_BITS)).astype(np.int32)
            cv2.fillPoly(out, [mouth], MOUTH_COLOUR, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
        face_xy = xy[:FACE_VERTICES]
        box = np.array([*face_xy.min(0), *face_xy.max(0)], np.float32)
        results.append(RenderedHead(box, face_xy))
    return out, results


def _interpolate(coeffs: np.ndarray, rows: slice, tri: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Attributes ``rows`` of the triangles ``tri`` at pixels (x, y): (K, N)."""
    value = np.take(coeffs[2, rows], tri, axis=1)
    value += np.take(coeffs[0, rows], tri, axis=1) * x
    value += np.take(coeffs[1, rows], tri, axis=1) * y
    return value


def _shade_pixels(head: HeadModel, coeffs: np.ndarray, textured: np.ndarray, tri: np.ndarray, x: np.ndarray,
                  y: np.ndarray) -> np.ndarray:
    """Colour of the covered pixels: the generic head texture everywhere, blended with the photo and its
    mirror image on triangles that carry photo texture; times the shading."""
    generic = _interpolate(coeffs, slice(0, 3), tri, x, y)
    colour = _sample(head.atlas, generic[0], generic[1])
    on_photo = np.nonzero(textured[tri])[0]
    if len(on_photo):
        v = _interpolate(coeffs, slice(3, 9), tri[on_photo], x[on_photo], y[on_photo])
        own = _sample(head.texture, v[0], v[1])
        mirrored = _sample(head.texture, v[2], v[3])
        tw = np.clip(v[4], 0, 1)[:, None]
        m = np.clip(v[5], 0, 1)[:, None]
        colour[on_photo] = tw * (own + m * (mirrored - own)) + (1 - tw) * colour[on_photo]
    colour *= np.maximum(generic[2], 0)[:, None]
    return np.clip(colour, 0, 255).astype(np.uint8)


def _sample(texture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear texture lookups at N points: (N, 3) float32 (maps folded into rows: remap wants < 32767)."""
    n = len(x)
    rows = -(-n // REMAP_ROW)
    maps = np.zeros((2, rows * REMAP_ROW), np.float32)
    maps[0, :n], maps[1, :n] = x, y
    looked = cv2.remap(texture, maps[0].reshape(rows, REMAP_ROW), maps[1].reshape(rows, REMAP_ROW),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return looked.reshape(-1, 3)[:n].astype(np.float32)
