"""lfa curate on a real two-node Ray cluster on loopback: a head and a worker node, each a separate
`ray start` process with its own temp dir, ports and resources (one CPU each), token authentication on.
Through --address the tables equal the local executor's; with the worker node SIGKILLed mid-run the run
completes on the head with equal tables; an input that kills its worker process is tried a bounded
number of times, then becomes a failure row. The tests stop only the processes they started."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lfa.curate.config import CurateConfig
from lfa.curate.run import curate
from lfa.synth import ClipSpec, build_corpus
from tests.processes import cmdline, descendants

RAY = str(Path(sys.executable).with_name("ray"))
SETTINGS = ["tracking.sample_fps=2"]  # the fewest sampled frames that still decide these clips
TABLES = ("manifest", "frames", "rejected", "failures", "clusters")
SMALL = {  # short, small clips: an accepted one and two rejections
    "turning": ClipSpec("astronaut", "yaw-sweep", 2.4, fps=10, width=320, height=320, seed=1),
    "still": ClipSpec("astronaut", "static", 2.4, fps=10, width=320, height=320, seed=4),
    "small": ClipSpec("grace_hopper", "yaw-sweep", 2.4, fps=10, width=320, height=320, face_size=0.1, seed=8),
}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Node:
    """One `ray start --block` process of ours, in its own session, with its own RAY_TMPDIR."""

    def __init__(self, name: str, env: dict[str, str], head: str | None = None, gcs_port: int = 0) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"lfa-{name}-", dir="/tmp"))  # short: Ray's socket paths
        p = _free_ports(6)
        cmd = [RAY, "start", "--block", "--num-cpus=1", f"--resources={{\"{name}\": 1}}",
               "--object-store-memory=100000000", "--disable-usage-stats", "--include-log-monitor=false",
               f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", "--min-worker-port=0",
               "--max-worker-port=0", f"--dashboard-agent-listen-port={p[2]}", f"--dashboard-agent-grpc-port={p[3]}",
               f"--metrics-export-port={p[4]}", f"--runtime-env-agent-port={p[5]}"]
        cmd += [f"--address={head}"] if head else ["--head", f"--port={gcs_port}", "--include-dashboard=false"]
        self.log = self.tmp / "node.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, env={**env, "RAY_TMPDIR": str(self.tmp)}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while "Ray runtime started" not in self.log.read_text():
            assert self.proc.poll() is None and time.time() < deadline, self.log.read_text()[-2000:]
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return descendants(self.proc.pid) if self.proc.poll() is None else []

    def stop(self) -> None:
        _kill(self.pids())
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what this node started
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Cluster:
    def __init__(self, head: Node, worker: Node, port: int) -> None:
        self.head, self.worker, self._address = head, worker, f"127.0.0.1:{port}"

    @property
    def address(self) -> str:
        """Once both nodes run (they boot while the small corpus renders and curates locally)."""
        self.head.wait_started()
        self.worker.wait_started()
        return self._address


def reset_auth_token_state() -> None:
    """Ray caches the auth mode and token per process; the tests switch between token clusters and local Ray."""
    from ray._private.authentication_test_utils import reset_auth_token_state as reset

    reset()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "token")  # the head, the worker node and this driver share the token
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        mp.delenv("RAY_ADDRESS", raising=False)
        reset_auth_token_state()  # an earlier local Ray of this process cached "no token"
        env = dict(os.environ)
        port = _free_ports(1)[0]
        head = Node("head", env, gcs_port=port)
        worker = Node("worker", env, head=f"127.0.0.1:{port}")  # joins once the head's GCS answers
        try:
            yield Cluster(head, worker, port)
        finally:
            worker.stop()
            head.stop()
    reset_auth_token_state()  # ... and later local runs of this process would still ask for a token


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, heads) -> Path:
    folder = tmp_path_factory.mktemp("small-corpus")
    build_corpus(folder, specs=SMALL, heads=heads)
    return folder


@pytest.fixture(scope="module")
def local_run(small_corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("local")
    curate([small_corpus], run, CurateConfig.load(None, SETTINGS), workers=1, report=False)
    return run


def rows(run: Path, name: str, source: str | None = None) -> list[dict]:
    out = pq.read_table(run / f"{name}.parquet").to_pylist()
    return [r for r in out if source is None or r.get("source", r.get("input")) == source]


def assert_same_tables(run: Path, local: Path) -> None:
    for name in TABLES:
        assert pq.read_table(run / f"{name}.parquet").equals(pq.read_table(local / f"{name}.parquet")), name
    assert [w for w in rows(run, "warnings") if w["stage"] != "executor"] == rows(local, "warnings")


def test_cluster_through_address_equals_local(cluster, small_corpus, local_run, tmp_path):
    address = cluster.address
    assert rows(local_run, "manifest") and rows(local_run, "rejected")  # both kinds of decision compared
    args = ["curate", str(small_corpus), "--out", str(tmp_path), "--executor", "ray", "--address", address,
            "--no-report"] + [x for s in SETTINGS for x in ("--set", s)]
    from lfa.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 inputs (3 processed now)" in " ".join(result.output.split())
    assert_same_tables(tmp_path, local_run)
    assert not [w for w in rows(tmp_path, "warnings") if w["stage"] == "executor"]


def _crash_on_marked_inputs() -> None:
    """Ray worker setup hook of this test only: an input named crash*.mp4 kills its worker process."""
    import lfa.curate.executors as executors

    real = executors.process_input

    def process_input(path, *args, **kwargs):
        if path.name.startswith("crash"):
            os._exit(3)
        return real(path, *args, **kwargs)

    executors.process_input = process_input


def test_an_input_that_kills_its_worker_becomes_a_failure_row(cluster, small_corpus, local_run, tmp_path):
    import ray
    import ray.cloudpickle

    address = cluster.address
    crash = tmp_path / "inbox" / "crash.mp4"
    crash.parent.mkdir()
    shutil.copy(small_corpus / "still.mp4", crash)
    good = small_corpus / "still.mp4"
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook reaches the workers by value
    ray.init(address=address, log_to_driver=False, runtime_env={"worker_process_setup_hook": _crash_on_marked_inputs})
    said: list[str] = []
    t0 = time.time()
    try:
        summary = curate([good, crash], tmp_path / "run", CurateConfig.load(None, SETTINGS), executor="ray",
                         workers=2, attempts=2, report=False, on_status=said.append)
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert time.time() - t0 < 120
    run = tmp_path / "run"
    assert summary.inputs == 2 and len(summary.failed) == 1
    failure = rows(run, "failures")
    assert [f["input"] for f in failure] == [str(crash)] and "gave up after 2 attempts" in failure[0]["error"]
    assert "re-encode" in failure[0]["fix"]
    notes = rows(run, "warnings", str(crash))
    assert [n["stage"] for n in notes] == ["executor", "executor", "duplicate"]  # a byte-identical copy of good
    assert all("worker process dead" in n["message"] for n in notes[:2])
    assert any(s.startswith("retrying crash.mp4") for s in said)
    assert any("in flight" in s and "inputs/s" in s and "frames/s" in s for s in said)
    for name in ("manifest", "frames", "rejected"):  # the other input is untouched by the crash
        assert rows(run, name, str(good)) == rows(local_run, name, str(good)), name


HOLD_THE_HEAD = """
import pathlib, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False)
started, release = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])

