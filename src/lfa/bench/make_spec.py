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
references         list      optional: ``lfa curate``'s reference frames, structs with ``role`` and ``t``;
                             the one with role ``frontal`` gives the reference time
=================  ========  ===========================================================================

``lfa curate``'s manifest.parquet satisfies the contract as it is.

Without ``reference_image`` or ``reference_time`` the frontal frame is searched for: frames at 2 fps
in ``[start, end)`` through the perception stack, the one with the smallest ``yaw² + pitch²``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.bench.metrics import YAW_EDGES, bucket_labels, bucket_of
from lfa.bench.spec import ID_PATTERN, SpecItem, write_spec
from lfa.errors import ConfigError, LfaError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.media import iter_frames, read_image, sample_times, write_image

REQUIRED = ("clip_id", "source", "start", "end", "cluster_id", "yaw_min", "yaw_max")
OPTIONAL = ("caption", "split", "reference_image", "reference_time", "references")
SEARCH_FPS = 2.0


@dataclass
class MakeSpecResult:
    spec: Path
    items: list[SpecItem]
    heldout_clusters: list[str]
    per_bucket: dict[str, int]
    available: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, reason)
    heldout_file: Path | None = None
    warnings: list[str] = field(default_factory=list)  # fewer items than asked, empty captions


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
        if r.get("reference_time") is None:
            frontal = [ref for ref in (r.get("references") or []) if ref and ref.get("role") == "frontal"]
            if frontal and frontal[0].get("t") is not None:
                r["reference_time"] = float(frontal[0]["t"])
    return rows


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
                    edges: tuple[float, ...] = YAW_EDGES) -> list[dict[str, Any]]:
    """Up to ``per_bucket`` clips per yaw bucket, at most ``per_cluster`` per identity cluster; buckets
    take turns so that no bucket uses up a cluster the others need."""
    rng = np.random.default_rng(seed)
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["clip_id"]):
        by_bucket[clip_yaw_bucket(r, edges)].append(r)
    queues = {b: [by_bucket[b][i] for i in rng.permutation(len(by_bucket[b]))] for b in bucket_labels(edges)}
    taken: dict[str, list[dict[str, Any]]] = defaultdict(list)
    per_cluster_count: Counter[str] = Counter()
    progress = True
    while progress:
        progress = False
        for b in bucket_labels(edges):
            if len(taken[b]) >= per_bucket:
                continue
            q = queues[b]
            while q:
                r = q.pop(0)
                if per_cluster_count[r["cluster_id"]] < per_cluster:
                    taken[b].append(r)
                    per_cluster_count[r["cluster_id"]] += 1
                    progress = True
                    break
    return [r for b in bucket_labels(edges) for r in taken[b]]


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


def frontal_frame(row: dict[str, Any], analyzer: FaceAnalyzer) -> np.ndarray | None:
    """The frame of the clip with the smallest yaw² + pitch² among frames at 2 fps (None: no posed face)."""
    times = sample_times(row["end"], fps=SEARCH_FPS, start=row["start"])
    best, best_score = None, math.inf
    for f in iter_frames(row["source"], times=times):
        faces = analyzer.analyze(f.image)
        if not faces:
            continue
        face = max(faces, key=lambda x: (x.box[2] - x.box[0]) * (x.box[3] - x.box[1]))
        if math.isnan(face.yaw):
            continue
        score = face.yaw ** 2 + face.pitch ** 2
        if score < best_score:
            best, best_score = f.image, score
    return best


def reference_image(row: dict[str, Any], analyzer_factory: Any) -> np.ndarray | None:
    if row.get("reference_image"):
        return read_image(row["reference_image"])
    t = row.get("reference_time")
    if t is not None and math.isfinite(float(t)):
        frames = list(iter_frames(row["source"], times=[float(t)]))
        return frames[0].image if frames else None
    return frontal_frame(row, analyzer_factory())


def make_spec(manifest: str | Path, out: str | Path, *, n_items: int = 100, per_bucket: int | None = None,
              per_cluster: int = 1, holdout: float = 0.1, seed: int = 0, edges: tuple[float, ...] = YAW_EDGES,
              analyzer: FaceAnalyzer | None = None) -> MakeSpecResult:
    """Write ``out`` (JSONL), its reference images in ``<out folder>/references/`` and, when the manifest has
    no ``split`` column, ``heldout_clusters.json`` beside it."""
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
    chosen = select_balanced(candidates, per_bucket, per_cluster, seed, edges)
    ref_dir = out.parent / "references"
    ref_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, FaceAnalyzer] = {}

    def get_analyzer() -> FaceAnalyzer:
        if "a" not in state:
            state["a"] = analyzer or FaceAnalyzer(AnalyzerConfig(identity="none"))
        return state["a"]

    items, skipped = [], []
    for r in chosen:
        try:
            image = reference_image(r, get_analyzer)
        except LfaError as exc:
            skipped.append((r["clip_id"], exc.message))
            continue
        if image is None:
            skipped.append((r["clip_id"], "no frontal face found"))
            continue
        ref_path = ref_dir / f"{r['clip_id']}.png"
        write_image(ref_path, image)
        target = target_yaw(r)
        labels = {"cluster_id": r["cluster_id"], "yaw_bucket": clip_yaw_bucket(r, edges), "target_yaw": target,
                  "yaw_min": r["yaw_min"], "yaw_max": r["yaw_max"], "source": str(r["source"]),
                  "start": r["start"], "end": r["end"]}
        items.append(SpecItem(r["clip_id"], (ref_path,), turn_prompt(str(r.get("caption") or ""), target), labels))
    if not items:
        raise ConfigError("no clip could be selected for the spec",
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
        warnings.append(f"{len(items)} items written, {wanted} asked for: too few held-out clips in |yaw| bucket(s) "
                        f"{', '.join(short)} (or clips without a frontal face); add clips or lower --n/--per-bucket")
    empty = sum(not r.get("caption") for r in chosen if r["clip_id"] in {it.id for it in items})
    if empty:
        warnings.append(f"{empty} item(s) had no caption: their prompt only asks for the head turn; add a caption "
                        "column to the manifest for prompts that describe the scene")
    return MakeSpecResult(out, items, clusters, {b: per.get(b, 0) for b in bucket_labels(edges)},
                          {b: available.get(b, 0) for b in bucket_labels(edges)}, skipped, heldout_file, warnings)
