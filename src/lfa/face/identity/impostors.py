"""Impostor model: how similar *different* people look, per pair of signed yaw buckets, per identity backend.

The pose-aware score (:mod:`lfa.face.identity.score`) z-scores a cosine similarity against the impostor
distribution of the two faces' yaw-bucket pair. A model is fitted from faces of several identities
(:func:`fit_impostor_model`): every pair of faces of two different identities is an impostor pair.

Buckets are signed yaw bins of :data:`YAW_STEP` degrees over [-90, 90] (beyond ±90 falls in the end
bins); a face without a pose falls in the *unknown* bucket, which is always compared against the
pooled distribution. Lookups are explicit about where their numbers come from (``SOURCES``):

``exact``     the bucket pair itself, with at least ``min_pairs`` pairs from ``min_identity_pairs``
              pairs of identities;
``mirrored``  the mirrored bucket pair (a face turned left vs right), same minimums;
``fallback``  the fallback model's answer (a run-time model falls back on the shipped default);
``pooled``    all impostor pairs of the model, whatever their pose (faces without a pose, or a
              bucket pair nobody has data for). ``n_pairs`` always says how many pairs it rests on.

A model also keeps a **cohort**: up to ``COHORT_PER_IDENTITY`` faces of each of its identities, spread
over yaw (embedding, yaw, identity; a Parquet file beside the JSON). Per-frame scoring against one
reference set uses it to get *that reference's* impostor distribution in the frame's yaw bucket
(``cohort`` source, see :mod:`lfa.face.identity.score`), which also removes how much a given reference
resembles people in general.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from lfa.errors import ConfigError
from lfa.face.identity.faceset import Faces, FaceSet, as_face_set

SCHEMA = "lfa-identity-impostors/1"
YAW_STEP = 15.0
YAW_EDGES: tuple[float, ...] = tuple(float(x) for x in np.arange(-90, 90 + YAW_STEP, YAW_STEP))
N_BUCKETS = len(YAW_EDGES) - 1
UNKNOWN = N_BUCKETS  # bucket index of a face without a pose
FARS: tuple[float, ...] = (0.1, 0.05, 0.01, 0.001)  # false-accept rates a decision can be asked at
SOURCES: tuple[str, ...] = ("cohort", "exact", "mirrored", "fallback", "pooled")  # best to worst
COHORT_PER_IDENTITY = 60
MIN_COHORT_FACES = 20  # cohort faces in a yaw bucket (from MIN_IDENTITY_PAIRS identities) to use it
MIN_PAIRS = 50
MIN_IDENTITY_PAIRS = 3
MIN_EMPIRICAL_TAIL = 5  # impostors above a threshold needed to read it from data, else a normal fit
SHIPPED_BACKENDS = ("dlib_resnet",)
ENCODER_NAMES = {"dlib": "dlib_resnet"}  # AnalyzerConfig.identity -> the encoder's name (Face.embedding_model)


def encoder_name(backend: str) -> str:
    """The identity encoder's name for an ``AnalyzerConfig.identity`` value (or an encoder name)."""
    return ENCODER_NAMES.get(backend, backend)


def yaw_bucket(yaw: np.ndarray | float) -> np.ndarray:
    """Signed yaw bucket index per value (0 … N_BUCKETS-1), ``UNKNOWN`` where the yaw is NaN."""
    y = np.atleast_1d(np.asarray(yaw, np.float64))
    idx = np.clip(np.searchsorted(np.asarray(YAW_EDGES[1:-1]), y, side="right"), 0, N_BUCKETS - 1)
    return np.where(np.isnan(y), UNKNOWN, idx).astype(np.int64)


def bucket_label(b: int) -> str:
    return "unknown" if b == UNKNOWN else f"{YAW_EDGES[b]:g}_{YAW_EDGES[b + 1]:g}"


