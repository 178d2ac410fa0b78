"""YuNet on OpenCV's DNN module vs ONNX Runtime, one thread each, side by side in one run.

    .venv/bin/python bench/yunet_runtime.py [--repeats 30]

Times ``YuNetDetector.detect`` (resize, colour conversion, network, decoding, NMS) on a sample photo at
the frame sizes curation detects on: 512x512 and 640x360 (what 1280x720 and 1920x1080 become at
``tracking.detect_max_side=640``). Prints medians in ms and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

from lfa.face.detect.yunet import YuNetDetector  # noqa: E402
from lfa.registry import ModelStore  # noqa: E402
from lfa.samples import sample_photo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    path = ModelStore().path("yunet")
    runtimes = {name: YuNetDetector(path, runtime=name, threads=1) for name in ("opencv", "onnx")}
    photo = sample_photo("astronaut")
    print(f"{'frame':>9s} {'opencv ms':>10s} {'onnx ms':>8s} {'ratio':>6s}")
    for w, h in ((512, 512), (640, 360)):
        image = cv2.resize(photo, (w, h))
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        for _ in range(args.repeats):  # alternate, so that load changes hit both alike
            for name, detector in runtimes.items():
                t0 = time.perf_counter()
                detector.detect(image)
                times[name].append(time.perf_counter() - t0)
        cv_ms, ort_ms = (1000 * statistics.median(times[n]) for n in ("opencv", "onnx"))
        print(f"{w:>4d}x{h:<4d} {cv_ms:10.2f} {ort_ms:8.2f} {cv_ms / ort_ms:5.2f}x")


if __name__ == "__main__":
    main()
