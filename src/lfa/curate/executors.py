"""Where per-input work runs: in this process or in local worker processes (Ray: ``ray_executor``).
Workers load the models once and write each input's result themselves, so a result survives the
driver being killed. Every executor yields one summary per finished input, in completion order.

Each local worker process runs one input at a time, handed to it over its own pipe, so the driver knows
which input a worker that dies was running: that input alone loses an attempt (the others never see the
death), the worker is replaced, and an input that kills its worker ``attempts`` times becomes a failure
row, as with Ray."""

from __future__ import annotations

import importlib.machinery
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from lfa import errors
from lfa.curate.config import CurateConfig
from lfa.curate.pipeline import CurateModels, InputResult, build_models, process_input
from lfa.curate.scan import Progress
from lfa.curate.store import ResultStore
from lfa.errors import ConfigError, LfaError
from lfa.face.pose.mediapipe import skip_pyplot_import


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


Todo = list[tuple[Path, str]]  # (input, its key in the result store)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


@dataclass
class Attempts:
    """The attempts of each input that returned no result, for both executors: a note for each in the
    input's warnings (stage ``executor``); crashes and errors count against ``limit``, lost nodes (Ray) only
    against ``NODE_LOSS_LIMIT`` (never loop forever)."""

    limit: int
    notes: dict[str, list[str]] = field(default_factory=dict)
    crashes: dict[str, int] = field(default_factory=dict)
    losses: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ConfigError(f"attempts must be at least 1, got {self.limit}", "pass --attempts 3")

    def lost(self, key: str, what: str, counts: bool = True) -> str:
        """Record one attempt of ``key`` that ``what`` (e.g. "ended with its worker process dead (...)")."""
        tally = self.crashes if counts else self.losses
        tally[key] = tally.get(key, 0) + 1
        note = f"attempt {self.crashes.get(key, 0) + self.losses.get(key, 0)} {what}"
        self.notes.setdefault(key, []).append(note)
        return note

    def exhausted(self, key: str) -> bool:
        return self.crashes.get(key, 0) >= self.limit or self.losses.get(key, 0) > NODE_LOSS_LIMIT

    def gave_up(self, source: str, key: str) -> InputResult:
        """The failure row of an input whose attempts are spent (the notes go into its warnings)."""
        notes = self.notes[key]
        result = InputResult(source, failure={
            "input": source, "error": f"gave up after {len(notes)} attempts, {self.crashes.get(key, 0)} of which "
                                      f"ended in a crash or an error; last: {notes[-1]}",
            "fix": "check the file (ffprobe; re-encode it with ffmpeg) and the worker's messages (`lfa -v curate "
                   "FILE --workers 1`; on a cluster `ray logs`); --retry-failed tries it again"})
        for note in notes:
            result.warn("executor", note)
        return result


NODE_LOSS_LIMIT = 10  # lost nodes one input may see before it becomes a failure row
# Test-only hook (the local counterpart of the Ray tests' worker_process_setup_hook): comma-separated file
# names of inputs whose local worker process kills itself (SIGKILL) when it is handed them.
CRASH_INPUTS_ENV = "LFA_TEST_CRASH_INPUTS"


def _worker_main(conn: Connection, args: tuple[Any, ...]) -> None:
    """A local worker process: builds its models, then runs the inputs the driver sends one at a time.
    Messages to the driver: ("ready",), ("progress", (source, t, duration)), ("done", summary),
    ("error", (error class name, message, fix, lfa's own error)); None from the driver, or its end, stops it.

    Every result is on disk when the driver sends None, so the process then leaves at once
    (:func:`_leave`) instead of tearing its models and modules down (0.3 s at the end of every run)."""
    try:
        skip_pyplot_import()  # the pose models load where a clip first needs them: 0.5 s less then
        with worker_threads():
            worker = Worker(*args, lambda *p: conn.send(("progress", p)))
        conn.send(("ready", None))
        crash = set(filter(None, os.environ.get(CRASH_INPUTS_ENV, "").split(",")))
        while (task := conn.recv()) is not None:
            source, key, notes = task
            if Path(source).name in crash:
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                conn.send(("done", worker.run(source, key, notes)))
            except Exception as exc:  # a full disk, a bug: the driver decides
                conn.send(("error", _error_info(exc)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):  # the driver has gone
        return
    except Exception as exc:  # the models or the output folder: nothing this worker can run
        conn.send(("error", _error_info(exc)))
        return
    _leave(conn)


def _leave(conn: Connection) -> None:
    """End a worker process that has nothing left to save: flush what it logged, then exit without the
    interpreter's teardown (what ``fork``-started processes always do)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    conn.close()
    os._exit(0)


def _error_info(exc: Exception) -> tuple[str, str, str | None, bool]:
    if isinstance(exc, LfaError):
        return type(exc).__name__, exc.message, exc.fix, True
    return type(exc).__name__, first_line(exc), None, False


def _raise(info: tuple[str, str, str | None, bool], what: str) -> None:
    name, message, fix, ours = info
    if ours:
        cls = getattr(errors, name, LfaError)
        raise cls(message, fix)
    raise LfaError(f"{what}: {message}", "`lfa -v curate ... --workers 1` shows the whole error")


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@contextmanager
def _main_script_not_rerun() -> Iterator[None]:
    """A spawned process re-runs the caller's main script before its target (to find what the script
    defines); a worker's target and arguments are lfa's own, so it needs none of it. Skipping it saves each
    worker the ``lfa`` command's imports (typer, rich, every subcommand: 0.1 s), and a user's script that
    calls ``curate`` without an ``if __name__ == "__main__":`` guard no longer calls it again in every worker
    (which multiprocessing refuses, so the workers died). multiprocessing leaves a main module named
    ``__main__`` alone (as for ``python -m package``): the script's is named so while the worker starts."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    had, spec = "__spec__" in vars(main), getattr(main, "__spec__", None)
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        if had:
            main.__spec__ = spec
        else:
            del main.__spec__


