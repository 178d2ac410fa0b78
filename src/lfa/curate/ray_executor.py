"""Curation on a Ray cluster: one task per input, never more in flight than the cluster has worker
slots, each input's result written by the node that processed it (``out_dir`` on shared storage).

Failures are the driver's to handle, so that every input ends as a result: a task lost with its node
is resubmitted elsewhere (not counted against the input); a task whose worker process dies (a decoder
segfault, the memory killer) or raises is tried ``attempts`` times, then recorded as a failure row.
Earlier attempts are noted in the input's warnings (stage ``executor``)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfa.curate.config import CurateConfig
from lfa.curate.executors import Attempts, Todo, Worker, first_line, retry_or_give_up, worker_threads
from lfa.curate.store import ResultStore
from lfa.errors import ConfigError, LfaError
from lfa.face.pose.mediapipe import skip_pyplot_import

AUTH_FIX = ("clusters started with token authentication (the default of Ray >= 2.5x) need RAY_AUTH_MODE=token "
            "and the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN) here too")


@dataclass
class ClusterView:
    nodes: int
    slots: int  # tasks the alive nodes can run at once with the resources each asks for


@dataclass
class Throughput:
    started: float
    inputs: int = 0
    frames: int = 0

    def text(self, view: ClusterView, in_flight: int) -> str:
        s = max(time.monotonic() - self.started, 1e-6)
        return (f"{view.nodes} node(s) · {view.slots} worker(s) · {in_flight} in flight · "
                f"{self.inputs / s:.2f} inputs/s · {self.frames / s:.1f} frames/s")


def connect(address: str | None, workers: int | None, cpus_per_worker: float) -> bool:
    """Join the cluster at ``address`` (else ``RAY_ADDRESS``), or start Ray on this machine. True when
    this call started the connection (the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=math.ceil(max(workers or os.cpu_count() or 1, 1) * cpus_per_worker),
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError) as exc:
        chain, e = [], exc
        while e is not None:
            chain.append(str(e))
            e = e.__cause__ or e.__context__
        if any("InvalidAuthToken" in text or "AuthenticationError" in text for text in chain):
            raise ConfigError(f"the Ray cluster at {address} refused the connection (token authentication)",
                              AUTH_FIX) from None
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}",
                          "start it with `ray start --head` (then `ray start --address HEAD:6379` on each "
                          "other node) and pass --address HEAD:6379 or set RAY_ADDRESS") from None
    return True


def cluster_view(cpus_per_worker: float, gpus_per_worker: float) -> ClusterView:
    import ray

    total = ray.cluster_resources()
    slots = int(total.get("CPU", 0) // cpus_per_worker) if cpus_per_worker > 0 else 1 << 30
    if gpus_per_worker > 0:
        slots = min(slots, int(total.get("GPU", 0) // gpus_per_worker))
    return ClusterView(sum(1 for n in ray.nodes() if n.get("Alive")), slots)


_worker: Worker | None = None
_worker_args: tuple[Any, ...] | None = None


def _run_task(args: tuple[Any, ...], source: str, key: str, notes: list[str]) -> dict[str, Any]:
    """One input, as a Ray task: the worker process keeps its models between the tasks of a run."""
    global _worker, _worker_args
    if _worker is None or _worker_args != args:
        skip_pyplot_import()  # as in local worker processes: MediaPipe's import without matplotlib
        with worker_threads():  # one thread per task, as in local worker processes
            _worker, _worker_args = Worker(*args), args
    return _worker.run(source, key, notes)


def _lost_attempt(exc: Exception) -> tuple[bool, str]:
    """What an attempt that returned nothing means: (its node was lost, a note for the input's warnings).
    Raises for what no retry fixes (a node without the models or the shared folder, impossible resources)."""
    from ray import exceptions as rex

    if isinstance(exc, rex.RayTaskError):  # the task raised: a bad node setup, or a full disk
        cause = exc.cause
        if isinstance(cause, LfaError):
            raise cause from None
        return False, f"failed ({first_line(cause or exc)})"
    if isinstance(exc, (rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
        raise ConfigError(f"Ray cannot run curation tasks: {first_line(exc)}",
                          "check --cpus-per-worker / --gpus-per-worker against the nodes") from None
    if isinstance(exc, rex.NodeDiedError):
        return True, f"lost with its node ({first_line(exc)})"
    return False, f"ended with its worker process dead ({first_line(exc)})"  # native crash, OOM killer


def run_ray(todo: Todo, config: CurateConfig, out_dir: Path, workers: int | None, address: str | None,
            cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, attempts: int = 3,
            status: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one summary per input of ``todo`` (results are saved by the workers; failure rows of inputs
    that exhausted their attempts by the driver). ``workers``: at most this many in flight (default:
    every slot of the cluster, re-read as nodes come and go)."""
    try:
        import ray
        from ray import exceptions as rex
    except ImportError:  # pragma: no cover - ray is a dependency
        raise ConfigError("the Ray executor needs ray", "pip install ray") from None
    tries = Attempts(attempts)
    say = status or (lambda text: None)
    started = connect(address, workers, cpus_per_worker)
    try:
        task = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_retries=0)(_run_task)
        args = (config.to_dict(), str(out_dir.resolve()), os.environ.get("LFA_HOME"))
        store = ResultStore(out_dir, config.work_digest())
        queue = deque((str(s), key) for s, key in todo)
        running: dict[Any, tuple[str, str]] = {}
        rate = Throughput(time.monotonic())
        view, seen = cluster_view(cpus_per_worker, gpus_per_worker), time.monotonic()
        while queue or running:
            if time.monotonic() - seen > 2.0:
                view, seen = cluster_view(cpus_per_worker, gpus_per_worker), time.monotonic()
            window = max(1, min(workers or view.slots, view.slots))
            while queue and len(running) < window:
                source, key = queue.popleft()
                running[task.remote(args, source, key, tries.notes.get(key, []))] = (source, key)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                source, key = running.pop(ref)
                try:
                    summary = ray.get(ref)
                except rex.RayError as exc:
                    node_lost, what = _lost_attempt(exc)
                    seen = 0.0  # a node may have gone: re-read the cluster before submitting more
                    for gave_up in retry_or_give_up(tries, store, source, key, what, queue, say, not node_lost):
                        rate.inputs += 1
                        yield gave_up
                    continue
                rate.inputs += 1
                rate.frames += summary["decoded"]
                yield summary
            say(rate.text(view, len(running)))
    finally:
        if started:
            ray.shutdown()

