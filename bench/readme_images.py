"""Refresh docs/img/curate-report.jpg from a curation run's report.html (the images it embeds: the
distributions and the contact sheet of accepted clips with their head poses), e.g. after `make demo`:

    .venv/bin/python bench/readme_images.py out/demo/curated/report.html
"""

from __future__ import annotations

import argparse
import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "curate-report.jpg"


def embedded_images(page: str) -> dict[str, Image.Image]:
    """alt text → image, for every inline ``<img alt=... src='data:image/...;base64,...'>``."""
    found = {}
    for alt, data in re.findall(r"<img alt='([^']*)' src='data:image/[a-z]+;base64,([^']+)'", page):
        found.setdefault(alt, Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
    return found


def stack(images: list[Image.Image], width: int) -> Image.Image:
    scaled = [im.resize((width, round(im.height * width / im.width))) for im in images]
    canvas = np.full((sum(im.height for im in scaled), width, 3), 255, np.uint8)
    y = 0
    for im in scaled:
        canvas[y: y + im.height] = np.asarray(im)
        y += im.height
    return Image.fromarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--rows", type=int, default=3, help="rows of the contact sheet to keep")
    args = parser.parse_args()
    images = embedded_images(args.report.read_text())
    wanted = [images[alt] for alt in ("yaw", "contact sheet") if alt in images]
    if "contact sheet" in images:  # its first rows: the page's look, not every clip
        sheet = images["contact sheet"]
        wanted[-1] = sheet.crop((0, 0, sheet.width, min(sheet.height, round(sheet.width * args.rows / 3))))
    if not wanted:
        raise SystemExit(f"{args.report}: no embedded images")
    stack(wanted, args.width).save(args.out, quality=85)
    print(f"wrote {args.out} from {', '.join(a for a in images)}")


if __name__ == "__main__":
    main()
