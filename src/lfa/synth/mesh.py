"""A textured 3-D head fitted to one photo: MediaPipe's 468-vertex face mesh inside a generic head
(skull, hair, ears, neck: :mod:`lfa.synth.shell`), frontalised so that the photo's own head pose
cancels out of every angle rendered later.

Texture: where the photo saw the face well, its own pixels; where it saw a surface at a grazing
angle or not at all, the pixels of the mirror-symmetric vertex (MediaPipe's canonical face is
symmetric, :func:`lfa.face.pose.canonical.mirror_permutation`), blended by how well each side was
seen; where neither side was seen, and on the generic head, colours sampled from the photo (skin
from the cheeks, hair from above the forehead)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from lfa.errors import MediaError
from lfa.face import FaceAnalyzer
from lfa.face.angles import rotation_from_angles
from lfa.synth.shell import build_shell

FACE_VERTICES = 468  # the tessellated part of the 478 points (the last 10 are irises)
SEEN_GRAZING, SEEN_FULL = 0.15, 0.5  # photo texture weight: 0 where the photo saw a surface at this cosine ... 1
BORDER_FADE = 0.07  # photo texture fades out over this band (x face width) inside the face oval
CHEEKS = (50, 280)
FOREHEAD, CHIN = 10, 152
HAIR_SAMPLE_OFFSET = 0.14  # hair is sampled this far (x face width) above the forehead landmark
CLOTH_SAMPLE_OFFSET = 0.6  # clothing this far below the chin
PIVOT_DEPTH = 0.55  # the head turns about a point this far (x face width) behind the face centre
JAW_DROP = 0.14  # mouth fully open lowers the jaw by this fraction of the face width
LIP_ROUND = 0.22  # fully rounded lips narrow the mouth by this fraction of its width (spread: widen it)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
# eye and mouth openings are holes in the tessellation: closed with a fan of triangles over each contour
EYE_LOOPS = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
)
DEPTH_SCALE = 1.0


@cache
def _mediapipe_topology() -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's face tessellation (triangles) and the face-oval loop, from the installed package."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    tri = np.array([(c.start, c.end) for c in C.FACE_LANDMARKS_TESSELATION], np.int32).reshape(-1, 3, 2)[:, :, 0]
    oval = [c.start for c in C.FACE_LANDMARKS_FACE_OVAL]
    return tri, np.array(oval, np.int32)


@dataclass
class HeadModel:
    """Vertices in a head frame (x right, y up, z toward the viewer, pivot at the origin, photo
    pixels as units); ``uv`` are the vertices' pixel positions in ``texture``."""

    label: str
    texture: np.ndarray
    vertices: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    jaw_weights: np.ndarray
    face_width: float
    uv_mirror: np.ndarray  # (N, 2) photo position of each vertex's mirror image
    photo_weight: np.ndarray  # (N,) share of the photo (own or mirrored) vs the generic skin/hair atlas
    mirror_weight: np.ndarray  # (N,) share of the mirror within the photo part
    normals: np.ndarray  # (N, 3) outward unit normals, head frame
    occlusion: np.ndarray  # (N,) ambient occlusion factor
    atlas: np.ndarray  # generic skin-to-hair texture
    atlas_uv: np.ndarray  # (N, 2) pixel position in ``atlas``
    depth_bias: np.ndarray  # (T,) added to each triangle's depth for the painter's order

    @property
    def mouth_loop(self) -> np.ndarray:
        return np.array(UPPER_INNER_LIP + LOWER_INNER_LIP[::-1][1:-1], np.int32)

    def posed(self, mouth_open: float = 0.0, mouth_round: float = 0.0) -> np.ndarray:
        """Vertices with the jaw lowered by ``mouth_open`` in [0, 1] and the lips rounded (> 0, narrower)
        or spread (< 0, wider) by ``mouth_round`` in [-1, 1]."""
        v = self.vertices.copy()
        if mouth_open:
            v[:, 1] -= mouth_open * JAW_DROP * self.face_width * self.jaw_weights
        if mouth_round:
            cx = self.vertices[[61, 291], 0].mean()
            v[:, 0] -= mouth_round * LIP_ROUND * (self.vertices[:, 0] - cx) * self.lip_weights
        return v

    @cached_property
    def lip_weights(self) -> np.ndarray:
        """1 on the lips, fading out over about a mouth width around them (how far rounding pulls)."""
        v = self.vertices
        half = 0.5 * np.ptp(v[[61, 291], 0])
        centre = v[list(UPPER_INNER_LIP + LOWER_INNER_LIP)].mean(0)
        d = np.hypot((v[:, 0] - centre[0]) / (1.6 * half), (v[:, 1] - centre[1]) / (1.0 * half))
        return np.clip(1.5 - d, 0.0, 1.0).astype(np.float32)


