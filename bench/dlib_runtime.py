"""dlib's face-recognition ResNet: dlib's C++ (the prebuilt wheel, no BLAS) vs the same network on ONNX
Runtime (lfa's default), one thread each, side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/dlib_runtime.py [--batches 1 5] [--repeats 9]

Prints the median ms per face for each runtime and batch size, the speed-up, and the largest difference
between the two runtimes' L2-normalised descriptors.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402

from lfa.face.identity.dlib_resnet import DlibResNetEncoder  # noqa: E402
from lfa.registry import ModelStore  # noqa: E402
from timing import median_ms  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    weights = ModelStore().path("dlib_resnet")
    encoders = {"dlib C++": DlibResNetEncoder(weights, runtime="dlib"),
                "ONNX Runtime": DlibResNetEncoder(weights, runtime="onnx", threads=1)}
    chips = np.random.default_rng(0).integers(0, 256, (max(args.batches), 150, 150, 3), dtype=np.uint8)
    ref, got = (enc.embed_aligned(chips) for enc in encoders.values())
    print(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, ONNX Runtime intra-op threads 1; "
          f"max |onnx - dlib| (normalised) {np.abs(ref - got).max():.2e}")
    print(f"{'batch':>5}  {'dlib C++ ms/face':>16}  {'ONNX ms/face':>12}  {'speed-up':>8}")
    for batch in args.batches:
        times: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(3):  # alternate so that machine load hits both alike
            for name, enc in encoders.items():
                times[name].append(median_ms(lambda e=enc: e.embed_aligned(chips[:batch]), args.repeats // 3 or 1)
                                   / batch)
        d, o = statistics.median(times["dlib C++"]), statistics.median(times["ONNX Runtime"])
        print(f"{batch:>5}  {d:>16.1f}  {o:>12.1f}  {d / o:>7.1f}x")


if __name__ == "__main__":
    main()
