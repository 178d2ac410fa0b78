"""The demo job, the whole data flow on a small embedded sample: render the labelled synthetic corpus,
curate it (manifest + report.html), show the perception stack on the sample photos and a large-angle clip,
train the tiny random Wan base for a few dozen steps, generate a clip from a sample photo, write a benchmark
spec from the curated run, generate its videos and score them (leaderboard + report)."""

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

# The tiny path of the README: a few dozen steps of the tiny base (the weights are random: the video is
# noise-like, every step is the real one).
TRAIN_SETTINGS = ("max_steps=30", "learning_rate=1e-3", "lora_rank=4")
GENERATE_STEPS = 10
DEMO_PHOTO = "astronaut"
DEMO_PROMPT = "a woman turns her head"

STAGES = ("corpus", "curate", "perception", "train", "generate", "make-spec", "generate spec", "bench")


def run_demo(out_dir: Path, analyzer: FaceAnalyzer | None = None,
             on_clip: Callable[[str], None] | None = None,
             on_stage: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Every stage into ``out_dir``; returns what each wrote (name → path). ``on_stage`` hears each
    stage's name (:data:`STAGES`) as it starts, ``on_clip`` each corpus clip as it is rendered."""
    stage = on_stage or (lambda name: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    analyzer = analyzer or FaceAnalyzer()
    corpus = out_dir / "corpus"
    stage("corpus")
    build_corpus(corpus, heads=HeadLibrary(analyzer), on_clip=on_clip)
    stage("curate")
    curated = curate([corpus], out_dir / "curated")
    stage("perception")
    written = {"corpus": corpus, "manifest": curated.outputs["manifest"], "curation report": curated.outputs["report"],
               **perception(out_dir, analyzer, corpus)}
    written.update(model_side(out_dir, out_dir / "curated", analyzer, stage))
    return written


def perception(out_dir: Path, analyzer: FaceAnalyzer, corpus: Path) -> dict[str, Path]:
    """The perception stack on the sample photos (and their mirrors) and on a large-angle clip."""
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
    return {"faces picture": picture, "faces json": data, "yaw sweep": sweep}


def model_side(out_dir: Path, run: Path, analyzer: FaceAnalyzer,
               stage: Callable[[str], None]) -> dict[str, Path]:
    """Tiny base → train on ``run`` → a video of a sample photo → spec → its videos → benchmark."""
    from lfa.bench import run_bench
    from lfa.bench.make_spec import make_spec
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator, generate_spec, write_result
    from lfa.wan.base import init_tiny_base, load_base
    from lfa.train.config import load_config
    from lfa.train.state import latest_checkpoint
    from lfa.train.trainer import train

    base = out_dir / "models" / "wan-tiny"
    if not (base / "model_index.json").is_file():
        init_tiny_base(base)
    stage("train")
    trained = out_dir / "train"
    config = load_config(load_base(base, parts=()).train_defaults, sets=list(TRAIN_SETTINGS))
    train(base, run, trained, config, resume="latest" if latest_checkpoint(trained) else None)  # a rerun resumes
    stage("generate")
    photo = out_dir / f"{DEMO_PHOTO}.png"
    write_image(photo, sample_photo(DEMO_PHOTO))
    generator = IdentityGenerator(base, trained / "adapter", analyzer=analyzer)
    options = GenerateOptions(prompt=DEMO_PROMPT, steps=GENERATE_STEPS, seed=0)
    video = write_result(generator([sample_photo(DEMO_PHOTO)], options), out_dir / "video.mp4",
                         generator.resolve(options), {"faces": [str(photo)]})
    stage("make-spec")
    spec = make_spec(run / "manifest.parquet", out_dir / "spec" / "spec.jsonl", analyzer=analyzer).spec
    stage("generate spec")
    videos = out_dir / "videos"
    generate_spec(generator, spec, videos, options)
    stage("bench")
    run_bench(spec, {"tiny": videos}, out_dir / "bench")
    return {"base": base, "adapter": trained / "adapter", "training metrics": trained / "metrics.jsonl",
            "video": video, "spec": spec, "spec videos": videos, "leaderboard": out_dir / "bench" / "leaderboard.json",
            "bench report": out_dir / "bench" / "report.html"}
