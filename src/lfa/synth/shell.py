"""A generic head around a fitted face mesh: skull with hair volume, two ears and a neck.

The template is scaled to the fitted face (its width, eye line and glabella), in the head frame of
:class:`lfa.synth.mesh.HeadModel` (x right, y up, z toward the viewer). The skull is an ellipsoid
swept back from the face oval: every oval vertex starts a path over the ellipsoid to the back of the
head, so the face and the skull are one closed surface. Each vertex carries a hair weight (0 skin,
1 hair), a strand coordinate (hair strands follow the paths) and an ambient-occlusion factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKULL_RADII = (0.56, 0.70, 0.74)  # x (half breadth), y (half height), z (half length); x face width
SKULL_CENTRE = (0.15, -0.72)  # above the eye line, behind the glabella; x face width
SWEEP_RINGS = 10  # rings from the face oval to the back of the head
HAIR_VOLUME = 0.07  # hair lifts the skull surface by this fraction of its radius
# hairline height (y on the unit skull) as a function of z on the unit skull: nape ... forehead
HAIRLINE_Z = (-1.0, -0.3, 0.05, 0.4, 1.0)
HAIRLINE_Y = (-0.72, -0.5, -0.12, 0.08, 0.3)
EAR_DIRECTION = (1.0, -0.42, -0.12)  # on the unit skull, for the subject's right ear mirrored in x
EAR_SIZE = (0.13, 0.22)  # half width, half height; x face width
EAR_SEGMENTS = 16
NECK_RADII = (0.4, 0.42)
NECK_FORWARD = 0.16  # neck axis in front of the skull centre; x face width
# neck and shoulders: heights (y relative to the skull centre, x face width), radius factors (x, z), clothing
NECK_PROFILE = ((-0.3, 1.0, 1.0, 0.0), (-0.6, 1.0, 1.0, 0.0), (-0.9, 1.0, 1.0, 0.0), (-1.2, 1.02, 1.0, 0.0),
                (-1.4, 1.15, 1.05, 1.0), (-1.6, 1.6, 1.2, 1.0), (-1.8, 2.1, 1.35, 1.0), (-2.1, 2.35, 1.4, 1.0),
                (-2.6, 2.4, 1.4, 1.0))
NECK_SEGMENTS = 28
EAR_LIFT = 0.12  # ears are drawn as if this much nearer (x face width): they sit on the skull surface
NECK_SINK = 0.12  # the neck as if this much farther: its long triangles must not cover the chin
GLABELLA, LEFT_EYE, RIGHT_EYE = 9, 33, 263


@dataclass
class Shell:
    vertices: np.ndarray  # (N, 3)
    triangles: np.ndarray  # (T, 3), indices into the face vertices followed by these
    hair: np.ndarray  # (N,) 0 skin ... 1 hair (clothing on the shoulders)
    strand: np.ndarray  # (N,) atlas column: < 0.5 skin/hair with strands, >= 0.5 skin/clothing
    occlusion: np.ndarray  # (N,) 1 open ... <1 in creases
    anchor: np.ndarray  # (N,) index of the face vertex whose photo position stands in for this vertex
    depth_bias: np.ndarray  # (T,) added to a triangle's depth when ordering (ears over the skull)


def _hair_weight(unit: np.ndarray) -> np.ndarray:
    line = np.interp(unit[:, 2], HAIRLINE_Z, HAIRLINE_Y)
    return np.clip((unit[:, 1] - line) / 0.12 + 0.5, 0.0, 1.0)


def build_shell(face: np.ndarray, oval: np.ndarray, width: float) -> Shell:
    """The head around ``face`` (face vertices, head frame) whose border loop is ``oval``."""
    n_face = len(face)
    radii = np.array(SKULL_RADII) * width
    eye_y = face[[LEFT_EYE, RIGHT_EYE], 1].mean()
    centre = np.array([face[oval, 0].mean(), eye_y + SKULL_CENTRE[0] * width,
                       face[GLABELLA, 2] + SKULL_CENTRE[1] * width])
    parts_v, parts_t, hair, strand, occl, anchor, facing = [], [], [], [], [], [], []
    count = n_face

    def add(v: np.ndarray, t: np.ndarray, h: np.ndarray, s: np.ndarray, o: np.ndarray, a: np.ndarray,
            out: np.ndarray) -> None:
        """``out``: a point inside the part (3,), or an outward direction per triangle (T, 3)."""
        nonlocal count
        parts_v.append(v)
        parts_t.append(t)
        facing.append(out)
        hair.append(h)
        strand.append(s)
        occl.append(o)
        anchor.append(a)
        count += len(v)

    # skull: from each oval vertex along a great circle of the unit skull to the back pole
    q = (face[oval] - centre) / radii
    rho = np.linalg.norm(q, axis=1)
    start = q / rho[:, None]
    back = np.array([0.0, 0.0, -1.0])
    omega = np.arccos(np.clip(start @ back, -1.0, 1.0))
    n = len(oval)
    base = count
    ring_v, ring_h = [], []
    for k in range(1, SWEEP_RINGS):
        s = k / SWEEP_RINGS
        d = (np.sin((1 - s) * omega)[:, None] * start + np.sin(s * omega)[:, None] * back) / np.sin(omega)[:, None]
        r = 1.0 + (rho - 1.0) * (1.0 - s) ** 2
        h = _hair_weight(d)
        ring_v.append(centre + radii * d * (r * (1.0 + HAIR_VOLUME * h))[:, None])
        ring_h.append(h)
    pole = centre + radii * back * (1.0 + HAIR_VOLUME)
    verts = np.concatenate([*ring_v, pole[None]])
    rings = [oval] + [base + k * n + np.arange(n) for k in range(SWEEP_RINGS - 1)]
    tris = []
    for inner, outer in zip(rings[:-1], rings[1:]):
        for i in range(n):
            j = (i + 1) % n
            tris += [(inner[i], inner[j], outer[j]), (inner[i], outer[j], outer[i])]
    pole_index = base + len(verts) - 1
    tris += [(rings[-1][i], rings[-1][(i + 1) % n], pole_index) for i in range(n)]
    azimuth = np.arctan2(start[:, 1], start[:, 0])
    add(verts, np.array(tris, np.int64), np.concatenate([*ring_h, [1.0]]),
        np.concatenate([np.tile(0.48 * ((azimuth / (2 * np.pi)) % 1.0), SWEEP_RINGS - 1), [0.0]]),
        np.ones(len(verts)), np.concatenate([np.tile(oval, SWEEP_RINGS - 1), [oval[0]]]), centre)

    # ears: an outer rim, an inner bowl and a deep centre; both sides drawn (two vertex sets)
    side_anchor = oval[np.argmax(np.abs(face[oval, 0] - centre[0]))]
    for sign in (-1.0, 1.0):
        direction = np.array(EAR_DIRECTION) * np.array([sign, 1.0, 1.0])
        direction /= np.linalg.norm(direction)
        root = centre + radii * direction
        theta = np.linspace(0, 2 * np.pi, EAR_SEGMENTS, endpoint=False)
        back_ward, up = np.cos(theta), np.sin(theta)  # -z and +y in the ear plane
        tilt = np.deg2rad(15)
        b = back_ward * np.cos(tilt) - up * np.sin(tilt)
        u = back_ward * np.sin(tilt) + up * np.cos(tilt)
        rim = np.column_stack([sign * (0.03 + 0.11 * (back_ward + 1) / 2) * width,
                               EAR_SIZE[1] * width * u, -EAR_SIZE[0] * width * b]) + root
        bowl = np.column_stack([sign * (0.02 + 0.05 * (back_ward + 1) / 2) * width,
                                0.55 * EAR_SIZE[1] * width * u, -0.55 * EAR_SIZE[0] * width * b]) + root
        centre_v = root + np.array([sign * 0.0, -0.02 * width, 0.0])
        ear = np.concatenate([rim, bowl, centre_v[None]])
        m = EAR_SEGMENTS
        local = []
        for i in range(m):
            j = (i + 1) % m
            local += [(i, j, m + j), (i, m + j, m + i), (m + i, m + j, 2 * m)]
        local_t = np.array(local, np.int64)
        occ = np.concatenate([np.full(m, 1.0), np.full(m, 0.72), [0.55]])
        for flip in (False, True):
            t = local_t[:, ::-1] if flip else local_t
            away = np.tile([(-sign if flip else sign), 0.0, 0.0], (len(t), 1))
            add(ear, t + count, np.zeros(len(ear)), np.zeros(len(ear)), occ, np.full(len(ear), side_anchor), away)

    # neck flaring into shoulders: elliptic rings, open at both ends (the top is inside the skull)
    phi = np.linspace(0, 2 * np.pi, NECK_SEGMENTS, endpoint=False)
    axis = np.array([centre[0], 0.0, centre[2] + NECK_FORWARD * width])
    neck = np.concatenate([np.column_stack([fx * NECK_RADII[0] * width * np.cos(phi), np.full_like(phi, y * width),
                                            fz * NECK_RADII[1] * width * np.sin(phi)]) + axis + [0, centre[1], 0]
                           for y, fx, fz, _ in NECK_PROFILE])
    cloth = np.repeat([c for *_, c in NECK_PROFILE], NECK_SEGMENTS)
    local = []
    for k in range(len(NECK_PROFILE) - 1):
        for i in range(NECK_SEGMENTS):
            a, b2 = k * NECK_SEGMENTS + i, k * NECK_SEGMENTS + (i + 1) % NECK_SEGMENTS
            local += [(a, b2, b2 + NECK_SEGMENTS), (a, b2 + NECK_SEGMENTS, a + NECK_SEGMENTS)]
    chin = oval[np.argmin(face[oval, 1])]
    add(neck, np.array(local, np.int64) + count, cloth, np.full(len(neck), 0.75), np.full(len(neck), 0.85),
        np.full(len(neck), chin), np.array([axis[0], np.nan, axis[2]]))

    vertices = np.concatenate([face, *parts_v])
    triangles = np.concatenate([_wind_outward(vertices, t, o) for t, o in zip(parts_t, facing)])
    lift = [0.0, EAR_LIFT, EAR_LIFT, EAR_LIFT, EAR_LIFT, -NECK_SINK]  # skull, 4 ear sheets, neck
    bias = np.concatenate([np.full(len(t), lift[k] * width) for k, t in enumerate(parts_t)])
    return Shell(np.concatenate(parts_v).astype(np.float32), triangles.astype(np.int32),
                 np.concatenate(hair).astype(np.float32), np.concatenate(strand).astype(np.float32),
                 np.concatenate(occl).astype(np.float32), np.concatenate(anchor).astype(np.int32),
                 bias.astype(np.float32))


def _wind_outward(vertices: np.ndarray, triangles: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Wind a consistently wound part counter-clockwise seen from outside, as a whole (by the area-weighted
    vote of its triangles): away from an inside point (an axis where a coordinate is NaN) or along a
    given direction per triangle."""
    v = vertices[triangles]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    if out.ndim == 1:
        out = v.mean(1) - np.where(np.isnan(out), v.mean(1), out)
    return triangles if np.einsum("ij,ij->", normal, out) >= 0 else triangles[:, ::-1].copy()