def mirror_bucket(b: int) -> int:
    return b if b == UNKNOWN else N_BUCKETS - 1 - b


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class ImpostorStats:
    """Impostor cosine similarities of one bucket pair: mean, std and the z threshold per FAR."""

    n_pairs: int
    n_identity_pairs: int
    mean: float
    std: float
    z_at_far: dict[float, float]
    empirical: dict[float, bool]  # threshold read from the data (True) or from a normal fit (False)

    @classmethod
    def of(cls, cosines: np.ndarray, n_identity_pairs: int) -> ImpostorStats:
        c = np.asarray(cosines, np.float64)
        mean, std = float(c.mean()), float(c.std(ddof=1)) if len(c) > 1 else math.nan
        z = (c - mean) / std if std > 0 else np.zeros_like(c)
        thr, emp = {}, {}
        for far in FARS:
            emp[far] = bool(len(c) * far >= MIN_EMPIRICAL_TAIL)
            thr[far] = float(np.quantile(z, 1 - far)) if emp[far] else NormalDist().inv_cdf(1 - far)
        return cls(len(c), int(n_identity_pairs), mean, std, thr, emp)

    def qualifies(self, min_pairs: int, min_identity_pairs: int) -> bool:
        return self.n_pairs >= min_pairs and self.n_identity_pairs >= min_identity_pairs and self.std > 0

    def to_dict(self) -> dict[str, Any]:
        return {"n_pairs": self.n_pairs, "n_identity_pairs": self.n_identity_pairs, "mean": round(self.mean, 6),
                "std": round(self.std, 6), "z_at_far": {f"{k:g}": round(v, 4) for k, v in self.z_at_far.items()},
                "empirical": {f"{k:g}": v for k, v in self.empirical.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImpostorStats:
        return cls(int(d["n_pairs"]), int(d["n_identity_pairs"]), float(d["mean"]), float(d["std"]),
                   {float(k): float(v) for k, v in d["z_at_far"].items()},
                   {float(k): bool(v) for k, v in d["empirical"].items()})


@dataclass(frozen=True)
class ImpostorLookup:
    stats: ImpostorStats
    source: str  # one of SOURCES


@dataclass(frozen=True)
class ImpostorTables:
    """Every bucket pair's lookup as (K, K) arrays, K = N_BUCKETS + 1 (last: unknown), for one FAR."""

    mean: np.ndarray
    std: np.ndarray
    z_threshold: np.ndarray
    n_pairs: np.ndarray
    source: np.ndarray  # index into SOURCES


@dataclass
class ImpostorModel:
    backend: str
    pairs: dict[tuple[int, int], ImpostorStats] = field(repr=False)
    pooled: ImpostorStats
    n_identities: int
    provenance: dict[str, Any] = field(default_factory=dict)
    min_pairs: int = MIN_PAIRS
    min_identity_pairs: int = MIN_IDENTITY_PAIRS
    fallback: ImpostorModel | None = None
    cohort: FaceSet | None = field(default=None, repr=False)
    cohort_identity: np.ndarray | None = field(default=None, repr=False)  # (len(cohort),) str
    # reads (cohort, cohort_identity) where first needed: curation's workers never need the cohort, and
    # reading it cost each of them 0.22 s of start-up (pyarrow's dataset import included)
    cohort_reader: Callable[[], tuple[FaceSet, np.ndarray]] | None = field(default=None, repr=False, compare=False)
    _tables: dict[float, ImpostorTables] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_pairs(self) -> int:
        """Impostor pairs this model was fitted on (not counting its fallback)."""
        return self.pooled.n_pairs

    def lookup(self, a: int, b: int) -> ImpostorLookup:
        """The impostor statistics a comparison of buckets ``a`` and ``b`` is calibrated against."""
        if a != UNKNOWN and b != UNKNOWN:
            for source, key in (("exact", _key(a, b)), ("mirrored", _key(mirror_bucket(a), mirror_bucket(b)))):
                s = self.pairs.get(key)
                if s is not None and s.qualifies(self.min_pairs, self.min_identity_pairs):
                    return ImpostorLookup(s, source)
            if self.fallback is not None:
                found = self.fallback.lookup(a, b)
                if found.source != "pooled":
                    return ImpostorLookup(found.stats, "fallback")
        if self.fallback is not None and not self.pooled.qualifies(self.min_pairs, self.min_identity_pairs):
            return ImpostorLookup(self.fallback.pooled, "fallback")
        return ImpostorLookup(self.pooled, "pooled")

    def tables(self, far: float) -> ImpostorTables:
        if far not in FARS:
            raise ConfigError(f"no impostor threshold at false-accept rate {far:g}",
                              f"use one of {', '.join(f'{f:g}' for f in FARS)}")
        if far not in self._tables:
            k = N_BUCKETS + 1
            mean, std, thr = np.zeros((k, k)), np.ones((k, k)), np.zeros((k, k))
            n, src = np.zeros((k, k), np.int64), np.zeros((k, k), np.int64)
            for a in range(k):
                for b in range(k):
                    found = self.lookup(a, b)
                    s = found.stats
                    mean[a, b], std[a, b], thr[a, b] = s.mean, s.std, s.z_at_far[far]
                    n[a, b], src[a, b] = s.n_pairs, SOURCES.index(found.source)
            self._tables[far] = ImpostorTables(mean, std, thr, n, src)
        return self._tables[far]

    def with_fallback(self, fallback: ImpostorModel | None) -> ImpostorModel:
        if fallback is not None and fallback.backend != self.backend:
            raise ConfigError(f"impostor models of different identity backends ({self.backend}, {fallback.backend})",
                              "calibrate with the identity backend the faces were embedded with")
        return ImpostorModel(self.backend, self.pairs, self.pooled, self.n_identities, self.provenance,
                             self.min_pairs, self.min_identity_pairs, fallback, self.cohort, self.cohort_identity,
                             self.cohort_reader)

    def load_cohort(self) -> None:
        """Read the cohort now if it is still on file (:attr:`cohort_reader`)."""
        if self.cohort is None and self.cohort_reader is not None:
            self.cohort, self.cohort_identity = self.cohort_reader()
            self.cohort_reader = None

    def cohorts(self) -> list[tuple[FaceSet, np.ndarray]]:
        """This model's cohort, then its fallbacks' (the scorer uses the first with enough faces)."""
        self.load_cohort()
        mine = [(self.cohort, self.cohort_identity)] if self.cohort is not None else []
        return mine + (self.fallback.cohorts() if self.fallback is not None else [])

    def describe(self) -> str:
        covered = sum(s.qualifies(self.min_pairs, self.min_identity_pairs) for s in self.pairs.values())
        text = (f"{self.backend} impostors: {self.n_pairs} pairs of {self.n_identities} identities, "
                f"{covered} yaw-bucket pairs with >= {self.min_pairs} pairs")
        return text + (f"; else {self.fallback.describe()}" if self.fallback is not None else "")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "backend": self.backend, "yaw_edges": list(YAW_EDGES), "fars": list(FARS),
                "n_identities": self.n_identities, "min_pairs": self.min_pairs,
                "min_identity_pairs": self.min_identity_pairs, "provenance": self.provenance,
                "pooled": self.pooled.to_dict(),
                "pairs": [{"a": bucket_label(a), "b": bucket_label(b), **s.to_dict()}
                          for (a, b), s in sorted(self.pairs.items())]}

    def save(self, path: Path | str) -> Path:
        """JSON at ``path``, the cohort as Parquet beside it (``<stem>.cohort.parquet``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        self.load_cohort()
        if self.cohort is not None:
            data["cohort_file"] = _write_cohort(path.with_name(path.stem + ".cohort.parquet"), self.cohort,
                                                self.cohort_identity)
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "impostor model") -> ImpostorModel:
        if d.get("schema") != SCHEMA:
            raise ConfigError(f"{where} is not an lfa impostor model (schema {d.get('schema')!r})",
                              "write one with `lfa identity calibrate FOLDER --out FILE`")
        if [float(x) for x in d["yaw_edges"]] != list(YAW_EDGES):
            raise ConfigError(f"{where} uses other yaw buckets", "re-calibrate it with this version of lfa")
        labels = {bucket_label(b): b for b in range(N_BUCKETS)}
        pairs = {_key(labels[p["a"]], labels[p["b"]]): ImpostorStats.from_dict(p) for p in d["pairs"]}
        return cls(str(d["backend"]), pairs, ImpostorStats.from_dict(d["pooled"]), int(d["n_identities"]),
                   dict(d.get("provenance", {})), int(d["min_pairs"]), int(d["min_identity_pairs"]))


def _write_cohort(path: Path, cohort: FaceSet, identity: np.ndarray) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = cohort.embeddings.astype(np.float16)
    table = pa.table({"identity": [str(x) for x in identity], "yaw": cohort.yaw.astype(np.float32),
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])})
    pq.write_table(table, path, compression="zstd")
    return path.name


def _read_cohort(source: Any, backend: str) -> tuple[FaceSet, np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(source)
    emb = np.asarray(t.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
    yaw = t.column("yaw").to_numpy().astype(np.float64)
    return FaceSet(emb.reshape(len(yaw), -1), yaw, backend=backend), np.asarray(t.column("identity").to_pylist())


def load_impostor_model(path: Path | str, *, with_default: bool = True) -> ImpostorModel:
    """An impostor model file written by :meth:`ImpostorModel.save` / ``lfa identity calibrate``; where it
    lacks a yaw-bucket pair it answers from the shipped default (when ``with_default`` and one ships)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"impostor model not found: {path}", "write one with `lfa identity calibrate FOLDER --out FILE`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read impostor model {path}: {exc}",
                          "write it again with `lfa identity calibrate FOLDER --out FILE`") from None
    model = ImpostorModel.from_dict(data, str(path))
    if data.get("cohort_file"):
        cohort = path.with_name(data["cohort_file"])
        if not cohort.is_file():
            raise ConfigError(f"impostor cohort {cohort} is missing (named by {path})",
                              "keep the .cohort.parquet file beside the model, or write both again")
        model.cohort_reader = partial(_read_cohort, cohort, model.backend)
    if with_default and model.backend in SHIPPED_BACKENDS:
        model = model.with_fallback(default_impostor_model(model.backend))
    return model


