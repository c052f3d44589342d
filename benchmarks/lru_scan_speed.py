"""The LRU's two scans side by side: seconds per training step (forward and backward) of round 4's LRU
(width 64 x 2 layers, state 128, batch 100, one-hot digits) with the sequential loop and with the chunked
scan, at each T, alternating so that both see the same machine; prints chunked / loop.

    python benchmarks/lru_scan_speed.py --lengths 1000 2000 --repeats 2 --threads 1
"""

import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F

from lstmgan.recurrent.lru import LRU


def step_seconds(model: LRU, x: torch.Tensor, y: torch.Tensor) -> float:
    started = time.perf_counter()
    F.cross_entropy(model(x), y).backward()
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LRU(10, 64, 10, num_layers=2, state_dim=128, r_min=0.99, r_max=0.9999, max_phase=math.pi / 10)
    for T in args.lengths:
        x = F.one_hot(torch.randint(0, 10, (100, T)), 10).float()
        y = torch.randint(0, 10, (100,))
        times = {"loop": [], "chunked": []}
        for _ in range(args.repeats):
            for scan in times:
                model.scan = scan
                times[scan].append(step_seconds(model, x, y))
        loop, chunked = min(times["loop"]), min(times["chunked"])
        print(f"T = {T:5d}: loop {loop:.2f} s/step, chunked {chunked:.2f} s/step, chunked / loop {chunked / loop:.2f}"
              f"  (peak memory so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB)", flush=True)
