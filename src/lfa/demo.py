"""The demo job: render the labelled synthetic corpus, curate it (manifest + report.html), and show the
perception stack on the sample photos and on a large-angle clip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lfa.curate.run import curate
from lfa.face import FaceAnalyzer
from lfa.face.files import analyze_video_file
from lfa.face.viz import annotate, contact_sheet
from lfa.media import write_image
from lfa.samples import SAMPLE_NAMES, sample_photo
from lfa.synth import HeadLibrary, build_corpus


def run_demo(out_dir: Path, analyzer: FaceAnalyzer | None = None,
             on_clip: Callable[[str], None] | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    analyzer = analyzer or FaceAnalyzer()
    corpus = out_dir / "corpus"
    build_corpus(corpus, heads=HeadLibrary(analyzer), on_clip=on_clip)
    curated = curate([corpus], out_dir / "curated")
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
    sweep = out_dir / "yaw-sweep.png"
    frames = analyze_video_file(analyzer, corpus / "large_angle_astronaut.mp4", fps=3, keep_images=True)
    write_image(sweep, contact_sheet([annotate(f.image, f.faces) for f in frames]))
    return {"corpus": corpus, "manifest": curated.outputs["manifest"], "report": curated.outputs["report"],
            "picture": picture, "json": data, "yaw sweep": sweep}
