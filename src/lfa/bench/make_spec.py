"""``make_spec``: a benchmark spec from a curated manifest — held-out identity clusters, balanced over
yaw ranges, each reference the clip's frontal frame.

Manifest contract (Parquet, one row per clip; docs/BENCH.md):

=================  ========  ===========================================================================
column             type      meaning
=================  ========  ===========================================================================
clip_id            string    unique clip id; becomes the spec ``id`` (letters, digits, ``._-``)
source             string    video file; relative paths resolve against the manifest's folder
start, end         float     the clip's span in ``source``, seconds
cluster_id         string    identity cluster (the same person across clips); int is accepted
yaw_min, yaw_max   float     smallest and largest yaw over the clip, degrees, lfa convention
caption            string    optional: the clip's caption, used as the prompt
split              string    optional: ``train`` marks clusters seen in training (never benchmarked)
reference_image    string    optional: an image of the clip's most frontal face
reference_time     float     optional: time in ``source`` (s) of the clip's most frontal frame
references         list      optional: ``lfa curate``'s reference frames, structs with ``role``, ``t`` and
                             ``box``; the one with role ``frontal`` gives the reference time and the box of
                             the clip's person in that frame
=================  ========  ===========================================================================

``lfa curate``'s manifest.parquet satisfies the contract as it is. Its boxes are in the frames curation
analysed (scaled to ``tracking.decode_max_side``, read from the run's ``config.json`` beside the manifest):
the reference frame is read at that size too.

Without ``reference_image`` or ``reference_time`` the frontal frame is searched for: frames at 2 fps
in ``[start, end)`` through the perception stack, the one with the smallest ``yaw² + pitch²`` (of the
largest face). Every reference is checked by detection: the spec's ``reference_box`` is the detected face
overlapping the curated box (:mod:`lfa.face.choose`; without a curated box, the largest face), the face
``lfa generate --spec`` and ``lfa bench`` take; a clip whose reference shows no such face is replaced by
another of its |yaw| bucket.

**Evaluation views** (``eval_references``, scoring only: never handed to a generator): per item, one view
per side (yaw > 0, yaw < 0) and 15° step of |yaw| past the frontal bucket (``VIEW_EDGES``: 15–30, 30–45,
45–60, 60–75, 75° and beyond; 15° is the pose-matching window, ``lfa.face.identity.score.MAX_DYAW``, so a
frame between two views is within 15° of one of them), and one looking up and one looking down. A view
comes from ``lfa curate``'s reference frames at the extremes of yaw and pitch (roles ``yaw_min``,
``yaw_max``, ``pitch_min``, ``pitch_max``) and, where the run's ``frames.parquet`` is beside the
manifest, from the clip's main-track frames in between (role ``track``: per clip and step, the frames
nearest the step's middle, ``VIEW_TRIES`` of them); the person's *other* held-out clips before the item's
own clip. Each is checked by detection at its curated box (the next candidate of the step is tried when
no face is found there). The item's labels say where each view came from (``eval_views``).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.bench.metrics import YAW_EDGES, bucket_labels, bucket_of
from lfa.bench.spec import ID_PATTERN, Box, SpecItem, write_spec
from lfa.errors import ConfigError, LfaError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.choose import choose_face
from lfa.face.types import Face
from lfa.media import iter_frames, read_image, sample_times, write_image

REQUIRED = ("clip_id", "source", "start", "end", "cluster_id", "yaw_min", "yaw_max")
OPTIONAL = ("caption", "split", "reference_image", "reference_time", "references")
SEARCH_FPS = 2.0
VIEW_ROLES = ("yaw_min", "yaw_max", "pitch_min", "pitch_max")  # lfa curate's reference frames used as views
PITCH_VIEW_DEG = 15.0  # a view with |yaw| under the first bucket edge is a slot of its own past this pitch
VIEW_EDGES = (15.0, 30.0, 45.0, 60.0, 75.0)  # |yaw| steps of the view slots (MAX_DYAW apart); the last is open
VIEW_TRIES = 3  # main-track frames per clip and slot offered as views (the next is tried where no face is found)
FAR_VIEW_DEG = 45.0  # the table notes items without a view past this |yaw|


@dataclass
class NotTaken:
    """A held-out clip that did not become an item, and why (one reason)."""

    clip_id: str
    cluster_id: str
    bucket: str
    reason: str


@dataclass
class ItemViews:
    """An item's evaluation views: how many from its own clip and from the person's other clips, and
    their yaw reach."""

    item: str
    cluster_id: str
    own: int = 0
    other: int = 0
    yaw_lo: float = math.nan  # most negative view yaw (subject's right)
    yaw_hi: float = math.nan  # most positive view yaw (subject's left)
    note: str = ""

    @property
    def far(self) -> bool:
        """A view past ``FAR_VIEW_DEG`` of |yaw|."""
        return max(abs(np.nan_to_num(self.yaw_lo)), abs(np.nan_to_num(self.yaw_hi))) > FAR_VIEW_DEG


@dataclass
class MakeSpecResult:
    spec: Path
    items: list[SpecItem]
    heldout_clusters: list[str]
    per_bucket: dict[str, int]
    available: dict[str, int]  # held-out clips (candidates) per |yaw| bucket of the clip
    not_taken: list[NotTaken] = field(default_factory=list)  # every candidate that is not an item
    heldout_file: Path | None = None
    warnings: list[str] = field(default_factory=list)  # fewer items than asked, empty captions
    training: tuple[int, int] = (0, 0)  # (clips, clusters) not held out: never candidates
    views: list[ItemViews] = field(default_factory=list)  # per item, its eval_references


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a manifest, validated against the contract."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}", "pass the curated manifest.parquet (docs/BENCH.md)")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's own error types
        raise ConfigError(f"{path} is not a readable Parquet file ({exc})",
                          "pass the curated manifest.parquet") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ConfigError(f"manifest {path} lacks column(s) {', '.join(missing)}",
                          f"a manifest needs {', '.join(REQUIRED)} (docs/BENCH.md, 'Manifest contract')")
    rows = table.select([c for c in REQUIRED + OPTIONAL if c in table.column_names]).to_pylist()
    base = path.resolve().parent
    seen: set[str] = set()
    for r in rows:
        r["clip_id"] = str(r["clip_id"])
        r["cluster_id"] = str(r["cluster_id"])
        if not ID_PATTERN.match(r["clip_id"]):
            raise ConfigError(f"manifest clip_id {r['clip_id']!r} is not usable as a file name",
                              "use letters, digits, '.', '_' and '-' in clip ids")
        if r["clip_id"] in seen:
            raise ConfigError(f"manifest has clip_id {r['clip_id']!r} twice", "make clip ids unique")
        seen.add(r["clip_id"])
        for key in ("source", "reference_image"):
            if r.get(key):
                p = Path(r[key])
                r[key] = p if p.is_absolute() else base / p
        for key in ("start", "end", "yaw_min", "yaw_max"):
            if r[key] is None or not math.isfinite(float(r[key])):
                raise ConfigError(f"manifest clip {r['clip_id']}: {key} is missing", f"fill {key} for every clip")
            r[key] = float(r[key])
        frontal = [ref for ref in (r.get("references") or []) if ref and ref.get("role") == "frontal"]
        if frontal and frontal[0].get("t") is not None and r.get("reference_time") in (None, frontal[0]["t"]):
            r["reference_time"] = float(frontal[0]["t"])
            box = frontal[0].get("box")
            r["reference_box"] = tuple(float(v) for v in box) if box is not None and len(box) == 4 else None
    return rows


def curated_frame_side(manifest: str | Path) -> int | None:
    """Longest side of the frames ``lfa curate`` analysed, from its run's config.json beside the manifest
    (its boxes are in those frames); None (full size) for a manifest without one."""
    from lfa.curate.config import CurateConfig

    config = Path(manifest).resolve().parent / "config.json"
    if not config.is_file():
        return None
    try:
        return CurateConfig.load(config).tracking.decode_max_side
    except ConfigError:  # another tool's config.json
        return None


def heldout_clusters(rows: list[dict[str, Any]], holdout: float, seed: int) -> tuple[list[str], str]:
    """Clusters the spec may use, and the rule that chose them.

    With a ``split`` column: every cluster with no clip in ``train``. Without it: a seeded random
    ``holdout`` share of the clusters (at least one), which training must then exclude
    (``heldout_clusters.json`` is written beside the spec).
    """
    clusters = sorted({r["cluster_id"] for r in rows})
    if any("split" in r for r in rows) and any(r.get("split") is not None for r in rows):
        train = {r["cluster_id"] for r in rows if str(r.get("split") or "").lower() == "train"}
        return [c for c in clusters if c not in train], "clusters with no clip in split 'train'"
    if not 0 < holdout <= 1:
        raise ConfigError(f"holdout must be in (0, 1], got {holdout}", "e.g. --holdout 0.1")
    rng = np.random.default_rng(seed)
    k = max(1, math.ceil(holdout * len(clusters)))
    chosen = sorted(rng.permutation(clusters)[:k].tolist())
    return chosen, f"seeded random {holdout:g} of the clusters (seed {seed})"


def clip_yaw_bucket(row: dict[str, Any], edges: tuple[float, ...] = YAW_EDGES) -> str:
    """Bucket of the clip's largest |yaw|: how far the head turns in it."""
    extent = max(abs(row["yaw_min"]), abs(row["yaw_max"]))
    return bucket_labels(edges)[int(bucket_of(np.array([extent]), edges)[0])]