def default_impostor_model(backend: str = "dlib_resnet") -> ImpostorModel:
    """The impostor model shipped with lfa for ``backend`` (its provenance is in ``.provenance``)."""
    return _shipped(encoder_name(backend))


@cache
def _shipped(backend: str) -> ImpostorModel:
    if backend not in SHIPPED_BACKENDS:
        raise ConfigError(f"lfa ships no impostor model for the {backend!r} identity backend",
                          "calibrate one: `lfa identity calibrate FOLDER --identity "
                          f"{backend} --out FILE` (one subfolder of photos per person)")
    folder = resources.files("lfa.face.identity").joinpath("data")
    data = json.loads(folder.joinpath(f"impostors-{backend}.json").read_text())
    model = ImpostorModel.from_dict(data, f"shipped {backend} impostor model")
    if data.get("cohort_file"):
        model.cohort_reader = partial(_read_shipped_cohort, data["cohort_file"], model.backend)
    return model


def _read_shipped_cohort(name: str, backend: str) -> tuple[FaceSet, np.ndarray]:
    with resources.files("lfa.face.identity").joinpath("data", name).open("rb") as f:
        return _read_cohort(f, backend)


def fit_impostor_model(sets: Mapping[str, FaceSet], *, backend: str, provenance: dict[str, Any] | None = None,
                       min_pairs: int = MIN_PAIRS, min_identity_pairs: int = MIN_IDENTITY_PAIRS,
                       fallback: ImpostorModel | None = None, cohort_per_identity: int = COHORT_PER_IDENTITY
                       ) -> ImpostorModel:
    """Impostor model from faces of several identities: every cross-identity pair of faces counts.

    ``sets`` maps an identity (person, cluster, reference) to its faces. Needs two identities with a
    face each at least; a model that rests on fewer pairs than the minimums answers from ``fallback``
    (or says ``pooled``) where it lacks data — see :meth:`ImpostorModel.lookup`.
    """
    names = [k for k, s in sets.items() if s.n_faces]
    if len(names) < 2:
        raise ConfigError(f"impostors need faces of two identities at least, got {len(names)}",
                          "give one subfolder (or cluster, or reference) per person, two people or more")
    k = N_BUCKETS + 1
    values: dict[int, list[np.ndarray]] = {}
    id_pairs: dict[int, set[tuple[int, int]]] = {}
    embs = [sets[n].embeddings[sets[n].has_face] for n in names]
    buckets = [yaw_bucket(sets[n].yaw[sets[n].has_face]) for n in names]
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            cos = (embs[i] @ embs[j].T).ravel()
            ba, bb = np.meshgrid(buckets[i], buckets[j], indexing="ij")
            lo, hi = np.minimum(ba, bb).ravel(), np.maximum(ba, bb).ravel()
            code = lo * k + hi
            order = np.argsort(code, kind="stable")
            uniq, start = np.unique(code[order], return_index=True)
            for c, chunk in zip(uniq, np.split(cos[order], start[1:])):
                values.setdefault(int(c), []).append(chunk)
                id_pairs.setdefault(int(c), set()).add((i, j))
    pairs = {}
    for c, chunks in values.items():
        a, b = divmod(c, k)
        if a != UNKNOWN and b != UNKNOWN:
            pairs[(a, b)] = ImpostorStats.of(np.concatenate(chunks), len(id_pairs[c]))
    all_cos = np.concatenate([x for chunks in values.values() for x in chunks])
    n_id_pairs = len(set().union(*id_pairs.values()))
    cohort, cohort_id = _cohort({n: sets[n].select(sets[n].has_face) for n in names}, cohort_per_identity)
    return ImpostorModel(encoder_name(backend), pairs, ImpostorStats.of(all_cos, n_id_pairs), len(names),
                         dict(provenance or {}), min_pairs, min_identity_pairs, fallback, cohort, cohort_id)