class _Process:
    """One local worker process, its end of the pipe and the input it is running."""

    def __init__(self, ctx: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, args), name="lfa-curate-worker")
        with _main_script_not_rerun():
            self.process.start()
        child.close()
        self.ready = False
        self.asked_to_stop = False
        self.task: tuple[str, str] | None = None

    def messages(self) -> Iterator[tuple[str, Any]]:
        """What it has sent so far; stops at its end."""
        try:
            while self.conn.poll():
                yield self.conn.recv()
        except (EOFError, OSError):
            return

    def ask_to_stop(self) -> None:
        if self.asked_to_stop:
            return
        self.asked_to_stop = True
        try:
            self.conn.send(None)
        except OSError:
            pass

    def stop(self) -> None:
        """Ask it to stop (if not asked yet) and wait for its end."""
        self.ask_to_stop()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_local(todo: Todo, config: CurateConfig, out_dir: Path, workers: int | None,
              progress: Progress | None = None, attempts: int = 3,
              status: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one summary per input of ``todo``. ``workers``: worker processes (default: one per core, at most
    one per input); 1 runs the inputs in this process. A worker process that dies (a decoder crash, the
    memory killer) is replaced; only the input it was running loses an attempt, and is run again until it
    has used ``attempts``, then becomes a failure row."""
    tries = Attempts(attempts)
    args = (config.to_dict(), str(out_dir), os.environ.get("LFA_HOME"))
    if workers == 1:
        worker = Worker(*args, progress)
        with _torch_one_thread():
            for source, key in todo:
                yield worker.run(str(source), key)
        return
    if not todo:
        return
    say = status or (lambda text: None)
    store = ResultStore(out_dir, config.work_digest())
    ctx = multiprocessing.get_context("spawn")  # MediaPipe and ONNX Runtime threads do not survive fork
    queue = deque((str(s), key) for s, key in todo)
    n = min(workers or os.cpu_count() or 1, len(todo))
    pool: list[_Process] = []
    deaths_at_start = 0
    try:
        while queue or any(p.task for p in pool):
            while len(pool) < min(n, len(queue) + sum(p.task is not None for p in pool)):  # a dead one's successor
                pool.append(_Process(ctx, args))
            for p in pool:
                if p.ready and p.task is None and queue:
                    try:
                        p.conn.send((*queue[0], tries.notes.get(queue[0][1], [])))
                    except OSError:  # it has just died: the next one takes the input
                        continue
                    p.task = queue.popleft()
            wait([p.conn for p in pool] + [p.process.sentinel for p in pool], timeout=1.0)
            for p in list(pool):
                dead = not p.process.is_alive()  # then what it sent before dying is all there is to read
                for kind, body in p.messages():
                    if kind == "progress":
                        if progress:
                            progress(*body)
                    elif kind == "ready":
                        p.ready, deaths_at_start = True, 0
                    elif kind == "done":
                        p.task = None
                        yield body
                    elif p.task is None or body[3]:  # it could not start, or lfa's own error: no retry fixes it
                        _raise(body, "a curation worker process could not start")
                    else:
                        source, key = p.task
                        p.task = None
                        yield from retry_or_give_up(tries, store, source, key, f"failed ({body[0]}: {body[1]})",
                                                     queue, say)
                if not dead:
                    continue
                p.process.join()
                what = f"ended with its worker process dead ({_exit_text(p.process.exitcode)})"
                if p.task is not None:
                    source, key = p.task
                    yield from retry_or_give_up(tries, store, source, key, what, queue, say)
                elif not p.ready:
                    deaths_at_start += 1
                    if deaths_at_start > 2 * n:
                        raise LfaError(f"curation worker processes keep dying while they load the models ({what})",
                                       "check free memory; `lfa -v curate ... --workers 1` shows the libraries' "
                                       "messages")
                p.conn.close()
                pool.remove(p)
    finally:
        for p in pool:  # all at once: they end in parallel
            p.ask_to_stop()
        for p in pool:
            p.stop()


def retry_or_give_up(tries: Attempts, store: ResultStore, source: str, key: str, what: str,
                     queue: deque[tuple[str, str]], say: Callable[[str], None],
                     counts: bool = True) -> Iterator[dict[str, Any]]:
    """After an attempt of ``source`` that returned nothing (``what`` happened; ``counts``: against its
    attempts): queue it again, or save and yield its failure row when its attempts are spent."""
    note = tries.lost(key, what, counts)
    if tries.exhausted(key):
        result = tries.gave_up(source, key)
        store.save(key, result)
        yield summarize(result)
    else:
        say(f"retrying {Path(source).name}: {note[:80]}")
        queue.append((source, key))
