"""Where per-input work runs: in this process or in local worker processes (Ray: ``ray_executor``).
Workers load the models once and write each input's result themselves, so a result survives the
driver being killed. Every executor yields one summary per finished input, in completion order."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from queue import Empty
from typing import Any

from lfa.curate.config import CurateConfig
from lfa.curate.pipeline import CurateModels, InputResult, build_models, process_input
from lfa.curate.scan import Progress
from lfa.curate.store import ResultStore
from lfa.errors import ConfigError


def summarize(result: InputResult) -> dict[str, Any]:
    stages: dict[str, int] = {}
    for row in result.rejected:
        stages[row["stage"]] = stages.get(row["stage"], 0) + 1
    return {"source": result.source, "accepted": len(result.clips), "rejected": stages,
            "failed": result.failure is not None, "decoded": result.decoded_frames,
            "warnings": len(result.warnings)}


class _Collect(logging.Handler):
    """lfa's own warning log records while one input is processed: they go into its result (a worker
    on another machine has no terminal; its stderr ends in a log file nobody reads)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Worker:
    """One worker's models and result store; ``progress`` hears about every second of video decoded."""

    def __init__(self, config: dict[str, Any], out_dir: str, lfa_home: str | None,
                 progress: Progress | None = None) -> None:
        if lfa_home:
            os.environ["LFA_HOME"] = lfa_home
        if not (Path(out_dir) / "config.json").is_file():  # the driver wrote it: not the same storage
            raise ConfigError(f"the output folder {out_dir} is not visible on {socket.gethostname()}",
                              "put --out (and the inputs) on storage every node mounts, e.g. NFS")
        self.config = CurateConfig.from_dict(config)
        self.store = ResultStore(Path(out_dir), self.config.work_digest())
        self.models: CurateModels = build_models(self.config)
        self.progress = progress

    def run(self, source: str, key: str, notes: list[str] | None = None) -> dict[str, Any]:
        """Process one input and save its result; ``notes``: the executor's account of earlier attempts."""
        collect, lfa_log = _Collect(), logging.getLogger("lfa")
        lfa_log.addHandler(collect)
        try:
            result = process_input(Path(source), self.config, self.models, self.progress)
        finally:
            lfa_log.removeHandler(collect)
        for message in collect.messages:
            result.warn("log", message)
        for note in notes or []:
            result.warn("executor", note)
        self.store.save(key, result)
        return summarize(result)


_worker: Worker | None = None


def _init_process(config: dict[str, Any], out_dir: str, lfa_home: str | None, queue: Any) -> None:
    global _worker
    with worker_threads():
        _worker = Worker(config, out_dir, lfa_home, lambda *p: queue.put(p))


def _run_in_process(source: str, key: str) -> dict[str, Any]:
    assert _worker is not None
    return _worker.run(source, key)


@contextmanager
def worker_threads() -> Iterator[None]:
    """Around building a worker process's models: one thread per library (the parallelism is the
    processes; more threads per process only contend for the same cores)."""
    import cv2

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ONNX Runtime sessions, and torch if a model loads it
    cv2.setNumThreads(1)
    yield
    if "torch" in sys.modules:  # a configured model loaded it: its results depend on its thread count
        sys.modules["torch"].set_num_threads(1)


@contextmanager
def _torch_one_thread() -> Iterator[None]:
    """As in worker processes: torch's results depend on its thread count. Only where a configured
    model loaded torch (the default models do not: curation's workers start faster without it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _drain(queue: Any) -> Iterator[Any]:
    while True:
        try:
            yield queue.get_nowait()
        except Empty:
            return


Todo = list[tuple[Path, str]]  # (input, its key in the result store)


def run_local(todo: Todo, config: CurateConfig, out_dir: Path, workers: int,
              progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    args = (config.to_dict(), str(out_dir), os.environ.get("LFA_HOME"))
    if workers <= 1 or len(todo) <= 1:
        worker = Worker(*args, progress)
        with _torch_one_thread():
            for source, key in todo:
                yield worker.run(str(source), key)
        return
    ctx = multiprocessing.get_context("spawn")  # MediaPipe and ONNX Runtime threads do not survive fork
    queue = ctx.Queue()  # progress from the workers (handed over at their start: no manager process)
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_process,
                             initargs=(*args, queue)) as pool:
        pending = {pool.submit(_run_in_process, str(s), key) for s, key in todo}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for item in _drain(queue):
                if progress:
                    progress(*item)
            for future in done:
                yield future.result()
