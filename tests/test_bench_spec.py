"""Benchmark specs: loading and validation, and `make-spec` from a curated manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lfa.bench import load_spec, make_spec, parse_model_dirs
from lfa.bench.make_spec import clip_yaw_bucket
from lfa.errors import ConfigError
from lfa.media import iter_frames, read_image, write_image
from lfa.synth import ClipSpec, HeadLibrary, render_clip


def test_spec_paths_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "refs").mkdir()
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "refs" / name, np.zeros((8, 8, 3), np.uint8))
    spec = tmp_path / "spec.jsonl"
    spec.write_text(json.dumps({"id": "x1", "reference": "refs/a.png", "prompt": "p", "labels": {"k": 1}}) + "\n\n"
                    + json.dumps({"id": "x2", "reference": ["refs/a.png", str(tmp_path / "refs" / "b.png")]}) + "\n")
    items = load_spec(spec)
    assert [i.id for i in items] == ["x1", "x2"]
    assert items[0].references == ((tmp_path / "refs" / "a.png").resolve(),) and items[0].labels == {"k": 1}
    assert len(items[1].references) == 2 and items[1].prompt == ""


@pytest.mark.parametrize("line, needle", [
    ('{"id": "a"}', "missing key(s) reference"),
    ('{"id": "a", "reference": "nope.png"}', "reference image not found"),
    ('{"id": "a b", "reference": "r.png"}', "not usable as a file name"),
    ('{"id": "a", "reference": []}', "non-empty list"),
    ("not json", "not JSON"),
    # issue 31: a key the benchmark does not know is not silently ignored
    ('{"id": "a", "reference": "r.png", "eval_referencs": ["r.png"]}',
     "unknown key 'eval_referencs' (did you mean 'eval_references'?)"),
    ('{"id": "a", "reference": "r.png", "eval_references": ["nope.png"]}', "eval_references image not found"),
    ('{"id": "a", "reference": "r.png", "eval_references": ["r.png"], "eval_reference_box": [[0, 0, 1, 1], null]}',
     "2 eval_reference_box(es) for 1 eval_references image(s)"),
])
def test_bad_spec_lines_are_config_errors_with_the_line(tmp_path, line, needle):
    write_image(tmp_path / "r.png", np.zeros((8, 8, 3), np.uint8))
    spec = tmp_path / "spec.jsonl"
    spec.write_text('{"id": "ok", "reference": "r.png"}\n' + line + "\n")
    with pytest.raises(ConfigError, match="spec.jsonl:2") as err:
        load_spec(spec)
    assert needle in err.value.message and err.value.fix


def test_eval_references_round_trip_and_are_never_handed_to_the_generator(tmp_path):
    """Issue 31: eval_references are views for scoring only; `lfa generate --spec` reads `reference` only."""
    from lfa.bench.spec import write_spec
    from lfa.generate.pipeline import GenerateOptions, generate_spec

    for name in ("front.png", "left.png", "right.png"):
        write_image(tmp_path / name, np.full((16, 16, 3), len(name), np.uint8))
    spec = tmp_path / "spec.jsonl"
    spec.write_text(json.dumps({"id": "a", "reference": "front.png", "reference_box": [1, 1, 9, 9],
                                "eval_references": ["left.png", "right.png"],
                                "eval_reference_box": [[2, 2, 8, 8], None]}) + "\n")
    [item] = load_spec(spec)
    assert item.references == ((tmp_path / "front.png").resolve(),)
    assert [p.name for p in item.eval_references] == ["left.png", "right.png"]
    assert item.eval_box(0) == (2.0, 2.0, 8.0, 8.0) and item.eval_box(1) is None
    [again] = load_spec(write_spec(tmp_path / "copy" / "spec.jsonl", [item]))
    assert again.eval_references == item.eval_references and again.eval_boxes == item.eval_boxes

    handed = []

    def generator(images, options, *, face_index=None, boxes=(), on_note=None):
        handed.append(([int(im[0, 0, 0]) for im in images], boxes))
        return np.zeros((2, 16, 16, 3), np.uint8)

    generate_spec(generator, spec, tmp_path / "videos", GenerateOptions(prompt="p", fps=8.0))
    assert handed == [([len("front.png")], ((1.0, 1.0, 9.0, 9.0),))]
    sidecar = json.loads((tmp_path / "videos" / "a.json").read_text())
    assert [Path(p).name for p in sidecar["references"]] == ["front.png"]


def test_a_models_video_may_be_webm_or_gif_and_mp4_comes_first(tmp_path):
    from lfa.bench.spec import video_path

    write_image(tmp_path / "r.png", np.zeros((8, 8, 3), np.uint8))
    spec = tmp_path / "spec.jsonl"
    spec.write_text('{"id": "a.1", "reference": "r.png"}\n{"id": "b", "reference": "r.png"}\n')
    a, b = load_spec(spec)
    gen = tmp_path / "gen"
    gen.mkdir()
    assert video_path(gen, a) == gen / "a.1.mp4"  # none yet: reported missing under the .mp4 name
    (gen / "a.1.gif").write_bytes(b"GIF89a")
    (gen / "b.webm").write_bytes(b"x")
    assert video_path(gen, a) == gen / "a.1.gif" and video_path(gen, b) == gen / "b.webm"
    (gen / "b.mp4").write_bytes(b"x")
    assert video_path(gen, b) == gen / "b.mp4"


def test_duplicate_ids_and_model_dirs(tmp_path):
    write_image(tmp_path / "r.png", np.zeros((8, 8, 3), np.uint8))
    spec = tmp_path / "spec.jsonl"
    spec.write_text('{"id": "a", "reference": "r.png"}\n{"id": "a", "reference": "r.png"}\n')
    with pytest.raises(ConfigError, match="duplicate id"):
        load_spec(spec)
    (tmp_path / "m1").mkdir()
    assert parse_model_dirs([f"one={tmp_path / 'm1'}", str(tmp_path / "m1")]) == {"one": tmp_path / "m1",
                                                                                  "m1": tmp_path / "m1"}
    with pytest.raises(ConfigError, match="not a folder"):
        parse_model_dirs([f"x={tmp_path / 'absent'}"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_model_dirs([f"x={tmp_path / 'm1'}", f"x={tmp_path / 'm1'}"])


@pytest.fixture(scope="module")
def sources(tmp_path_factory, analyzer) -> Path:
    root = tmp_path_factory.mktemp("manifest")
    heads = HeadLibrary(analyzer)
    kw = dict(duration=2.0, fps=10, width=256, height=256)
    render_clip(ClipSpec("astronaut", "yaw-sweep", **kw), root / "videos" / "sweep.mp4", heads)
    render_clip(ClipSpec("grace_hopper", "frontal", **kw), root / "videos" / "frontal.mp4", heads)
    return root


def _manifest(root: Path, *, split: bool) -> Path:
    """15 clips of 8 clusters spread over the |yaw| buckets; c0 and c1 are training clusters."""
    extents = [10, 20, 40, 50, 70, 12, 25, 35, 55, 65, 5, 80, 44, 58, 61]
    rows = []
    for i, extent in enumerate(extents):
        rows.append({
            "clip_id": f"clip{i:02d}", "source": "videos/sweep.mp4" if i % 2 == 0 else "videos/frontal.mp4",
            "start": 0.0, "end": 2.0, "cluster_id": f"c{i % 8}", "yaw_min": -extent / 2, "yaw_max": float(extent),
            "caption": f"caption {i}", "reference_time": 1.0 if i % 3 == 0 else None,
            "reference_image": None,
            # lfa curate's layout: reference frames with roles, the frontal one is the reference
            "references": ([{"role": "yaw_max", "t": 0.5}, {"role": "frontal", "t": 1.5}] if i % 3 == 1 else None),
        })
        if split:
            rows[-1]["split"] = "train" if i % 8 in (0, 1) else "test"
    path = root / ("manifest_split.parquet" if split else "manifest.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_make_spec_balances_yaw_buckets_over_held_out_clusters(sources, tmp_path, analyzer):
    manifest = _manifest(sources, split=True)
    result = make_spec(manifest, tmp_path / "bench" / "spec.jsonl", per_bucket=2, per_cluster=1, analyzer=analyzer)
    assert result.heldout_clusters == ["c2", "c3", "c4", "c5", "c6", "c7"] and result.heldout_file is None
    items = load_spec(result.spec)
    assert len(items) == len(result.items) >= 5
    clusters = [i.labels["cluster_id"] for i in items]
    assert not {"c0", "c1"} & set(clusters)  # training identities never benchmarked
    assert len(clusters) == len(set(clusters))  # one clip per identity
    assert all(count <= 2 for count in result.per_bucket.values())
    # 2 per bucket x 5 buckets asked, 6 held-out clusters of one clip each: fewer items, and said so
    assert any("asked for" in w for w in result.warnings)
    assert not any("caption" in w for w in result.warnings)
    assert sum(1 for c in result.per_bucket.values() if c) >= 4  # several yaw ranges represented
    for item in items:
        assert item.labels["yaw_bucket"] == clip_yaw_bucket(
            {"yaw_min": item.labels["yaw_min"], "yaw_max": item.labels["yaw_max"]})
        assert item.prompt.startswith("caption") and item.references[0].parent.name == "references"
        # the requested turn: the clip's own yaw range, in the labels and asked for in the prompt
        lo, hi = item.labels["target_yaw"]
        assert abs(lo - item.labels["yaw_min"]) <= 2.5 and abs(hi - item.labels["yaw_max"]) <= 2.5
        assert f"to their left by about {hi:.0f} degrees" in item.prompt
        ref = read_image(item.references[0])
        n = int(item.id[4:])
        source = sources / ("videos/sweep.mp4" if n % 2 == 0 else "videos/frontal.mp4")
        if n % 3 in (0, 1):  # reference_time, or the frontal entry of references: that very frame
            [frame] = list(iter_frames(source, times=[1.0 if n % 3 == 0 else 1.5]))
            assert np.array_equal(ref, frame.image)
        else:  # searched: the most frontal frame of the clip
            [face] = analyzer.analyze(ref)
            assert abs(face.yaw) < 10, (item.id, face.yaw)


def test_make_spec_without_split_holds_out_clusters_and_says_which(sources, tmp_path):
    manifest = _manifest(sources, split=False)
    out = tmp_path / "spec.jsonl"
    proc = subprocess.run([sys.executable, "-m", "lfa", "bench", "make-spec", "--manifest", str(manifest), "--out",
                           str(out), "--holdout", "0.5", "--per-bucket", "1", "--seed", "3"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stdout and "asked for" in proc.stdout
    heldout = json.loads((tmp_path / "heldout_clusters.json").read_text())
    assert len(heldout["clusters"]) == 4 and heldout["seed"] == 3
    items = load_spec(out)
    assert items and {i.labels["cluster_id"] for i in items} <= set(heldout["clusters"])
    # the tables fit 80 columns even in a wider terminal, say what "available" counts, and give every held-out
    # clip that is not an item its reason
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines if line[:1] in "┏┃┡│└") <= 80
    assert "held-out clips: the clips of held-out clusters whose largest |yaw| is in the bucket" in " ".join(
        " ".join(lines).split())
    candidates = [r for r in pq.read_table(manifest).to_pylist() if f"c{int(r['clip_id'][4:]) % 8}" in
                  heldout["clusters"]]
    taken = {i.id for i in items}
    section = lines[next(i for i, line in enumerate(lines) if "held-out clips not taken" in line):]
    section = section[: next(i for i, line in enumerate(section) if line.startswith("└"))]
    why = {line.split()[1]: line for line in section if line.startswith("│ clip")}
    assert set(why) == {r["clip_id"] for r in candidates} - taken and len(why) == len(candidates) - len(taken)
    assert all("--per-cluster" in line or "bucket full" in line for line in why.values()), why
    assert "kept for training" in proc.stdout


def test_manifest_missing_a_column_is_a_config_error(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist([{"clip_id": "a", "source": "x.mp4"}]), path)
    with pytest.raises(ConfigError, match="lacks column") as err:
        make_spec(path, tmp_path / "spec.jsonl")
    assert "cluster_id" in err.value.message and "docs/BENCH.md" in err.value.fix


def test_spec_names_the_reference_face_and_generate_and_bench_take_that_face(tmp_path, heads, analyzer):
    """Issue 22: make-spec's reference frame held two faces; generate stopped ("2 faces found") and its
    --face-index 0 took the best detection score while the benchmark scored the largest face. The spec now
    carries the curated person's box and both take the face at it; without a box, both take the largest."""
    from lfa.bench import BenchConfig
    from lfa.bench.extract import Extractor
    from lfa.face.choose import box_area, box_iou
    from lfa.generate.pipeline import pick_faces
    from lfa.synth.clip import SecondFace

    video = tmp_path / "videos" / "two.mp4"
    render_clip(ClipSpec("astronaut", "frontal", duration=1.0, fps=5, width=512, height=320, face_size=0.28,
                         background="field", second_face=SecondFace("grace_hopper", relative_size=0.75)), video, heads)
    # as in a curated run: boxes are in the frames curation decoded (tracking.decode_max_side of its config.json)
    (tmp_path / "config.json").write_text(json.dumps({"tracking": {"decode_max_side": 384}}))
    [frame] = list(iter_frames(video, times=[0.4], max_side=384))
    found = analyzer.find(frame.image)
    assert len(found) == 2
    person = min(found, key=lambda f: box_area(f.box))  # the curated track follows the smaller face
    rows = [{"clip_id": "two", "source": "videos/two.mp4", "start": 0.0, "end": 1.0, "cluster_id": "p",
             "yaw_min": -20.0, "yaw_max": 20.0, "split": "test",
             "references": [{"role": "frontal", "t": 0.4, "box": [float(v) for v in person.box]}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "manifest.parquet")
    result = make_spec(tmp_path / "manifest.parquet", tmp_path / "bench" / "spec.jsonl", analyzer=analyzer)
    [item] = load_spec(result.spec)
    assert item.box(0) is not None and box_iou(item.box(0), person.box) > 0.9
    image = read_image(item.references[0])
    assert image.shape[:2] == (240, 384)  # the frame curation saw, where the box belongs

    [taken], notes = pick_faces(analyzer, [image], boxes=item.boxes)  # lfa generate --spec
    assert box_iou(taken.box, person.box) > 0.9 and not notes
    extractor = Extractor(BenchConfig(identities=("dlib",), pose="none"))
    record = extractor.analyze_image(image, box=item.box(0))  # lfa bench's reference
    assert record.n_faces == 2 and box_iou(record.box, person.box) > 0.9

    # a spec without boxes: one rule everywhere, the largest face, and generate says which it took
    largest = max(found, key=lambda f: box_area(f.box))
    [taken], notes = pick_faces(analyzer, [image])
    assert box_iou(taken.box, largest.box) > 0.9 and "largest" in notes[0] and "2 faces" in notes[0]
    assert box_iou(extractor.analyze_image(image).box, largest.box) > 0.9
    # a box where no face is: a one-line error naming the fix
    with pytest.raises(ConfigError, match="no face at") as err:
        pick_faces(analyzer, [image], boxes=((0.0, 0.0, 20.0, 20.0),))
    assert "make-spec" in err.value.fix


def test_every_option_of_lfa_bench_and_make_spec_has_a_help_text():
    import typer

    from lfa.cli.bench import app

    group = typer.main.get_command(app)
    commands = {"lfa bench": group, **{f"lfa bench {n}": c for n, c in group.commands.items()}}
    missing = [f"{name} {p.opts[0]}" for name, command in commands.items() for p in command.params
               if p.param_type_name == "option" and p.name != "help" and not (p.help or "").strip()]
    assert not missing, missing
    assert "make-spec" in group.commands


def test_make_spec_writes_eval_references_past_45_degrees_from_the_persons_other_clips(curated_corpus, tmp_path):
    """Issue 31: on a curated run of turning clips, every item gets evaluation views (never its reference)
    reaching past 45° on each side its person's held-out clips reach, preferring the person's other clips,
    and the table and labels say where each view came from."""
    from typer.testing import CliRunner

    from lfa.bench.make_spec import view_slot
    from lfa.cli import app

    out = tmp_path / "spec.jsonl"
    done = CliRunner().invoke(app, ["bench", "make-spec", "--manifest", str(curated_corpus / "manifest.parquet"),
                                    "--out", str(out), "--per-cluster", "2"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "evaluation views (eval_references: scoring only)" in done.output
    assert max(len(line) for line in lines if line[:1] in "┏┃┡│└") <= 80
    clips = {r["clip_id"]: r for r in pq.read_table(curated_corpus / "manifest.parquet").to_pylist()}
    items = load_spec(out)
    assert items
    dense = 0
    for item in items:
        assert item.eval_references and len(item.eval_boxes) == len(item.eval_references)
        assert item.references[0] not in item.eval_references
        views = item.labels["eval_views"]
        assert len(views) == len(item.eval_references)
        mine = [c for c in clips.values() if str(c["cluster_id"]) == item.labels["cluster_id"]]
        for side in (1, -1):  # where the person's clips reach past 45° on a side, a view there does too
            reach = max(side * c[key] for c in mine for key in ("yaw_min", "yaw_max"))
            if reach > 50:
                assert any(side * v["yaw"] > 45 for v in views), (item.id, side, views)
            if reach > 75:  # dense: the extreme and a view in between (the main track's frames), 15° slots apart
                far = sorted(side * v["yaw"] for v in views if side * v["yaw"] > 45)
                assert len(far) >= 2 and any(v["role"] == "track" for v in views), (item.id, side, views)
                dense += 1
        slots = [view_slot(v["yaw"], v["pitch"]) for v in views]
        assert len(slots) == len(set(slots)), slots  # one view per slot
        for v in views:  # every view is a curated reference frame of the person, named in the labels
            assert str(clips[v["clip"]]["cluster_id"]) == item.labels["cluster_id"]
            assert v["same_clip"] == (v["clip"] == item.id)
        if len(mine) > 1:  # the person has other held-out clips: most views come from them
            assert sum(not v["same_clip"] for v in views) > len(views) / 2
        table = lines[next(i for i, line in enumerate(lines) if "evaluation views" in line):]
        row = next(line for line in table if line.startswith(f"│ {item.id[:10]}"))
        assert str(sum(not v["same_clip"] for v in views)) in row
    assert dense  # some person turns past 75°: the dense views were checked
    image = read_image(items[0].eval_references[0])
    assert image.ndim == 3


def test_make_spec_view_candidates_cover_yaw_densely_from_the_extremes_and_the_track_between():
    """Issue 31: one view slot per side and 15° of |yaw| (the pose-matching window), filled from the
    curated extremes and the main track's frames in between, so a person whose 80° view shows no face
    still has a pose-matched view near 67°; other clips of the person first, then nearest the slot's middle."""
    from lfa.bench.make_spec import VIEW_TRIES, candidate_views, slot_middle, view_slot

    assert [view_slot(y, 0.0) for y in (10, 20, 50, -62, 74.9, 75, 88, -95)] == [
        None, "+15_30", "+45_60", "-60_75", "+60_75", "+75_", "+75_", "-75_"]
    assert view_slot(5.0, 25.0) == "up" and view_slot(5.0, -25.0) == "down"
    assert slot_middle(62.0) == slot_middle(-70.0) == 67.5 and slot_middle(80.0) == 82.5
    own = {"clip_id": "a", "cluster_id": "p", "references": [
        {"role": "frontal", "t": 0.0, "yaw": 0.0, "pitch": 0.0},
        {"role": "yaw_max", "t": 4.0, "yaw": 84.0, "pitch": 0.0, "box": [1.0, 2.0, 3.0, 4.0]},
        {"role": "yaw_min", "t": 8.0, "yaw": -50.0, "pitch": 0.0}]}
    other = {"clip_id": "b", "cluster_id": "p", "references": []}
    stranger = {"clip_id": "c", "cluster_id": "q", "references": [{"role": "yaw_max", "t": 1.0, "yaw": 70.0}]}
    tracks = {"a": [{"t": t / 10, "yaw": y, "pitch": 0.0, "box": [0.0, 0.0, 9.0, 9.0]}
                    for t, y in enumerate([0, 20, 35, 47, 52, 58, 61, 66, 68, 70, 73, 79, 86, -10, -40, -50])]
              + [{"t": 4.0, "yaw": 84.0, "pitch": 0.0, "box": [0.0, 0.0, 9.0, 9.0]}],
              "b": [{"t": 0.5, "yaw": 64.0, "pitch": 0.0, "box": None}],
              "c": [{"t": 0.5, "yaw": 67.5, "pitch": 0.0, "box": None}]}
    views = candidate_views(own, [own, other, stranger], tracks=tracks)
    assert all(v["clip"]["cluster_id"] == "p" for v in views)  # never another person's frames
    by_slot: dict[str, list] = {}
    for v in views:
        by_slot.setdefault(v["slot"], []).append(v)
    assert set(by_slot) == {"+15_30", "+30_45", "+45_60", "+60_75", "+75_", "-30_45", "-45_60"}
    far = by_slot["+60_75"]  # the person's other clip first, then the own clip nearest 67.5°, VIEW_TRIES of them
    assert [(v["clip"]["clip_id"], v["yaw"]) for v in far] == [("b", 64.0), ("a", 68.0), ("a", 66.0), ("a", 70.0)]
    assert sum(v["clip"]["clip_id"] == "a" for v in far) == VIEW_TRIES
    # the curated extreme stays a candidate (its role and box kept), not duplicated by its track frame
    assert [(v["role"], v["yaw"]) for v in by_slot["+75_"]] == [("yaw_max", 84.0), ("track", 79.0), ("track", 86.0)]
    extreme = next(v for v in by_slot["+75_"] if v["role"] == "yaw_max")
    assert extreme["box"] == [1.0, 2.0, 3.0, 4.0] and sum(v["yaw"] == 84.0 for v in by_slot["+75_"]) == 1
    # without frames.parquet: the curated extremes alone, as before
    assert {v["slot"] for v in candidate_views(own, [own, other])} == {"+75_", "-45_60"}
