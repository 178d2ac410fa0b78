"""Pieces of self-contained HTML reports: figures and images as inline data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

import cv2
import numpy as np


def figure_data_uri(fig: Any, dpi: int = 96) -> str:
    """A matplotlib figure as an inline PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_data_uri(image: np.ndarray, quality: int = 85) -> str:
    """An RGB image as an inline JPEG."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
