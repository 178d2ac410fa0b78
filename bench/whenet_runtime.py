"""WHENet on PyTorch (channels_last) vs ONNX Runtime, one thread, side by side in one run; ``--graph``
times another exported graph of the same weights too (e.g. an older lfa's cached export).

    .venv/bin/python bench/whenet_runtime.py [--batch 2] [--repeats 30]

Batch 2 is what lfa runs per face (the crop and its mirror). Prints medians and the largest logit
difference between the two runtimes.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from lfa.face.nets.whenet import load_whenet
from lfa.face.nets.whenet_io import WHENetOnnx
from lfa.face.pose.whenet import prepare_graph
from lfa.registry import ModelStore
from timing import median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--graph", type=Path, help="another ONNX export of the same weights to time too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights = ModelStore().path("whenet")
    eager, onnx = load_whenet(weights), WHENetOnnx(prepare_graph(weights), threads=1)
    x = torch.randn(args.batch, 3, 224, 224)
    x_last, x_np = x.contiguous(memory_format=torch.channels_last), x.numpy()
    runs = {"PyTorch": lambda: eager(x_last), "ONNX as lfa exports it": lambda: onnx(x_np)}
    if args.graph:
        other = WHENetOnnx(args.graph, threads=1)
        runs[f"ONNX {args.graph.name}"] = lambda: other(x_np)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        reference = [t.numpy() for t in eager(x_last)]
        diff = {name: max(float(np.abs(a - np.asarray(b)).max()) for a, b in zip(reference, fn()))
                for name, fn in runs.items()}
        for _ in range(3):  # alternate so that machine load hits all alike
            for name, fn in runs.items():
                times[name].append(median_ms(fn, args.repeats // 3))
    base = statistics.median(times["PyTorch"])
    print(f"batch {args.batch}, 1 thread (median ms; speed-up over PyTorch; largest logit difference)")
    for name in runs:
        t = statistics.median(times[name])
        print(f"  {name:32s} {t:7.1f} ms  {base / t:5.2f}x  {diff[name]:.1e}")


if __name__ == "__main__":
    main()
