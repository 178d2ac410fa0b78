"""Contact sheet of lfa synth heads: each photo rendered at yaw -90...+90 (one row per photo).

    .venv/bin/python bench/synth_sheet.py --out docs/img/synth-heads.jpg [--photos astronaut grace_hopper camera]

Photos: the two sample photos and scikit-image's ``camera`` (a face at ~60° yaw). Works against the
renderer before issue 16 too (``PYTHONPATH=<old checkout>/src``), which is how the "before" sheet was made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lfa.synth.clip import HeadLibrary

YAWS = (-90, -75, -60, -30, 0, 30, 60, 75, 90)


def photo_path(name: str) -> str:
    """Sample names pass through; other scikit-image images are written to a temporary PNG."""
    from lfa.samples import SAMPLE_NAMES

    if name in SAMPLE_NAMES or Path(name).exists():
        return name
    import tempfile

    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    path = Path(tempfile.gettempdir()) / f"lfa-sheet-{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return str(path)


def render_yaw(heads: HeadLibrary, photo: str, yaw: float, size: int, seed: int) -> np.ndarray:
    from lfa.synth import render as render_mod

    head = heads.get(photo)
    scale = 0.3 * size / head.face_width
    if hasattr(render_mod, "Lighting"):  # the head renderer of issue 16
        from lfa.synth.backgrounds import make_backdrop
        from lfa.synth.render import HeadPlacement, Lighting, render

        background = make_backdrop("photo", size, size, seed)
        placement = HeadPlacement(head, yaw, 0.0, 0.0, (size / 2, 0.5 * size), scale)
        return render(background, [placement], Lighting.random(seed))[0]
    from lfa.synth.clip import make_background
    from lfa.synth.render import HeadPlacement, render

    placement = HeadPlacement(head, yaw, 0.0, 0.0, (size / 2, 0.5 * size), scale)
    return render(make_background(size, size, seed), [placement])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", nargs="+", default=["astronaut", "grace_hopper", "camera"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--yaws", type=float, nargs="+", default=list(YAWS))
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    heads = HeadLibrary()
    rows = []
    for k, name in enumerate(args.photos):
        photo = photo_path(name)
        tiles = [render_yaw(heads, photo, yaw, args.size, args.seed + k) for yaw in args.yaws]
        for tile, yaw in zip(tiles, args.yaws):
            cv2.putText(tile, f"{yaw:+.0f}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if args.out.suffix.lower() in (".jpg", ".jpeg") else []
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), params)
    print(args.out)


if __name__ == "__main__":
    main()