def fit_head(photo: np.ndarray, analyzer: FaceAnalyzer, label: str) -> HeadModel:
    """Fit the head of the largest face in ``photo`` (needs the MediaPipe pose backend)."""
    from lfa.face.pose.canonical import mirror_permutation

    faces = [f for f in analyzer.analyze(photo) if f.landmarks is not None]
    canonical = getattr(analyzer.pose, "canonical", None)
    if not faces or canonical is None:
        raise MediaError(f"no face with landmarks found in photo {label!r}",
                         "use a photo with one clearly visible, roughly frontal face (MediaPipe pose backend)")
    face = max(faces, key=lambda f: f.area_ratio)
    tri, oval = _mediapipe_topology()
    pts = face.landmarks[:FACE_VERTICES].astype(np.float64)
    origin = pts[:, :2].mean(0)
    cam = np.column_stack([pts[:, 0] - origin[0], origin[1] - pts[:, 1], -DEPTH_SCALE * pts[:, 2]])  # y up, z to viewer
    width = float(np.ptp(cam[oval, 0]))
    centre = cam[oval].mean(0)
    pivot = centre - np.array([0.0, 0.0, PIVOT_DEPTH * width])
    rotation = rotation_from_angles(face.yaw, face.pitch, face.roll)
    frontal = (cam - pivot) @ rotation  # R^T applied to rows
    mouth = tuple(UPPER_INNER_LIP + LOWER_INNER_LIP[::-1][1:-1])
    eyes = [(loop[0], a, b) for loop in (*EYE_LOOPS, mouth) for a, b in zip(loop[1:-1], loop[2:])]
    # the tessellation is consistently wound: orient it as a whole (a folded triangle on a side the photo
    # hardly saw keeps its winding, so it is culled, not drawn inside out); the eye and mouth fans one by one
    majority = signed_areas(frontal[tri][:, :, :2]).sum() > 0
    face_tris = np.concatenate([tri if majority else tri[:, ::-1], _orient(np.array(eyes, np.int32), frontal)])
    shell = build_shell(frontal, oval, width)
    vertices = np.concatenate([frontal, shell.vertices])
    triangles = np.concatenate([face_tris, shell.triangles]).astype(np.int32)
    normals = vertex_normals(vertices, triangles)
    uv_face = pts[:, :2].astype(np.float32)
    uv = np.concatenate([uv_face, uv_face[shell.anchor]])
    mirror = mirror_permutation(canonical)[:FACE_VERTICES]
    seen = np.clip((normals[:FACE_VERTICES] @ rotation.T[:, 2] - SEEN_GRAZING) / (SEEN_FULL - SEEN_GRAZING), 0, 1)
    seen *= _border_fade(frontal, oval, width)  # the outermost band of the photo is hair or background
    own, other = seen, seen[mirror]
    photo_weight = own + (1 - own) * other
    mirror_weight = np.where(photo_weight > 1e-6, (1 - own) * other / np.maximum(photo_weight, 1e-6), 0.0)
    n_shell = len(shell.vertices)
    atlas = make_atlas(*sample_colours(photo, pts, width))
    atlas_uv = np.column_stack([np.concatenate([np.full(FACE_VERTICES, 0.5), shell.strand]) * (atlas.shape[1] - 1),
                                np.concatenate([np.zeros(FACE_VERTICES), shell.hair]) * (atlas.shape[0] - 1)])
    return HeadModel(label, np.ascontiguousarray(photo), vertices.astype(np.float32), uv, triangles,
                     np.concatenate([_jaw_weights(frontal, width), np.zeros(n_shell, np.float32)]), width,
                     uv_mirror=np.concatenate([uv_face[mirror], uv_face[shell.anchor]]),
                     photo_weight=np.concatenate([photo_weight, np.zeros(n_shell)]).astype(np.float32),
                     mirror_weight=np.concatenate([mirror_weight, np.zeros(n_shell)]).astype(np.float32),
                     normals=normals, occlusion=np.concatenate([np.ones(FACE_VERTICES), shell.occlusion]).astype(np.float32),
                     atlas=atlas, atlas_uv=atlas_uv.astype(np.float32),
                     depth_bias=np.concatenate([np.zeros(len(face_tris)), shell.depth_bias]).astype(np.float32))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals per vertex: the area-weighted sum of its triangles' normals (outward)."""
    v = vertices[triangles]
    face_n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(n, triangles[:, k], face_n)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _border_fade(v: np.ndarray, oval: np.ndarray, width: float) -> np.ndarray:
    """0 on the face oval rising to 1 at ``BORDER_FADE`` face widths inside it (front view)."""
    a, b = v[oval, :2], v[np.roll(oval, -1), :2]
    ab = b - a
    t = np.clip(np.einsum("pkj,kj->pk", v[:, None, :2] - a[None], ab) / np.einsum("kj,kj->k", ab, ab), 0, 1)
    d = np.linalg.norm(v[:, None, :2] - (a[None] + t[..., None] * ab[None]), axis=2).min(1)
    return np.clip(d / (BORDER_FADE * width), 0, 1)


