"""Which face of an image is *the person*: one rule for ``lfa bench make-spec``, ``lfa generate`` and
``lfa bench``.

With the person's box (a benchmark spec's ``reference_box``, which make-spec takes from the curated
track): the face overlapping that box best, by intersection over union, if it reaches :data:`MIN_IOU`.
Without a box: the largest face (box area), the face the benchmark scores in every generated frame (as
ConsisID and OpenS2V do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np

MIN_IOU = 0.3  # a face overlapping the given box less than this is another face


class HasBox(Protocol):
    box: np.ndarray  # (4,) x0, y0, x1, y1


F = TypeVar("F", bound=HasBox)


def box_area(box: Sequence[float] | np.ndarray) -> float:
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def box_iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(float(a[0]), float(b[0])), max(float(a[1]), float(b[1]))
    x1, y1 = min(float(a[2]), float(b[2])), min(float(a[3]), float(b[3]))
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def by_size(faces: Sequence[F]) -> list[F]:
    """``faces`` largest first (box area): the order of ``lfa generate --face-index``."""
    return sorted(faces, key=lambda f: -box_area(f.box))


def choose_face(faces: Sequence[F], box: Sequence[float] | None = None) -> F | None:
    """The person's face among ``faces``: the one overlapping ``box`` best (None when none overlaps it
    by :data:`MIN_IOU`), or without ``box`` the largest (None when there is no face)."""
    if not faces:
        return None
    if box is None:
        return by_size(faces)[0]
    best = max(faces, key=lambda f: box_iou(f.box, box))
    return best if box_iou(best.box, box) >= MIN_IOU else None
