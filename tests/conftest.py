from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.registry import ModelStore
from lfa.samples import sample_photo

OFFLINE_DEFAULTS = ("yunet", "face_landmarker", "dlib_resnet", "whenet")


@pytest.fixture(scope="session")
def store() -> ModelStore:
    store = ModelStore()
    missing = [n for n in OFFLINE_DEFAULTS if not store.is_available(n)]
    assert not missing, f"offline default models missing: {missing}; run `lfa models fetch` (make test does)"
    return store


@pytest.fixture
def user_store(tmp_path, store: ModelStore) -> ModelStore:
    """A fresh cache holding the offline defaults (linked) and no user-supplied model."""
    user = ModelStore(tmp_path / "lfa-home")
    for name in OFFLINE_DEFAULTS:
        user.model_dir(name).mkdir(parents=True)
        (user.model_dir(name) / store.path(name).name).symlink_to(store.path(name))
    return user


@pytest.fixture(scope="session")
def analyzer(store: ModelStore) -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(), store=store)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return sample_photo("astronaut")


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    return sample_photo("grace_hopper")


@pytest.fixture(scope="session")
def heads(analyzer):
    from lfa.synth import HeadLibrary

    return HeadLibrary(analyzer)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, heads):
    """The standard labelled corpus, rendered once per test session."""
    from lfa.synth import build_corpus

    folder = tmp_path_factory.mktemp("corpus")
    build_corpus(folder, heads=heads)
    return folder


@pytest.fixture(scope="session")
def curated_corpus(corpus, tmp_path_factory):
    """The standard corpus curated with the defaults and the local executor (2 workers), once per session."""
    from lfa.curate.run import curate
    from lfa.synth import STANDARD_CORPUS

    run = tmp_path_factory.mktemp("run-local")
    summary = curate([corpus], run, executor="local", workers=2)
    assert summary.inputs == len(STANDARD_CORPUS) and not summary.failed
    return run


@pytest.fixture(scope="session")
def two_people(curated_corpus, tmp_path_factory) -> Path:
    """Three accepted clips of the curated standard corpus: the astronaut twice, Grace Hopper once."""
    import pyarrow.parquet as pq

    clips = ("large_angle_astronaut", "speaking_on_screen", "large_angle_grace")
    run = tmp_path_factory.mktemp("two-people")
    manifest = pq.read_table(curated_corpus / "manifest.parquet").to_pylist()
    keep = [r for r in manifest if Path(r["source"]).stem in clips]
    assert len(keep) == 3 and len({r["cluster_id"] for r in keep}) == 2
    pq.write_table(pq.read_table(curated_corpus / "manifest.parquet").take(
        [manifest.index(r) for r in keep]), run / "manifest.parquet")
    (run / "frames.parquet").symlink_to(curated_corpus / "frames.parquet")
    return run


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny random Wan T2V base (`lfa model init --preset tiny`), once per session."""
    from lfa.wan.base import init_tiny_base

    return init_tiny_base(tmp_path_factory.mktemp("base") / "wan-tiny")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Toy tensors run fastest on one thread (and do not fight other processes for the cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