def sample_colours(photo: np.ndarray, pts: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median colours in the photo: skin of both cheeks, hair just above the forehead, clothing below
    the chin."""
    h, w = photo.shape[:2]

    def patch(centre: np.ndarray, radius: float) -> np.ndarray:
        x0, y0 = np.clip((centre - radius).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip((centre + radius).astype(int) + 1, 1, [w, h])
        return photo[y0:y1, x0:x1].reshape(-1, 3)

    skin = np.median(np.concatenate([patch(pts[i, :2], 0.04 * width) for i in CHEEKS]), axis=0)
    up = pts[FOREHEAD, :2] - pts[CHIN, :2]
    up /= max(np.linalg.norm(up), 1e-6)
    hair = np.median(patch(pts[FOREHEAD, :2] + up * HAIR_SAMPLE_OFFSET * width, 0.05 * width), axis=0)
    cloth = np.median(patch(pts[CHIN, :2] - up * CLOTH_SAMPLE_OFFSET * width, 0.08 * width), axis=0)
    return skin.astype(np.float32), hair.astype(np.float32), cloth.astype(np.float32)


def make_atlas(skin: np.ndarray, hair: np.ndarray, cloth: np.ndarray, size: tuple[int, int] = (32, 512)
               ) -> np.ndarray:
    """Texture of the generic head. Rows run from skin (top) to the second colour (bottom): hair in the
    left half of the columns, with strands (brightness varying across the columns), clothing in the
    right half. Fixed noise, so the same photo gives the same head."""
    rng = np.random.default_rng(0)
    rows, cols = size
    t = np.linspace(0, 1, rows)[:, None, None]
    strands = np.convolve(rng.normal(0, 1, cols + 8), np.ones(3) / 3, mode="same")[4:-4]
    strands = 1.0 + 0.16 * strands / max(np.abs(strands).max(), 1e-6)
    second = np.where(np.arange(cols)[:, None] < cols // 2, hair * strands[:, None], cloth)
    colour = (1 - t) * skin + t * second[None]
    return np.clip(colour, 0, 255).astype(np.uint8)


def signed_areas(corners: np.ndarray) -> np.ndarray:
    """Twice the signed area of each (T, 3, 2) triangle: > 0 counter-clockwise in a y-up frame."""
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def _orient(triangles: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Wind every triangle counter-clockwise as seen from the front (y up), for back-face culling."""
    area = signed_areas(vertices[triangles][:, :, :2])
    flipped = triangles.copy()
    flipped[area < 0] = triangles[area < 0][:, ::-1]
    return flipped


def _jaw_weights(v: np.ndarray, width: float) -> np.ndarray:
    """1 for the lower lip and the chin, fading out above the mouth line and beyond the jaw's sides."""
    mouth = v[list(UPPER_INNER_LIP + LOWER_INNER_LIP)]
    mouth_y = mouth[:, 1].mean()
    half = 0.5 * np.ptp(v[[61, 291], 0])
    cx = v[[61, 291], 0].mean()
    below = np.clip((mouth_y - v[:, 1]) / (0.08 * width), 0.0, 1.0)
    lateral = np.clip(1.0 - (np.abs(v[:, 0] - cx) - 1.2 * half) / (1.2 * half), 0.0, 1.0)
    w = below * lateral
    w[list(LOWER_INNER_LIP[1:-1] + LOWER_OUTER_LIP[1:-1])] = 1.0
    w[list(UPPER_INNER_LIP + UPPER_OUTER_LIP)] = 0.0
    return w.astype(np.float32)