def select_balanced(rows: list[dict[str, Any]], per_bucket: int, per_cluster: int, seed: int,
                    edges: tuple[float, ...] = YAW_EDGES, accept: Callable[[dict[str, Any]], str | None] | None = None
                    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Up to ``per_bucket`` clips per yaw bucket, at most ``per_cluster`` per identity cluster; buckets
    take turns so that no bucket uses up a cluster the others need. ``accept(row)`` (optional) gives the
    reason a clip cannot be used (None: usable); the next clip of its bucket is tried instead. Returns the
    clips taken and, for every other clip, why it was not taken."""
    rng = np.random.default_rng(seed)
    labels = bucket_labels(edges)
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["clip_id"]):
        by_bucket[clip_yaw_bucket(r, edges)].append(r)
    queues = {b: [by_bucket[b][i] for i in rng.permutation(len(by_bucket[b]))] for b in labels}
    taken: dict[str, list[dict[str, Any]]] = defaultdict(list)
    why: dict[str, str] = {}
    per_cluster_count: Counter[str] = Counter()
    progress = True
    while progress:
        progress = False
        for b in labels:
            if len(taken[b]) >= per_bucket:
                continue
            q = queues[b]
            while q:
                r = q.pop(0)
                if per_cluster_count[r["cluster_id"]] >= per_cluster:
                    why[r["clip_id"]] = f"--per-cluster {per_cluster} reached"
                    continue
                reason = accept(r) if accept else None
                if reason:
                    why[r["clip_id"]] = reason
                    continue
                taken[b].append(r)
                per_cluster_count[r["cluster_id"]] += 1
                progress = True
                break
    for b in labels:
        for r in queues[b]:
            why[r["clip_id"]] = f"bucket full: --per-bucket {per_bucket}"
    return [r for b in labels for r in taken[b]], why


def target_yaw(row: dict[str, Any]) -> list[float]:
    """The yaw range the item asks for (``labels.target_yaw``): what the source clip itself reached,
    rounded to 5 degrees, so that the requested turn is one a real head made."""
    return [float(5 * round(row["yaw_min"] / 5)), float(5 * round(row["yaw_max"] / 5))]


def turn_prompt(caption: str, target: list[float]) -> str:
    """The caption (if any) and a sentence asking for the turn of ``target`` (lfa's sign: yaw > 0 is the
    subject's own left)."""
    lo, hi = target
    sides = []
    if hi > 0:
        sides.append(f"to their left by about {hi:.0f} degrees")
    if lo < 0:
        sides.append(f"to their right by about {-lo:.0f} degrees")
    ask = ("The person turns their head " + " and then ".join(sides) + "." if sides
           else "The person keeps facing the camera.")
    caption = caption.strip()
    return f"{caption.rstrip('.')}. {ask}" if caption else ask


def frontal_frame(row: dict[str, Any], analyzer: FaceAnalyzer) -> tuple[np.ndarray, Face] | None:
    """The frame of the clip with the smallest yaw² + pitch² (of its largest face) among frames at 2 fps, and
    that face (None: no posed face)."""
    times = sample_times(row["end"], fps=SEARCH_FPS, start=row["start"])
    best, best_score = None, math.inf
    for f in iter_frames(row["source"], times=times):
        face = choose_face(analyzer.analyze(f.image))
        if face is None or math.isnan(face.yaw):
            continue
        score = face.yaw ** 2 + face.pitch ** 2
        if score < best_score:
            best, best_score = (f.image, face), score
    return best


def reference_face(row: dict[str, Any], analyzer: Callable[[], FaceAnalyzer], frame_side: int | None
                   ) -> tuple[np.ndarray, Box] | str:
    """The clip's reference image and the box of its person's face there, or why there is none: the
    detected face overlapping the manifest's box (read at ``frame_side``, the size curation saw), else the
    largest face."""
    if row.get("reference_image"):
        image, hint = read_image(row["reference_image"]), None
    elif row.get("reference_time") is not None and math.isfinite(float(row["reference_time"])):
        frames = list(iter_frames(row["source"], times=[float(row["reference_time"])], max_side=frame_side))
        if not frames:
            return "reference frame unreadable"
        image, hint = frames[0].image, row.get("reference_box")
    else:
        found = frontal_frame(row, analyzer())
        if found is None:
            return "no posed face in the clip"
        return found[0], tuple(float(v) for v in found[1].box)  # type: ignore[return-value]
    face = choose_face(analyzer().find(image), hint)
    if face is None:
        return "no face at the curated box" if hint is not None else "no face in the reference"
    return image, tuple(float(v) for v in face.box)  # type: ignore[return-value]


def view_slot(yaw: float, pitch: float, edges: tuple[float, ...] = VIEW_EDGES) -> str | None:
    """The slot a view fills: side and |yaw| step past the frontal one (``"+45_60"``, the last ``"+75_"``),
    or for a near-frontal view looking up or down past ``PITCH_VIEW_DEG``, ``"up"`` / ``"down"``; None for a
    frontal view."""
    if math.isnan(yaw):
        return None
    b = int(np.searchsorted(np.asarray(edges), abs(yaw), side="right"))
    if b > 0:
        hi = f"{edges[b]:g}" if b < len(edges) else ""
        return f"{'+' if yaw > 0 else '-'}{edges[b - 1]:g}_{hi}"
    if not math.isnan(pitch) and abs(pitch) > PITCH_VIEW_DEG:
        return "up" if pitch > 0 else "down"
    return None


def slot_middle(yaw: float, edges: tuple[float, ...] = VIEW_EDGES) -> float:
    """The middle |yaw| of the view slot ``yaw`` falls in (the open last slot: its edge + half a step)."""
    b = int(np.searchsorted(np.asarray(edges), abs(yaw), side="right"))
    if b == 0:
        return 0.0
    lo = edges[b - 1]
    hi = edges[b] if b < len(edges) else lo + (edges[-1] - edges[-2] if len(edges) > 1 else 15.0)
    return (lo + hi) / 2


def track_frames(manifest: str | Path, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per clip of ``rows``, its main track's posed frames from the ``frames.parquet`` beside the manifest
    (``lfa curate``'s run): ``t``, ``box``, ``yaw``, ``pitch``; empty without the file or a ``main_track``."""
    import pyarrow.parquet as pq

    run = Path(manifest).resolve().parent
    frames = run / "frames.parquet"
    if not frames.is_file():
        return {}
    try:
        manifest_t = pq.read_table(manifest, columns=["clip_id", "main_track"])
        table = pq.read_table(frames, columns=["clip_id", "track", "t", "box", "yaw", "pitch"])
    except Exception:  # not lfa curate's tables: views from the reference frames alone
        return {}
    wanted = {str(r["clip_id"]) for r in rows}
    main = {str(r["clip_id"]): r["main_track"] for r in manifest_t.to_pylist() if str(r["clip_id"]) in wanted}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in table.to_pylist():
        clip = str(r["clip_id"])
        if clip in main and main[clip] == r["track"] and r["yaw"] is not None and math.isfinite(r["yaw"]) \
                and r["t"] is not None:
            out[clip].append(r)
    return out


def candidate_views(row: dict[str, Any], candidates: list[dict[str, Any]], edges: tuple[float, ...] = VIEW_EDGES,
                    tracks: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The frames that could be ``row``'s evaluation views, best first per slot: the person's other
    held-out clips before the item's own clip, then the nearer the slot's middle |yaw| (the up/down slots:
    the larger |pitch|). Curated reference frames (roles) and, from ``tracks``, up to ``VIEW_TRIES``
    main-track frames per clip and slot (role ``track``)."""
    out = []
    for clip in candidates:
        if clip["cluster_id"] != row["cluster_id"]:
            continue
        frames = [dict(ref) for ref in clip.get("references") or []
                  if ref and ref.get("role") in VIEW_ROLES and ref.get("t") is not None and ref.get("yaw") is not None]
        seen = {round(float(ref["t"]), 3) for ref in frames}
        per_slot: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in (tracks or {}).get(clip["clip_id"], []):
            slot = view_slot(float(f["yaw"]), math.nan, edges)
            if slot is not None and round(float(f["t"]), 3) not in seen:
                per_slot[slot].append({**f, "role": "track"})
        for slot, fs in per_slot.items():
            frames += sorted(fs, key=lambda f: (abs(abs(f["yaw"]) - slot_middle(f["yaw"], edges)), f["t"]))[:VIEW_TRIES]
        for ref in frames:
            yaw, pitch = float(ref["yaw"]), float(ref["pitch"] if ref.get("pitch") is not None else math.nan)
            slot = view_slot(yaw, pitch, edges)
            if slot is not None:
                out.append({"clip": clip, "role": ref["role"], "t": float(ref["t"]), "box": ref.get("box"),
                            "yaw": yaw, "pitch": pitch, "slot": slot, "own": clip["clip_id"] == row["clip_id"]})

    def rank(v: dict[str, Any]) -> float:
        if v["slot"] in ("up", "down"):
            return -abs(np.nan_to_num(v["pitch"]))
        return abs(abs(v["yaw"]) - slot_middle(v["yaw"], edges))

    return sorted(out, key=lambda v: (v["slot"], v["own"], rank(v), v["clip"]["clip_id"], v["t"], v["role"]))


def view_image(view: dict[str, Any], analyzer: Callable[[], FaceAnalyzer], frame_side: int | None
               ) -> tuple[np.ndarray, Box] | None:
    """The view's frame (at the size curation saw) and the box of the person's face there, or None when no
    face overlaps the curated box."""
    frames = list(iter_frames(view["clip"]["source"], times=[view["t"]], max_side=frame_side))
    if not frames:
        return None
    box = view["box"]
    face = choose_face(analyzer().find(frames[0].image), tuple(box) if box is not None and len(box) == 4 else None)
    return None if face is None else (frames[0].image, tuple(float(v) for v in face.box))  # type: ignore[return-value]


def make_spec(manifest: str | Path, out: str | Path, *, n_items: int = 100, per_bucket: int | None = None,
              per_cluster: int = 1, holdout: float = 0.1, seed: int = 0, edges: tuple[float, ...] = YAW_EDGES,
              analyzer: FaceAnalyzer | None = None, eval_views: bool = True) -> MakeSpecResult:
    """Write ``out`` (JSONL), its reference images in ``<out folder>/references/`` (evaluation views in
    ``references/views/``) and, when the manifest has no ``split`` column, ``heldout_clusters.json`` beside
    it. ``eval_views=False`` writes no ``eval_references``."""
    out = Path(out)
    rows = read_manifest(manifest)
    clusters, rule = heldout_clusters(rows, holdout, seed)
    if not clusters:
        raise ConfigError("no identity cluster is held out from training",
                          "mark fewer clusters as split 'train', or add clusters to the manifest")
    allowed = set(clusters)
    candidates = [r for r in rows if r["cluster_id"] in allowed]
    n_buckets = len(edges) - 1
    per_bucket_given = per_bucket is not None
    per_bucket = per_bucket if per_bucket is not None else math.ceil(n_items / n_buckets)
    if per_bucket < 1 or per_cluster < 1:
        raise ConfigError("per_bucket and per_cluster must be >= 1", "e.g. --per-bucket 20 --per-cluster 1")
    available = Counter(clip_yaw_bucket(r, edges) for r in candidates)
    frame_side = curated_frame_side(manifest)
    state: dict[str, FaceAnalyzer] = {}

    def get_analyzer() -> FaceAnalyzer:
        if "a" not in state:
            state["a"] = analyzer or FaceAnalyzer(AnalyzerConfig(identity="none"))
        return state["a"]

    references: dict[str, tuple[np.ndarray, Box]] = {}

    def accept(row: dict[str, Any]) -> str | None:
        try:
            found = reference_face(row, get_analyzer, frame_side)
        except LfaError as exc:
            return exc.message
        if isinstance(found, str):
            return found
        references[row["clip_id"]] = found
        return None

    chosen, why = select_balanced(candidates, per_bucket, per_cluster, seed, edges, accept)
    tracks = track_frames(manifest, candidates) if eval_views else {}
    ref_dir = out.parent / "references"
    ref_dir.mkdir(parents=True, exist_ok=True)
    items, item_views = [], []
    written: dict[tuple[str, str], tuple[Path, Box] | None] = {}  # (clip, role) -> view image and box
    for r in chosen:
        image, box = references[r["clip_id"]]
        ref_path = ref_dir / f"{r['clip_id']}.png"
        write_image(ref_path, image)
        target = target_yaw(r)
        labels = {"cluster_id": r["cluster_id"], "yaw_bucket": clip_yaw_bucket(r, edges), "target_yaw": target,
                  "yaw_min": r["yaw_min"], "yaw_max": r["yaw_max"], "source": str(r["source"]),
                  "start": r["start"], "end": r["end"]}
        views: list[tuple[Path, Box]] = []
        info = ItemViews(r["clip_id"], r["cluster_id"])
        if eval_views:
            filled: set[str] = set()
            used = []
            for v in candidate_views(r, candidates, VIEW_EDGES, tracks):
                if v["slot"] in filled:
                    continue
                key = (v["clip"]["clip_id"], v["role"] if v["role"] != "track" else f"t{v['t']:.3f}")
                if key not in written:
                    found = view_image(v, get_analyzer, frame_side)
                    if found is not None:
                        path = ref_dir / "views" / f"{key[0]}.{key[1]}.png"
                        write_image(path, found[0])
                        found = (path, found[1])
                    written[key] = found
                if written[key] is None:
                    continue
                filled.add(v["slot"])
                views.append(written[key])  # type: ignore[arg-type]
                used.append(v)
            if used:
                labels["eval_views"] = [{"clip": v["clip"]["clip_id"], "role": v["role"], "t": round(v["t"], 3),
                                         "yaw": round(v["yaw"], 1),
                                         "pitch": round(v["pitch"], 1), "same_clip": v["own"]} for v in used]
            info.own, info.other = sum(v["own"] for v in used), sum(not v["own"] for v in used)
            yaws = [v["yaw"] for v in used]
            info.yaw_lo, info.yaw_hi = (min(yaws), max(yaws)) if yaws else (math.nan, math.nan)
            if not any(ref.get("role") in VIEW_ROLES for c in candidates if c["cluster_id"] == r["cluster_id"]
                       for ref in c.get("references") or [] if ref):
                info.note = "no curated reference frames"
            elif not info.far:
                info.note = f"no view past {FAR_VIEW_DEG:.0f}°"
        item_views.append(info)
        items.append(SpecItem(r["clip_id"], (ref_path,), turn_prompt(str(r.get("caption") or ""), target), labels,
                              (box,), tuple(p for p, _ in views), tuple(b for _, b in views)))
    not_taken = [NotTaken(r["clip_id"], r["cluster_id"], clip_yaw_bucket(r, edges), why[r["clip_id"]])
                 for r in sorted(candidates, key=lambda r: r["clip_id"]) if r["clip_id"] in why]
    if not items:
        reasons = "; ".join(f"{n}x {why}" for why, n in Counter(x.reason for x in not_taken).most_common(3))
        raise ConfigError(f"no clip could be selected for the spec ({reasons or 'no held-out clip'})",
                          "check the manifest's cluster_id/split columns and the reference frames")
    write_spec(out, items)
    heldout_file = None
    if rule.startswith("seeded"):
        heldout_file = out.parent / "heldout_clusters.json"
        heldout_file.write_text(json.dumps({"clusters": clusters, "rule": rule, "seed": seed,
                                            "manifest": str(Path(manifest).resolve())}, indent=1))
    per = Counter(it.labels["yaw_bucket"] for it in items)
    warnings = []
    wanted = n_buckets * per_bucket if per_bucket_given else n_items
    if len(items) < wanted:
        short = [b for b in bucket_labels(edges) if per.get(b, 0) < per_bucket]
        warnings.append(f"{len(items)} items written, {wanted} asked for: too few usable held-out clips in |yaw| "
                        f"bucket(s) {', '.join(b.replace('_', '–') for b in short)} (reasons above); add clips, "
                        "raise --per-cluster or --holdout, or lower --n/--per-bucket")
    empty = sum(not r.get("caption") for r in chosen)
    if empty:
        warnings.append(f"{empty} item(s) had no caption: their prompt only asks for the head turn; add a caption "
                        "column to the manifest for prompts that describe the scene")
    training = [r for r in rows if r["cluster_id"] not in allowed]
    return MakeSpecResult(out, items, clusters, {b: per.get(b, 0) for b in bucket_labels(edges)},
                          {b: available.get(b, 0) for b in bucket_labels(edges)}, not_taken, heldout_file, warnings,
                          (len(training), len({r["cluster_id"] for r in training})), item_views)