def _cohort(sets: Mapping[str, FaceSet], per_identity: int) -> tuple[FaceSet, np.ndarray]:
    """Up to ``per_identity`` faces of each identity, evenly spread over its faces sorted by yaw
    (faces without a pose sort last, so they are kept in proportion)."""
    parts, labels = [], []
    for name, s in sets.items():
        order = np.argsort(np.nan_to_num(s.yaw, nan=np.inf), kind="stable")
        keep = order[np.unique(np.linspace(0, len(s) - 1, min(per_identity, len(s))).round().astype(int))]
        parts.append(s.select(keep))
        labels += [name] * len(keep)
    return (FaceSet(np.concatenate([p.embeddings for p in parts]), np.concatenate([p.yaw for p in parts])),
            np.asarray(labels))


def impostor_model_for(sets: Mapping[str, Faces] | None, *, backend: str, min_identities: int = 3,
                       default: ImpostorModel | None = None, provenance: dict[str, Any] | None = None
                       ) -> ImpostorModel:
    """The impostor model for a run: fitted on the data at hand (a benchmark's references, a curation
    run's clusters, a user's folder) when it has ``min_identities`` identities or more, falling back on
    the shipped default bucket by bucket; the shipped default alone otherwise. ``describe()`` says which."""
    backend = encoder_name(backend)
    if default is None and backend in SHIPPED_BACKENDS:
        default = default_impostor_model(backend)
    usable = {k: s for k, s in ((k, as_face_set(v)) for k, v in (sets or {}).items()) if s.n_faces}
    if len(usable) < min_identities:
        if default is None:
            raise ConfigError(f"{len(usable)} identities at hand, {min_identities} needed to calibrate "
                              f"{backend} identity scores, and lfa ships no {backend} impostor model",
                              f"pass an impostor model from `lfa identity calibrate FOLDER --identity {backend}`")
        return default
    return fit_impostor_model(usable, backend=backend, provenance=provenance, fallback=default)
