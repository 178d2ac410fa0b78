"""Curation speed, side by side in one run:

1. curation wall time vs decoding the same videos only (the floor), both on all cores;
2. sampled (default 4 fps) vs exhaustive (every frame analysed): decision agreement and speedup.

    .venv/bin/python bench/curate.py [--corpus DIR] [--size 1280x720] [--repeats 3] [--skip-exhaustive]
    .venv/bin/python bench/curate.py --mix realistic [--photos out/idcal/photos] [--size 1920x1080]
                                     [--corpus DIR] [--repeats 2] [--variant KEY=VALUE,...]

The videos are lfa's standard synthetic corpus, rendered first (at ``--size``, faces keeping their share
of the frame height) into ``--corpus`` when that folder holds no videos.

``--mix realistic`` renders instead what real sources look like (issue 30): 20 clips of ``--seconds`` (8),
16 of them clips that curation must reject (frontal talking heads, static heads, small faces, two
faces, a scene cut between two frontal shots) and 4 turning heads, of the held-out photos that
``bench/identity_calibration.py photos`` gathers (``--photos``; the cheap yaw was calibrated on the
two shipped samples only) or, without them, of the samples. It then times, alternating per repeat:
decoding only; curation with the cascade (the defaults); curation with ``cascade.enabled=false``; and
curation of the frontal/static clips alone; and apart, the model loading of a curation worker: its
start-up (a worker process started as ``curate`` starts it, until it has imported lfa and loaded the
detector) and the pose models (the landmarker and WHENet, which the cascade loads where a clip first needs
them: every worker of the whole mix, none of the frontal/static run; the identity encoder, loaded the same
way, 0.1 s, counts as per-clip cost). Ratios are
printed with the model loading included and without it (at scale a worker pays it once for thousands
of clips), with the decisions of both configurations side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from lfa.curate.config import CurateConfig
from lfa.curate.run import curate, list_inputs
from lfa.media import iter_frames


def render_corpus(folder: Path, size: str) -> None:
    from dataclasses import replace

    from lfa.synth import build_corpus
    from lfa.synth.corpus import STANDARD_CORPUS

    width, height = (int(v) for v in size.lower().split("x"))
    specs = {name: replace(spec, width=width, height=height, face_size=spec.face_size * height / width * spec.width
                           / spec.height) for name, spec in STANDARD_CORPUS.items()}
    build_corpus(folder, specs=specs)


MIX_GROUPS = {  # name: (count, trajectory, ClipSpec overrides, must be rejected)
    "frontal": (5, "frontal", {}, True),
    "static": (3, "static", {}, True),
    "small": (2, "frontal", {"face_size": 0.07}, True),
    "two_faces": (3, "frontal", {"second_face_same": True}, True),
    "scene_cut": (3, "frontal", {"scene_cut": True}, True),
    "turning": (4, "yaw-sweep|nod-and-turn|turn-away|yaw-sweep", {}, False),
}


def mix_specs(photos: list[str], size: str, seconds: float) -> dict[str, object]:
    """The realistic mix: 16 clips to reject, 4 turning; photos taken in turn."""
    from lfa.synth import ClipSpec
    from lfa.synth.clip import SecondFace

    width, height = (int(v) for v in size.lower().split("x"))
    out: dict[str, object] = {}
    k = 0
    for group, (count, trajectories, extra, _) in MIX_GROUPS.items():
        for i in range(count):
            photo = photos[k % len(photos)]
            k += 1
            spec = {"face_size": 0.3 * height / width, "width": width, "height": height, "seed": 300 + k}
            if "face_size" in extra:
                spec["face_size"] = extra["face_size"] * height / width
            if extra.get("second_face_same"):
                spec["face_size"] *= 0.8
                spec["second_face"] = SecondFace(photos[k % len(photos)], 1.0, "frontal")
            if extra.get("scene_cut"):
                spec["scene_cut_at"] = seconds / 2
            trajectory = trajectories.split("|")[i % len(trajectories.split("|"))]
            out[f"{group}_{i}_{Path(photo).stem}"] = ClipSpec(photo, trajectory, seconds, **spec)
    return out


def mix_photos(folder: Path | None, work: Path) -> list[str]:
    if folder is None or not folder.is_dir():
        return ["astronaut", "grace_hopper"]
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from identity_calibration import PHOTOS, photo_path

    held_out = ("obama", "biden", "einstein", "lenna", "takeo", "bb_left", "bb_right")  # tongue: no head fit
    seen: dict[str, str] = {}
    for identity, name, crop in PHOTOS:
        if identity in held_out and identity not in seen:
            seen[identity] = photo_path(folder, work, identity, name, crop)
    return list(seen.values())


def worker_startup(config: CurateConfig, out_dir: Path) -> tuple[float, float]:
    """Seconds from starting a curation worker process (as ``curate`` does) to its models loaded, and the
    seconds a worker takes to load the pose models (the cascade loads them where a clip first needs them)."""
    import multiprocessing

    from lfa.curate.executors import _Process

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text("{}")
    t0 = time.perf_counter()
    worker = _Process(multiprocessing.get_context("spawn"), (config.to_dict(), str(out_dir), os.environ.get("LFA_HOME")))
    while not worker.ready:
        worker.conn.poll(30)
        for kind, body in worker.messages():
            if kind != "ready":
                raise RuntimeError(f"the worker process sent {kind}: {body}")
            worker.ready = True
    startup = time.perf_counter() - t0
    worker.stop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pose = pool.submit(_load_pose_models, config.to_dict()).result()
    return startup, pose


def _load_pose_models(config: dict) -> float:
    from lfa.curate.executors import worker_threads
    from lfa.curate.pipeline import build_models
    from lfa.face.pose.mediapipe import skip_pyplot_import

    skip_pyplot_import()  # as in a worker process
    with worker_threads():
        models = build_models(CurateConfig.from_dict(config))
        t0 = time.perf_counter()
        _ = models.analyzer.pose.name  # builds a lazy pose backend
        return time.perf_counter() - t0


def run_mix(args: argparse.Namespace, workers: int) -> None:
    from lfa.synth import build_corpus

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "mix"
        corpus.mkdir(parents=True, exist_ok=True)
        specs = mix_specs(mix_photos(args.photos, corpus), args.size, args.seconds)
        build_corpus(corpus, specs=specs)
        videos = [corpus / f"{name}.mp4" for name in specs]
        frontal = [v for v in videos if v.stem.startswith(("frontal", "static"))]
        on = CurateConfig.load(None, args.overrides)
        off = CurateConfig.load(None, [*args.overrides, "cascade.enabled=false"])
        variants = [(f"variant{i}", CurateConfig.load(None, [*args.overrides, *v.split(",")]), v)
                    for i, v in enumerate(args.variants)]
        runs = [("cascade", on, videos), ("all_models", off, videos), ("cascade_frontal", on, frontal)]
        for key, config, _ in variants:
            runs += [(key, config, videos), (f"{key}_frontal", config, frontal)]
        times: dict[str, list[float]] = {k: [] for k in ("decode", "decode_frontal", "startup", "pose_models",
                                                          *(r[0] for r in runs))}
        frames = 0
        for r in range(args.repeats):
            for key, group in (("decode", videos), ("decode_frontal", frontal)):
                t0 = time.perf_counter()
                with ProcessPoolExecutor(workers) as pool:
                    n = sum(pool.map(decode_only, group))
                times[key].append(time.perf_counter() - t0)
                frames = n if key == "decode" else frames
            for key, config, group in runs:
                t0 = time.perf_counter()
                curate(group, Path(tmp) / f"{key}{r}", config, workers=workers, report=False)
                times[key].append(time.perf_counter() - t0)
            startup, pose = worker_startup(on, Path(tmp) / f"startup{r}")
            times["startup"].append(startup)
            times["pose_models"].append(pose)
        med = {k: statistics.median(v) for k, v in times.items()}
        up, pose = med["startup"], med["pose_models"]
        print(f"realistic mix at {args.size}: {len(videos)} clips of {args.seconds:g} s ({len(frontal)} frontal/static), "
              f"{frames} frames, {workers} workers, {args.repeats} repeats (medians); settings {args.overrides}")
        print(f"model loading, paid once per worker: start-up (spawn, imports, detector) {up:.2f} s, "
              f"pose models {pose:.2f} s (not by a frontal/static run)")
        print(f"decode only            : {med['decode']:6.2f} s")
        for key, _, _ in runs:
            frontal_run = key.endswith("_frontal")
            dec = "decode_frontal" if frontal_run else "decode"
            c, loading = med[key], up + (0.0 if frontal_run else pose)
            print(f"{key:22s} : {c:6.2f} s = {c / med[dec]:.2f}x decode with model loading, "
                  f"{(c - loading) / med[dec]:.2f}x without ({med[dec]:.2f} s decode)")
        for key, _, v in variants:
            print(f"{key}: cascade with --set {v}")
        b = decisions(Path(tmp) / "all_models0")
        for key in ("cascade", *(k for k, _, _ in variants)):
            a = decisions(Path(tmp) / f"{key}0")
            same = sum(a.get(v) == b.get(v) for v in b)
            print(f"decisions: {key} vs all models agree on {same}/{len(b)} inputs")
            for v, d in b.items():
                if a.get(v) != d:
                    print(f"  differs: {Path(v).name}: {key} {a.get(v)} vs all models {d}")
        counts: dict[str, int] = {}
        for v, d in b.items():
            counts[d] = counts.get(d, 0) + 1
        print("decisions (all models):", counts)
        cheap = [row for row in pq.read_table(Path(tmp) / "cascade0" / "rejected.parquet").to_pylist()
                 if row["measure"] == "yaw_range_cheap"]
        print(f"rejected by the cheap yaw: {len(cheap)} clips")


def decode_only(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


def decisions(run: Path) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for row in pq.read_table(run / "manifest.parquet").to_pylist():
        out.setdefault(row["source"], []).append("accept")
    for row in pq.read_table(run / "rejected.parquet").to_pylist():
        out.setdefault(row["source"], []).append(row["reason"])
    return {k: ",".join(sorted(v)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT of a corpus rendered here.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=["speech.enabled=false"],
                        help="Curation config override (repeatable); the speech stage is off unless "
                             "--set speech.enabled=true (issue 12 measures curation without it).")
    parser.add_argument("--skip-exhaustive", action="store_true", help="Only the curation/decode ratio.")
    parser.add_argument("--mix", choices=["realistic"], help="Render and time the realistic mix (issue 30).")
    parser.add_argument("--photos", type=Path, default=Path("out/idcal/photos"),
                        help="Held-out face photos for --mix (bench/identity_calibration.py photos).")
    parser.add_argument("--seconds", type=float, default=8.0, help="Clip length of --mix.")
    parser.add_argument("--variant", dest="variants", action="append", default=[],
                        help="--mix: also time the cascade with these overrides (KEY=VALUE[,KEY=VALUE]; "
                             "repeatable), e.g. cascade.frontal_sample_fps=0, side by side.")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    if args.mix:
        run_mix(args, workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "corpus"
        if not any(corpus.glob("*.mp4")):
            render_corpus(corpus, args.size)
        videos = [item.path for item in list_inputs([corpus]).inputs]
        config = CurateConfig.load(None, args.overrides)
        frames = 0
        decode_s, curate_s = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            with ProcessPoolExecutor(workers) as pool:
                frames = sum(pool.map(decode_only, videos))
            decode_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            curate(videos, Path(tmp) / f"run{r}", config, workers=workers, report=False)
            curate_s.append(time.perf_counter() - t0)
        d, c = statistics.median(decode_s), statistics.median(curate_s)
        print(f"{len(videos)} videos, {frames} frames, {workers} workers, {args.repeats} repeats (medians); "
              f"settings {args.overrides}")
        print(f"decode only : {d:6.2f} s ({frames / d:6.0f} frames/s)")
        print(f"curation    : {c:6.2f} s  = {c / d:.2f}x decode-only (goal <= 2x)")
        if args.skip_exhaustive:
            return
        t0 = time.perf_counter()
        exhaustive = Path(tmp) / "exhaustive"
        curate(videos, exhaustive, CurateConfig.load(None, [*args.overrides, "tracking.sample_fps=1000"]),
               workers=workers, report=False)
        e = time.perf_counter() - t0
        sampled, full = decisions(Path(tmp) / "run0"), decisions(exhaustive)
        agree = sum(sampled.get(v) == full.get(v) for v in full) / len(full)
        print(f"exhaustive  : {e:6.2f} s  -> sampled is {e / c:.1f}x faster; decisions agree on "
              f"{agree:.0%} of {len(full)} videos")
        for v in full:
            if sampled.get(v) != full.get(v):
                print(f"  differs: {Path(v).name}: sampled {sampled.get(v)} vs exhaustive {full.get(v)}")


if __name__ == "__main__":
    main()
