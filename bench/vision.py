"""Image encoders: images per second of ``encode_all`` (features computed once for a whole set).

Times the pretrained EfficientNet-Lite0 at 224 x 224 (the random images are already that size, so only the
network and encode_all's batching are timed), in contiguous NCHW and in channels-last memory, with the network
run on chunks of 1, 8 and 32 images, then encode_all itself (which runs channels-last chunks of one 224 x 224
image on a CPU). Each figure is the best of ``--repeats`` passes over ``--images`` images.

    python bench/vision.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import add_threads_argument, start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32, help="images per timed pass")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    ap.add_argument("--no-pretrained", action="store_true", help="random weights (no fetch; same speed)")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    import torch

    from rnnkit.nn import vision

    model = vision.build_encoder("efficientnet-lite0", pretrained=not args.no_pretrained)
    images = np.random.default_rng(0).random((args.images, 224, 224, 3), dtype=np.float32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)

    def best(run) -> float:
        run(min(2, len(x)))                          # warm-up: oneDNN picks its kernels
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            run(len(x))
            times.append(time.perf_counter() - t)
        return len(x) / min(times)

    print("| how | chunk | images/s |\n|---|---:|---:|")
    for layout in ("NCHW", "channels-last"):
        for chunk in (1, 8, 32):
            def run(n, chunk=chunk, layout=layout):
                with torch.inference_mode():
                    for i in range(0, n, chunk):
                        b = x[i:i + chunk].contiguous()
                        if layout == "channels-last":
                            b = b.contiguous(memory_format=torch.channels_last)
                        model(b)
            print(f"| network, {layout} | {chunk} | {best(run):.1f} |", flush=True)
    rate = best(lambda n: vision.encode_all(model, images[:n], batch_size=64))
    print(f"| encode_all(batch_size=64) | auto | {rate:.1f} |")


if __name__ == "__main__":
    main()
