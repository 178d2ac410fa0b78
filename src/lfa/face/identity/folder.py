"""Faces from files, per person: a folder of photos/videos is one face set, a folder of such folders
(one subfolder per person) calibrates an impostor model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lfa.errors import ConfigError, LfaError
from lfa.face.analyzer import FaceAnalyzer
from lfa.face.files import analyze_image_file, analyze_video_file
from lfa.face.identity.impostors import SHIPPED_BACKENDS, ImpostorModel, default_impostor_model, fit_impostor_model
from lfa.face.identity.score import FaceSet
from lfa.face.types import Face
from lfa.media import is_image_path, is_video_path


@dataclass
class PersonFaces:
    faces: FaceSet
    files: int = 0
    skipped: list[str] = field(default_factory=list)  # "file: why" for files that gave no face


def _largest(faces: list[Face]) -> Face | None:
    faces = [f for f in faces if f.embedding is not None]
    return max(faces, key=lambda f: f.area_ratio) if faces else None


def faces_of_path(analyzer: FaceAnalyzer, path: Path, *, fps: float = 2.0) -> PersonFaces:
    """The largest face of each photo (and of each sampled video frame) under ``path`` (a file or a folder)."""
    if analyzer.identity is None:
        raise ConfigError("the analyzer has no identity backend", "use an identity backend (e.g. --identity dlib)")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in files if is_image_path(p) or is_video_path(p)]
    if not files:
        raise ConfigError(f"no image or video in {path}", "put the person's photos or videos there")
    found: list[Face] = []
    skipped: list[str] = []
    for f in files:
        try:
            if is_image_path(f):
                faces = [_largest(analyze_image_file(analyzer, f)[1])]
            else:
                faces = [_largest(fr.faces) for fr in analyze_video_file(analyzer, f, fps)]
        except LfaError as exc:
            skipped.append(f"{f.name}: {exc.message}")
            continue
        faces = [x for x in faces if x is not None]
        if not faces:
            skipped.append(f"{f.name}: no face")
        found += faces
    return PersonFaces(FaceSet.from_faces(found, dim=1), len(files), skipped)


def people_of_folder(analyzer: FaceAnalyzer, folder: Path, *, fps: float = 2.0,
                     on_person: Callable[[str], None] | None = None) -> dict[str, PersonFaces]:
    """One :class:`PersonFaces` per subfolder of ``folder`` (the subfolder's name is the person)."""
    if not folder.is_dir():
        raise ConfigError(f"not a folder: {folder}", "pass a folder with one subfolder of photos per person")
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(people) < 2:
        raise ConfigError(f"{folder} has {len(people)} person subfolder(s)",
                          "make one subfolder per person, two people or more (more people: better calibration)")
    out = {}
    for p in people:
        if on_person:
            on_person(p.name)
        out[p.name] = faces_of_path(analyzer, p, fps=fps)
    return out


def calibrate_folder(analyzer: FaceAnalyzer, folder: Path, *, fps: float = 2.0, with_default: bool = True,
                     on_person: Callable[[str], None] | None = None) -> tuple[ImpostorModel, dict[str, PersonFaces]]:
    """Impostor model from a folder with one subfolder per person (falls back on the shipped default
    where the folder lacks a yaw-bucket pair, when ``with_default`` and one ships for the backend)."""
    people = people_of_folder(analyzer, folder, fps=fps, on_person=on_person)
    backend = analyzer.identity.name
    sets = {k: v.faces for k, v in people.items()}
    provenance = {"data": f"user folder {folder}", "identities": len([s for s in sets.values() if s.n_faces]),
                  "faces": int(sum(s.n_faces for s in sets.values())), "command": "lfa identity calibrate"}
    model = fit_impostor_model(sets, backend=backend, provenance=provenance)
    if with_default:
        model = model.with_fallback(default_impostor_model(backend) if backend in SHIPPED_BACKENDS else None)
    return model, people
