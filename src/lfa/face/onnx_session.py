"""One way to open ONNX models: CPU (or CUDA when present), a clear error when the file is bad."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from lfa.errors import ModelLoadError


def open_session(path: Path, what: str, threads: int | None = None) -> ort.InferenceSession:
    """``threads`` per inference; default: ``OMP_NUM_THREADS`` where set (curation's worker processes
    set it to 1), else ONNX Runtime's own choice (all cores)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None
    if threads:
        opts.intra_op_num_threads = threads
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a loadable ONNX {what} model: {str(exc).splitlines()[0]}",
                             f"re-download the {what} model file") from exc


def graph_path(weights: str | os.PathLike[str], version: str) -> Path:
    """Where the ONNX graph derived from ``weights`` is cached: next to them, named by their content and
    by the exporter's ``version`` (bumped when an exporter changes its graph)."""
    from lfa.registry.store import sha256_file

    weights = Path(weights)
    return weights.with_name(f"{weights.stem}-{sha256_file(weights)[:16]}-{version}.onnx")


def cached_graph(weights: str | os.PathLike[str], version: str,
                 export: Callable[[Path, Path], object]) -> Path:
    """The graph of :func:`graph_path`, exported by ``export(weights, path)`` when missing (``lfa models
    fetch`` does it once; exporters write atomically, so workers racing to export is safe)."""
    path = graph_path(weights, version)
    if not path.exists():
        try:
            export(Path(weights), path)
        except PermissionError as exc:
            raise ModelLoadError(f"cannot write the ONNX graph of {Path(weights).name} next to it ({exc.strerror})",
                                 "run `lfa models fetch` once with write access to the model folder, "
                                 "or set LFA_HOME to a writable folder") from exc
    return path
