"""WHENet on PyTorch (channels_last) vs ONNX Runtime, one thread, side by side in one run.

    .venv/bin/python bench/whenet_runtime.py [--batch 2] [--repeats 30]

Batch 2 is what lfa runs per face (the crop and its mirror). Prints medians and the largest logit
difference between the two runtimes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lfa.face.nets.whenet import WHENetOnnx, load_whenet
from lfa.registry import ModelStore


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights = ModelStore().path("whenet")
    eager, onnx = load_whenet(weights), WHENetOnnx(weights, threads=1)
    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        diff = max(float((a - b).abs().max()) for a, b in zip(eager(x), onnx(x)))
        # alternate the two so that machine load hits both alike
        t_eager, t_onnx = [], []
        for _ in range(3):
            t_eager.append(median_ms(lambda: eager(x), args.repeats // 3))
            t_onnx.append(median_ms(lambda: onnx(x), args.repeats // 3))
    e, o = statistics.median(t_eager), statistics.median(t_onnx)
    print(f"batch {args.batch}, 1 thread: PyTorch {e:.1f} ms, ONNX Runtime {o:.1f} ms = {e / o:.2f}x faster; "
          f"largest logit difference {diff:.1e}")


if __name__ == "__main__":
    main()
