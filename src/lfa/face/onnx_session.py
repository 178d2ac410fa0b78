"""One way to open ONNX models: CPU (or CUDA when present), a clear error when the file is bad."""

from __future__ import annotations

import os
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
