"""The demo job: the perception stack on the sample photos, written as an annotated picture + JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lfa.face import FaceAnalyzer
from lfa.face.viz import annotate, contact_sheet
from lfa.media import write_image
from lfa.samples import SAMPLE_NAMES, sample_photo


def run_demo(out_dir: Path, analyzer: FaceAnalyzer | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    analyzer = analyzer or FaceAnalyzer()
    pictures, results = [], {}
    for name in SAMPLE_NAMES:
        photo = sample_photo(name)
        for variant, image in (("", photo), (" (mirrored)", np.ascontiguousarray(photo[:, ::-1]))):
            faces = analyzer.analyze(image)
            results[name + variant] = [f.to_dict() for f in faces]
            pictures.append(annotate(image, faces))
    picture = out_dir / "faces.png"
    write_image(picture, contact_sheet(pictures, columns=4, width=384))
    data = out_dir / "faces.json"
    data.write_text(json.dumps(results, indent=2))
    return {"picture": picture, "json": data}