@ray.remote(num_cpus=1, resources={"head": 1})
def hold():
    started.touch()
    while not release.exists():
        time.sleep(0.05)

ray.get(hold.remote())
"""


def hold_the_head(address: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    """Occupy the head's one CPU until the returned file exists, so the run's first tasks must go to the
    worker node (otherwise the head may take them all before the worker node reports its CPU)."""
    started, release = folder / "head-held", folder / "release-head"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_THE_HEAD, address, str(started), str(release)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not started.exists():
        assert proc.poll() is None and time.time() < deadline, "could not occupy the head node"
        time.sleep(0.1)
    return proc, release


def test_worker_node_killed_mid_run_completes_on_the_head(cluster, small_corpus, local_run, tmp_path):
    address, worker = cluster.address, cluster.worker
    holder, release = hold_the_head(address, tmp_path)
    killed: list[list[int]] = []

    def kill_worker_node_while_busy() -> None:  # mid-task: the first time it is seen running one
        # (waiting for a saved result or 3 s into a task missed every task once in a full-suite run, where the
        # cluster's workers are warm and the whole test took 7.4 s)
        deadline = time.time() + 180
        while time.time() < deadline:
            pids = worker.pids()
            if any(cmdline(p).startswith("ray::_run_task") for p in pids):
                _kill(pids)
                killed.append(pids)
                break
            time.sleep(0.05)
        release.touch()  # the head takes over

    killer = threading.Thread(target=kill_worker_node_while_busy, daemon=True)
    killer.start()
    try:
        summary = curate([small_corpus], tmp_path, CurateConfig.load(None, SETTINGS), executor="ray",
                         address=address, workers=2, report=False)
    finally:
        release.touch()
        killer.join(timeout=5)
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
    assert killed, "the worker node never ran a task"
    time.sleep(0.5)
    assert not [p for p in killed[0] if _running(p)]
    assert summary.inputs == 3 and summary.processed == 3 and not summary.failed
    assert_same_tables(tmp_path, local_run)
    lost = [w for w in rows(tmp_path, "warnings") if w["stage"] == "executor"]
    assert lost and all("lost with its node" in w["message"] for w in lost)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_lfa_log_warnings_on_a_worker_reach_warnings_parquet(small_corpus, tmp_path, monkeypatch):
    """What lfa logs on a worker (e.g. a decoder giving up) lands in the input's warnings, which travel
    with its result: on a remote node nobody reads the worker's stderr."""
    import logging

    import lfa.curate.executors as executors
    from lfa.curate.pipeline import InputResult

    def process_input(path, *args, **kwargs):
        logging.getLogger("lfa.media.decode").warning("%s: decoding stopped early after t=1.000s: boom", path)
        logging.getLogger("lfa.media.decode").info("not a warning")
        return InputResult(str(path))

    monkeypatch.setattr(executors, "process_input", process_input)
    clip = small_corpus / "still.mp4"
    curate([clip], tmp_path, CurateConfig.load(None, SETTINGS), workers=1, report=False)
    assert rows(tmp_path, "warnings") == [{"source": str(clip), "clip_id": "", "stage": "log",
                                           "message": f"{clip}: decoding stopped early after t=1.000s: boom"}]
