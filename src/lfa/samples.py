"""Public-domain face photos that installed packages ship, for the demo, tests and the synthetic corpus."""

from __future__ import annotations

import numpy as np

SAMPLE_NAMES = ("astronaut", "grace_hopper")


def sample_photo(name: str) -> np.ndarray:
    """RGB uint8 photo: ``astronaut`` (scikit-image, Eileen Collins, NASA) or ``grace_hopper`` (matplotlib)."""
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        from matplotlib.cbook import get_sample_data

        from lfa.media import read_image

        return read_image(get_sample_data("grace_hopper.jpg", asfileobj=False))
    raise KeyError(f"unknown sample photo {name!r}; choose from {SAMPLE_NAMES}")
