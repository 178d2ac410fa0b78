"""The large-angle identity benchmark: a headline that a pasted photo or a static head cannot win
(calibrated identity per yaw bucket, weighted by whether the head reached the target angles), copy-paste
and motion flags, bootstrap intervals and paired comparisons, FaceSim by head pose, CLIPScore and peers'
scoring (compat modes). ``lfa bench`` is a thin layer over :func:`run_bench`.

>>> from lfa.bench import BenchConfig, run_bench
>>> result = run_bench("spec.jsonl", {"mine": Path("gen/mine")}, "out/bench", BenchConfig(workers=2))
>>> result.leaderboard[0]["model"], result.aggregates["mine"]["score"]

Metric definitions: :mod:`lfa.bench.metrics` and docs/BENCH.md.
"""

from lfa.bench.config import COMPAT_MODES, IDENTITY_MODELS, BenchConfig, available_identities
from lfa.bench.extract import Extractor
from lfa.bench.make_spec import MakeSpecResult, make_spec, read_manifest
from lfa.bench.records import FrameRecord, VideoAnalysis
from lfa.bench.result import BenchResult
from lfa.bench.runner import run_bench
from lfa.bench.spec import SpecItem, load_spec, parse_model_dirs, write_spec

__all__ = [
    "COMPAT_MODES",
    "IDENTITY_MODELS",
    "BenchConfig",
    "BenchResult",
    "Extractor",
    "FrameRecord",
    "MakeSpecResult",
    "SpecItem",
    "VideoAnalysis",
    "available_identities",
    "load_spec",
    "make_spec",
    "parse_model_dirs",
    "read_manifest",
    "run_bench",
    "write_spec",
]
