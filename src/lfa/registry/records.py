"""What the registry knows about a model: its files, hashes, licence and provenance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedFile:
    """A model file shipped inside a registry package (wheel or sdist).

    ``member`` is the path suffix of the file inside the archive; ``module`` (optional) is the
    importable module that, when installed, already holds the file at ``module/<installed_path>``.
    """

    requirement: str
    member: str
    module: str | None = None
    installed_path: str | None = None


@dataclass(frozen=True)
class ModelFile:
    """One file in the cache. ``sha256`` is the hash of the cached file; when the packaged file is
    converted at fetch (``convert``, ``module:function(src, dest)``), ``source_sha256`` is the hash
    of the packaged file before conversion."""

    filename: str
    sha256: str | None = None
    source: PackagedFile | None = None
    source_sha256: str | None = None
    convert: str | None = None


@dataclass(frozen=True)
class ModelRecord:
    name: str
    role: str
    files: tuple[ModelFile, ...]
    license: str
    origin: str
    offline_default: bool
    description: str
    how_to_get: str = ""
    check: str | None = None
    """``module:function`` that loads the file(s) for real; run by ``lfa models add`` and ``verify``."""
    prepare: str | None = None
    """``module:function`` that derives a runtime file from the fetched weights (an ONNX graph); run by
    ``lfa models fetch`` so that no run has to."""
    directory: bool = False
    """The model is a directory (``lfa models add NAME DIR`` copies every file in it; ``primary`` names the
    file that must be there)."""
    notice: str = ""
    """Licence text whose redistribution terms ask to keep it with the weights (written next to them)."""

    @property
    def primary(self) -> ModelFile:
        return self.files[0]
