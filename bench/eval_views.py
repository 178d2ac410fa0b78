"""Held-out check of evaluation views (issue 31): does scoring against ``reference`` ∪ ``eval_references``
let the offline identity model (dlib) verify the same person at 60–90° without verifying somebody else?

    .venv/bin/python bench/identity_calibration.py photos --dir out/idcal      # the 10 people's photos
    .venv/bin/python bench/eval_views.py --photos out/idcal/photos --out out/eval_views

People (the photos registry packages ship, bench/identity_calibration.py): the impostor model is fitted
here on renders of five of them (``CALIBRATION``: astronaut, grace_hopper, lenna, bb_left, bb_right;
tongue is left out: lfa.synth fits no head mesh to it at full size; signed yaw −90…90° every 10°, two
backdrops) and passed as ``--impostors``, so nothing the verdict rests on has seen the four evaluated
people (``EVALUATED``: obama, biden, einstein, takeo).

Per evaluated person, two items: a frontal still as the ``reference``; the genuine "model" is the person
turning ±75° (``yaw-sweep``), the wrong-person "model" is the next evaluated person's genuine video.
Conditions, the same videos scored (the analysis cache shares them):

- ``none``: the reference alone;
- ``renders``: plus ``eval_references`` at ±45° and ±75° rendered from the *same photo* with another seed
  and backdrop (renders of one photo share its texture: an optimistic case);
- ``other photo``: Obama only (the one person with several photos): the reference and the videos from
  ``obama.jpg``, the views at ±45° and ±75° from ``obama2.jpg`` — another "clip" of the person.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity_calibration import PHOTOS, photo_path  # noqa: E402

CALIBRATION = ("astronaut", "grace_hopper", "lenna", "bb_left", "bb_right")  # tongue: no mesh fit at full size
EVALUATED = ("obama", "biden", "einstein", "takeo")
VIEW_YAWS = (-75.0, -45.0, 45.0, 75.0)
SIZE = 320


def still(heads, photo: str, yaw: float, seed: int, backdrop: str = "photo") -> np.ndarray:
    from lfa.synth.backgrounds import make_backdrop
    from lfa.synth.render import HeadPlacement, render

    head = heads.get(photo)
    image, _ = render(make_backdrop(backdrop, SIZE, SIZE, seed),
                      [HeadPlacement(head, yaw, 0.0, 0.0, (SIZE / 2, 0.55 * SIZE), 0.3 * SIZE / head.face_width)])
    return image


def fit_impostors(heads, analyzer, photos: dict[str, str], out: Path) -> Path:
    from lfa.face.identity.impostors import fit_impostor_model
    from lfa.face.identity.score import FaceSet

    sets = {}
    for person in CALIBRATION:
        embs, yaws = [], []
        for seed in (1, 2):
            for yaw in np.arange(-90, 91, 10, dtype=float):
                faces = analyzer.analyze(still(heads, photos[person], float(yaw), seed))
                face = max(faces, key=lambda f: f.area_ratio) if faces else None
                if face is not None and face.embedding is not None:
                    embs.append(face.embedding)
                    yaws.append(face.yaw)
        sets[person] = FaceSet(np.array(embs, np.float32), np.array(yaws, np.float64))
        print(f"impostors: {person}: {len(embs)} faces", flush=True)
    model = fit_impostor_model(sets, backend="dlib_resnet", provenance={
        "data": "bench/eval_views.py: renders of " + ", ".join(CALIBRATION), "identities": len(sets)})
    return model.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=Path("out/idcal/photos"))
    ap.add_argument("--out", type=Path, default=Path("out/eval_views"))
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from lfa.bench import BenchConfig, run_bench
    from lfa.face import AnalyzerConfig, FaceAnalyzer
    from lfa.media import write_image
    from lfa.synth import ClipSpec, HeadLibrary, render_clip

    root = args.out
    root.mkdir(parents=True, exist_ok=True)
    (root / "crops").mkdir(exist_ok=True)
    photos = {}
    for identity, name, crop in PHOTOS:
        photos.setdefault(identity, photo_path(args.photos, root / "crops", identity, name, crop))
    obama_other = photo_path(args.photos, root / "crops", "obama", "obama2.jpg", None)
    analyzer = FaceAnalyzer(AnalyzerConfig())
    heads = HeadLibrary(analyzer)
    impostors = root / "impostors.json"
    if not impostors.is_file():
        fit_impostors(heads, analyzer, photos, impostors)
    genuine, wrong, refs = root / "genuine", root / "wrong", root / "refs"
    for folder in (genuine, wrong, refs):
        folder.mkdir(exist_ok=True)
    specs: dict[str, list[dict]] = {"none": [], "renders": [], "other photo": []}
    dropped: list[str] = []
    for p, person in enumerate(EVALUATED):
        for v in range(2):
            item = f"{person}-{v}"
            video = genuine / f"{item}.mp4"
            if not video.is_file():
                render_clip(ClipSpec(photos[person], "yaw-sweep", duration=4.0, fps=8, width=SIZE, height=SIZE,
                                     seed=1 + v), video, heads)
            ref = refs / f"{item}.png"
            write_image(ref, still(heads, photos[person], 0.0, 20 + v))
            views = []
            for yaw in VIEW_YAWS:  # as make-spec does, a view is kept only where a face is detected
                path = refs / f"{item}.view{yaw:+.0f}.png"
                image = still(heads, photos[person], yaw, 60 + v, "field")
                if analyzer.find(image):
                    write_image(path, image)
                    views.append(str(path))
                else:
                    dropped.append(path.name)
            labels = {"cluster_id": person, "target_yaw": [-75, 75]}
            line = {"id": item, "reference": str(ref), "prompt": "A person turns their head.", "labels": labels}
            specs["none"].append(line)
            specs["renders"].append({**line, "eval_references": views})
            if person == "obama":
                other = []
                for yaw in VIEW_YAWS:
                    path = refs / f"{item}.obama2{yaw:+.0f}.png"
                    image = still(heads, obama_other, yaw, 80 + v)
                    if analyzer.find(image):
                        write_image(path, image)
                        other.append(str(path))
                    else:
                        dropped.append(path.name)
                specs["other photo"].append({**line, "eval_references": other})
    for p, person in enumerate(EVALUATED):  # the wrong person: the next person's genuine video
        nxt = EVALUATED[(p + 1) % len(EVALUATED)]
        for v in range(2):
            shutil.copy(genuine / f"{nxt}-{v}.mp4", wrong / f"{person}-{v}.mp4")
    results = {}
    for name, lines in specs.items():
        spec = root / f"spec-{name.replace(' ', '_')}.jsonl"
        spec.write_text("".join(json.dumps(line) + "\n" for line in lines))
        config = BenchConfig(identities=("dlib",), impostors=impostors, cache_dir=root / "cache",
                             workers=args.workers)
        res = run_bench(spec, {"genuine": genuine, "wrong": wrong}, root / f"bench-{name.replace(' ', '_')}", config,
                        report=False)
        agg = res.aggregates
        results[name] = {
            "items": len(lines), "people": sorted({line["labels"]["cluster_id"] for line in lines}),
            "genuine_verified_60_90": agg["genuine"]["verified_yaw_60_90"],
            "wrong_verified_60_90": agg["wrong"]["verified_yaw_60_90"],
            "genuine_score": agg["genuine"]["score"], "wrong_score": agg["wrong"]["score"],
            "genuine_matched_60_90": agg["genuine"]["matched_yaw_60_90"],
            "frames_60_90": agg["genuine"]["frames_yaw_60_90"],
            "impostors": res.summary["headline"]["impostors"]}
    results["views_left_out"] = dropped  # type: ignore[assignment]
    (root / "results.json").write_text(json.dumps(results, indent=1))
    print(f"{'eval views':<12} {'people':>6} {'items':>5} {'genuine 60-90':>13} {'wrong 60-90':>11} "
          f"{'genuine score':>13} {'matched 60-90':>13}")
    for name, r in results.items():
        if name == "views_left_out":
            continue
        print(f"{name:<12} {len(r['people']):>6} {r['items']:>5} {r['genuine_verified_60_90']:>13.0%} "
              f"{r['wrong_verified_60_90']:>11.0%} {r['genuine_score']:>13.3f} {r['genuine_matched_60_90']:>13.0%}")
    print(f"views without a detected face, left out: {', '.join(dropped) or 'none'}")
    print(f"frames at 60-90 per model: {results['none']['frames_60_90']} (none/renders), "
          f"{results['other photo']['frames_60_90']} (other photo)")


if __name__ == "__main__":
    main()
